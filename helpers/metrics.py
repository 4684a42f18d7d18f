"""Clinical metrics of a binary classifier, with confidence intervals.

Conventions: labels are 0/1 with **1 = the condition** (malignant); ``scores`` are any
numbers that grow with the belief in class 1 (probabilities, logits); a patient is
called positive when ``score >= threshold``.

* :func:`roc_auc`, :func:`roc_curve`, :func:`tpr_at_fpr`: threshold-free ranking quality;
* :func:`sensitivity_specificity` and :func:`threshold_for_sensitivity`: the clinical
  *operating point* (a threshold chosen on validation data for a required sensitivity);
* :func:`wilson_interval` (for proportions) and :func:`bootstrap_interval` (for any
  statistic, resampling patients within each class) give confidence intervals;
* :func:`clinical_metrics` reports everything at once as :class:`Estimate` objects;
  :func:`predictive_values` adds PPV and NPV (they depend on the prevalence);
* :func:`paired_bootstrap_difference` and :func:`mcnemar_exact` compare two models **on the
  same patients** (paired), which is far more sensitive than checking whether two
  separate intervals overlap;
* :func:`brier_score`, :func:`calibration` (intercept and slope of the logits, with
  intervals) and :func:`cross_fitted_recalibration`: is a score a probability, and which
  probability would it be?
* :func:`net_benefit` (decision curves) and :func:`predictive_values_at` (PPV and NPV at
  another prevalence): is the model clinically useful, and where?
* :func:`verdict_probability` and :func:`trials_for_power`: the **power** of a decision
  rule built on the Wilson interval (how often it rules out, or confirms, a proportion
  whose true value is known), from the binomial distribution.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from scipy import stats

from helpers import validation


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a confidence interval ``[low, high]``."""

    value: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"

    @property
    def width(self) -> float:
        """``high - low``."""
        return self.high - self.low


def _labels_scores(y_true: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true).reshape(-1)
    if y.size == 0:
        raise ValueError("y_true must not be empty")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("y_true must contain only 0 and 1 labels")
    s = validation.finite_array("scores", scores).reshape(-1)
    if s.shape != y.shape:
        raise ValueError(f"scores must have one value per label ({y.size}), got {s.size}")
    return y.astype(np.int64), s


def _both_classes(y: np.ndarray) -> None:
    if y.min() == y.max():
        raise ValueError("y_true must contain both classes (0 and 1) for this metric")


def _finite(name: str, value: Any) -> float:
    number = validation.finite_array(name, value, ndim=0)
    return float(number)


def _confidence(confidence: Any) -> float:
    return validation.fraction("confidence", confidence)


def roc_auc(y_true: Any, scores: Any) -> float:
    """Area under the ROC curve: the probability that a random positive scores higher
    than a random negative (ties count one half; Mann-Whitney U statistic)."""
    y, s = _labels_scores(y_true, scores)
    _both_classes(y)
    ranks = stats.rankdata(s)  # mid-ranks for ties
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    u = ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def roc_curve(y_true: Any, scores: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``fpr, tpr, thresholds`` for every distinct threshold, from (0, 0) to (1, 1).

    ``thresholds[0]`` is ``+inf`` (nobody positive); point ``i`` uses ``score >= thresholds[i]``.
    """
    y, s = _labels_scores(y_true, scores)
    _both_classes(y)
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    last_of_tie = np.r_[np.nonzero(np.diff(s_sorted))[0], s.size - 1]
    tps = np.cumsum(y_sorted)[last_of_tie]
    fps = (last_of_tie + 1) - tps
    tpr = np.r_[0.0, tps / y.sum()]
    fpr = np.r_[0.0, fps / (y.size - y.sum())]
    return fpr, tpr, np.r_[np.inf, s_sorted[last_of_tie]]


def tpr_at_fpr(y_true: Any, scores: Any, max_fpr: float = 0.01) -> float:
    """The largest true-positive rate among thresholds whose false-positive rate is
    ``<= max_fpr`` (the attack metric of Carlini et al., 2022, at low FPR)."""
    max_fpr = validation.in_open_interval("max_fpr", max_fpr, 0.0, 1.0 + 1e-12)
    fpr, tpr, _ = roc_curve(y_true, scores)
    return float(tpr[fpr <= max_fpr + 1e-12].max())


def confusion(y_true: Any, y_pred: Any) -> dict[str, int]:
    """Counts ``tp, fp, tn, fn`` of 0/1 predictions."""
    y, p = _labels_scores(y_true, y_pred)
    if not np.all((p == 0) | (p == 1)):
        raise ValueError("y_pred must contain only 0 and 1 predictions")
    return {"tp": int(np.sum((p == 1) & (y == 1))), "fp": int(np.sum((p == 1) & (y == 0))),
            "tn": int(np.sum((p == 0) & (y == 0))), "fn": int(np.sum((p == 0) & (y == 1)))}


def sensitivity_specificity(y_true: Any, scores: Any, threshold: float) -> tuple[float, float]:
    """Sensitivity (true-positive rate) and specificity (true-negative rate) when
    patients with ``score >= threshold`` are called positive."""
    y, s = _labels_scores(y_true, scores)
    _both_classes(y)
    threshold = _finite("threshold", threshold)
    c = confusion(y, (s >= threshold).astype(int))
    return c["tp"] / (c["tp"] + c["fn"]), c["tn"] / (c["tn"] + c["fp"])


def threshold_for_sensitivity(y_true: Any, scores: Any, target: float) -> float:
    """The largest threshold whose sensitivity on ``(y_true, scores)`` is ``>= target``.

    The largest such threshold calls the fewest patients positive, so it has the best
    specificity among the thresholds that meet the requirement. Choose it on
    *validation* data: the sensitivity on new patients is then an estimate (report
    its confidence interval), not a guarantee.
    """
    y, s = _labels_scores(y_true, scores)
    _both_classes(y)
    target = validation.in_open_interval("target", target, 0.0, 1.0 + 1e-12)
    positives = np.sort(s[y == 1])[::-1]
    needed = math.ceil(target * positives.size - 1e-9)
    return float(positives[max(needed, 1) - 1])


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``successes / trials`` (Wilson, 1927).

    Better than the textbook ``p ± z sqrt(p(1-p)/n)`` at small ``n`` and at proportions
    near 0 or 1, which is exactly where clinical sensitivities live.
    """
    trials = validation.positive_int("trials", trials)
    successes = validation.positive_int("successes", successes, minimum=0)
    if successes > trials:
        raise ValueError(f"successes must be <= trials ({trials}), got {successes}")
    z = stats.norm.ppf(0.5 + _confidence(confidence) / 2)
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return low, high


_VERDICTS = ("fails", "meets", "not distinguishable")


def _wilson_ends(trials: int, confidence: float) -> np.ndarray:
    """:func:`wilson_interval` of k = 0..trials successes at once, shape (trials + 1, 2)."""
    z = stats.norm.ppf(0.5 + _confidence(confidence) / 2)
    k = np.arange(trials + 1, dtype=float)
    p = k / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * np.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    low = np.where(k == 0, 0.0, np.maximum(0.0, centre - half))
    high = np.where(k == trials, 1.0, np.minimum(1.0, centre + half))
    return np.stack([low, high], axis=1)


def verdict_probability(trials: int, required: float, true_rate: Any, verdict: str = "fails",
                        confidence: float = 0.95) -> np.ndarray | float:
    """Probability that a requirement ``proportion >= required``, judged on the Wilson
    interval of ``k`` successes in ``trials`` (``k ~ Binomial(trials, true_rate)``), gets
    ``verdict``: ``"fails"`` (the whole interval lies below ``required``: what rules a model
    out under the rule "not refuted"), ``"meets"`` (the whole interval lies at or above it:
    what the rule "confirmed" demands) or ``"not distinguishable"``.

    With ``verdict="fails"`` and ``true_rate < required`` this is the **power** of the rule
    "not refuted" to rule out a model that truly misses the requirement; with
    ``verdict="meets"`` and ``true_rate >= required``, the power of "confirmed" to accept a
    model that truly meets it. The sum runs exactly over the ``trials + 1`` outcomes.
    ``true_rate`` may be an array (one probability per value)."""
    trials = validation.positive_int("trials", trials)
    required = validation.fraction("required", required)
    if verdict not in _VERDICTS:
        raise ValueError(f"verdict must be one of {_VERDICTS}, got {verdict!r}")
    rates = np.asarray(true_rate, dtype=float)
    if not np.all(np.isfinite(rates)) or np.any(rates < 0) or np.any(rates > 1):
        raise ValueError(f"true_rate must be in [0, 1], got {true_rate!r}")
    ends = _wilson_ends(trials, confidence)
    if verdict == "fails":
        hit = ends[:, 1] < required
    elif verdict == "meets":
        hit = ends[:, 0] >= required
    else:
        hit = ~((ends[:, 1] < required) | (ends[:, 0] >= required))
    k = np.arange(trials + 1)
    pmf = stats.binom.pmf(k[None, :], trials, np.atleast_1d(rates)[:, None])
    out = (pmf * hit[None, :]).sum(axis=1)
    return float(out[0]) if rates.ndim == 0 else out.reshape(rates.shape)


def trials_for_power(required: float, true_rate: float, power: float = 0.8, verdict: str = "fails",
                     confidence: float = 0.95, max_trials: int = 5_000) -> int:
    """The smallest number of trials ``n`` (e.g. malignant patients) from which
    :func:`verdict_probability` stays at or above ``power`` for ``true_rate`` for every
    number of trials from ``n`` to ``2 n`` (the binomial's discreteness makes the power
    saw-toothed in ``n``: a first crossing alone can be undone by one more patient).
    ``ValueError`` if no ``n <= max_trials`` qualifies."""
    power = validation.in_open_interval("power", power, 0.0, 1.0)
    max_trials = validation.positive_int("max_trials", max_trials)
    validation.fraction("true_rate", true_rate)
    cache: dict[int, float] = {}

    def enough(n: int) -> bool:
        if n not in cache:
            cache[n] = verdict_probability(n, required, true_rate, verdict, confidence) >= power
        return cache[n]

    for n in range(1, max_trials + 1):
        if enough(n) and all(enough(m) for m in range(n + 1, 2 * n + 1)):
            return n
    raise ValueError(f"max_trials={max_trials} is not enough to reach power {power} at true_rate {true_rate}")


def clopper_pearson_lower(k: Any, n: int, alpha: float) -> np.ndarray | float:
    """One-sided Clopper-Pearson lower confidence bound at level ``1 - alpha`` on a
    binomial proportion, from ``k`` successes in ``n`` trials (``k`` may be an array):
    the ``alpha`` quantile of Beta(k, n - k + 1), and 0 when ``k = 0``. It is what
    Cohen et al. compute as ``proportion_confint(k, n, alpha=2 * alpha, method="beta")[0]``
    (:mod:`helpers.certify`), and each end of :func:`helpers.privacy_attacks.clopper_pearson`.
    """
    from scipy.stats import beta

    n = validation.positive_int("n", n)
    alpha = validation.in_open_interval("alpha", alpha, 0.0, 1.0)
    k_arr = np.asarray(k)
    if not np.issubdtype(k_arr.dtype, np.integer) and not np.all(np.mod(k_arr, 1) == 0):
        raise ValueError(f"k must hold whole numbers of successes, got {k!r}")
    if np.any(k_arr < 0) or np.any(k_arr > n):
        raise ValueError(f"k must be in [0, n={n}], got {k!r}")
    k_f = k_arr.astype(np.float64)
    bound = np.where(k_f > 0, beta.ppf(alpha, np.maximum(k_f, 1), n - k_f + 1), 0.0)
    return float(bound) if bound.ndim == 0 else bound


def bootstrap_interval(statistic: Callable[[np.ndarray, np.ndarray], float], y_true: Any, scores: Any,
                       n_resamples: int = 1000, confidence: float = 0.95, rng: Any = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic(y, scores)``.

    Patients are resampled with replacement *within each class* (stratified), so every
    resample has the original numbers of positives and negatives and statistics such as
    the AUC are always defined.
    """
    y, s = _labels_scores(y_true, scores)
    return _stratified_bootstrap(y, lambda idx: statistic(y[idx], s[idx]), n_resamples, confidence, rng)


def _stratified_bootstrap(y: np.ndarray, statistic_of: Callable[[np.ndarray], float], n_resamples: Any,
                          confidence: Any, rng: Any) -> tuple[float, float]:
    """Percentile interval of ``statistic_of(idx)`` over resamples ``idx`` of the patients,
    drawn with replacement within each class of ``y``."""
    n_resamples = validation.positive_int("n_resamples", n_resamples, minimum=10)
    alpha = 1 - _confidence(confidence)
    gen = validation.rng_from(rng)
    groups = [np.flatnonzero(y == label) for label in (0, 1) if np.any(y == label)]
    values = np.empty(n_resamples)
    for b in range(n_resamples):
        idx = np.concatenate([g[gen.integers(0, g.size, g.size)] for g in groups])
        values[b] = statistic_of(idx)
    low, high = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def _proportion(successes: int, trials: int, confidence: float) -> Estimate:
    return Estimate(successes / trials, *wilson_interval(successes, trials, confidence))


def clinical_metrics(y_true: Any, scores: Any, threshold: float, confidence: float = 0.95,
                     n_resamples: int = 1000, rng: Any = 0) -> dict[str, Estimate]:
    """Accuracy, ROC AUC, sensitivity and specificity at ``threshold``, each with a
    ``confidence`` interval: Wilson for the three proportions, stratified bootstrap
    (``n_resamples``, seeded by ``rng``) for the AUC."""
    y, s = _labels_scores(y_true, scores)
    _both_classes(y)
    threshold = _finite("threshold", threshold)
    c = confusion(y, (s >= threshold).astype(int))
    auc = roc_auc(y, s)
    return {
        "accuracy": _proportion(c["tp"] + c["tn"], y.size, confidence),
        "auc": Estimate(auc, *bootstrap_interval(roc_auc, y, s, n_resamples, confidence, rng)),
        "sensitivity": _proportion(c["tp"], c["tp"] + c["fn"], confidence),
        "specificity": _proportion(c["tn"], c["tn"] + c["fp"], confidence),
    }


def predictive_values(y_true: Any, scores: Any, threshold: float, confidence: float = 0.95) -> dict[str, Estimate]:
    """Positive and negative predictive value at ``threshold`` with Wilson intervals:
    PPV = share of patients called positive who have the condition, NPV = share of
    patients called negative who do not. Both depend on the prevalence of the sample
    (unlike sensitivity and specificity). A value with no patient to count is ``nan``."""
    y, s = _labels_scores(y_true, scores)
    _both_classes(y)
    c = confusion(y, (s >= _finite("threshold", threshold)).astype(int))
    nan = Estimate(math.nan, math.nan, math.nan)
    called_pos, called_neg = c["tp"] + c["fp"], c["tn"] + c["fn"]
    return {"ppv": _proportion(c["tp"], called_pos, confidence) if called_pos else nan,
            "npv": _proportion(c["tn"], called_neg, confidence) if called_neg else nan}


# --------------------------------------------------------------------------- paired comparisons

def paired_bootstrap_difference(statistic: Callable[[np.ndarray, np.ndarray], float], y_true: Any, scores_a: Any,
                                scores_b: Any, n_resamples: int = 2000, confidence: float = 0.95,
                                rng: Any = 0) -> Estimate:
    """``statistic(y, scores_a) - statistic(y, scores_b)`` with a paired percentile
    bootstrap interval.

    Both models are scored on the **same** patients, and each resample draws the same
    patients (with replacement, within each class) for both, so the noise shared by
    the two models (which patients happen to be hard) cancels in the difference. An
    interval that excludes 0 shows a difference at that confidence; two separate
    intervals that overlap show nothing of the kind.
    """
    y, a = _labels_scores(y_true, scores_a)
    _, b = _labels_scores(y_true, scores_b)
    low, high = _stratified_bootstrap(y, lambda idx: statistic(y[idx], a[idx]) - statistic(y[idx], b[idx]),
                                      n_resamples, confidence, rng)
    return Estimate(float(statistic(y, a) - statistic(y, b)), low, high)


def paired_auc_difference(y_true: Any, scores_a: Any, scores_b: Any, n_resamples: int = 2000,
                          confidence: float = 0.95, rng: Any = 0) -> Estimate:
    """ROC AUC of model a minus that of model b on the same patients, with a paired
    stratified bootstrap interval (:func:`paired_bootstrap_difference`)."""
    return paired_bootstrap_difference(roc_auc, y_true, scores_a, scores_b, n_resamples, confidence, rng)


@dataclass(frozen=True)
class McNemar:
    """Exact McNemar test of two models' 0/1 outcomes on the same patients.

    ``only_a``: patients model a gets right and model b wrong; ``only_b`` the reverse;
    ``both`` and ``neither`` do not inform the comparison. ``p_value`` is two-sided.
    """

    only_a: int
    only_b: int
    both: int
    neither: int
    p_value: float

    def __str__(self) -> str:
        return f"a only {self.only_a}, b only {self.only_b} (exact McNemar p = {self.p_value:.2f})"


def mcnemar_exact(correct_a: Any, correct_b: Any) -> McNemar:
    """Exact (binomial) McNemar test: are two models' success rates on the same patients
    different?

    ``correct_a[i]`` and ``correct_b[i]`` say whether model a and model b got patient i
    right (for a sensitivity: found the cancer of malignant patient i). Only discordant
    patients count: under "no difference" each of the ``only_a + only_b`` discordant
    patients favours a with probability 1/2, so ``p`` is the two-sided binomial test
    (McNemar, 1947; exact form as in Fagerland, Lydersen and Laake, 2013). No
    discordant patient: ``p = 1``.
    """
    a = np.asarray(correct_a).reshape(-1)
    b = np.asarray(correct_b).reshape(-1)
    for name, v in (("correct_a", a), ("correct_b", b)):
        if v.size == 0 or not np.all((v == 0) | (v == 1)):
            raise ValueError(f"{name} must be a non-empty array of 0/1 (or bool) outcomes")
    if a.shape != b.shape:
        raise ValueError(f"correct_b must have one outcome per patient of correct_a ({a.size}), got {b.size}")
    a, b = a.astype(bool), b.astype(bool)
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    discordant = only_a + only_b
    p = 1.0 if discordant == 0 else float(stats.binomtest(only_a, discordant, 0.5).pvalue)
    return McNemar(only_a, only_b, int(np.sum(a & b)), int(np.sum(~a & ~b)), min(1.0, p))


# --------------------------------------------------------------------------- calibration

def _probabilities(y_true: Any, probabilities: Any) -> tuple[np.ndarray, np.ndarray]:
    y, p = _labels_scores(y_true, probabilities)
    if np.any((p < 0) | (p > 1)):
        raise ValueError("probabilities must lie in [0, 1]")
    return y, p


def brier_score(y_true: Any, probabilities: Any) -> float:
    """Mean squared difference between the predicted probability and the 0/1 outcome
    (0 is perfect; always predicting the prevalence p scores p(1 - p))."""
    y, p = _probabilities(y_true, probabilities)
    return float(np.mean((p - y) ** 2))


def _separated(y: np.ndarray, z: np.ndarray) -> bool:
    """True when a threshold on ``z`` puts every positive at or above every negative: the
    logistic fit of ``y`` on ``z`` then has no finite maximum-likelihood slope."""
    return bool(z[y == 0].max() <= z[y == 1].min())


def _logistic_fit(y: np.ndarray, z: np.ndarray, max_iter: int = 100, penalty: float = 0.0) -> tuple[float, float]:
    """``(a, b)`` maximising the log-likelihood of ``P(y=1) = sigmoid(a + b z)`` minus
    ``penalty * (a² + b²) / 2``, by Newton's method."""
    X = np.c_[np.ones_like(z), z]
    w = np.zeros(2)
    for _ in range(max_iter):
        q = 1 / (1 + np.exp(-(X @ w)))
        hess = X.T @ (X * (q * (1 - q))[:, None]) + (penalty + 1e-9) * np.eye(2)
        step = np.linalg.solve(hess, X.T @ (y - q) - penalty * w)
        w += step
        if np.max(np.abs(step)) < 1e-10:
            break
    return float(w[0]), float(w[1])


def _intercept_in_the_large(y: np.ndarray, z: np.ndarray, max_iter: int = 100) -> float:
    """``a`` with ``mean(sigmoid(a + z)) = mean(y)``: the logistic recalibration with the
    slope fixed at 1 (calibration-in-the-large), by Newton's method."""
    a = 0.0
    for _ in range(max_iter):
        q = 1 / (1 + np.exp(-(a + z)))
        step = (y - q).sum() / max(float((q * (1 - q)).sum()), 1e-12)
        a += step
        if abs(step) < 1e-12:
            break
    return float(a)


def calibration_slope(y_true: Any, probabilities: Any, max_iter: int = 100) -> tuple[float, float]:
    """``(intercept, slope)`` of the logistic recalibration ``logit P(y=1) = a + b logit(p)``
    (Cox, 1958), fitted by Newton's method. A calibrated model has ``a = 0, b = 1``; a
    slope below 1 means the predictions are too extreme (over-confident).

    Probabilities are clipped to [1e-6, 1 - 1e-6] before the logit, so a model that
    gives many patients probabilities beyond that (a confident network) is misjudged:
    pass its logits to :func:`calibration` instead. When the scores separate the classes
    perfectly, no finite fit exists and the result is ``(nan, inf)``."""
    y, p = _probabilities(y_true, probabilities)
    _both_classes(y)
    max_iter = validation.positive_int("max_iter", max_iter)
    p = np.clip(p, 1e-6, 1 - 1e-6)
    z = np.log(p / (1 - p))
    if _separated(y, z):
        return math.nan, math.inf
    return _logistic_fit(y, z, max_iter)


_INFINITE = 1e300   # stands for inf inside a bootstrap (quantiles of inf interpolate to nan)


@dataclass(frozen=True)
class Calibration:
    """Calibration of a score on the logit scale, each figure with a bootstrap interval.

    ``intercept``: calibration-in-the-large, ``a`` in ``logit P(y=1) = a + z`` (slope fixed
    at 1): 0 when the predicted risk is right on average, > 0 when it is too low.
    ``slope``: ``b`` in ``logit P(y=1) = a + b z``: 1 when calibrated, below 1 when the
    scores are too extreme (over-confident). ``separated``: the scores separate the two
    classes perfectly, so no finite slope exists (``slope`` is ``inf`` with an interval of
    ``nan``s: the data cannot say how over-confident the model is)."""

    intercept: Estimate
    slope: Estimate
    separated: bool


def calibration(y_true: Any, logits: Any, n_resamples: int = 1000, confidence: float = 0.95,
                rng: Any = 0) -> Calibration:
    """Calibration intercept and slope of a model's **logits** (Cox, 1958; Van Calster et
    al., 2019), with stratified percentile-bootstrap intervals (``n_resamples`` resamples of
    the patients within each class, seeded by ``rng``).

    Works on the logit scale, so no probability is clipped (a confident model's
    probabilities round to 0 or 1 in floating point; its logits do not). A resample in
    which the logits separate the classes has an infinite slope and counts as such, so the
    interval's upper end can be ``inf``: the data cannot bound the slope from above."""
    y, z = _labels_scores(y_true, logits)
    _both_classes(y)
    gen = validation.rng_from(rng)
    intercept = _intercept_in_the_large(y, z)
    low_a, high_a = _stratified_bootstrap(y, lambda idx: _intercept_in_the_large(y[idx], z[idx]), n_resamples,
                                          confidence, gen)
    if _separated(y, z):
        return Calibration(Estimate(intercept, low_a, high_a), Estimate(math.inf, math.nan, math.nan), True)

    def slope_of(idx: np.ndarray) -> float:   # a separated resample stands for an infinite slope
        return _INFINITE if _separated(y[idx], z[idx]) else _logistic_fit(y[idx], z[idx])[1]

    low_b, high_b = (math.inf if v > _INFINITE * 1e-100 else v   # interpolating towards it counts too
                     for v in _stratified_bootstrap(y, slope_of, n_resamples, confidence, gen))
    return Calibration(Estimate(intercept, low_a, high_a), Estimate(_logistic_fit(y, z)[1], low_b, high_b), False)


def stratified_folds(y_true: Any, folds: int, rng: Any = 0) -> np.ndarray:
    """Each patient's fold in ``0 .. folds - 1``, stratified: the patients of each class (0
    first, then 1), in an order drawn from ``rng`` (a seed or a Generator), are dealt to the
    folds in turn, so every fold holds a near-equal share of each class."""
    y = np.asarray(y_true).reshape(-1)
    folds = validation.positive_int("folds", folds, minimum=2)
    gen = validation.rng_from(rng)
    fold = np.zeros(y.size, dtype=int)
    for label in (0, 1):
        members = gen.permutation(np.flatnonzero(y == label))
        fold[members] = np.arange(members.size) % folds
    return fold


def cross_fitted_recalibration(y_true: Any, logits: Any, folds: int = 2, penalty: float = 1.0,
                               rng: Any = 0) -> np.ndarray:
    """Recalibrated probabilities ``sigmoid(a + b z)``, each patient's from a logistic
    recalibration fitted on the **other** ``folds - 1`` folds (stratified, seeded by
    ``rng``), so no patient is scored by a fit it took part in.

    The fit is penalised (``penalty * (a² + b²) / 2`` off the log-likelihood) so that it
    stays finite when a fold's logits separate the classes; with a few dozen patients per
    fold the default's pull is small. ``folds`` must be at least 2 and leave both classes
    in every fitting part."""
    y, z = _labels_scores(y_true, logits)
    _both_classes(y)
    folds = validation.positive_int("folds", folds, minimum=2)
    penalty = validation.non_negative("penalty", penalty)
    if folds > min(int(y.sum()), int((1 - y).sum())):
        raise ValueError(f"folds must be at most the size of the smaller class ({min(int(y.sum()), int((1 - y).sum()))}), "
                         f"got {folds}")
    fold = stratified_folds(y, folds, rng)
    out = np.empty(y.size)
    for k in range(folds):
        a, b = _logistic_fit(y[fold != k], z[fold != k], penalty=penalty)
        out[fold == k] = 1 / (1 + np.exp(-(a + b * z[fold == k])))
    return out


# --------------------------------------------------------------------------- clinical utility

def net_benefit(y_true: Any, called: Any, threshold_probability: Any) -> np.ndarray | float:
    """Net benefit of calling positive the patients marked in ``called`` (Vickers and
    Elkin, 2006): ``TP / n - FP / n * t / (1 - t)`` at each threshold probability ``t`` in
    (0, 1), the risk at which a clinician is indifferent between acting and not (a false
    alarm weighs ``t / (1 - t)`` of a found case). Treat-all is ``called`` all True,
    treat-none is 0. A float for a scalar ``t``, an array otherwise."""
    y = np.asarray(y_true).reshape(-1)
    if y.size == 0 or not np.all((y == 0) | (y == 1)):
        raise ValueError("y_true must be a non-empty array of 0 and 1 labels")
    c = np.asarray(called).reshape(-1)
    if c.shape != y.shape or c.dtype != bool:
        raise ValueError(f"called must be a boolean array with one value per label ({y.size}), got "
                         f"{c.dtype} of shape {c.shape}")
    t = validation.finite_array("threshold_probability", threshold_probability)
    if np.any((t <= 0) | (t >= 1)):
        raise ValueError("threshold_probability must lie in (0, 1)")
    tp, fp = float(np.sum(c & (y == 1))), float(np.sum(c & (y == 0)))
    value = tp / y.size - fp / y.size * t / (1 - t)
    return float(value) if value.ndim == 0 else value


def predictive_values_at(sensitivity: Any, specificity: Any, prevalence: Any) -> tuple[Any, Any]:
    """``(PPV, NPV)`` of a test with this sensitivity and specificity in a population with
    this prevalence (Bayes' rule); arrays broadcast. Sensitivity and specificity carry
    over between populations only if the disease spectrum does; PPV and NPV never do."""
    se = validation.finite_array("sensitivity", sensitivity)
    sp = validation.finite_array("specificity", specificity)
    pr = validation.finite_array("prevalence", prevalence)
    for name, v in (("sensitivity", se), ("specificity", sp)):
        if np.any((v < 0) | (v > 1)):
            raise ValueError(f"{name} must lie in [0, 1]")
    if np.any((pr <= 0) | (pr >= 1)):
        raise ValueError("prevalence must lie in (0, 1)")
    with np.errstate(divide="ignore", invalid="ignore"):
        ppv = se * pr / (se * pr + (1 - sp) * (1 - pr))
        npv = sp * (1 - pr) / (sp * (1 - pr) + (1 - se) * pr)
    return (float(ppv), float(npv)) if np.ndim(ppv) == 0 else (ppv, npv)


def specificity_at_sensitivity(y_true: Any, scores: Any, target: float) -> float:
    """Specificity at the largest threshold whose sensitivity on ``(y_true, scores)`` is
    ``>= target`` (:func:`threshold_for_sensitivity` on these same patients): the
    specificity a model reaches when it is made to find ``target`` of the positives."""
    y, s = _labels_scores(y_true, scores)
    return sensitivity_specificity(y, s, threshold_for_sensitivity(y, s, target))[1]


def paired_specificity_difference(y_true: Any, scores_a: Any, scores_b: Any, sensitivity: float = 0.95,
                                  n_resamples: int = 2000, confidence: float = 0.95, rng: Any = 0) -> Estimate:
    """Specificity of model a minus that of model b **at matched sensitivity**, on the same
    patients, with a paired stratified bootstrap interval.

    Each model's threshold is set on the patients of the sample (and again in every
    resample) so that both find the same share ``sensitivity`` of the positives
    (:func:`specificity_at_sensitivity`); the difference is then the price in false
    alarms of one model against the other at equal sensitivity, and the shared noise
    (which patients are hard) cancels (:func:`paired_bootstrap_difference`). Thresholds set
    on the evaluated patients describe the models' ROC curves, not a deployable operating
    point. ``sensitivity`` must be in (0, 1]."""
    target = validation.in_open_interval("sensitivity", sensitivity, 0.0, 1.0 + 1e-12)
    return paired_bootstrap_difference(lambda y, s: specificity_at_sensitivity(y, s, target), y_true, scores_a,
                                       scores_b, n_resamples, confidence, rng)
