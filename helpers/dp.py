"""Differential privacy for counts, sums, means and histograms, and DP-SGD accounting.

Every mechanism states its neighbouring relation:

* **add/remove** (the default here): two datasets are neighbours when one is the other
  with one person's record added or removed. The dataset size is then private too.
* **replace-one**: same size, one record changed. Some mechanisms accept
  ``relation="replace_one"``; their sensitivity changes accordingly.

**Samplers.** The released value lies on a grid of spacing ``2**k`` and the noise is an
integer number of grid steps (a discrete Laplace or a rounded Gaussian), so the
floating-point "holes" that let an attacker tell the textbook Laplace sampler's outputs
apart (Mironov, 2012) do not exist. Rounding the value to the grid can move *every*
coordinate by up to half a step, so it is paid for per coordinate: ``d`` extra steps of L1
sensitivity (Laplace) or ``sqrt(d)`` extra steps of L2 sensitivity (Gaussian) for a
``d``-coordinate release, with a grid chosen fine enough (relative to ``Δ / d``) that this
costs at most a factor ``1 + 2**-(GRID_BITS-1)`` of noise. See :func:`laplace_grid` and
:func:`gaussian_grid`.

What the samplers are **not**: the integer noise comes from numpy's floating-point
generators (a difference of two ``Generator.geometric`` draws, each ``ceil(E / -log1p(-p))``
for a floating-point exponential draw ``E``; ``Generator.normal``; ``Generator.gumbel`` in
:func:`exponential_mechanism`). Their far tails are inexact and their support is finite,
so :func:`laplace_mechanism` is not exactly ε-DP but (ε, δ)-DP with a small δ: our
estimate (not a proof) is of order ``t · 1e-19`` per coordinate, ``t`` the noise scale in
grid steps (see :func:`discrete_laplace`): about 1e-16 for one number, but about 1e-11 per
coordinate for a release of 100,000 coordinates (finer grid), which adds up over the
coordinates. That is fine for teaching. A real release needs an **exact** sampler (Canonne, Kamath & Steinke, 2020,
as in OpenDP; :func:`exact_discrete_laplace` and :func:`exact_laplace_mechanism` here, for
scalars) driven by a cryptographically secure generator that is never seeded. Seeds
(``rng=0``) exist only to make the course reproducible: a seeded release is not private
against anyone who can guess the seed. :func:`textbook_laplace` keeps the flawed sampler
for the demonstration.

**Data inside the mechanisms never raises.** An exception that depends on the private data
(an empty table, a missing value) tells the neighbours apart with certainty. Public
arguments (ε, δ, bounds, bins, relation) are validated with ``ValueError``; the data are
handled inside the mechanism: empty data release a noisy count around 0, ``NaN`` means
"missing" and the record is dropped from sums, means and histograms (under add/remove a
dropped record is exactly an absent one, so the guarantee is unchanged; :func:`dp_count`
still counts it as a record; under replace-one :func:`dp_mean` imputes the middle of the
range instead, since ``n`` is public), ``±inf`` are clamped to the bounds like any other
outlier. The low-level mechanisms (:func:`laplace_mechanism`, :func:`secure_laplace`,
:func:`gaussian_mechanism`, :func:`exact_laplace_mechanism`) release a value the caller
computed; given public ``bounds=(lower, upper)`` they clamp it (``NaN`` to the midpoint) and
never raise on it; without ``bounds`` the caller must have computed it from clamped data,
and a non-finite value is refused as a programming error.

Privacy accounting of DP-SGD (:func:`dp_sgd_epsilon`) uses ``dp_accounting``'s RDP (default)
or PLD accountant with Poisson subsampling, add/remove-one-example neighbours and no
microbatching (each example clipped on its own).
"""
from __future__ import annotations

import math
import random
import secrets
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Sequence

import numpy as np

from helpers import validation

#: The grid is at most ``min(Δ, noise scale) / (d * 2**GRID_BITS)`` for a release of ``d``
#: coordinates: fine enough that rounding costs at most a factor ``1 + 2**-(GRID_BITS-1)``
#: of noise, coarse enough to hide floating-point artefacts.
GRID_BITS = 10

#: Value discretization of the PLD accountant: its ε is an upper bound within about 0.2 %
#: of the 1e-4 default's at the course's settings, 5 to 10 times faster (< 0.15 s).
PLD_DISCRETIZATION = 1e-3

_ACCOUNTANTS = ("rdp", "pld")


# --------------------------------------------------------------------------- checks

def _epsilon(epsilon: Any) -> float:
    return validation.positive("epsilon", epsilon)


def _delta(delta: Any) -> float:
    return validation.fraction("delta", delta)


def _relation(relation: str) -> str:
    if relation not in ("add_remove", "replace_one"):
        raise ValueError(f"relation must be 'add_remove' or 'replace_one', got {relation!r}")
    return relation


def _accountant(accountant: str) -> str:
    if accountant not in _ACCOUNTANTS:
        raise ValueError(f"accountant must be 'rdp' or 'pld', got {accountant!r}")
    return accountant


def _dimension(dimension: Any) -> int:
    return validation.positive_int("dimension", dimension)


# --------------------------------------------------------------------------- grids

def grid_step(scale: float) -> float:
    """The power of two ``2**(floor(log2(scale)) - GRID_BITS)``: a grid about ``scale / 1024``."""
    scale = validation.positive("scale", scale)
    return float(2.0 ** (math.floor(math.log2(scale)) - GRID_BITS))


def laplace_grid(sensitivity: float, epsilon: float, dimension: int = 1) -> tuple[float, float]:
    """``(step, t)`` used by :func:`laplace_mechanism` for a release of ``dimension`` coordinates.

    The values are rounded to multiples of ``step`` (a power of two at most
    ``min(Δ, Δ/ε) / (d * 2**GRID_BITS)``), then each coordinate gets an independent discrete
    Laplace number of steps, ``P(k) ∝ exp(-|k| / t)``. Rounding moves each coordinate by at
    most half a step, so two inputs at L1 distance ``Δ`` are at most ``ceil(Δ/step) + d``
    steps apart after rounding, and ``t = (ceil(Δ/step) + d) / ε`` makes the worst-case
    privacy loss ``(steps apart) / t <= ε``. The noise scale ``t * step`` is ``Δ / ε`` up to a
    factor ``1 + 2**-(GRID_BITS-1)``.
    """
    sensitivity = validation.positive("sensitivity", sensitivity)
    epsilon = _epsilon(epsilon)
    d = _dimension(dimension)
    step = grid_step(min(sensitivity, sensitivity / epsilon) / d)
    t = (math.ceil(sensitivity / step) + d) / epsilon
    if t >= 2.0 ** 45:
        raise ValueError(f"sensitivity / epsilon is too large for dimension={d} "
                         f"(the noise would exceed 2**51 grid steps); use fewer coordinates or a larger epsilon")
    return step, t


def gaussian_grid(sensitivity: float, epsilon: float, delta: float, dimension: int = 1) -> tuple[float, float]:
    """``(step, sigma_steps)`` used by :func:`gaussian_mechanism` for ``dimension`` coordinates.

    ``step`` is a power of two at most ``min(Δ, σ) / (sqrt(d) * 2**GRID_BITS)`` (σ the analytic
    calibration for Δ). Rounding moves each coordinate by at most half a step, so the L2
    distance of two rounded inputs is at most ``Δ + sqrt(d) * step``; the noise, in steps, is
    ``sigma_steps = gaussian_sigma(Δ + sqrt(d) * step, ε, δ) / step``, and the output is
    rounded back to the grid (post-processing).
    """
    sensitivity = validation.positive("sensitivity", sensitivity)
    epsilon, delta = _epsilon(epsilon), _delta(delta)
    d = _dimension(dimension)
    sigma0 = gaussian_sigma(sensitivity, epsilon, delta)
    step = grid_step(min(sensitivity, sigma0) / math.sqrt(d))
    sigma = gaussian_sigma(sensitivity + math.sqrt(d) * step, epsilon, delta)
    return step, sigma / step


def _to_grid(value: np.ndarray, step: float, clamp: bool = False) -> np.ndarray:
    units = np.rint(value / step)
    limit = 2.0 ** 51
    if clamp:  # the value came from private data: a public limit, never an exception
        return np.clip(units, -limit, limit)
    if np.any(np.abs(units) > limit):
        raise ValueError("value is too large for the sampler's grid (|value| / grid step > 2**51)")
    return units


def _clamped(value: Any, bounds: Any) -> np.ndarray:
    """``value`` as a float array clamped into public ``bounds = (lower, upper)``.

    Never raises on the value's *content* (only on its type or an empty shape, which are
    public): ``NaN`` becomes the midpoint ``(lower + upper) / 2``, ``±inf`` and huge values
    become the nearer bound. Clamping is 1-Lipschitz per coordinate, so it does not raise
    the L1 or L2 sensitivity of a statistic; the midpoint stands in for a value that does not
    exist (an upstream bug such as an empty mean), and the guarantee covers that case only if
    the declared sensitivity covers a change from the midpoint to any value in the bounds.
    """
    lower, upper = validation.bounds("bounds[0]", bounds[0], "bounds[1]", bounds[1]) if (
        isinstance(bounds, (tuple, list)) and len(bounds) == 2) else (None, None)
    if lower is None:
        raise ValueError(f"bounds must be a pair (lower, upper) of finite numbers with lower < upper, got {bounds!r}")
    try:
        array = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ValueError("value must be a number or an array of numbers") from None
    if array.size == 0:
        raise ValueError("value must not be empty")
    return np.clip(np.where(np.isnan(array), (lower + upper) / 2, array), lower, upper)


def _value(value: Any, bounds: Any) -> np.ndarray:
    """The value to release: checked finite when no bounds are given (the caller promises a
    value computed from data clamped to public bounds), clamped into ``bounds`` otherwise."""
    return validation.finite_array("value", value) if bounds is None else _clamped(value, bounds)


# --------------------------------------------------------------------------- samplers

def discrete_laplace(t: float, size: Any = None, rng: Any = None) -> np.ndarray:
    """Integers ``k`` with ``P(k) ∝ exp(-|k| / t)``, *approximately*: a difference of two
    numpy geometric draws.

    numpy (1.26) computes a geometric draw as ``ceil(E / -log1p(-p))`` with ``E`` a
    floating-point exponential draw (ziggurat). Far in the tail ``E`` comes from
    ``-log(1 - U)`` for a 53-bit uniform ``U``, whose values have gaps wider than one grid
    step there: beyond roughly ``44 - ln t`` noise scales some integers cannot occur, and
    nothing beyond about 44 scales can. Mechanisms built on it are therefore (ε, δ)-DP, not
    ε-DP. Our estimate of that δ is of order ``t * 1e-19`` per coordinate (an estimate, not
    a proof): it grows with ``t``, which is about ``1024 · d / ε`` for a ``d``-coordinate
    release, so no single round figure bounds it. For an exact sampler see
    :func:`exact_discrete_laplace`.
    """
    t = validation.positive("t", t)
    gen = validation.rng_from(rng)
    p = -math.expm1(-1.0 / t)  # 1 - exp(-1/t), accurate for large t
    return (gen.geometric(p, size=size) - gen.geometric(p, size=size)).astype(np.float64)


def _exact_rng(rng: Any) -> random.Random:
    if rng is None:
        return secrets.SystemRandom()
    if isinstance(rng, random.Random):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool) and rng >= 0:
        return random.Random(int(rng))
    raise ValueError("rng must be None (secrets.SystemRandom, for real releases), a random.Random "
                     f"(seeded: for tests only) or a non-negative integer seed, got {rng!r}")


def _bernoulli(p: Fraction, rng: random.Random) -> bool:
    """True with probability exactly ``p`` (a fraction in [0, 1])."""
    return rng.randrange(p.denominator) < p.numerator


def _bernoulli_exp(gamma: Fraction, rng: random.Random) -> bool:
    """True with probability exactly ``exp(-gamma)``, ``gamma >= 0`` rational (CKS 2020, Alg. 1)."""
    while gamma > 1:  # exp(-gamma) = exp(-1)^floor(gamma) * exp(-(gamma - floor(gamma)))
        if not _bernoulli_exp(Fraction(1), rng):
            return False
        gamma -= 1
    k = 1
    while _bernoulli(gamma / k, rng):  # P(K odd) = sum_j (-gamma)^j / j! = exp(-gamma)
        k += 1
    return k % 2 == 1


def _positive_fraction(name: str, value: Fraction | int | float) -> Fraction:
    """``value`` as an exact rational (a float becomes the rational it stores), checked > 0."""
    if not isinstance(value, Fraction):
        validation.positive(name, value)
        value = Fraction(value)
    if value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return value


def exact_discrete_laplace(t: Fraction | int | float, rng: Any = None) -> int:
    """One integer ``k`` with ``P(k) = (1 - e^{-1/t}) / (1 + e^{-1/t}) * e^{-|k|/t}`` exactly.

    The algorithm of Canonne, Kamath & Steinke (2020, Algorithm 2), the one OpenDP uses:
    only Python integers and fractions, and uniform integers from ``rng``. ``t`` is taken
    exactly (a float is converted to the rational it stores). ``rng=None`` uses
    ``secrets.SystemRandom`` (the operating system's cryptographic generator): the only
    choice for a real release. A seeded ``random.Random`` (or an integer seed) is for
    tests. Cost: tens of microseconds per sample (see tests/test_dp.py).
    """
    scale = _positive_fraction("t", t)
    gen = _exact_rng(rng)
    num, den = scale.numerator, scale.denominator  # P(k) ∝ exp(-|k| * den / num)
    while True:
        u = gen.randrange(num)
        if not _bernoulli_exp(Fraction(u, num), gen):
            continue
        v = 0
        while _bernoulli_exp(Fraction(1), gen):
            v += 1
        y = (u + num * v) // den  # u + num*v is geometric with parameter 1 - exp(-1/num)
        negative = gen.randrange(2) == 1
        if negative and y == 0:
            continue
        return -y if negative else y


def exact_discrete_gaussian(sigma2: Fraction | int | float, rng: Any = None) -> int:
    """One integer ``k`` with ``P(k) ∝ exp(-k² / (2 σ²))`` exactly (the discrete Gaussian).

    Canonne, Kamath & Steinke (2020), Algorithm 3: draw ``Y`` from the exact discrete
    Laplace with scale ``t = floor(σ) + 1`` (:func:`exact_discrete_laplace`) and accept it
    with probability ``exp(-(|Y| - σ²/t)² / (2σ²))`` (:func:`_bernoulli_exp`, exact for a
    rational exponent). ``sigma2`` is the variance parameter σ² (taken exactly; a float is
    converted to the rational it stores). ``rng`` as in :func:`exact_discrete_laplace`
    (``None``: the operating system's cryptographic generator).
    """
    var = _positive_fraction("sigma2", sigma2)
    gen = _exact_rng(rng)
    t = math.isqrt(var.numerator // var.denominator) + 1  # floor(sigma) + 1
    while True:
        y = exact_discrete_laplace(Fraction(t), rng=gen)
        gamma = (abs(y) - var / t) ** 2 / (2 * var)
        if _bernoulli_exp(gamma, gen):
            return y


def exact_laplace_mechanism(value: float, sensitivity: float, epsilon: float, rng: Any = None,
                            bounds: tuple[float, float] | None = None) -> float:
    """ε-DP release of one number with the exact sampler (:func:`exact_discrete_laplace`).

    The same grid and parameter as :func:`laplace_mechanism` for one coordinate (see
    :func:`laplace_grid`), with ``t = (ceil(Δ/step) + 1) / ε`` computed as an exact fraction.
    With ``rng=None`` (cryptographic generator) this is the one release in this module that
    is exactly ε-DP. ``bounds=(lower, upper)`` (public) clamps the value first and never
    raises on it (``NaN`` becomes the midpoint, see :func:`secure_laplace`); without bounds
    the value must be finite, and a value beyond ``2**51`` grid steps is clamped to that limit.
    """
    step, _ = laplace_grid(sensitivity, epsilon, 1)
    array = _value(value, bounds)
    if array.size != 1:
        raise ValueError(f"value must be one number, got shape {array.shape}")
    units = int(_to_grid(array.reshape(()), step, clamp=True))
    t = Fraction(math.ceil(float(sensitivity) / step) + 1) / Fraction(float(epsilon))
    return float((units + exact_discrete_laplace(t, rng=rng)) * step)


def secure_laplace(value: Any, sensitivity: float, epsilon: float, rng: Any = None,
                   bounds: tuple[float, float] | None = None) -> np.ndarray | float:
    """``value`` (scalar or array of ``d`` coordinates) plus Laplace-like noise on a grid.

    The value is rounded to the grid of :func:`laplace_grid` (the rounding of all ``d``
    coordinates is paid for), then each coordinate gets an integer number of steps drawn
    from :func:`discrete_laplace`, so every output is an exact multiple of the step. ε-DP
    for L1 sensitivity ``sensitivity``, up to the float sampler's δ (about ``t · 1e-19`` per
    coordinate, our estimate: module docstring). The noise scale is ``sensitivity / epsilon``
    up to a factor ``1 + 2**-(GRID_BITS-1)``.

    **Private values never raise.** With ``bounds=(lower, upper)`` (public) each coordinate
    is clamped into them first: ``NaN`` becomes the midpoint, ``±inf`` and huge values the
    nearer bound (:func:`_clamped`). Without ``bounds`` the caller promises a value computed
    from data already clamped to public bounds: a non-finite value is then a programming
    error (``ValueError``), and a finite value beyond ``2**51`` grid steps is clamped to that
    limit rather than refused.
    """
    array = _value(value, bounds)
    return _release_laplace(array, sensitivity, epsilon, rng, clamp=True)


def _release_laplace(array: np.ndarray, sensitivity: float, epsilon: float, rng: Any,
                     clamp: bool) -> np.ndarray | float:
    step, t = laplace_grid(sensitivity, epsilon, max(array.size, 1))
    units = _to_grid(array, step, clamp=clamp)
    out = (units + discrete_laplace(t, size=array.shape, rng=rng)) * step
    return float(out) if out.ndim == 0 else out


def textbook_laplace(value: Any, scale: float, rng: Any = None) -> np.ndarray | float:
    """The *flawed* textbook sampler ``value + scale * (-sign(u) log(1 - 2|u|))``.

    ``u`` is uniform on ``[-1/2, 1/2)`` in steps of ``2**-53`` (as ``Generator.random``).
    Kept only to demonstrate Mironov's (2012) attack: see :func:`textbook_possible`.
    """
    scale = validation.positive("scale", scale)
    array = validation.finite_array("value", value)
    u = validation.rng_from(rng).random(size=array.shape) - 0.5
    out = array + _textbook_noise(np.sign(u), 1.0 - 2.0 * np.abs(u), scale)
    return float(out) if out.ndim == 0 else out


def _textbook_noise(sign: np.ndarray, w: np.ndarray, scale: float) -> np.ndarray:
    # One place computes the noise, so the possibility check below reproduces it bit for bit.
    return sign * (-np.log(w) * scale)


def textbook_possible(output: Any, value: float, scale: float, search: int = 4) -> np.ndarray:
    """Whether :func:`textbook_laplace` (``value``, ``scale``) can return each ``output``.

    ``1 - 2|u|`` takes only the values ``m * 2**-52`` (``m = 1 .. 2**52``), so the sampler
    has finitely many outputs. For each output we invert the noise to the nearest ``m``
    and try ``m ± search`` exactly, in floating point, for both signs.
    """
    out = validation.finite_array("output", output)
    value = float(validation._number("value", value))
    scale = validation.positive("scale", scale)
    flat = out.reshape(-1)
    target = np.abs(flat - value)
    m0 = np.rint(np.exp(-target / scale) * 2.0 ** 52)
    possible = np.zeros(flat.shape, dtype=bool)
    for offset in range(-search, search + 1):
        m = np.clip(m0 + offset, 1, 2.0 ** 52)
        w = m * 2.0 ** -52
        for sign in (-1.0, 1.0):
            possible |= (value + _textbook_noise(np.full_like(w, sign), w, scale)) == flat
    return possible.reshape(out.shape)


# --------------------------------------------------------------------------- mechanisms

def laplace_mechanism(value: Any, sensitivity: float, epsilon: float, rng: Any = None,
                      bounds: tuple[float, float] | None = None) -> np.ndarray | float:
    """ε-DP release of ``value`` (scalar or array) whose L1 sensitivity is ``sensitivity``.

    Noise scale ``sensitivity / epsilon`` per coordinate, drawn on a grid that pays for the
    rounding of every coordinate (:func:`secure_laplace`, :func:`laplace_grid`). Exactly
    ε-DP only with an exact sampler: this one is (ε, δ)-DP with δ of order ``t · 1e-19`` per
    coordinate by our estimate (:func:`discrete_laplace`), not a proved bound.
    ``bounds=(lower, upper)`` clamps the value first and never raises on it (see
    :func:`secure_laplace`). The same ``rng`` seed gives the same output (seeds are for teaching).
    """
    return secure_laplace(value, sensitivity, epsilon, rng=rng, bounds=bounds)


def gaussian_delta(sigma: float, sensitivity: float, epsilon: float) -> float:
    """The exact δ at which the Gaussian mechanism ``N(0, sigma²)`` with L2 sensitivity
    ``sensitivity`` is (ε, δ)-DP (Balle & Wang 2018, Theorem 8):
    ``Φ(Δ/(2σ) - εσ/Δ) - e^ε Φ(-Δ/(2σ) - εσ/Δ)``, the second term computed in log space.
    """
    from scipy.stats import norm

    sigma = validation.positive("sigma", sigma)
    sensitivity = validation.positive("sensitivity", sensitivity)
    epsilon = validation.non_negative("epsilon", epsilon)
    a, b = sensitivity / (2 * sigma), epsilon * sigma / sensitivity
    return float(max(0.0, norm.cdf(a - b) - math.exp(epsilon + norm.logcdf(-a - b))))


def gaussian_sigma(sensitivity: float, epsilon: float, delta: float, method: str = "analytic") -> float:
    """Noise standard deviation of the Gaussian mechanism for (ε, δ)-DP.

    ``method="analytic"`` (default) is the exact calibration of Balle & Wang (2018): the
    smallest σ (to 1e-12 relative) with :func:`gaussian_delta` ``<= delta``, valid for every
    ε > 0. ``"classic"`` is ``Δ sqrt(2 ln(1.25/δ)) / ε`` (Dwork & Roth, Thm A.1), proved only
    for ε < 1 and larger than needed there; it is refused for ε >= 1, where it is *not*
    private (at δ = 1e-5 its true δ is 2.3e-5 at ε = 10 and 1.5e-3 at ε = 20).
    """
    sensitivity = validation.positive("sensitivity", sensitivity)
    epsilon, delta = _epsilon(epsilon), _delta(delta)
    if method == "classic":
        if epsilon >= 1:
            raise ValueError(f"epsilon must be in (0, 1) for method='classic' (its proof needs ε < 1 and it is "
                             f"not private for large ε), got {epsilon!r}; use method='analytic'")
        return sensitivity * math.sqrt(2 * math.log(1.25 / delta)) / epsilon
    if method != "analytic":
        raise ValueError(f"method must be 'analytic' or 'classic', got {method!r}")

    lo, hi = 1e-6 * sensitivity, sensitivity
    while gaussian_delta(hi, sensitivity, epsilon) > delta:
        lo, hi = hi, hi * 2
    while hi / lo > 1 + 1e-12:
        mid = math.sqrt(lo * hi)
        lo, hi = (lo, mid) if gaussian_delta(mid, sensitivity, epsilon) <= delta else (mid, hi)
    return hi


def gaussian_mechanism(value: Any, sensitivity: float, epsilon: float, delta: float,
                       rng: Any = None, bounds: tuple[float, float] | None = None) -> np.ndarray | float:
    """(ε, δ)-DP release of ``value`` (scalar or array) whose L2 sensitivity is ``sensitivity``.

    The value is rounded to the grid of :func:`gaussian_grid`, whose σ (analytic
    calibration) covers the rounding of every coordinate; the noise is a normal draw rounded
    to whole steps (post-processing), so the output has no floating-point holes. numpy's
    normal sampler is itself a floating-point approximation (module docstring).
    ``bounds=(lower, upper)`` clamps the value first and never raises on it; without bounds
    the value must be finite and huge values are clamped to the grid's limit (as
    :func:`secure_laplace`).
    """
    array = _value(value, bounds)
    step, sigma_steps = gaussian_grid(sensitivity, epsilon, delta, array.size)
    units = _to_grid(array, step, clamp=True)
    noise = np.rint(validation.rng_from(rng).normal(0.0, sigma_steps, size=array.shape))
    out = (units + noise) * step
    return float(out) if out.ndim == 0 else out


def exponential_probabilities(scores: Any, sensitivity: float, epsilon: float) -> np.ndarray:
    """The exponential mechanism's probabilities ``∝ exp(ε · score / (2Δ))`` (log-sum-exp)."""
    from scipy.special import softmax

    scores = validation.finite_array("scores", scores, ndim=1)
    sensitivity = validation.positive("sensitivity", sensitivity)
    epsilon = _epsilon(epsilon)
    return softmax(epsilon * scores / (2 * sensitivity))


def exponential_mechanism(scores: Any, sensitivity: float, epsilon: float, rng: Any = None) -> int:
    """ε-DP choice of an index: ``i`` with probability ``∝ exp(ε · scores[i] / (2Δ))``
    (McSherry & Talwar, 2007), where ``Δ = sensitivity`` bounds how much one person can
    change any score. The candidates (the length of ``scores``) are public.

    The factor 2 covers scores that can move in opposite directions. When the scores are
    *monotone* (one person changes all of them in the same direction, as counts under
    add/remove), ``exp(ε · score / Δ)`` is already ε-DP (Dwork & Roth, 2014, §3.4); the
    mechanisms that exploit this in practice are report-noisy-max and permute-and-flip
    (McKenna & Sheldon, 2020). This helper keeps the general factor 2.

    Implemented with the Gumbel-max trick: ``argmax(ε·score/(2Δ) + Gumbel noise)`` has
    exactly these probabilities, with no overflow for large scores. Like the other numpy
    samplers it is a floating-point implementation (the Gumbel draws are floats), so the
    probabilities are right up to rounding, not exactly.
    """
    scores = validation.finite_array("scores", scores, ndim=1)
    sensitivity = validation.positive("sensitivity", sensitivity)
    epsilon = _epsilon(epsilon)
    gumbel = validation.rng_from(rng).gumbel(size=scores.shape)
    return int(np.argmax(epsilon * scores / (2 * sensitivity) + gumbel))


# --------------------------------------------------------------------------- queries on data

def _numbers(values: Any) -> np.ndarray:
    """The data as a flat float array; may be empty and may contain NaN or inf (handled by
    the caller). Only a wrong *type* (not numbers) raises: that is a schema error."""
    try:
        return np.asarray(values, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError("values must be an array of numbers (NaN allowed: it means missing)") from None


def dp_count(values: Any, epsilon: float, rng: Any = None) -> float:
    """ε-DP number of records (add/remove neighbours: sensitivity 1).

    A record is an entry of ``values`` along its first axis (a row of a table, an element
    of a list), whatever its value (``NaN`` included). Empty data are fine: the release is
    noise around 0, as for any other count, so no exception reveals the data.
    """
    epsilon = _epsilon(epsilon)
    if np.ndim(values) == 0:
        raise ValueError("values must be a sequence of records (a list or an array), got a scalar")
    n = len(values)
    return _release_laplace(np.asarray(float(n)), 1.0, epsilon, rng, clamp=True)


def dp_sum(values: Any, lower: float, upper: float, epsilon: float, rng: Any = None) -> float:
    """ε-DP sum of ``values`` clamped to the public range ``[lower, upper]``.

    Add/remove neighbours: one record changes the sum by at most ``max(|lower|, |upper|)``.
    ``NaN`` (missing) contributes nothing (like an absent record); ``±inf`` is clamped;
    empty data release noise around 0.
    """
    lower, upper = validation.bounds("lower", lower, "upper", upper)
    epsilon = _epsilon(epsilon)
    data = _numbers(values)
    clamped = np.clip(data[~np.isnan(data)], lower, upper)
    sensitivity = max(abs(lower), abs(upper))  # > 0 since lower < upper
    return _release_laplace(np.asarray(float(clamped.sum())), sensitivity, epsilon, rng, clamp=True)


def dp_mean(values: Any, lower: float, upper: float, epsilon: float, rng: Any = None,
            relation: str = "add_remove") -> float:
    """ε-DP mean of ``values`` clamped to the public range ``[lower, upper]``.

    ``lower`` and ``upper`` must be chosen without looking at the data (clamping is
    what bounds the sensitivity; values outside are moved to the nearest bound, which
    biases the mean towards the range).

    * ``relation="add_remove"`` (default): half of ε for a noisy sum of the values
      centred at the middle of the range (sensitivity ``(upper - lower) / 2``), half
      for a noisy count (sensitivity 1); returns their ratio (count floored at 1), clipped
      to the range. ``NaN`` (missing) values are dropped from both the sum and the count:
      a record with a missing value is treated exactly as an absent one. Empty (or all
      missing) data give a noisy answer near the middle of the range, never an exception.
    * ``relation="replace_one"``: the size ``n = len(values)`` is public; the mean has
      sensitivity ``(upper - lower) / n`` and gets all of ε. ``NaN`` is imputed as the
      middle of the range (dropping it would change the public ``n``). ``n = 0`` is refused
      with a ``ValueError``: under this relation ``n`` is public, so that reveals nothing.
    """
    lower, upper = validation.bounds("lower", lower, "upper", upper)
    epsilon = _epsilon(epsilon)
    relation = _relation(relation)
    gen = validation.rng_from(rng)
    data = _numbers(values)
    middle = (lower + upper) / 2
    if relation == "replace_one":
        if data.size == 0:
            raise ValueError("values must not be empty with relation='replace_one' (n is public and the "
                             "sensitivity is (upper - lower) / n); use relation='add_remove'")
        clamped = np.clip(np.where(np.isnan(data), middle, data), lower, upper)
        noisy = _release_laplace(np.asarray(float(clamped.mean())), (upper - lower) / len(clamped), epsilon,
                                 gen, clamp=True)
        return float(np.clip(noisy, lower, upper))
    clamped = np.clip(data[~np.isnan(data)], lower, upper)
    noisy_sum = _release_laplace(np.asarray(float(np.sum(clamped - middle))), (upper - lower) / 2, epsilon / 2,
                                 gen, clamp=True)
    noisy_count = _release_laplace(np.asarray(float(len(clamped))), 1.0, epsilon / 2, gen, clamp=True)
    return float(np.clip(middle + noisy_sum / max(noisy_count, 1.0), lower, upper))


def dp_histogram(values: Any, bins: Sequence[float], epsilon: float, rng: Any = None,
                 relation: str = "add_remove") -> np.ndarray:
    """ε-DP counts of ``values`` in the public bins with edges ``bins``.

    Values outside the edges (``±inf`` included) are clamped into the first or last bin;
    ``NaN`` (missing) values are dropped, as absent records. Each record is in at most one
    bin, so the L1 sensitivity is 1 (add/remove) or 2 (replace-one: one bin loses a record,
    another gains it). Empty data release noisy zeros.
    """
    edges = validation.finite_array("bins", bins, ndim=1)
    if len(edges) < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError("bins must be at least 2 strictly increasing edges")
    epsilon = _epsilon(epsilon)
    relation = _relation(relation)
    data = _numbers(values)
    clamped = np.clip(data[~np.isnan(data)], edges[0], edges[-1])
    counts, _ = np.histogram(clamped, bins=edges)
    sensitivity = 1.0 if relation == "add_remove" else 2.0
    return np.asarray(_release_laplace(counts.astype(float), sensitivity, epsilon, rng, clamp=True), dtype=float)


def randomized_response(truth: Any, epsilon: float, rng: Any = None) -> np.ndarray:
    """Each person reports their bit truthfully with probability ``e^ε / (1 + e^ε)``.

    ε-DP for each person (replace-one on their own bit). ``epsilon = ln 3`` is the
    two-coin protocol: heads, answer truthfully; tails, answer a second coin flip.
    """
    epsilon = _epsilon(epsilon)
    bits = np.asarray(truth)
    if bits.size == 0 or not np.all((bits == 0) | (bits == 1)):
        raise ValueError("truth must be a non-empty array of 0/1 (or bool) values")
    keep = validation.rng_from(rng).random(bits.shape) < math.exp(epsilon) / (1 + math.exp(epsilon))
    return np.where(keep, bits.astype(bool), ~bits.astype(bool))


def randomized_response_estimate(answers: Any, epsilon: float) -> float:
    """Unbiased estimate of the true fraction of 1s from randomized answers."""
    epsilon = _epsilon(epsilon)
    answers = np.asarray(answers, dtype=float)
    if answers.size == 0:
        raise ValueError("answers must not be empty")
    p = math.exp(epsilon) / (1 + math.exp(epsilon))
    return float((answers.mean() - (1 - p)) / (2 * p - 1))


# --------------------------------------------------------------------------- what ε means

def epsilon_meaning(epsilon: float, delta: float = 0.0, fpr: float = 0.05, prior: float = 0.5) -> dict[str, float]:
    """What an (ε, δ) guarantee means for an attacker who tries to tell whether one person is
    in the data (a membership test between two neighbouring datasets).

    Returns a dict with

    * ``max_tpr``: the largest true-positive rate any test can reach at false-positive rate
      ``fpr``: ``min(1, e^ε·FPR + δ, 1 - e^-ε·(1 - δ - FPR))``. This is the tight
      hypothesis-testing region of (ε, δ)-DP (Kairouz, Oh & Viswanath, 2015): some
      (ε, δ)-DP mechanism reaches it, none exceeds it.
    * ``max_advantage``: the largest ``TPR - FPR`` over all tests, ``(e^ε - 1 + 2δ) / (e^ε + 1)``;
      ``max_accuracy = (1 + max_advantage) / 2`` is the best accuracy at guessing
      membership when it is a coin flip.
    * ``max_posterior``: the largest posterior probability of membership after seeing the
      output, from a prior ``prior``: ``e^ε p / (e^ε p + 1 - p)``. It is a worst case over
      outputs for δ = 0. With δ > 0 no output-by-output bound holds for sure (a mechanism
      that publishes the data with probability δ is (ε, δ)-DP): the value is then the bound
      for the ε part only.

    Plus the inputs ``epsilon``, ``delta``, ``fpr``, ``prior``.
    """
    epsilon = validation.non_negative("epsilon", epsilon)
    delta = validation.non_negative("delta", delta)
    if delta >= 1:
        raise ValueError(f"delta must be in [0, 1), got {delta!r}")
    fpr = validation.non_negative("fpr", fpr)
    if fpr > 1:
        raise ValueError(f"fpr must be in [0, 1], got {fpr!r}")
    prior = validation.fraction("prior", prior)
    e = math.exp(epsilon)
    max_tpr = min(1.0, e * fpr + delta, 1.0 - (1.0 - delta - fpr) / e)
    advantage = (e - 1 + 2 * delta) / (e + 1)
    return {"epsilon": epsilon, "delta": delta, "fpr": fpr, "prior": prior,
            "max_tpr": max_tpr, "max_advantage": advantage, "max_accuracy": (1 + advantage) / 2,
            "max_posterior": e * prior / (e * prior + 1 - prior)}


# --------------------------------------------------------------------------- measuring ε

def empirical_epsilon(samples: Any, neighbour_samples: Any, delta: float = 0.0, confidence: float = 0.95,
                      num_thresholds: int = 20, split: bool = True) -> float:
    """A lower bound on ε, valid with probability ``confidence``, from two samples of a mechanism.

    For threshold sets ``{y > t}`` and ``{y <= t}`` (``num_thresholds`` quantiles of the pooled
    samples) the Clopper-Pearson bounds give ``ε >= ln((P(S) - δ) / P'(S))``; the confidence
    is split over the tests (Bonferroni), so the maximum is a valid lower bound. With
    ``split=True`` (default) the thresholds are chosen on the first half of each sample and
    the counts are taken on the second half, so the tests do not depend on the samples they
    test; ``split=False`` uses all samples for both (the thresholds then depend on the data
    tested, which the Bonferroni correction does not cover). If the mechanism is ε-DP, the
    result exceeds ε only with probability ``1 - confidence``.
    """
    from helpers.privacy_attacks import clopper_pearson

    a = validation.finite_array("samples", samples).reshape(-1)
    b = validation.finite_array("neighbour_samples", neighbour_samples).reshape(-1)
    delta = validation.non_negative("delta", delta)
    confidence = validation.fraction("confidence", confidence)
    num_thresholds = validation.positive_int("num_thresholds", num_thresholds)
    if split:
        if min(len(a), len(b)) < 4:
            raise ValueError("samples and neighbour_samples need at least 4 values each with split=True")
        pick = np.concatenate([a[: len(a) // 2], b[: len(b) // 2]])
        a, b = a[len(a) // 2:], b[len(b) // 2:]
    else:
        pick = np.concatenate([a, b])
    thresholds = np.unique(np.quantile(pick, np.linspace(0.02, 0.98, num_thresholds)))
    tests = 4 * len(thresholds)  # 2 directions x 2 tails per threshold
    level = 1 - (1 - confidence) / tests  # one-sided bounds at this level each
    best = 0.0
    for t in thresholds:
        for x, z in ((a, b), (b, a)):
            for k_x, k_z in ((np.sum(x > t), np.sum(z > t)), (np.sum(x <= t), np.sum(z <= t))):
                p_low = clopper_pearson(int(k_x), len(x), 2 * level - 1)[0]
                q_high = clopper_pearson(int(k_z), len(z), 2 * level - 1)[1]
                if p_low - delta > 0 and q_high > 0:
                    best = max(best, math.log((p_low - delta) / q_high))
    return best


# --------------------------------------------------------------------------- composition, budget

def basic_composition(epsilons: Sequence[float], deltas: Sequence[float] | None = None) -> tuple[float, float]:
    """(Σε, Σδ): the guarantee of running all mechanisms (sequential composition)."""
    eps = validation.finite_array("epsilons", epsilons).reshape(-1)
    if np.any(eps <= 0):
        raise ValueError("epsilons must all be finite numbers > 0")
    dels = np.zeros_like(eps) if deltas is None else validation.finite_array("deltas", deltas).reshape(-1)
    if len(dels) != len(eps) or np.any((dels < 0) | (dels >= 1)):
        raise ValueError("deltas must have one value in [0, 1) per epsilon")
    return float(eps.sum()), float(dels.sum())


def advanced_composition(epsilon: float, delta: float, k: int, delta_prime: float) -> tuple[float, float]:
    """k-fold composition of an (ε, δ)-DP mechanism (Dwork, Rothblum & Vadhan, 2010).

    Returns ``(ε sqrt(2k ln(1/δ')) + k ε (e^ε - 1), k δ + δ')``.
    """
    epsilon = _epsilon(epsilon)
    delta = validation.non_negative("delta", delta)
    k = validation.positive_int("k", k)
    delta_prime = validation.fraction("delta_prime", delta_prime)
    total = epsilon * math.sqrt(2 * k * math.log(1 / delta_prime)) + k * epsilon * math.expm1(epsilon)
    return total, k * delta + delta_prime


def _accountant_object(accountant: str) -> Any:
    import dp_accounting

    if _accountant(accountant) == "rdp":
        return dp_accounting.rdp.RdpAccountant()
    return dp_accounting.pld.PLDAccountant(dp_accounting.NeighboringRelation.ADD_OR_REMOVE_ONE,
                                           value_discretization_interval=PLD_DISCRETIZATION)


def compose_epsilon(k: int, delta: float, noise_multiplier: float, mechanism: str = "gaussian",
                    accountant: str = "rdp") -> float:
    """ε at ``delta`` of ``k`` (adaptive) runs of one mechanism on the same data.

    ``mechanism="gaussian"``: noise standard deviation ``noise_multiplier × Δ₂``;
    ``"laplace"``: Laplace scale ``noise_multiplier × Δ₁``, so each run is ε₀-DP with
    ``ε₀ = 1 / noise_multiplier`` and basic composition gives ``k ε₀``. ``accountant``:
    ``"rdp"`` (Rényi DP, converted to (ε, δ); for the Laplace it uses only the run's pure ε₀)
    or ``"pld"`` (privacy loss distributions: numerically tight, an upper bound within the
    discretization :data:`PLD_DISCRETIZATION`). Both from ``dp_accounting``.
    """
    import dp_accounting

    k = validation.positive_int("k", k)
    delta = _delta(delta)
    noise_multiplier = validation.positive("noise_multiplier", noise_multiplier)
    if mechanism == "gaussian":
        event = dp_accounting.GaussianDpEvent(noise_multiplier)
    elif mechanism == "laplace":
        event = dp_accounting.LaplaceDpEvent(noise_multiplier)
    else:
        raise ValueError(f"mechanism must be 'gaussian' or 'laplace', got {mechanism!r}")
    composed = dp_accounting.SelfComposedDpEvent(event, k)
    return float(_accountant_object(accountant).compose(composed).get_epsilon(delta))


class BudgetExceeded(RuntimeError):
    """Raised when a query would spend more privacy budget than is left."""


@dataclass
class PrivacyLedger:
    """A privacy budget that refuses queries once it is spent (basic composition).

    >>> ledger = PrivacyLedger(epsilon=1.0)
    >>> ledger.spend(0.5, label="mean age")   # ok
    >>> ledger.remaining_epsilon
    0.5
    """

    epsilon: float
    delta: float = 0.0
    entries: list[tuple[str, float, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.epsilon = _epsilon(self.epsilon)
        self.delta = validation.non_negative("delta", self.delta)
        if self.delta >= 1:
            raise ValueError(f"delta must be in [0, 1), got {self.delta!r}")

    @property
    def spent_epsilon(self) -> float:
        return float(sum(e for _, e, _ in self.entries))

    @property
    def spent_delta(self) -> float:
        return float(sum(d for _, _, d in self.entries))

    @property
    def remaining_epsilon(self) -> float:
        return max(0.0, self.epsilon - self.spent_epsilon)

    def spend(self, epsilon: float, delta: float = 0.0, label: str = "query") -> None:
        """Record a query costing (ε, δ), or raise :class:`BudgetExceeded` (nothing recorded)."""
        epsilon = _epsilon(epsilon)
        delta = validation.non_negative("delta", delta)
        tol = 1e-12
        if self.spent_epsilon + epsilon > self.epsilon + tol or self.spent_delta + delta > self.delta + tol:
            raise BudgetExceeded(
                f"refused {label!r}: it costs ε={epsilon:g}, δ={delta:g} but only ε={self.remaining_epsilon:g}, "
                f"δ={max(0.0, self.delta - self.spent_delta):g} remain")
        self.entries.append((label, epsilon, delta))

    def laplace(self, value: Any, sensitivity: float, epsilon: float, label: str = "query",
                rng: Any = None) -> np.ndarray | float:
        """Spend ε, then release ``value`` with :func:`laplace_mechanism`."""
        self.spend(epsilon, 0.0, label)
        return laplace_mechanism(value, sensitivity, epsilon, rng=rng)


# --------------------------------------------------------------------------- DP-SGD accounting

def _dp_sgd_args(n: Any, batch_size: Any, epochs: Any, delta: Any) -> tuple[int, int, float, float]:
    n = validation.positive_int("n", n)
    batch_size = validation.positive_int("batch_size", batch_size)
    if batch_size > n:
        raise ValueError(f"batch_size must be <= n ({n}), got {batch_size}")
    epochs = validation.positive("epochs", epochs)
    return n, batch_size, epochs, _delta(delta)


def dp_sgd_steps(n: int, batch_size: int, epochs: float) -> int:
    """Steps of DP-SGD: ``ceil(epochs * n / batch_size)``, in exact arithmetic.

    ``epochs`` is read as the decimal it prints as (``0.2`` is 1/5, not the binary float just
    above it), so the accountant and the training (:func:`helpers.dp_training.num_steps`)
    count the same steps; floating point could round ``epochs / q`` across an integer.
    """
    n = validation.positive_int("n", n)
    batch_size = validation.positive_int("batch_size", batch_size)
    epochs = validation.positive("epochs", epochs)
    return max(1, math.ceil(Fraction(str(epochs)) * n / batch_size))


def dp_sgd_epsilon(n: int, batch_size: int, epochs: float, noise_multiplier: float, delta: float,
                   accountant: str = "rdp") -> float:
    """ε of DP-SGD: ``ceil(epochs * n / batch_size)`` steps, each a Gaussian mechanism with
    ``noise_multiplier`` on a Poisson sample with rate ``batch_size / n``.

    Add/remove-one-example neighbours; examples are clipped one by one (no microbatches).
    ``accountant="rdp"`` (default): ``dp_accounting``'s RDP accountant, the same number as
    tensorflow-privacy's ``compute_dp_sgd_privacy_statement(..., used_microbatching=False)``
    ("Epsilon assuming Poisson sampling"). ``accountant="pld"``: the privacy-loss-distribution
    accountant, tighter (about 10 % smaller ε at the course's settings), a pessimistic
    estimate at discretization :data:`PLD_DISCRETIZATION` (< 0.15 s).

    The guarantee is for the Poisson-sampled algorithm; for shuffled fixed-size batches see
    :func:`dp_sgd_epsilon_shuffled`.
    """
    n, batch_size, epochs, delta = _dp_sgd_args(n, batch_size, epochs, delta)
    return poisson_gaussian_epsilon(batch_size / n, dp_sgd_steps(n, batch_size, epochs), noise_multiplier, delta,
                                    accountant)


def poisson_gaussian_epsilon(sampling_rate: float, steps: int, noise_multiplier: float, delta: float,
                             accountant: str = "rdp") -> float:
    """ε at ``delta`` of ``steps`` Gaussian mechanisms (``noise_multiplier``), each on a
    Poisson sample with rate ``sampling_rate``: the accounting behind
    :func:`dp_sgd_epsilon`, for callers that count their steps themselves (e.g. each
    hospital of :func:`helpers.federated.dp_fedavg_epsilons`). Add/remove-one-example
    neighbours; ``accountant`` as in :func:`dp_sgd_epsilon`."""
    import dp_accounting

    sampling_rate = validation.in_open_interval("sampling_rate", sampling_rate, 0.0, 1.0 + 1e-12)
    steps = validation.positive_int("steps", steps)
    noise_multiplier = validation.positive("noise_multiplier", noise_multiplier)
    delta = _delta(delta)
    event = dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(sampling_rate, dp_accounting.GaussianDpEvent(noise_multiplier)), steps)
    return float(_accountant_object(accountant).compose(event).get_epsilon(delta))


def dp_sgd_epsilon_shuffled(n: int, batch_size: int, epochs: float, noise_multiplier: float, delta: float,
                            accountant: str = "rdp", relation: str = "zero_out") -> float:
    """ε of DP-SGD *without amplification by sampling*: each example is used once per epoch.

    Assumes the batches of each epoch are a partition of the data (any order, shuffled or
    not, chosen independently of the data's values), each step adds noise
    ``N(0, (noise_multiplier · C)²)`` to the sum of clipped gradients (clip norm ``C``; a mean
    with a fixed denominator ``batch_size`` is the same up to scaling), and the epsilon
    protects every intermediate model. One example then affects exactly one step per epoch,
    so the guarantee is the composition of ``ceil(epochs)`` Gaussian mechanisms:

    * ``relation="zero_out"`` (default): the neighbour has the example replaced by a null
      record whose gradient is zero, in the same slot, so the sum moves by at most ``C``:
      noise multiplier ``noise_multiplier``. This is the number tensorflow-privacy 0.9.0 prints
      as "Epsilon with each example occurring once per epoch" under the heading
      "add-or-remove-one adjacency" (``compute_dp_sgd_privacy_statement(...,
      used_microbatching=False)``); with fixed batches, removing an example would shift every
      later batch, so what the computation covers is the zero-out relation (Ponomareva et
      al., 2023, "How to DP-fy ML", discuss the relations). ``"add_remove"`` is accepted as
      an alias of ``"zero_out"`` for that reason, never as a separate guarantee.
    * ``relation="replace_one"`` (fixed ``n``, the natural relation for fixed-size shuffled
      batches such as Keras' ``fit(shuffle=True)``): the example is replaced by another real
      one, the sum moves by up to ``2C``: noise multiplier halved, a larger ε.

    ``n`` and ``batch_size`` do not enter (no amplification), they are only checked. This is
    a valid bound for shuffled batches, unlike the Poisson number, but far larger.
    """
    _dp_sgd_args(n, batch_size, epochs, delta)
    noise_multiplier = validation.positive("noise_multiplier", noise_multiplier)
    if relation not in ("zero_out", "add_remove", "replace_one"):
        raise ValueError(f"relation must be 'zero_out' (alias 'add_remove') or 'replace_one', got {relation!r}")
    if relation == "replace_one":
        noise_multiplier /= 2
    return compose_epsilon(int(math.ceil(epochs)), delta, noise_multiplier, "gaussian", accountant)


#: Grid of ε on which :func:`dp_sgd_privacy_profile` evaluates δ(ε) by default: every point
#: is a valid (ε, δ(ε)) guarantee, so the trade-off bound over this grid is sound, and
#: within a step of 0.05 of the one over all ε.
PROFILE_EPSILONS = np.linspace(0.0, 40.0, 801)


def dp_sgd_privacy_profile(n: int, batch_size: int, epochs: float, noise_multiplier: float,
                           epsilons: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """The privacy profile ``δ(ε)`` of Poisson DP-SGD: ``(epsilons, deltas)``.

    The same algorithm as :func:`dp_sgd_epsilon` (``ceil(epochs * n / batch_size)``
    Poisson-subsampled Gaussian steps, add/remove-one-example neighbours), accounted with
    ``dp_accounting``'s PLD accountant (pessimistic discretization
    :data:`PLD_DISCRETIZATION`, so each ``δ(ε)`` is an upper bound, the larger of the two
    directions add and remove). The training is ``(ε, δ(ε))``-DP for *every* ε at once; a
    single ``(ε, δ)`` pair is one point of this curve. ``epsilons`` defaults to
    :data:`PROFILE_EPSILONS` (values >= 0).
    """
    n, batch_size, epochs, _ = _dp_sgd_args(n, batch_size, epochs, 0.5)
    noise_multiplier = validation.positive("noise_multiplier", noise_multiplier)
    eps = PROFILE_EPSILONS if epsilons is None else validation.finite_array("epsilons", epsilons).reshape(-1)
    if np.any(eps < 0):
        raise ValueError("epsilons must all be finite numbers >= 0")
    import dp_accounting

    event = dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(batch_size / n, dp_accounting.GaussianDpEvent(noise_multiplier)),
        dp_sgd_steps(n, batch_size, epochs))
    accountant = _accountant_object("pld").compose(event)
    deltas = np.clip(np.asarray(accountant.get_delta(list(map(float, eps))), dtype=float), 0.0, 1.0)
    return np.array(eps, dtype=float), deltas


def max_tpr_from_profile(fpr: Any, epsilons: Any, deltas: Any) -> np.ndarray | float:
    """The largest true-positive rate any membership test can reach at false-positive rate
    ``fpr`` against a mechanism that is ``(ε_i, δ_i)``-DP for every pair given.

    Each pair allows ``TPR <= min(e^ε FPR + δ, 1 - e^-ε (1 - δ - FPR))`` (the region of
    :func:`epsilon_meaning`); all pairs hold at once, so the minimum over them is a bound.
    Over a whole privacy profile (:func:`dp_sgd_privacy_profile`) this is the mechanism's
    trade-off curve (Dong, Roth & Su, 2019: f-DP; Kairouz, Oh & Viswanath, 2015), far below
    what any single pair allows at small FPR. ``fpr`` may be an array (vectorised).
    """
    fpr_arr = np.asarray(validation.finite_array("fpr", fpr), dtype=float)
    if np.any((fpr_arr < 0) | (fpr_arr > 1)):
        raise ValueError("fpr must be in [0, 1]")
    eps = validation.finite_array("epsilons", epsilons).reshape(-1)
    dels = validation.finite_array("deltas", deltas).reshape(-1)
    if len(eps) != len(dels) or np.any(eps < 0) or np.any((dels < 0) | (dels > 1)):
        raise ValueError("epsilons (>= 0) and deltas (in [0, 1]) must have the same length")
    a = fpr_arr.reshape(-1, 1)
    e = np.exp(eps)[None, :]
    bound = np.minimum(e * a + dels[None, :], 1.0 - (1.0 - dels[None, :] - a) / e).min(axis=1)
    out = np.clip(np.maximum(bound, fpr_arr.reshape(-1)), 0.0, 1.0).reshape(fpr_arr.shape)
    return float(out) if out.ndim == 0 else out


_FAST_ORDERS = np.array(list(range(2, 64)) + [128, 256, 512, 1024], dtype=float)


def _fast_dp_sgd_epsilon(q: float, steps: int, noise_multiplier: float, delta: float) -> float:
    """ε of Poisson-subsampled Gaussian steps from RDP at integer orders (closed form,
    vectorized). Used to search quickly; :func:`dp_sgd_epsilon` has the last word."""
    from scipy.special import gammaln, logsumexp

    orders = _FAST_ORDERS
    if q >= 1.0:
        log_a = orders * (orders - 1) / (2 * noise_multiplier ** 2)
    else:
        k = np.arange(int(orders.max()) + 1, dtype=float)
        a = orders[:, None]
        terms = (gammaln(a + 1) - gammaln(k + 1) - gammaln(np.maximum(a - k, 0) + 1)
                 + (a - k) * math.log1p(-q) + k * math.log(q) + (k * k - k) / (2 * noise_multiplier ** 2))
        terms = np.where(k[None, :] <= a, terms, -np.inf)
        log_a = logsumexp(terms, axis=1)
    rdp = steps * np.maximum(log_a, 0.0) / (orders - 1)
    eps = rdp + np.log1p(-1 / orders) - np.log(delta * orders) / (orders - 1)
    eps = np.where(delta ** 2 + np.expm1(-rdp) > 0, 0.0, eps)
    return float(max(0.0, eps.min()))


def noise_multiplier_for_epsilon(n: int, batch_size: int, epochs: float, target_epsilon: float,
                                 delta: float, tolerance: float = 1e-3, accountant: str = "rdp") -> float:
    """The noise multiplier (within ``tolerance``, relative) whose :func:`dp_sgd_epsilon` with
    ``accountant`` is at most ``target_epsilon``.

    Bisection (ε decreases as noise grows) on a fast integer-order RDP computation, then
    checked, and if needed raised, with :func:`dp_sgd_epsilon` itself so the guarantee holds
    exactly as reported. For ``accountant="pld"`` the RDP answer brackets the search (PLD's
    ε is smaller, so it needs less noise) and a safeguarded regula falsi uses the PLD
    accountant itself (about six evaluations: 0.5 to 2 s).
    """
    n, batch_size, epochs, delta = _dp_sgd_args(n, batch_size, epochs, delta)
    target_epsilon = validation.positive("target_epsilon", target_epsilon)
    tolerance = validation.fraction("tolerance", tolerance)
    accountant = _accountant(accountant)
    q = batch_size / n
    steps = dp_sgd_steps(n, batch_size, epochs)

    def too_private_or_ok(sigma: float) -> bool:
        return _fast_dp_sgd_epsilon(q, steps, sigma, delta) <= target_epsilon

    lo, hi = 0.05, 1.0
    while not too_private_or_ok(hi):
        lo, hi = hi, hi * 2
        if hi > 1e5:
            raise ValueError(f"target_epsilon={target_epsilon} is not reachable with noise_multiplier <= 1e5")
    if too_private_or_ok(lo):
        raise ValueError(f"target_epsilon={target_epsilon} is reached with almost no noise (< {lo}); "
                         f"use fewer epochs or a smaller target_epsilon")
    while hi / lo > 1 + tolerance / 4:
        mid = math.sqrt(lo * hi)
        lo, hi = (lo, mid) if too_private_or_ok(mid) else (mid, hi)
    while dp_sgd_epsilon(n, batch_size, epochs, hi, delta) > target_epsilon:
        hi *= 1 + tolerance / 4
    if accountant == "rdp":
        return hi

    def log_ratio(sigma: float) -> float:  # log(ε_PLD / target): decreasing in sigma, <= 0 is feasible
        return math.log(dp_sgd_epsilon(n, batch_size, epochs, sigma, delta, accountant="pld") / target_epsilon)

    f_hi = log_ratio(hi)
    while f_hi > 0:  # not expected (PLD is tighter than RDP), kept for safety
        hi *= 1.1
        f_hi = log_ratio(hi)
    lo = 0.88 * hi  # PLD needed 0.90-0.94 of RDP's noise at the course's settings
    f_lo = log_ratio(lo)
    while f_lo <= 0:
        lo, hi, f_hi = 0.8 * lo, lo, f_lo
        if lo < 0.05:
            raise ValueError(f"target_epsilon={target_epsilon} is reached with almost no noise (< 0.05); "
                             f"use fewer epochs or a smaller target_epsilon")
        f_lo = log_ratio(lo)
    # Regula falsi on log sigma (Illinois variant), each trial kept a little inside the
    # bracket so that it shrinks to ``tolerance`` in a handful of PLD evaluations.
    side = 0
    while hi / lo > 1 + tolerance:
        x = math.exp(math.log(hi) - f_hi * (math.log(hi) - math.log(lo)) / (f_hi - f_lo))
        x = min(max(x, lo * (1 + tolerance / 3)), hi / (1 + tolerance / 3))
        f_x = log_ratio(x)
        if f_x <= 0:
            hi, f_hi = x, f_x
            if side == -1:
                f_lo /= 2
            side = -1
        else:
            lo, f_lo = x, f_x
            if side == 1:
                f_hi /= 2
            side = 1
    return hi
