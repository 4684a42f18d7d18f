"""The tolerant notebook comparison accepts another CPU's last digits and nothing more."""
import copy
import re
from pathlib import Path

import nbformat
import pytest
from nbval.plugin import get_sanitize_patterns

from tests import nbval_tolerance as tol

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "cross_cpu"
NAMES = sorted(p.stem for p in (FIXTURE / "avx2-committed").glob("*.json"))
PATTERNS = get_sanitize_patterns((ROOT / "nbval_sanitize.cfg").read_text())


def sanitize(text):
    """The course's nbval_sanitize.cfg, applied as nbval applies it."""
    for regex, replace in PATTERNS:
        text = re.sub(regex, replace, text)
    return text


def cells(machine, name):
    return nbformat.reads((FIXTURE / machine / f"{name}.json").read_text(encoding="utf-8"), as_version=4).cells


def stream(text, name="stdout"):
    return nbformat.from_dict({"output_type": "stream", "name": name, "text": text})


def result(text):
    return nbformat.from_dict({"output_type": "execute_result", "execution_count": 1, "metadata": {},
                               "data": {"text/plain": text}})


def test_fixture_is_a_real_second_cpu():
    assert NAMES == ["00_intro", "01_differential_privacy", "02_adversarial_training", "03_explainability",
                     "04_medical_case_study"]
    differing = sum(tol.comparable(a.outputs, sanitize) != tol.comparable(b.outputs, sanitize)
                    for name in NAMES for a, b in zip(cells("avx2-committed", name), cells("avx512-amd-epyc", name)))
    assert differing >= 9  # the 9 cells that failed the exact comparison on the second CPU


@pytest.mark.parametrize("name", NAMES)
def test_other_cpu_outputs_are_accepted(name):
    saved, fresh = cells("avx2-committed", name), cells("avx512-amd-epyc", name)
    assert len(saved) == len(fresh)
    for number, (a, b) in enumerate(zip(saved, fresh)):
        assert a.source == b.source
        if "NBVAL_IGNORE_OUTPUT" in a.source:
            continue
        assert tol.output_differences(a.outputs, b.outputs, sanitize) == [], f"{name} cell {number}"


def first_cell_with(name, pattern):
    for cell in cells("avx2-committed", name):
        if "NBVAL_IGNORE_OUTPUT" not in cell.source and any(
                re.search(pattern, text) for _, text in tol.comparable(cell.outputs)):
            return cell
    raise AssertionError(f"no cell of {name} prints {pattern!r}")


@pytest.mark.parametrize("name, old, new", [
    ("02_adversarial_training", "0.723", "0.753"),   # a rate moved by 0.03
    ("01_differential_privacy", "80.2%", "77.0%"),  # a percentage moved by 3.2 points
    ("04_medical_case_study", "143", "144"),        # an integer (a count) changed
])
def test_a_number_beyond_its_tolerance_is_rejected(name, old, new):
    cell = first_cell_with(name, re.escape(old))
    changed = copy.deepcopy(cell.outputs)
    for output in changed:
        if output.output_type == "stream":
            output.text = output.text.replace(old, new, 1)
        for mime in output.get("data", {}):
            if isinstance(output.data[mime], str):
                output.data[mime] = output.data[mime].replace(old, new, 1)
    assert tol.output_differences(cell.outputs, changed, sanitize)


def test_a_changed_word_and_a_removed_output_are_rejected():
    cell = first_cell_with("02_adversarial_training", r"PGD-trained model")
    reworded = copy.deepcopy(cell.outputs)
    reworded[0].text = reworded[0].text.replace("PGD-trained", "FGSM-trained")
    assert tol.output_differences(cell.outputs, reworded, sanitize)
    assert tol.output_differences(cell.outputs, [], sanitize)
    assert tol.output_differences(cell.outputs, cell.outputs + [stream("extra\n")], sanitize)


def test_stderr_and_errors_are_compared_strictly():
    assert tol.output_differences([stream("a 0.5\n")], [stream("a 0.5\n", "stderr")])
    assert tol.output_differences([stream("a 0.5\n")], [stream("a 0.5\n"), stream("warning\n", "stderr")])
    error = nbformat.from_dict({"output_type": "error", "ename": "ValueError", "evalue": "x", "traceback": []})
    assert tol.output_differences([stream("ok\n")], [error])


@pytest.mark.parametrize("saved, fresh, equal", [
    ("accuracy 0.940", "accuracy 0.943", True),
    ("accuracy 0.940", "accuracy 0.961", False),
    ("impossible: 80.2%", "impossible: 79.0%", True),
    ("impossible: 80.2%", "impossible: 77.9%", False),
    ("ε = 7.998", "ε = 8.100", True),
    ("ε = 7.998", "ε = 8.200", False),
    ("49 of 53", "48 of 53", False),
    ("49 of 53", "49 of 53", True),
    ("[0.94 0.87 0.72 0.2  0.   0.  ]", "[0.94 0.87 0.72 0.21 0.   0.  ]", True),   # numpy re-pads columns
    ("bias −0.42", "bias −0.43", True),
    ("bias -0.42", "bias 0.42", False),
    ("δ = 1e-05", "δ = 1e-06", False),
    ("grid step 2^-10", "grid step 2^-11", False),
    ("PGD-40 x 5", "PGD-41 x 5", False),
    ("float32", "float64", False),
    ("0.5 0.5", "0.5", False),            # the number of numbers
    ("a\nb 0.5", "a b 0.5", False),       # line breaks count
    ("mean age 48.16", "mean  age 48.16", True),
    ("mean age 48.16", "meanage 48.16", True),  # spacing is not compared
    ("mean age 48.16", "median age 48.16", False),
])
def test_text_difference(saved, fresh, equal):
    assert (tol.text_difference(saved, fresh) is None) == equal


def test_mime_types_of_one_output_are_compared_in_any_order():
    saved = nbformat.from_dict({"output_type": "display_data", "metadata": {},
                                "data": {"text/markdown": "AUC **0.940**", "text/plain": "<Markdown>"}})
    fresh = nbformat.from_dict({"output_type": "display_data", "metadata": {},
                                "data": {"text/plain": "<Markdown>", "text/markdown": "AUC **0.943**"}})
    assert tol.output_differences([saved], [fresh]) == []
    fresh.data["text/markdown"] = "AUC **0.990**"
    assert tol.output_differences([saved], [fresh])


def test_failure_names_the_number_and_its_tolerance():
    reason = tol.text_difference("acc 0.940 and 0.5", "acc 0.940 and 0.6")
    assert "number 2" in reason and "0.5" in reason and "0.6" in reason and "±0.02" in reason


def test_nbval_cells_get_the_tolerant_comparison(pytestconfig):
    assert pytestconfig.pluginmanager.has_plugin("tests.nbval_tolerance")


def test_a_cell_may_widen_its_tolerances_with_a_marker():
    wide = tol.cell_tolerances("x = 1\n# NBVAL_TOLERANCE: integer=2 decimal=0.15  \nprint(x)")
    assert tol.text_difference("60 of 70, ε ≥ 1.21", "61 of 70, ε ≥ 1.10", wide) is None
    assert tol.text_difference("60 of 70, ε ≥ 1.21", "63 of 70, ε ≥ 1.21", wide)
    assert tol.text_difference("60 of 70, ε ≥ 1.21", "61 of 70, ε ≥ 1.21")          # default: integers exact
    assert tol.cell_tolerances("print(1)") == tol.TOLERANCES
    with pytest.raises(ValueError, match="NBVAL_TOLERANCE"):
        tol.cell_tolerances("# NBVAL_TOLERANCE: count=2")
