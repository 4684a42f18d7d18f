"""Argument checks shared by every helper.

Each function returns the validated (and converted) value, or raises ``ValueError``
whose message names the argument and the allowed range, e.g.
``ValueError: epsilon must be a finite number > 0, got -1``.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np


def _number(name: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return number


def positive(name: str, value: Any) -> float:
    """A finite number > 0."""
    number = _number(name, value)
    if number <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return number


def non_negative(name: str, value: Any) -> float:
    """A finite number >= 0."""
    number = _number(name, value)
    if number < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return number


def in_open_interval(name: str, value: Any, low: float, high: float) -> float:
    """A finite number strictly between ``low`` and ``high``."""
    number = _number(name, value)
    if not low < number < high:
        raise ValueError(f"{name} must be in the open interval ({low}, {high}), got {value!r}")
    return number


def fraction(name: str, value: Any) -> float:
    """A number strictly between 0 and 1."""
    return in_open_interval(name, value, 0.0, 1.0)


def positive_int(name: str, value: Any, minimum: int = 1) -> int:
    """An integer >= ``minimum`` (bools are refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def bounds(lower_name: str, lower: Any, upper_name: str, upper: Any) -> tuple[float, float]:
    """Two finite numbers with ``lower < upper``."""
    lo, hi = _number(lower_name, lower), _number(upper_name, upper)
    if not lo < hi:
        raise ValueError(f"{lower_name} must be < {upper_name}, got {lower_name}={lower!r}, {upper_name}={upper!r}")
    return lo, hi


def finite_array(name: str, values: Any, ndim: int | None = None) -> np.ndarray:
    """A non-empty float array with only finite entries (and ``ndim`` dimensions if given)."""
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an array of numbers") from None
    if array.size == 0:
        raise ValueError(f"{name} must not be empty")
    if ndim is not None and array.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must contain only finite values (no NaN or inf)")
    return array


def training_data(X: Any, y: Any, ndim: int | None = 2) -> tuple[np.ndarray, np.ndarray]:
    """``X`` as a finite float32 array with ``ndim`` dimensions (``None``: any, at least 2, e.g.
    images ``(n, height, width, channels)``) and ``y`` flattened to one label per row of ``X``."""
    X = finite_array("X", X, ndim=ndim).astype(np.float32)
    if X.ndim < 2:
        raise ValueError(f"X must have one row per example (at least 2 dimensions), got shape {X.shape}")
    y = np.asarray(y).reshape(-1)
    if len(y) != len(X):
        raise ValueError(f"y must have one label per row of X ({len(X)}), got {len(y)}")
    return X, y


def rng_from(seed_or_rng: Any) -> np.random.Generator:
    """A ``numpy.random.Generator`` from a seed, a Generator, or ``None`` (fresh entropy)."""
    if isinstance(seed_or_rng, np.random.Generator):
        return seed_or_rng
    if seed_or_rng is None or (isinstance(seed_or_rng, (int, np.integer)) and not isinstance(seed_or_rng, bool)
                               and seed_or_rng >= 0):
        return np.random.default_rng(seed_or_rng)
    raise ValueError(f"rng must be None, a non-negative integer seed or a numpy.random.Generator, got {seed_or_rng!r}")
