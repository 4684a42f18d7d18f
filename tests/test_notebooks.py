"""Static checks of the committed notebooks: health (executed, in order, clean outputs)
and course conventions (structure, links, no absolute paths, no installs).

nbval re-executes the notebooks and compares outputs; these tests catch what nbval
does not: a notebook committed unexecuted, run out of order, or with stderr noise."""
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
MIN_EXERCISES = {"00": 2, "01": 3, "02": 3, "03": 3, "04": 2, "05": 3, "06": 2, "07": 2, "08": 2}
REQUIRED_SECTIONS = ("learning objectives", "prerequisites", "estimated time", "exercise", "summary",
                     "further reading")
ABSOLUTE_PATH = re.compile(r"(/home/\w|/Users/\w|/root/|/work/|/tmp/|\b[A-Z]:\\\\)")
LINK = re.compile(r"\]\(([^)\s]+)\)")
MAX_BYTES = 1_500_000


def load(path):
    return json.loads(path.read_text(encoding="utf-8"))


def source(cell):
    return "".join(cell["source"])


def code_cells(nb):
    return [c for c in nb["cells"] if c["cell_type"] == "code" and source(c).strip()]


def markdown(nb):
    return "\n".join(source(c) for c in nb["cells"] if c["cell_type"] == "markdown")


def output_text(output):
    if output.get("output_type") == "stream":
        return "".join(output.get("text", ""))
    data = output.get("data", {})
    return "".join("".join(data.get(k, "")) for k in ("text/plain", "text/markdown", "text/html"))


def test_notebooks_exist():
    assert NOTEBOOKS and NOTEBOOKS[0].name == "00_intro.ipynb"


@pytest.fixture(params=NOTEBOOKS, ids=lambda p: p.name)
def notebook(request):
    return request.param, load(request.param)


def test_executed_once_top_to_bottom(notebook):
    path, nb = notebook
    counts = [c.get("execution_count") for c in code_cells(nb)]
    assert None not in counts, f"{path.name} has unexecuted code cells"
    assert counts == list(range(1, len(counts) + 1)), f"{path.name}: run Restart & Run All, then save"


def test_outputs_are_clean(notebook):
    path, nb = notebook
    for cell in code_cells(nb):
        for output in cell.get("outputs", []):
            assert output["output_type"] != "error", f"{path.name}: error output in\n{source(cell)[:200]}"
            assert not (output["output_type"] == "stream" and output["name"] == "stderr"), \
                f"{path.name}: stderr output {output_text(output)[:200]!r}"
            assert "Traceback" not in output_text(output), f"{path.name}: traceback in an output"


def test_structure_and_conventions(notebook):
    path, nb = notebook
    first = nb["cells"][0]
    assert first["cell_type"] == "markdown" and source(first).startswith("# "), "first cell is the title"
    text = markdown(nb).lower()
    for section in REQUIRED_SECTIONS:
        assert section in text, f"{path.name} lacks a '{section}' section"
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    assert "setup(" in source(code_cells(nb)[0]), "the first code cell calls helpers.setup()"
    code = "\n".join(source(c) for c in code_cells(nb))
    assert "sys.path" not in code, "no sys.path edits: helpers is an installed package"
    assert not re.search(r"^\s*[!%]\s*pip", code, re.M), "no pip installs inside notebooks"
    assert "show_in_notebook" not in code, "LIME's show_in_notebook inlines 1.2 MB of JavaScript"
    assert re.search(r"^\s*assert ", code, re.M), "learning claims are guarded by assert cells"
    checks = len(re.findall(r"\bcheck\(", code))
    assert checks >= MIN_EXERCISES[path.name[:2]], f"{path.name} has {checks} exercise checks"
    assert path.stat().st_size < MAX_BYTES, f"{path.name} is {path.stat().st_size} bytes"


def test_no_absolute_paths(notebook):
    path, nb = notebook
    for cell in nb["cells"]:
        assert not ABSOLUTE_PATH.search(source(cell)), f"{path.name}: absolute path in a cell"
        for output in cell.get("outputs", []):
            assert not ABSOLUTE_PATH.search(output_text(output)), f"{path.name}: absolute path in an output"


def test_links_resolve_and_navigation(notebook):
    path, nb = notebook
    text = markdown(nb)
    for target in LINK.findall(text):
        if re.match(r"(https?|mailto):", target) or target.startswith("#"):
            continue
        assert (path.parent / target.split("#")[0]).exists(), f"{path.name}: broken link {target}"
    index = NOTEBOOKS.index(path)
    if index > 0:
        assert re.search(r"Previous[^\n]*\]\(" + re.escape(NOTEBOOKS[index - 1].name), text), "link to previous"
    if index + 1 < len(NOTEBOOKS):
        assert re.search(r"Next[^\n]*\]\(" + re.escape(NOTEBOOKS[index + 1].name), text), "link to next"


def test_readme_lists_every_notebook():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for path in NOTEBOOKS:
        assert f"notebooks/{path.name}" in readme, f"README's notebook map lacks {path.name}"
