"""Exercises with automatic, specific feedback.

A notebook poses an exercise with a stub the learner edits, then a check cell::

    def randomized_response(truth, rng):
        ...  # your code here
        raise NotImplementedError

    check("dp.randomized_response", randomized_response)

:func:`check` prints what is right, what is wrong and a hint, never a bare "wrong".
An untouched stub (``NotImplementedError``, ``...`` or ``None``) is reported as "not
attempted yet" without failing, so a committed notebook runs top to bottom.
:func:`solution` prints the reference solution.

Exercises are defined in the modules of this package (``helpers.exercises.intro`` for
keys ``intro.*`` and so on) with the :func:`exercise` decorator on a *checker*: a
function that takes the learner's answer and yields :class:`Finding` objects.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil
import textwrap
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

PASS, FAIL = "✔", "✘"


@dataclass(frozen=True)
class Finding:
    """One observation about an answer: ``ok`` and a message that says why."""

    ok: bool
    message: str


@dataclass(frozen=True)
class Exercise:
    """An exercise: its checker, reference solution, hint and known wrong answers.

    ``wrong_answers`` pairs typical mistakes with a phrase the feedback must contain;
    the test suite checks each one (and that the reference passes every check).
    """

    key: str
    title: str
    checker: Callable[[Any], Iterable[Finding]]
    reference: Any
    hint: str
    wrong_answers: tuple[tuple[Any, str], ...] = ()


@dataclass
class Report:
    """The outcome of checking one answer."""

    exercise: Exercise
    findings: list[Finding] = field(default_factory=list)
    attempted: bool = True

    @property
    def passed(self) -> bool:
        return self.attempted and bool(self.findings) and all(f.ok for f in self.findings)

    def text(self) -> str:
        key = self.exercise.key
        if not self.attempted:
            return (f"Exercise {key} ({self.exercise.title}): not attempted yet.\n"
                    f"  Edit the cell above (replace the `...` / NotImplementedError), run it, then run this check.\n"
                    f"  Hint: {self.exercise.hint}\n"
                    f"  Stuck? solution({key!r}) prints a reference solution.")
        good = sum(f.ok for f in self.findings)
        head = (f"Exercise {key}: all {good} checks pass. Well done!" if self.passed
                else f"Exercise {key}: {good} of {len(self.findings)} checks pass.")
        lines = [head] + [f"  {PASS if f.ok else FAIL} {f.message}" for f in self.findings]
        if not self.passed:
            lines.append(f"  Hint: {self.exercise.hint}")
        return "\n".join(lines)


_REGISTRY: dict[str, Exercise] = {}


def exercise(key: str, title: str, hint: str, reference: Any,
             wrong_answers: Iterable[tuple[Any, str]] = ()) -> Callable:
    """Register the decorated checker as exercise ``key`` (``"<module>.<name>"``)."""
    if "." not in key:
        raise ValueError(f"key must look like '<module>.<name>', got {key!r}")

    def register(checker: Callable[[Any], Iterable[Finding]]) -> Callable:
        if key in _REGISTRY:
            raise ValueError(f"key {key!r} is already registered")
        _REGISTRY[key] = Exercise(key, title, checker, reference, hint, tuple(wrong_answers))
        return checker

    return register


def get(key: str) -> Exercise:
    """The exercise registered under ``key`` (importing its module on first use)."""
    if not isinstance(key, str) or "." not in key:
        raise ValueError(f"key must look like '<module>.<name>', got {key!r}")
    if key not in _REGISTRY:
        module = key.split(".", 1)[0]
        try:
            importlib.import_module(f"{__package__}.{module}")
        except ModuleNotFoundError:
            pass
    if key not in _REGISTRY:
        raise ValueError(f"key must name a known exercise, got {key!r}; known: {sorted(_REGISTRY)}")
    return _REGISTRY[key]


def all_exercises() -> list[Exercise]:
    """Every exercise of every module in this package (used by the tests)."""
    package = importlib.import_module(__package__)
    for info in pkgutil.iter_modules(package.__path__):
        if info.name != "core":
            importlib.import_module(f"{__package__}.{info.name}")
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def _not_attempted(answer: Any) -> bool:
    """``None``, ``...``, or a dict whose values are all still ``...``/``None``."""
    if isinstance(answer, dict) and answer:
        return all(value is None or value is Ellipsis for value in answer.values())
    return answer is None or answer is Ellipsis


def evaluate(key: str, answer: Any) -> Report:
    """Check ``answer`` against exercise ``key`` and return the report (prints nothing)."""
    ex = get(key)
    if _not_attempted(answer):
        return Report(ex, attempted=False)
    findings: list[Finding] = []
    try:
        for finding in ex.checker(answer):
            findings.append(finding)
    except NotImplementedError:
        return Report(ex, attempted=False)
    except Exception as error:  # the learner's code failed: say how, keep what passed
        findings.append(Finding(False, f"your code raised {type(error).__name__}: {error}"))
    return Report(ex, findings)


def check(key: str, answer: Any) -> None:
    """Check an answer and print specific feedback (the call notebooks make)."""
    print(evaluate(key, answer).text())


def solution(key: str) -> None:
    """Print the reference solution of exercise ``key``."""
    ex = get(key)
    ref = ex.reference
    if callable(ref):
        body = textwrap.dedent(inspect.getsource(ref))
    else:
        body = f"answer = {ref!r}"
    print(f"Reference solution for {key} ({ex.title}):\n\n{body.rstrip()}")
