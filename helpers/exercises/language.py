"""Exercises of notebook 08 (large models): keys ``language.*``. No TensorFlow needed."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from helpers.exercises.core import Finding, exercise

# --- 1. exposure from the log-probabilities of all candidates ------------------------------------


def exposure(log_p, secret):
    """Exposure (bits) of ``secret``: log2 of the number of candidates minus log2 of its rank."""
    import math

    import numpy as np

    log_p = np.asarray(log_p, dtype=float)
    rank = 1 + int(np.sum(log_p > log_p[int(secret)]))
    return math.log2(len(log_p)) - math.log2(rank)


def _natural_log(log_p, secret):
    log_p = np.asarray(log_p, dtype=float)
    rank = 1 + int(np.sum(log_p > log_p[int(secret)]))
    return math.log(len(log_p)) - math.log(rank)


def _ties_count(log_p, secret):
    log_p = np.asarray(log_p, dtype=float)
    rank = int(np.sum(log_p >= log_p[int(secret)]))
    return math.log2(len(log_p)) - math.log2(rank)


def _reversed_order(log_p, secret):
    log_p = np.asarray(log_p, dtype=float)
    rank = 1 + int(np.sum(log_p < log_p[int(secret)]))
    return math.log2(len(log_p)) - math.log2(rank)


def _cases() -> list[tuple[np.ndarray, str, float]]:
    rng = np.random.default_rng(8)
    cases = []
    log_p = np.log(rng.dirichlet(np.ones(1000)))
    order = np.argsort(-log_p)
    for rank in (1, 7, 500, 1000):
        cases.append((log_p, f"{order[rank - 1]:03d}", math.log2(1000) - math.log2(rank)))
    tied = np.full(100, -5.0)
    tied[42] = -1.0
    cases.append((tied, "17", math.log2(100) - math.log2(2)))   # 99 candidates tie; one is more likely
    return cases


@exercise(
    "language.exposure", "exposure of a canary from the log-probabilities of all candidate secrets",
    hint="rank = 1 + the number of candidates with a log-probability strictly greater than the secret's "
         "(log_p[int(secret)]); exposure = log2(len(log_p)) - log2(rank), in bits.",
    reference=exposure,
    wrong_answers=[(_natural_log, "bits"), (_ties_count, "strictly"), (_reversed_order, "most likely")],
)
def _check_exposure(answer: Any):
    if not callable(answer):
        yield Finding(False, "answer must be a function exposure(log_p, secret)")
        return
    cases = _cases()
    got = [float(answer(log_p, secret)) for log_p, secret, _ in cases]
    want = [w for _, _, w in cases]
    if abs(got[0] - want[0]) < 1e-9:
        yield Finding(True, f"the most likely candidate gets the maximum, log2(1000) = {want[0]:.3f} bits")
    elif abs(got[0] - math.log(1000)) < 1e-9:
        yield Finding(False, f"you returned {got[0]:.3f} for the most likely candidate: that is ln(1000); exposure "
                             f"is in bits (log2)")
    else:
        yield Finding(False, f"the most likely candidate should get log2(1000) = {want[0]:.3f} bits, you returned "
                             f"{got[0]:.3f}: the most likely secret has rank 1")
    if all(abs(g - w) < 1e-9 for g, w in zip(got[:4], want[:4])):
        yield Finding(True, "ranks 1, 7, 500 and 1000 of 1,000 candidates give the right exposures")
    else:
        yield Finding(False, f"for ranks 1, 7, 500, 1000 expected {np.round(want[:4], 3).tolist()}, got "
                             f"{np.round(got[:4], 3).tolist()}: rank the candidates from the most likely down")
    if abs(got[4] - want[4]) < 1e-9:
        yield Finding(True, "ties are not counted against the secret (only strictly more likely candidates)")
    else:
        yield Finding(False, f"with 98 candidates tied with the secret and one strictly more likely, the rank is 2 "
                             f"(exposure {want[4]:.3f}), you returned {got[4]:.3f}: count candidates strictly more "
                             f"likely, not ties")


# --- 2. group privacy: a patient with k notes under per-note DP ----------------------------------


def patient_guarantee(epsilon, delta, k):
    """Group privacy: (epsilon, delta)-DP for one example gives this for k examples."""
    import math

    return k * epsilon, k * math.exp((k - 1) * epsilon) * delta


def _unchanged(epsilon, delta, k):
    return epsilon, delta


def _linear_delta(epsilon, delta, k):
    return k * epsilon, k * delta


@exercise(
    "language.group_privacy", "the guarantee for a patient with k notes when DP is per note",
    hint="Chain k neighbouring datasets: ε adds up to k·ε, and each link multiplies the δ of the steps "
         "before by e^ε, giving k·e^((k-1)ε)·δ.",
    reference=patient_guarantee,
    wrong_answers=[(_unchanged, "one note"), (_linear_delta, "e^")],
)
def _check_group(answer: Any):
    if not callable(answer):
        yield Finding(False, "answer must be a function patient_guarantee(epsilon, delta, k) -> (epsilon, delta)")
        return
    got = tuple(float(v) for v in answer(4.0, 1e-5, 16))
    want = patient_guarantee(4.0, 1e-5, 16)
    if len(got) != 2:
        yield Finding(False, "return a pair (epsilon, delta)")
        return
    if abs(got[0] - want[0]) < 1e-9:
        yield Finding(True, f"ε for 16 notes at ε = 4 per note: {want[0]:g}")
    elif abs(got[0] - 4.0) < 1e-9:
        yield Finding(False, "you returned the guarantee for one note; a patient with 16 notes is 16 examples")
    else:
        yield Finding(False, f"ε for 16 notes at ε = 4 per note should be {want[0]:g}, got {got[0]:g}")
    if math.isclose(got[1], want[1], rel_tol=1e-9):
        yield Finding(True, f"δ for 16 notes: {want[1]:.3g}, more than 1: no guarantee at all for eva")
    elif math.isclose(got[1], 16 * 1e-5, rel_tol=1e-9):
        yield Finding(False, "δ does not just add up: each step of the chain multiplies the previous δ by e^ε, "
                             "giving k·e^((k-1)ε)·δ")
    else:
        yield Finding(False, f"δ for 16 notes should be k·e^((k-1)ε)·δ = {want[1]:.3g}, got {got[1]:.3g}")
    small = tuple(float(v) for v in answer(0.1, 1e-6, 1))
    if math.isclose(small[0], 0.1) and math.isclose(small[1], 1e-6):
        yield Finding(True, "k = 1 gives back the per-note guarantee")
    else:
        yield Finding(False, f"k = 1 must give back (ε, δ) = (0.1, 1e-06), got {small}")
