"""Differential privacy for counts, sums, means and histograms, and DP-SGD accounting.

Every mechanism states its neighbouring relation:

* **add/remove** (the default here): two datasets are neighbours when one is the other
  with one person's record added or removed. The dataset size is then private too.
* **replace-one**: same size, one record changed. Some mechanisms accept
  ``relation="replace_one"``; their sensitivity changes accordingly.

Noise is drawn with a *secure* sampler: the released value lies on a grid of spacing
``2**k`` and the noise is an integer number of grid steps (a discrete Laplace or a
rounded Gaussian), so the floating-point "holes" that let an attacker tell the
textbook Laplace sampler's outputs apart (Mironov, 2012) do not exist. The rounding to
the grid is accounted for by adding one grid step to the sensitivity.
:func:`textbook_laplace` keeps the flawed sampler for the demonstration.

Privacy accounting of DP-SGD (:func:`dp_sgd_epsilon`) uses ``dp_accounting``'s RDP
accountant with Poisson subsampling, add/remove-one-example neighbours and no
microbatching (each example clipped on its own).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from helpers import validation

#: The secure sampler's grid is about ``noise scale / 2**GRID_BITS``: fine enough that the
#: rounding is negligible next to the noise, coarse enough to hide floating-point artefacts.
GRID_BITS = 10


# --------------------------------------------------------------------------- checks

def _epsilon(epsilon: Any) -> float:
    return validation.positive("epsilon", epsilon)


def _delta(delta: Any) -> float:
    return validation.fraction("delta", delta)


def _relation(relation: str) -> str:
    if relation not in ("add_remove", "replace_one"):
        raise ValueError(f"relation must be 'add_remove' or 'replace_one', got {relation!r}")
    return relation


# --------------------------------------------------------------------------- samplers

def grid_step(scale: float) -> float:
    """The power of two used as the output grid for noise of size ``scale``."""
    scale = validation.positive("scale", scale)
    return float(2.0 ** (math.floor(math.log2(scale)) - GRID_BITS))


def _to_grid(value: np.ndarray, step: float) -> np.ndarray:
    units = np.rint(value / step)
    if np.any(np.abs(units) >= 2.0 ** 52):
        raise ValueError("value is too large for the secure sampler's grid (|value| / grid step >= 2**52)")
    return units


def discrete_laplace(t: float, size: Any = None, rng: Any = None) -> np.ndarray:
    """Integers ``k`` with ``P(k) ∝ exp(-|k| / t)`` (difference of two geometric draws)."""
    t = validation.positive("t", t)
    gen = validation.rng_from(rng)
    p = -math.expm1(-1.0 / t)  # 1 - exp(-1/t), accurate for large t
    return (gen.geometric(p, size=size) - gen.geometric(p, size=size)).astype(np.float64)


def secure_laplace(value: Any, sensitivity: float, epsilon: float, rng: Any = None) -> np.ndarray | float:
    """``value`` plus Laplace-like noise on a power-of-two grid (ε-DP, no float holes).

    The value is rounded to the grid (sensitivity grows by at most one step), then an
    integer number of steps drawn from a discrete Laplace distribution is added, so
    every output is an exact multiple of the step and is possible from any input.
    The noise scale is ``sensitivity / epsilon`` up to a factor ``1 + 2**-(GRID_BITS-1)``.
    """
    sensitivity = validation.positive("sensitivity", sensitivity)
    epsilon = _epsilon(epsilon)
    array = validation.finite_array("value", value)
    step = grid_step(sensitivity / epsilon)
    units = _to_grid(array, step)
    t = (math.ceil(sensitivity / step) + 1) / epsilon  # integer sensitivity incl. rounding
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

def laplace_mechanism(value: Any, sensitivity: float, epsilon: float, rng: Any = None) -> np.ndarray | float:
    """ε-DP release of ``value`` (scalar or array) whose L1 sensitivity is ``sensitivity``.

    Noise scale ``sensitivity / epsilon``, drawn with the secure sampler
    (:func:`secure_laplace`). The same ``rng`` seed gives the same output.
    """
    return secure_laplace(value, sensitivity, epsilon, rng=rng)


def gaussian_sigma(sensitivity: float, epsilon: float, delta: float, method: str = "analytic") -> float:
    """Noise standard deviation of the Gaussian mechanism for (ε, δ)-DP.

    ``method="analytic"`` (default) is the exact calibration of Balle & Wang (2018),
    valid for every ε > 0; ``"classic"`` is ``Δ sqrt(2 ln(1.25/δ)) / ε`` (Dwork & Roth,
    Thm A.1), proved only for ε < 1 and larger than needed.
    """
    from scipy.stats import norm

    sensitivity = validation.positive("sensitivity", sensitivity)
    epsilon, delta = _epsilon(epsilon), _delta(delta)
    if method == "classic":
        return sensitivity * math.sqrt(2 * math.log(1.25 / delta)) / epsilon
    if method != "analytic":
        raise ValueError(f"method must be 'analytic' or 'classic', got {method!r}")

    def delta_of(sigma: float) -> float:  # privacy profile of N(0, sigma^2), sensitivity Δ
        a, b = sensitivity / (2 * sigma), epsilon * sigma / sensitivity
        return norm.cdf(a - b) - math.exp(epsilon) * norm.cdf(-a - b)

    lo, hi = 1e-6 * sensitivity, sensitivity
    while delta_of(hi) > delta:
        hi *= 2
    for _ in range(100):
        mid = math.sqrt(lo * hi)
        lo, hi = (lo, mid) if delta_of(mid) <= delta else (mid, hi)
    return hi


def gaussian_mechanism(value: Any, sensitivity: float, epsilon: float, delta: float,
                       rng: Any = None) -> np.ndarray | float:
    """(ε, δ)-DP release of ``value`` whose L2 sensitivity is ``sensitivity``.

    The standard deviation comes from :func:`gaussian_sigma` (analytic calibration) for
    ``sensitivity`` plus one grid step; the output is rounded to the grid (post-processing),
    so it has no floating-point holes.
    """
    sensitivity = validation.positive("sensitivity", sensitivity)
    epsilon, delta = _epsilon(epsilon), _delta(delta)
    array = validation.finite_array("value", value)
    step = grid_step(gaussian_sigma(sensitivity, epsilon, delta))
    sigma = gaussian_sigma(sensitivity + step, epsilon, delta)
    units = _to_grid(array, step)
    noise = np.rint(validation.rng_from(rng).normal(0.0, sigma / step, size=array.shape))
    out = (units + noise) * step
    return float(out) if out.ndim == 0 else out


def _data(values: Any) -> np.ndarray:
    return validation.finite_array("values", values).reshape(-1)


def dp_count(values: Any, epsilon: float, rng: Any = None) -> float:
    """ε-DP number of records (add/remove neighbours: sensitivity 1)."""
    epsilon = _epsilon(epsilon)
    n = len(_data(values))
    return laplace_mechanism(float(n), 1.0, epsilon, rng=rng)


def dp_sum(values: Any, lower: float, upper: float, epsilon: float, rng: Any = None) -> float:
    """ε-DP sum of ``values`` clamped to the public range ``[lower, upper]``.

    Add/remove neighbours: one record changes the sum by at most ``max(|lower|, |upper|)``.
    """
    lower, upper = validation.bounds("lower", lower, "upper", upper)
    epsilon = _epsilon(epsilon)
    clamped = np.clip(_data(values), lower, upper)
    sensitivity = max(abs(lower), abs(upper))
    if sensitivity == 0:  # cannot happen with lower < upper, kept for clarity
        raise ValueError("lower and upper must not both be 0")
    return laplace_mechanism(float(clamped.sum()), sensitivity, epsilon, rng=rng)


def dp_mean(values: Any, lower: float, upper: float, epsilon: float, rng: Any = None,
            relation: str = "add_remove") -> float:
    """ε-DP mean of ``values`` clamped to the public range ``[lower, upper]``.

    ``lower`` and ``upper`` must be chosen without looking at the data (clamping is
    what bounds the sensitivity; values outside are moved to the nearest bound, which
    biases the mean towards the range).

    * ``relation="add_remove"`` (default): half of ε for a noisy sum of the values
      centred at the middle of the range (sensitivity ``(upper - lower) / 2``), half
      for a noisy count (sensitivity 1); returns their ratio, clipped to the range.
    * ``relation="replace_one"``: the size ``n`` is public; the mean has sensitivity
      ``(upper - lower) / n`` and gets all of ε.
    """
    lower, upper = validation.bounds("lower", lower, "upper", upper)
    epsilon = _epsilon(epsilon)
    relation = _relation(relation)
    gen = validation.rng_from(rng)
    clamped = np.clip(_data(values), lower, upper)
    if relation == "replace_one":
        noisy = laplace_mechanism(float(clamped.mean()), (upper - lower) / len(clamped), epsilon, rng=gen)
        return float(np.clip(noisy, lower, upper))
    middle = (lower + upper) / 2
    noisy_sum = laplace_mechanism(float(np.sum(clamped - middle)), (upper - lower) / 2, epsilon / 2, rng=gen)
    noisy_count = laplace_mechanism(float(len(clamped)), 1.0, epsilon / 2, rng=gen)
    return float(np.clip(middle + noisy_sum / max(noisy_count, 1.0), lower, upper))


def dp_histogram(values: Any, bins: Sequence[float], epsilon: float, rng: Any = None,
                 relation: str = "add_remove") -> np.ndarray:
    """ε-DP counts of ``values`` in the public bins with edges ``bins``.

    Values outside the edges are clamped into the first or last bin. Each record is in
    one bin, so the L1 sensitivity is 1 (add/remove) or 2 (replace-one: one bin loses a
    record, another gains it).
    """
    edges = validation.finite_array("bins", bins, ndim=1)
    if len(edges) < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError("bins must be at least 2 strictly increasing edges")
    epsilon = _epsilon(epsilon)
    relation = _relation(relation)
    clamped = np.clip(_data(values), edges[0], edges[-1])
    counts, _ = np.histogram(clamped, bins=edges)
    sensitivity = 1.0 if relation == "add_remove" else 2.0
    return np.asarray(laplace_mechanism(counts.astype(float), sensitivity, epsilon, rng=rng), dtype=float)


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


# --------------------------------------------------------------------------- measuring ε

def empirical_epsilon(samples: Any, neighbour_samples: Any, delta: float = 0.0, confidence: float = 0.95,
                      num_thresholds: int = 20) -> float:
    """A lower bound on ε, valid with probability ``confidence``, from two samples of a mechanism.

    For threshold sets ``{y > t}`` and ``{y <= t}`` (``num_thresholds`` quantiles of the pooled
    samples) the Clopper-Pearson bounds give ``ε >= ln((P(S) - δ) / P'(S))``; the confidence
    is split over the tests (Bonferroni), so the maximum is a valid lower bound. If the
    mechanism is ε-DP, the result exceeds ε only with probability ``1 - confidence``.
    """
    from helpers.privacy_attacks import clopper_pearson

    a = validation.finite_array("samples", samples).reshape(-1)
    b = validation.finite_array("neighbour_samples", neighbour_samples).reshape(-1)
    delta = validation.non_negative("delta", delta)
    confidence = validation.fraction("confidence", confidence)
    num_thresholds = validation.positive_int("num_thresholds", num_thresholds)
    thresholds = np.unique(np.quantile(np.concatenate([a, b]), np.linspace(0.02, 0.98, num_thresholds)))
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


def dp_sgd_epsilon(n: int, batch_size: int, epochs: float, noise_multiplier: float, delta: float) -> float:
    """ε of DP-SGD: ``ceil(epochs * n / batch_size)`` steps, each a Gaussian mechanism with
    ``noise_multiplier`` on a Poisson sample with rate ``batch_size / n``.

    RDP accountant of ``dp_accounting``; add/remove-one-example neighbours; examples are
    clipped one by one (no microbatches). Same as tensorflow-privacy's
    ``compute_dp_sgd_privacy_statement(..., used_microbatching=False)``.
    """
    import dp_accounting

    n, batch_size, epochs, delta = _dp_sgd_args(n, batch_size, epochs, delta)
    noise_multiplier = validation.positive("noise_multiplier", noise_multiplier)
    q = batch_size / n
    steps = int(math.ceil(epochs / q))
    event = dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(noise_multiplier)), steps)
    accountant = dp_accounting.rdp.RdpAccountant()
    return float(accountant.compose(event).get_epsilon(delta))


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
                                 delta: float, tolerance: float = 1e-3) -> float:
    """The noise multiplier (within ``tolerance``, relative) whose :func:`dp_sgd_epsilon` is
    at most ``target_epsilon``: bisection (ε decreases as noise grows) on a fast
    integer-order RDP computation, then checked, and if needed raised, with
    :func:`dp_sgd_epsilon` itself so the guarantee holds exactly as reported."""
    n, batch_size, epochs, delta = _dp_sgd_args(n, batch_size, epochs, delta)
    target_epsilon = validation.positive("target_epsilon", target_epsilon)
    tolerance = validation.fraction("tolerance", tolerance)
    q = batch_size / n
    steps = int(math.ceil(epochs / q))

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
    return hi
