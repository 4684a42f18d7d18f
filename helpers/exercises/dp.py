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


# --------------------------------------------------------------------------- sensitivity

#: Query letter -> (description, neighbouring relation, L1 sensitivity, why).
SENSITIVITY_QUERIES: dict[str, tuple[str, str, float, str]] = {
    "a": ("the number of patients older than 60", "add/remove", 1.0,
          "adding or removing one person changes a count by at most 1"),
    "b": ("the sum of ages clamped to [20, 90]", "add/remove", 90.0,
          "the added or removed person contributes at most the upper bound, 90"),
    "c": ("the sum of ages clamped to [20, 90]", "replace-one", 70.0,
          "replacing one person changes one term from anywhere in [20, 90] to anywhere else: at most 90 - 20"),
    "d": ("the histogram of ages by decade (L1 norm over the bins)", "replace-one", 2.0,
          "the replaced person leaves one bin and joins another: two counts change by 1"),
}


@exercise(
    "dp.sensitivity", "the sensitivity of four queries",
    hint="Sensitivity is the largest change of the answer between neighbours. Under add/remove one person "
         "appears or disappears; under replace-one one person's value changes to any other allowed value.",
    reference={"a": 1, "b": 90, "c": 70, "d": 2},
    wrong_answers=[({"a": 1, "b": 70, "c": 70, "d": 2}, "upper bound"),
                   ({"a": 1, "b": 90, "c": 70, "d": 1}, "two counts"),
                   ([1, 90, 70, 2], "a dict")],
)
def _check_sensitivity(answer: Any):
    if not isinstance(answer, dict):
        yield Finding(False, f"answer must be a dict such as {{'a': 1, ...}}, got {type(answer).__name__}")
        return
    for letter, (query, relation, value, why) in SENSITIVITY_QUERIES.items():
        given = answer.get(letter)
        if given is None or given is ...:
            yield Finding(False, f"{letter}: no answer yet ({query}, {relation})")
            continue
        try:
            ok = math.isclose(float(given), value)
        except (TypeError, ValueError):
            yield Finding(False, f"{letter}: {given!r} is not a number")
            continue
        yield Finding(ok, f"{letter} ({query}, {relation}): {value:g}, because {why}"
                      if ok else f"{letter} ({query}, {relation}) is not {given}: {why}")


# --------------------------------------------------------------------------- composition

@exercise(
    "dp.composition", "what do three releases cost?",
    hint="One histogram is one release: its bins hold disjoint people (parallel composition), so it costs its "
         "ε once. Releases about the same people add up (basic composition), even when a release is repeated.",
    reference={"one_histogram": 0.5, "total": 1.2},
    wrong_answers=[({"one_histogram": 5.0, "total": 10.2}, "parallel composition"),
                   ({"one_histogram": 0.5, "total": 0.7}, "repeated"),
                   (1.2, "a dict")],
)
def _check_composition(answer: Any):
    if not isinstance(answer, dict):
        yield Finding(False, "answer must be a dict {'one_histogram': ..., 'total': ...}, "
                             f"got {type(answer).__name__}")
        return
    try:
        one, total = float(answer.get("one_histogram")), float(answer.get("total"))
    except (TypeError, ValueError):
        yield Finding(False, "both values must be numbers (ε)")
        return
    if math.isclose(one, 0.5):
        yield Finding(True, "one histogram with 10 bins costs ε = 0.5: each person is in one bin, so the bins "
                            "compose in parallel")
    elif math.isclose(one, 5.0):
        yield Finding(False, "one histogram does not cost 10 × 0.5: the bins hold disjoint people, so by "
                             "parallel composition the whole histogram costs ε = 0.5")
    else:
        yield Finding(False, f"one histogram costs the ε it was released with, not {one}")
    if math.isclose(total, 1.2):
        yield Finding(True, "total ε = 0.5 + 0.2 + 0.5 = 1.2 by basic composition")
    elif math.isclose(total, 0.7):
        yield Finding(False, "the repeated histogram is a new release with fresh noise: averaging the two "
                             "halves the noise, so it costs its ε again (total 1.2)")
    else:
        yield Finding(False, f"total ε is not {total}: add up every release about the same people")


# --------------------------------------------------------------------------- reading an audit

#: Statement letter -> (statement, true?, why).
AUDIT_STATEMENTS: dict[str, tuple[str, bool, str]] = {
    "a": ("With 95 % confidence the training algorithm is not ε-DP for any ε below the audit's bound, if the "
          "audit is valid for the algorithm (as the canary audit is).", True,
          "true as stated, with its condition: an audit whose trials are randomized by design (canaries "
          "included at random, or many independent training runs) turns an attack's success into a lower bound "
          "on the algorithm's ε; a membership audit of one model's own records (section 9's table) only "
          "describes that model's leakage and proves nothing about the algorithm"),
    "b": ("The audit found ε ≥ 0.4, so the true ε is about 0.4 and the accountant's ε = 8 is too pessimistic.",
          False, "a lower bound says nothing about how far below the truth it lies: a weak attack shows little"),
    "c": ("With 150 members and 150 non-members, a perfect attack could have shown ε ≥ 8.", False,
          "the number of records caps what any audit can show: with 150 vs 150 records even a perfect attack "
          "shows at most ε ≥ {ceiling:.2f} (helpers.privacy_attacks.audit_ceiling, δ = 1e-4 as in the "
          "notebook, 95 %)"),
    "d": ("ε belongs to the training algorithm (its sampling, clipping and noise), not to one trained model.",
          True, "DP is a promise about the distribution of outputs of a randomized algorithm"),
}


@exercise(
    "dp.read_audit", "what does a membership audit prove?",
    hint="An audit can only show that ε is at least something, and only up to what its number of records "
         "allows; the accountant's ε is an upper bound for the algorithm that ran.",
    reference={"a": True, "b": False, "c": False, "d": True},
    wrong_answers=[({"a": True, "b": True, "c": False, "d": True}, "lower bound"),
                   ({"a": True, "b": False, "c": True, "d": True}, "caps"),
                   ("a, d", "a dict")],
)
def _check_read_audit(answer: Any):
    from helpers.privacy_attacks import audit_ceiling

    ceiling = audit_ceiling(150, 150, 1e-4)
    if not isinstance(answer, dict):
        yield Finding(False, f"answer must be a dict such as {{'a': True, ...}}, got {type(answer).__name__}")
        return
    for letter, (statement, truth, why) in AUDIT_STATEMENTS.items():
        why = why.format(ceiling=ceiling)
        given = answer.get(letter)
        if not isinstance(given, bool):
            yield Finding(False, f"{letter}: answer True or False (got {given!r})")
        elif given == truth:
            yield Finding(True, f"{letter} is {truth}: {why}")
        else:
            yield Finding(False, f"{letter} is {truth}, not {given}: {why}")
