"""Exercises of notebook 01 (differential privacy): keys ``dp.*``."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from helpers.exercises.core import Finding, exercise


# --------------------------------------------------------------------------- randomized response

def _rr_reference(truth: bool, rng: np.random.Generator) -> bool:
    if rng.random() < 0.5:      # first coin: heads, answer truthfully
        return bool(truth)
    return bool(rng.random() < 0.5)  # tails: answer a second coin flip


def _rr_always_truthful(truth: bool, rng: np.random.Generator) -> bool:
    return bool(truth)


def _rr_pure_coin(truth: bool, rng: np.random.Generator) -> bool:
    return bool(rng.random() < 0.5)


def _rr_lie_on_tails(truth: bool, rng: np.random.Generator) -> bool:
    return bool(truth) if rng.random() < 0.5 else not truth


@exercise(
    "dp.randomized_response", "randomized response with two coins",
    hint="Flip a coin with rng.random() < 0.5: on heads return the true answer; on tails return the result "
         "of a second flip. Then P(yes | true) = 3/4 and P(yes | false) = 1/4, so ε = ln 3.",
    reference=_rr_reference,
    wrong_answers=[(_rr_always_truthful, "the truth"), (_rr_pure_coin, "no information"),
                   (_rr_lie_on_tails, "P(yes | true)")],
)
def _check_rr(answer: Any):
    if not callable(answer):
        yield Finding(False, "answer must be a function randomized_response(truth, rng) returning True/False")
        return
    n = 4000
    rng = np.random.default_rng(0)
    yes_true = np.mean([bool(answer(True, rng)) for _ in range(n)])
    yes_false = np.mean([bool(answer(False, rng)) for _ in range(n)])
    tol = 0.04  # ~5 standard errors at n = 4000
    if yes_true == 1.0 and yes_false == 0.0:
        yield Finding(False, "your function always tells the truth: no deniability, ε is infinite")
        return
    if abs(yes_true - yes_false) < tol:
        yield Finding(False, f"P(yes | true) = {yes_true:.2f} ≈ P(yes | false) = {yes_false:.2f}: the answers carry "
                             f"no information, so the survey is useless (ε = 0)")
        return
    yield Finding(abs(yes_true - 0.75) < tol, f"P(yes | true) should be 3/4, measured {yes_true:.3f}")
    yield Finding(abs(yes_false - 0.25) < tol, f"P(yes | false) should be 1/4, measured {yes_false:.3f}")
    if yes_false > 0:
        eps = math.log(max(yes_true / yes_false, (1 - yes_false) / max(1 - yes_true, 1e-9)))
        yield Finding(abs(eps - math.log(3)) < 0.25, f"measured ε ≈ {eps:.2f}, the protocol's ε is ln 3 ≈ 1.10")
    a = [bool(answer(True, np.random.default_rng(7))) for _ in range(20)]
    b = [bool(answer(True, np.random.default_rng(7))) for _ in range(20)]
    yield Finding(a == b, "randomness comes only from rng (the same seed gives the same answers)")


# --------------------------------------------------------------------------- fix the seed's dp_mean

def _dp_mean_reference(values, lower: float, upper: float, epsilon: float, rng: np.random.Generator) -> float:
    from helpers import dp

    values = np.clip(np.asarray(values, dtype=float), lower, upper)  # bug 2: clamp to a public range
    sensitivity = (upper - lower) / len(values)                      # replace-one, n public
    # bug 1: ONE noisy number, drawn with the course's grid sampler (not rng.laplace: section 6
    # shows that the textbook floating-point sampler leaks the input)
    return float(dp.laplace_mechanism(np.mean(values), sensitivity, epsilon, rng=rng))


def _dp_mean_seed(values, lower, upper, epsilon, rng):
    n = len(values)
    noise = rng.laplace(scale=(1.0 / n) / epsilon, size=n)
    return np.mean(values) + noise


def _dp_mean_no_clamp(values, lower, upper, epsilon, rng):
    return float(np.mean(values) + rng.laplace(scale=(upper - lower) / len(values) / epsilon))


def _dp_mean_small_sensitivity(values, lower, upper, epsilon, rng):
    values = np.clip(np.asarray(values, dtype=float), lower, upper)
    return float(np.mean(values) + rng.laplace(scale=(1.0 / len(values)) / epsilon))


@exercise(
    "dp.fix_dp_mean", "fix the seed article's dp_mean",
    hint="Two fixes: clamp the values to [lower, upper] (np.clip) so one person moves the mean by at most "
         "(upper - lower) / n, and release ONE noisy number with scale sensitivity / epsilon (not size=n): "
         "dp.laplace_mechanism(mean, sensitivity, epsilon, rng=rng) does it with a safe sampler.",
    reference=_dp_mean_reference,
    wrong_answers=[(_dp_mean_seed, "one number"), (_dp_mean_no_clamp, "clamp"),
                   (_dp_mean_small_sensitivity, "too little noise")],
)
def _check_dp_mean(answer: Any):
    if not callable(answer):
        yield Finding(False, "answer must be a function dp_mean(values, lower, upper, epsilon, rng)")
        return
    values = np.linspace(20, 60, 100)
    out = answer(values, 0.0, 100.0, 1.0, np.random.default_rng(0))
    if np.ndim(out) != 0:
        yield Finding(False, f"dp_mean must return one number (the mean), yours returned {np.size(out)} values: "
                             f"that is the seed's first bug (noise of size n added to a scalar)")
        return
    yield Finding(True, "returns one number")
    outlier = np.r_[np.full(99, 50.0), 1e6]
    got = [float(answer(outlier, 0.0, 100.0, 100.0, np.random.default_rng(s))) for s in range(5)]
    clamped = (99 * 50 + 100) / 100
    yield Finding(abs(np.median(got) - clamped) < 2.0,
                  f"with an outlier of 1e6 and range [0, 100] the released mean should stay near the clamped "
                  f"mean {clamped:.1f}, got {np.median(got):.1f}: clamp the values to [lower, upper]")
    draws = np.array([float(answer(values, 0.0, 100.0, 1.0, np.random.default_rng(s))) for s in range(400)])
    needed = math.sqrt(2) * (100.0 / 100) / 1.0  # sd of Laplace(scale = (upper-lower)/n / ε)
    sd = float(draws.std())
    if sd < 0.7 * needed:
        yield Finding(False, f"too little noise: sd {sd:.3f} but one person can move the clamped mean by "
                             f"(upper - lower) / n, which needs sd ≈ {needed:.2f} at ε = 1 (sensitivity 1/n "
                             f"assumes data in [0, 1]: the seed's second bug)")
    else:
        yield Finding(sd < 5 * needed, f"noise sd {sd:.2f} matches the sensitivity (upper - lower) / n (≈ {needed:.2f})")
    yield Finding(abs(draws.mean() - values.mean()) < 0.5, f"unbiased on in-range data: mean of releases "
                                                           f"{draws.mean():.2f} vs true {values.mean():.2f}")


# --------------------------------------------------------------------------- noise multiplier

def _pick_reference(n: int, batch_size: int, epochs: float, target_epsilon: float, delta: float) -> float:
    from helpers.dp import dp_sgd_epsilon

    lo, hi = 0.3, 50.0                       # ε falls as the noise grows: bisection
    while hi / lo > 1.01:
        mid = (lo * hi) ** 0.5
        if dp_sgd_epsilon(n, batch_size, epochs, mid, delta) <= target_epsilon:
            hi = mid
        else:
            lo = mid
    return hi


def _pick_constant(n, batch_size, epochs, target_epsilon, delta):
    return 1.0


def _pick_wasteful(n, batch_size, epochs, target_epsilon, delta):
    return 2 * _pick_reference(n, batch_size, epochs, target_epsilon, delta)


@exercise(
    "dp.noise_multiplier", "pick a noise multiplier for a target ε",
    hint="helpers.dp.dp_sgd_epsilon(n, batch_size, epochs, noise_multiplier, delta) decreases as the noise "
         "multiplier grows: bisect between 0.3 and 50 until the ratio hi/lo is below 1.01, keep the side "
         "that meets the target.",
    reference=_pick_reference,
    wrong_answers=[(_pick_constant, "exceeds"), (_pick_wasteful, "more noise than needed")],
)
def _check_noise_multiplier(answer: Any):
    if not callable(answer):
        yield Finding(False, "answer must be a function pick_noise_multiplier(n, batch_size, epochs, "
                             "target_epsilon, delta) returning a number")
        return
    from helpers.dp import dp_sgd_epsilon

    for n, batch, epochs, target, delta in ((300, 60, 20, 3.0, 1e-4), (1000, 100, 5, 1.0, 1e-5)):
        sigma = float(answer(n, batch, epochs, target, delta))
        if not sigma > 0 or not math.isfinite(sigma):
            yield Finding(False, f"the noise multiplier must be a finite number > 0, got {sigma}")
            return
        eps = dp_sgd_epsilon(n, batch, epochs, sigma, delta)
        setting = f"n={n}, batch {batch}, {epochs} epochs, δ={delta:g}"
        if eps > target * (1 + 1e-6):
            yield Finding(False, f"{setting}: noise {sigma:.3f} gives ε = {eps:.2f}, which exceeds the target {target}")
        elif dp_sgd_epsilon(n, batch, epochs, sigma / 1.05, delta) <= target:
            yield Finding(False, f"{setting}: noise {sigma:.3f} gives ε = {eps:.2f}: 5% less noise would still meet "
                                 f"ε ≤ {target}, so you add more noise than needed (and lose accuracy)")
        else:
            yield Finding(True, f"{setting}: noise {sigma:.3f} gives ε = {eps:.3f} ≤ {target}, within 5% of the minimum")
