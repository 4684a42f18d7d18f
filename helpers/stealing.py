"""Model stealing through a prediction API (Tramèr et al., 2016).

* :func:`logistic_api` is a victim: a logistic model behind an API that answers with
  probabilities (optionally rounded, a defence) or with labels only.
* :func:`solve_logistic`: equation solving. ``logit(p) = w·x + b`` is linear in the unknowns,
  so ``d + 1`` answers to independent queries determine the ``d + 1`` parameters exactly.
* :func:`random_queries` and :func:`fit_copy`: learning-based extraction: query the API on
  inputs the attacker makes up, train a copy on the answers, measure :func:`agreement`.

NumPy and scikit-learn only: the victim can be any function from inputs to answers.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from helpers import validation

ANSWERS = ("probability", "label")


def _weights(w: Any) -> np.ndarray:
    return validation.finite_array("w", w, ndim=1)


def logistic_api(w: Any, b: float, answer: str = "probability", decimals: int | None = None) -> Callable:
    """A prediction API for the logistic model ``P(y=1|x) = sigmoid(w·x + b)``.

    ``answer="probability"`` returns ``P(y=1|x)`` per query row, rounded to ``decimals``
    decimal places if given (a defence); ``answer="label"`` returns 0/1 only.
    """
    w = _weights(w)
    b = validation._number("b", b)
    if answer not in ANSWERS:
        raise ValueError(f"answer must be one of {ANSWERS}, got {answer!r}")
    if decimals is not None:
        decimals = validation.positive_int("decimals", decimals, minimum=0)

    def query(X: Any) -> np.ndarray:
        X = validation.finite_array("X", X, ndim=2)
        if X.shape[1] != len(w):
            raise ValueError(f"X must have {len(w)} columns (the API's features), got {X.shape[1]}")
        p = 1.0 / (1.0 + np.exp(-(X @ w + b)))
        if answer == "label":
            return (p >= 0.5).astype(np.int64)
        return p if decimals is None else np.round(p, decimals)

    return query


def random_queries(n: int, d: int, rng: Any = None, scale: float = 1.0) -> np.ndarray:
    """``n`` made-up query rows of ``d`` features, drawn from ``N(0, scale²)`` (the attacker
    knows only the features' typical range). ``n`` is the query budget and must be >= 1."""
    n = validation.positive_int("n (the query budget)", n)
    d = validation.positive_int("d", d)
    scale = validation.positive("scale", scale)
    return validation.rng_from(rng).normal(0.0, scale, size=(n, d))


def solve_logistic(query: Callable, d: int, rng: Any = None, n_queries: int | None = None,
                   scale: float = 1.0) -> tuple[np.ndarray, float]:
    """Recover ``(w, b)`` of a logistic API from ``n_queries`` (default ``d + 1``) probability answers.

    Each answer ``p`` gives one linear equation ``w·x + b = log(p / (1 - p))``; ``d + 1``
    random queries are independent with probability 1, and least squares solves the system
    (exactly, up to floating point, when the answers are exact). Answers of exactly 0 or 1
    (labels, or heavy rounding) carry no logit and raise ``ValueError``.
    """
    d = validation.positive_int("d", d)
    n_queries = d + 1 if n_queries is None else validation.positive_int("n_queries", n_queries)
    if n_queries < d + 1:
        raise ValueError(f"n_queries must be at least d + 1 = {d + 1} (one equation per unknown), got {n_queries}")
    X = random_queries(n_queries, d, rng, scale)
    p = np.asarray(query(X), dtype=float).reshape(-1)
    if len(p) != n_queries:
        raise ValueError(f"query must return one answer per query row ({n_queries}), got {len(p)}")
    if np.any((p <= 0) | (p >= 1)):
        raise ValueError("the API's answers must be probabilities strictly between 0 and 1 (labels, or answers "
                         "rounded to 0 or 1, give no equation); got some at 0 or 1")
    A = np.column_stack([X, np.ones(n_queries)])
    solution, *_ = np.linalg.lstsq(A, np.log(p / (1.0 - p)), rcond=None)
    return solution[:-1], float(solution[-1])


def fit_copy(X_queries: Any, answers: Any, answer: str = "probability", seed: int = 0):
    """A linear copy of a binary classifier trained on the API's answers to ``X_queries``.

    ``answer="probability"``: ridge regression (``alpha=1``) on the logits of the answers
    (clipped to [1e-6, 1 - 1e-6]; the ridge keeps the copy defined with fewer queries than
    features); ``"label"``: logistic regression on the 0/1 answers (if every answer
    is one class, the copy answers that class). Returns a function ``predict(X) -> labels``.
    """
    from sklearn.linear_model import LogisticRegression, Ridge

    X = validation.finite_array("X_queries", X_queries, ndim=2)
    y = validation.finite_array("answers", answers, ndim=1)
    if len(y) != len(X):
        raise ValueError(f"answers must have one value per query row ({len(X)}), got {len(y)}")
    if answer not in ANSWERS:
        raise ValueError(f"answer must be one of {ANSWERS}, got {answer!r}")
    if answer == "probability":
        p = np.clip(y, 1e-6, 1 - 1e-6)
        reg = Ridge(alpha=1.0).fit(X, np.log(p / (1 - p)))
        return lambda Z: (reg.predict(np.asarray(Z, dtype=float)) >= 0).astype(np.int64)
    labels = y.astype(np.int64)
    if len(np.unique(labels)) < 2:
        only = int(labels[0])
        return lambda Z: np.full(len(Z), only, dtype=np.int64)
    clf = LogisticRegression(C=100.0, max_iter=2000, random_state=seed).fit(X, labels)
    return lambda Z: clf.predict(np.asarray(Z, dtype=float)).astype(np.int64)


def agreement(labels_a: Any, labels_b: Any) -> float:
    """Fraction of inputs on which two models give the same label."""
    a, b = np.asarray(labels_a).reshape(-1), np.asarray(labels_b).reshape(-1)
    if len(a) != len(b) or len(a) == 0:
        raise ValueError(f"labels_a and labels_b must be non-empty and of equal length, got {len(a)} and {len(b)}")
    return float(np.mean(a == b))
