"""nbval with tolerant numbers: strict about meaning, tolerant about the last digits.

nbval re-executes every notebook and compares each cell's fresh outputs with the outputs
saved in the notebook. Trained models give slightly different numbers on different CPUs
(numpy and TensorFlow pick SIMD kernels per CPU), so an exact comparison fails on the next
machine. This plugin keeps nbval's execution and replaces only its comparison of two
outputs:

* the text is cut into **numbers** and **the rest**;
* the rest (words, punctuation, line breaks, the number of numbers, the kinds and order of
  the outputs, stdout versus stderr, errors) must be identical; horizontal spacing is not
  compared, because a wider number shifts the columns of a table;
* each number must lie within the tolerance of its kind, read from how the saved number
  is printed (:data:`TOLERANCES`):

  ==================  ==============================  =====================
  kind                example                         equal when
  ==================  ==============================  =====================
  integer             ``53``, ``2^-10``, ``PGD-40``   identical
  percentage          ``80.2%``                       within 2 points
  rate                ``0.940`` (a decimal in [-1,1]) within 0.02
  other decimal       ``4.520``, ``1e-05``            within 2 % (relative)
  ==================  ==============================  =====================

  A digit glued to a word (``x0``, ``float32``, ``100_000``) is part of the word.
  A cell whose printed number legitimately varies more (a count from a trained model
  on a knife edge) may widen its own tolerances with a comment line such as
  ``# NBVAL_TOLERANCE: integer=2 decimal=0.15`` (:func:`cell_tolerances`), and says why.

The tolerances come from evidence: the course's notebooks executed on two CPUs (AVX2 and
AVX-512; ``tests/fixtures/cross_cpu/``) differ by at most 0.007 in a rate and 1.2 points
in a percentage. Durations, speed ratios and memory addresses are still replaced first by
``nbval_sanitize.cfg``, and a cell whose whole output is a timing is still marked
``# NBVAL_IGNORE_OUTPUT``. Images are not compared (nbval's default). Learning claims are
guarded by ``assert`` cells in the notebooks, so a claim that breaks fails whatever the
tolerance.

The root ``conftest.py`` loads this module as a pytest plugin; it changes nothing else in
nbval (execution, markers, timeouts, kernels).
"""
from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import pytest
from nbval.plugin import IPyNbCell, coalesce_streams

# A number: optional sign (ASCII or Unicode minus), digits with an optional decimal part
# and exponent. It must not be glued to a word or to another number on either side.
NUMBER = re.compile(r"(?<![\w.])[-+\u2212]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?(?!\w)")
HORIZONTAL_SPACE = re.compile(r"[ \t]+")
NOT_COMPARED = ("image/png", "image/jpeg", "image/svg+xml", "application/vnd.jupyter.widget-view+json")


@dataclass(frozen=True)
class Tolerance:
    """How far a fresh number may lie from the saved one of the same kind."""

    kind: str
    absolute: float = 0.0
    relative: float = 0.0

    def allows(self, saved: float, fresh: float) -> bool:
        return abs(saved - fresh) <= self.absolute + self.relative * max(abs(saved), abs(fresh))

    def __str__(self) -> str:
        if self.absolute:
            return f"a {self.kind}, allowed ±{self.absolute:g}"
        if self.relative:
            return f"a {self.kind}, allowed ±{self.relative:.0%}"
        return f"an {self.kind}, compared exactly"


TOLERANCES = {
    "integer": Tolerance("integer"),
    "percentage": Tolerance("percentage", absolute=2.0),
    "rate": Tolerance("rate", absolute=0.02),
    "decimal": Tolerance("decimal", relative=0.02),
}


def kind_of(token: str, followed_by: str) -> str:
    """The kind of a saved number, from how it is printed and the character after it."""
    if followed_by == "%":
        return "percentage"
    if not re.search(r"[.eE]", token):
        return "integer"
    return "rate" if "e" not in token.lower() and abs(_value(token)) <= 1 else "decimal"


def _value(token: str) -> float:
    return float(token.replace("\u2212", "-"))


def split_numbers(text: str) -> tuple[str, list[tuple[str, str]]]:
    """``text`` as (skeleton, numbers): the skeleton is the text without its numbers (each
    replaced by a NUL character) and without horizontal spacing; ``numbers`` lists each
    number's token and the first non-space character after it."""
    numbers = [(m.group(), text[m.end():].lstrip(" ")[:1]) for m in NUMBER.finditer(text)]
    skeleton = HORIZONTAL_SPACE.sub("", NUMBER.sub("\x00", text))
    return skeleton, numbers


def text_difference(saved: str, fresh: str, tolerances: dict[str, Tolerance] = TOLERANCES) -> str | None:
    """``None`` if two texts agree (numbers within tolerance), else why they do not."""
    if saved == fresh:
        return None
    saved_skeleton, saved_numbers = split_numbers(saved)
    fresh_skeleton, fresh_numbers = split_numbers(fresh)
    if saved_skeleton != fresh_skeleton or len(saved_numbers) != len(fresh_numbers):
        return "the text differs beyond its numbers"
    for index, ((token, after), (fresh_token, _)) in enumerate(zip(saved_numbers, fresh_numbers), 1):
        tolerance = tolerances[kind_of(token, after)]
        if not tolerance.allows(_value(token), _value(fresh_token)):
            return f"number {index}: saved {token}, fresh {fresh_token} ({tolerance})"
    return None


def comparable(outputs: Iterable[Any], sanitize: Callable[[str], str] = lambda s: s) -> list[tuple[str, str]]:
    """A cell's outputs as (key, text) pairs in order: one pair per stream (stdout and
    stderr apart, chunks joined), per error, and per MIME type of each displayed result
    (MIME types in alphabetical order, as a saved notebook stores them)."""
    pairs = []
    for output in coalesce_streams(copy.deepcopy(list(outputs))):  # coalescing edits in place
        kind = output["output_type"]
        if kind == "stream":
            pairs.append((output["name"], output["text"]))
        elif kind == "error":
            pairs.append(("error", f"{output['ename']}: {output['evalue']}"))
        else:
            for mime, value in sorted(output.get("data", {}).items()):  # saved notebooks sort them
                if mime not in NOT_COMPARED:
                    pairs.append((mime, value if isinstance(value, str) else json.dumps(value, sort_keys=True)))
    return [(key, sanitize(text)) for key, text in pairs]


def cell_tolerances(source: str) -> dict[str, Tolerance]:
    """The tolerances for one cell: :data:`TOLERANCES`, widened by a comment line such as
    ``# NBVAL_TOLERANCE: decimal=0.15 integer=2`` (integer, percentage and rate are
    absolute, decimal is relative). For a number that legitimately varies more across
    CPUs; the cell should say why in a comment."""
    tolerances = dict(TOLERANCES)
    for line in source.splitlines():
        marker = re.match(r"\s*#\s*NBVAL_TOLERANCE:(.*)$", line)
        if not marker:
            continue
        for item in marker.group(1).split():
            kind, _, value = item.partition("=")
            if kind not in TOLERANCES or not re.fullmatch(r"\d+(\.\d+)?", value):
                raise ValueError(f"NBVAL_TOLERANCE takes kind=value with kind in {sorted(TOLERANCES)} "
                                 f"and a non-negative number, got {item!r}")
            field = "relative" if kind == "decimal" else "absolute"
            tolerances[kind] = Tolerance(kind, **{field: float(value)})
    return tolerances


def output_differences(saved: Iterable[Any], fresh: Iterable[Any],
                       sanitize: Callable[[str], str] = lambda s: s,
                       tolerances: dict[str, Tolerance] = TOLERANCES) -> list[str]:
    """Why a cell's fresh outputs do not match its saved ones (an empty list if they do)."""
    saved_pairs, fresh_pairs = comparable(saved, sanitize), comparable(fresh, sanitize)
    saved_keys, fresh_keys = [k for k, _ in saved_pairs], [k for k, _ in fresh_pairs]
    if saved_keys != fresh_keys:
        return [f"outputs differ: saved {saved_keys}, fresh {fresh_keys}",
                *(f"fresh {k}: {t[:500]}" for k, t in fresh_pairs)]
    for (key, saved_text), (_, fresh_text) in zip(saved_pairs, fresh_pairs):
        reason = text_difference(saved_text, fresh_text, tolerances)
        if reason:
            return [f"{key} differs: {reason}", "saved:", saved_text, "fresh:", fresh_text]
    return []


class TolerantCell(IPyNbCell):
    """An nbval cell whose outputs are compared by :func:`output_differences`."""

    def compare_outputs(self, test, ref, skip_compare=None):
        self.comparison_traceback = output_differences(ref, test, self.sanitize, cell_tolerances(self.cell.source))
        return not self.comparison_traceback


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items):
    """Give every collected nbval cell the tolerant comparison (nothing else changes)."""
    for item in items:
        if type(item) is IPyNbCell:
            item.__class__ = TolerantCell
