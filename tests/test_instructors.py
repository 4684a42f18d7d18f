"""The instructor's guide (``instructors/``) matches the notebooks it describes.

Conventions the pages follow, and this file checks:

* one page per notebook, ``instructors/<notebook stem>.md``, with the sections in ``REQUIRED_SECTIONS``;
* the 90-minute and 45-minute plans are Markdown tables ``| start | min | what | who |``: the minutes add
  up to 90 (45), each start (``h:mm``) is the sum of the minutes before it, and ``who`` is one of ``WHO``;
* a notebook section is cited as a link whose text starts with ``§``, e.g.
  ``[§ 4. Seeing ε](../notebooks/01_differential_privacy.ipynb)``: the text after ``§`` must be a heading
  of the linked notebook, or a bold lead-in (``**...**``) of one of its Markdown cells;
* an exercise is cited as ``Exercise N (`key`)``: the key must be checked in the page's notebook with
  ``check("key", ...)`` under the heading or bold lead-in "Exercise N", and every exercise of the notebook
  must appear in the page's 90-minute plan;
* every relative link in ``instructors/*.md`` resolves to an existing file.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "instructors"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
PAGES = sorted(p for p in GUIDE.glob("*.md") if re.match(r"\d\d_", p.name))

REQUIRED_SECTIONS = ("Learning goals", "90-minute plan", "Misconceptions", "Discussion questions",
                     "45-minute version", "Technical hiccups")
WHO = {"demo live", "learners alone", "pairs", "whole class"}
LINK = re.compile(r"(?<!!)\[([^\]]+)\]\(([^)\s]+)\)")
EXERCISE_CITED = re.compile(r"Exercise (\d+) \(`([a-z_]+\.[a-z0-9_]+)`\)")
CHECK_CALL = re.compile(r"""check\(\s*["']([a-z_]+\.[a-z0-9_]+)["']""")
EXERCISE_LEAD = re.compile(r"(?:^#+\s*|\*\*)Exercise (\d+)\b", re.MULTILINE)


def _norm(text: str) -> str:
    """Compare headings without Markdown emphasis or code marks, spacing or a final full stop."""
    return " ".join(text.replace("`", "").replace("*", "").split()).rstrip(".: ").lower()


def _cells(notebook: Path) -> list[tuple[str, str]]:
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    return [(c["cell_type"], "".join(c["source"])) for c in cells]


def notebook_citables(notebook: Path) -> tuple[set[str], set[str]]:
    """The notebook's headings and bold lead-ins, normalized."""
    headings, bold = set(), set()
    for kind, source in _cells(notebook):
        if kind != "markdown":
            continue
        headings |= {_norm(h) for h in re.findall(r"^#{1,6}\s+(.+)$", source, re.MULTILINE)}
        bold |= {_norm(b) for b in re.findall(r"\*\*(.+?)\*\*", source)}
    return headings, bold


def notebook_exercises(notebook: Path) -> dict[str, int]:
    """Exercise key -> the number of the "Exercise N" lead-in above its check cell."""
    numbers, current = {}, None
    for kind, source in _cells(notebook):
        if kind == "markdown":
            leads = EXERCISE_LEAD.findall(source)
            if leads:
                current = int(leads[-1])
        else:
            for key in CHECK_CALL.findall(source):
                numbers.setdefault(key, current)
    return numbers


def sections(page: Path) -> dict[str, str]:
    """Level-2 heading -> the text below it, up to the next level-2 heading."""
    parts = re.split(r"^## +(.+?)\s*$", page.read_text(encoding="utf-8"), flags=re.MULTILINE)
    return {title: body for title, body in zip(parts[1::2], parts[2::2])}


def plan_rows(text: str) -> list[tuple[str, int, str, str]]:
    """The rows of the first ``| start | min | what | who |`` table in ``text``."""
    rows, in_table = [], False
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.lstrip().startswith("|") else None
        if cells is None:
            if in_table:
                break
            continue
        if not in_table:
            assert [c.lower() for c in cells[:2]] == ["start", "min"], f"plan table header: {line!r}"
            in_table = True
            continue
        if set(cells[0]) <= set("-: "):
            continue
        assert len(cells) == 4, f"a plan row has 4 cells (start, min, what, who): {line!r}"
        rows.append((cells[0], int(cells[1]), cells[2], cells[3]))
    return rows


def _page_id(page: Path) -> str:
    return page.stem


def test_every_notebook_has_a_page():
    assert NOTEBOOKS, "no notebooks found"
    missing = [nb.name for nb in NOTEBOOKS if not (GUIDE / (nb.stem + ".md")).exists()]
    assert not missing, f"instructors/ has no page for {missing}"
    orphans = [p.name for p in PAGES if not (ROOT / "notebooks" / (p.stem + ".ipynb")).exists()]
    assert not orphans, f"pages without a notebook: {orphans}"


def test_index_and_running_pages_link_everything():
    index = (GUIDE / "index.md").read_text(encoding="utf-8")
    targets = {Path(t.split("#")[0]).name for _, t in LINK.findall(index)}
    for page in PAGES + [GUIDE / "running_the_course.md"]:
        assert page.name in targets, f"index.md does not link {page.name}"
    running = (GUIDE / "running_the_course.md").read_text(encoding="utf-8")
    for phrase in ("python3 course.py lab", "py course.py lab", "course.py wheelhouse", "--wheelhouse",
                   "Binder", ".venv", "helpers/exercises"):
        assert phrase in running, f"running_the_course.md does not mention {phrase!r}"


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_page_has_the_required_sections(page):
    found = sections(page)
    missing = [s for s in REQUIRED_SECTIONS if s not in found]
    assert not missing, f"{page.name} lacks the sections {missing}"
    goals = [line for line in found["Learning goals"].splitlines() if line.strip()]
    items = [line for line in goals if re.match(r"\s*([-*]|\d+\.)\s", line)]
    assert 3 <= len(items) <= 8 and len(items) == len(goals), f"{page.name}: learning goals, one line each"
    misconceptions = re.findall(r"^### ", found["Misconceptions"], re.MULTILINE)
    assert len(misconceptions) == 3, f"{page.name}: three misconceptions, one ### each"
    for block in re.split(r"^### ", found["Misconceptions"], flags=re.MULTILINE)[1:]:
        assert any(text.startswith("§") for text, _ in LINK.findall(block)), \
            f"{page.name}: misconception {block.splitlines()[0]!r} cites no notebook section"
    questions = re.findall(r"^\*\*Q\d+\.\*\*", found["Discussion questions"], re.MULTILINE)
    answers = re.findall(r"^\*\*Model answer\.\*\*", found["Discussion questions"], re.MULTILINE)
    assert 4 <= len(questions) <= 6, f"{page.name}: 4-6 discussion questions, found {len(questions)}"
    assert len(answers) == len(questions), f"{page.name}: every question has a model answer"
    short = found["45-minute version"]
    assert "**Skip or demo only.**" in short and "**What learners lose.**" in short, \
        f"{page.name}: the 45-minute version says what to skip and what learners lose"


@pytest.mark.parametrize("minutes, section", [(90, "90-minute plan"), (45, "45-minute version")])
@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_plans_add_up(page, minutes, section):
    rows = plan_rows(sections(page)[section])
    assert rows, f"{page.name}: no plan table in {section!r}"
    assert sum(r[1] for r in rows) == minutes, f"{page.name}: {section} adds up to {sum(r[1] for r in rows)}"
    clock = 0
    for start, length, what, who in rows:
        assert start == f"{clock // 60}:{clock % 60:02d}", f"{page.name}: row {what[:40]!r} starts at {start}"
        assert length > 0 and what, f"{page.name}: empty row at {start}"
        assert who in WHO, f"{page.name}: who is {who!r}, not one of {sorted(WHO)}"
        clock += length


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_exercises_cited_exist_and_all_are_planned(page):
    notebook = ROOT / "notebooks" / (page.stem + ".ipynb")
    numbers = notebook_exercises(notebook)
    text = page.read_text(encoding="utf-8")
    others = {k: n for nb in NOTEBOOKS for k, n in notebook_exercises(nb).items()}
    for number, key in EXERCISE_CITED.findall(text):
        assert key in others, f"{page.name} cites exercise {key!r}, which no notebook checks"
        assert others[key] == int(number), f"{page.name}: {key} is Exercise {others[key]}, not {number}"
    plan = sections(page)["90-minute plan"]
    unplanned = [k for k in numbers if f"(`{k}`)" not in plan]
    assert not unplanned, f"{page.name}: the 90-minute plan does not place {unplanned}"


@pytest.mark.parametrize("page", sorted(GUIDE.glob("*.md")), ids=_page_id)
def test_relative_links_resolve_and_sections_exist(page):
    text = page.read_text(encoding="utf-8")
    for label, target in LINK.findall(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue
        path = (page.parent / target.split("#")[0]).resolve()
        assert path.exists(), f"{page.name}: link {target!r} does not resolve"
        if label.startswith("§"):
            assert path.suffix == ".ipynb", f"{page.name}: § link {label!r} must point to a notebook"
            headings, bold = notebook_citables(path)
            cited = _norm(label[1:])
            assert cited in headings or cited in bold, \
                f"{page.name}: {label!r} is neither a heading nor a bold lead-in of {path.name}"
