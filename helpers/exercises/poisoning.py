"""Exercises of notebook 07 (poisoning, backdoors, stealing, unlearning): keys ``poisoning.*``. NumPy only."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from helpers.exercises.core import Finding, exercise

# --- 1. the group-privacy bound on a poisoning attack -------------------------------------------


def group_bound(p0: float, k: int, epsilon: float, delta: float) -> float:
    """Largest probability of an outcome after k poisoned records, for (ε, δ)-DP training."""
    if k == 0:
        return p0
    return min(1.0, math.exp(k * epsilon) * p0 + k * math.exp((k - 1) * epsilon) * delta)


def _one_record(p0, k, epsilon, delta):
    return min(1.0, math.exp(epsilon) * p0 + delta)


def _no_delta(p0, k, epsilon, delta):
    return min(1.0, math.exp(k * epsilon) * p0)


def _uncapped(p0, k, epsilon, delta):
    return math.exp(k * epsilon) * p0 + k * math.exp((k - 1) * epsilon) * delta


_CASES = ((0.02, 0, 2.0, 1e-5), (0.02, 1, 2.0, 1e-5), (0.001, 3, 0.5, 1e-5), (0.01, 2, 0.1, 1e-3),
          (0.02, 5, 2.0, 1e-5))


@exercise(
    "poisoning.group_bound", "what DP promises against k poisoned records",
    hint="Group privacy: k records changed one at a time, each step multiplies a probability by e^ε and adds δ. "
         "Unrolled: P_k <= e^(kε) p0 + k e^((k-1)ε) δ. A probability never exceeds 1, and k = 0 changes nothing.",
    reference=group_bound,
    wrong_answers=[(_one_record, "k = 3"), (_no_delta, "δ"), (_uncapped, "above 1")],
)
def _check_group_bound(answer: Any):
    if not callable(answer):
        yield Finding(False, "answer must be a function group_bound(p0, k, epsilon, delta)")
        return
    got = {case: float(answer(*case)) for case in _CASES}
    expect = {case: group_bound(*case) for case in _CASES}
    if not math.isclose(got[_CASES[0]], _CASES[0][0], rel_tol=1e-9):
        yield Finding(False, f"with k = 0 poisoned records nothing changes: expected p0 = {_CASES[0][0]}, "
                             f"got {got[_CASES[0]]:.4g}")
    else:
        yield Finding(True, "k = 0 gives p0: no poison, no change")
    small = _CASES[2]
    if not math.isclose(got[small], expect[small], rel_tol=1e-6):
        yield Finding(False, f"for p0 = {small[0]}, k = 3, ε = {small[2]}, δ = {small[3]:g} expected "
                             f"{expect[small]:.6f}, got {got[small]:.6f}: the factor grows with k (e^(kε))")
    else:
        yield Finding(True, f"k = 3 records at ε = {small[2]}: the bound is {expect[small]:.6f}")
    delta_case = _CASES[3]
    if not math.isclose(got[delta_case], expect[delta_case], rel_tol=1e-6):
        yield Finding(False, f"for p0 = {delta_case[0]}, k = 2, ε = {delta_case[2]}, δ = {delta_case[3]:g} expected "
                             f"{expect[delta_case]:.6f}, got {got[delta_case]:.6f}: the δ term "
                             f"(k e^((k-1)ε) δ) matters when δ is not tiny")
    else:
        yield Finding(True, "the δ term k e^((k-1)ε) δ is included")
    big = _CASES[4]
    if got[big] > 1 + 1e-12:
        yield Finding(False, f"for k = 5 at ε = 2 your bound is {got[big]:.3g}, above 1: a probability is at most 1, "
                             f"so cap it (the bound then says nothing)")
    elif not math.isclose(got[big], 1.0):
        yield Finding(False, f"for k = 5 at ε = 2 expected 1.0 (e^10 p0 > 1), got {got[big]:.4g}")
    else:
        yield Finding(True, "capped at 1: at k = 5 and ε = 2 the bound is vacuous")


# --- 2. stealing a logistic model by solving equations ------------------------------------------


def steal_logistic(query, d: int) -> tuple[np.ndarray, float]:
    """Recover (w, b) of sigmoid(w·x + b) from d + 1 probability answers."""
    rng = np.random.default_rng(0)
    X = rng.normal(0.0, 1.0, size=(d + 1, d))
    p = np.asarray(query(X), dtype=float)
    A = np.column_stack([X, np.ones(d + 1)])
    theta = np.linalg.solve(A, np.log(p / (1 - p)))
    return theta[:-1], float(theta[-1])


def _linear_on_p(query, d):
    rng = np.random.default_rng(0)
    X = rng.normal(0.0, 1.0, size=(d + 1, d))
    theta = np.linalg.solve(np.column_stack([X, np.ones(d + 1)]), np.asarray(query(X), dtype=float))
    return theta[:-1], float(theta[-1])


def _many_queries(query, d):
    rng = np.random.default_rng(0)
    X = rng.normal(0.0, 1.0, size=(50 * d, d))
    p = np.asarray(query(X), dtype=float)
    theta, *_ = np.linalg.lstsq(np.column_stack([X, np.ones(len(X))]), np.log(p / (1 - p)), rcond=None)
    return theta[:-1], float(theta[-1])


def _no_intercept(query, d):
    rng = np.random.default_rng(0)
    X = rng.normal(0.0, 1.0, size=(d, d))
    p = np.asarray(query(X), dtype=float)
    return np.linalg.solve(X, np.log(p / (1 - p))), 0.0


@exercise(
    "poisoning.steal_logistic", "steal a logistic model with d + 1 queries",
    hint="The API answers p = sigmoid(w·x + b). Undo the sigmoid: log(p / (1 - p)) = w·x + b is one linear "
         "equation in the d + 1 unknowns (w, b). Ask d + 1 random queries, stack [x, 1] as the rows of a "
         "matrix and solve with np.linalg.solve.",
    reference=steal_logistic,
    wrong_answers=[(_linear_on_p, "logit"), (_many_queries, "queries"), (_no_intercept, "intercept")],
)
def _check_steal(answer: Any):
    if not callable(answer):
        yield Finding(False, "answer must be a function steal(query, d) returning (w, b)")
        return
    rng = np.random.default_rng(7)
    d = 6
    w_true, b_true = rng.normal(0, 0.7, d), -0.8
    asked: list[int] = []

    def query(X):
        X = np.asarray(X, dtype=float)
        if X.ndim != 2 or X.shape[1] != d:
            raise ValueError(f"queries must be rows of {d} features")
        asked.append(len(X))
        return 1.0 / (1.0 + np.exp(-(X @ w_true + b_true)))

    w, b = answer(query, d)
    w = np.asarray(w, dtype=float).reshape(-1)
    total = sum(asked)
    if total > d + 1:
        yield Finding(False, f"you asked {total} queries; d + 1 = {d + 1} suffice (one per unknown), and every "
                             f"query costs money and risks detection")
    else:
        yield Finding(True, f"{total} queries for {d + 1} unknowns")
    if w.shape != (d,):
        yield Finding(False, f"w must have {d} entries, got shape {w.shape}")
        return
    error = max(np.abs(w - w_true).max(), abs(float(b) - b_true))
    if error < 1e-6:
        yield Finding(True, f"w and b recovered exactly (largest error {error:.1e})")
    elif abs(float(b)) < 1e-12:
        yield Finding(False, f"the intercept b is missing (you returned b = 0; the true b is {b_true}): add a "
                             f"column of ones to the queries' matrix, making d + 1 unknowns")
    else:
        yield Finding(False, f"the recovered parameters are off by up to {error:.3g}: the answers are probabilities, "
                             f"linear in (w, b) only after the logit log(p / (1 - p))")
