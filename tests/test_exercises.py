"""Every exercise: its reference passes, typical mistakes get the intended feedback."""
import pytest

from helpers.exercises import all_exercises, check, evaluate, exercise, get, solution
from helpers.exercises.core import Finding

EXERCISES = all_exercises()


def test_there_are_exercises():
    assert len(EXERCISES) >= 3


@pytest.mark.parametrize("ex", EXERCISES, ids=lambda e: e.key)
def test_reference_solution_passes(ex):
    report = evaluate(ex.key, ex.reference)
    assert report.passed, report.text()
    assert "all" in report.text() and "pass" in report.text()


@pytest.mark.parametrize("ex", EXERCISES, ids=lambda e: e.key)
def test_wrong_answers_get_specific_feedback(ex):
    assert ex.wrong_answers, f"{ex.key} has no wrong-answer fixtures"
    for answer, expected in ex.wrong_answers:
        report = evaluate(ex.key, answer)
        assert not report.passed
        assert expected in report.text(), report.text()
        assert "Hint:" in report.text()


@pytest.mark.parametrize("ex", EXERCISES, ids=lambda e: e.key)
def test_untouched_stub_is_not_attempted(ex):
    def stub(*args, **kwargs):
        raise NotImplementedError
    stubs = [None, ..., {"A": ..., "B": None}] + ([stub] if callable(ex.reference) else [])
    for answer in stubs:
        report = evaluate(ex.key, answer)
        assert not report.attempted and not report.passed
        assert "not attempted yet" in report.text() and "solution(" in report.text()


@pytest.mark.parametrize("ex", EXERCISES, ids=lambda e: e.key)
def test_solution_prints_reference(ex, capsys):
    solution(ex.key)
    assert capsys.readouterr().out.startswith(f"Reference solution for {ex.key}")


def test_learner_exception_is_reported_not_raised(capsys):
    def broken(split):
        return 1 / 0
    check("intro.malignant_fraction", broken)
    assert "your code raised ZeroDivisionError" in capsys.readouterr().out


def test_unknown_key_and_duplicate_registration():
    with pytest.raises(ValueError, match="key must name a known exercise"):
        get("intro.nope")
    with pytest.raises(ValueError, match="key must look like"):
        get("nodot")
    with pytest.raises(ValueError, match="already registered"):
        exercise("intro.pillars", "t", "h", None)(lambda a: [Finding(True, "x")])
