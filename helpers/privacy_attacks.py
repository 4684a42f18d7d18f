"""Membership-inference attacks and the statistics to read them.

The attacker has a trained model (any Keras model that outputs logits, one logit for
binary or one per class) and asks, for a record ``(x, y)``: was it a training member?
Scores are "higher means more likely a member".

* :func:`loss_threshold_scores` (Yeom et al., 2018): members tend to have a lower loss.
* :func:`learned_attack_scores`: a logistic regression on features of the model's output
  (loss, confidence, entropy, margin), trained on records whose membership the attacker
  knows and evaluated out-of-fold (cross-validation), so every score is honest.
* :func:`roc`, :func:`auc_with_ci` (bootstrap), :func:`tpr_at_fpr`.
* :func:`epsilon_from_rates`: the ε that an attack's (true) TPR and FPR force on an (ε, δ)-DP
  algorithm, ``inf`` for a perfect attack.
* :func:`epsilon_lower_bound`: an "empirical ε" from the records of ONE trained model, with
  Clopper-Pearson intervals in the style of Jagielski et al. (2020). It treats records as
  independent trials, which one model does not give, so it describes a model's leakage and
  proves nothing about the algorithm's DP; :func:`audit_ceiling` is the most it can show.
* :func:`one_run_canaries`, :func:`one_run_epsilon_lower_bound`, :func:`one_run_ceiling`: a
  valid audit with one training run (Steinke, Nasr & Jagielski, 2023): canaries included
  independently with probability 1/2, guesses on the top/bottom scores, a Binomial tail bound.

Differential privacy is a property of the training algorithm, not of a trained model: an
audit can show "this algorithm is not (ε, δ)-DP for ε below x" (with some confidence, under
stated assumptions), never "this model is private".

Nothing here imports TensorFlow: models are read through :mod:`helpers.models`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from helpers import metrics, validation


# --------------------------------------------------------------------------- model outputs

def per_example_loss(model: Any, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Cross-entropy ``-log p(y | x)`` of each example (float64, shape ``(n,)``).

    Works for single-logit binary and multi-logit models (via
    :func:`helpers.models.predict_proba`); ``model`` may also be an ``(n, k)`` array of
    probabilities already computed.
    """
    proba = _proba(model, X)
    y = _labels(y, len(proba), proba.shape[1])
    return -np.log(np.clip(proba[np.arange(len(y)), y], 1e-12, 1.0))


def _proba(model: Any, X: np.ndarray) -> np.ndarray:
    if isinstance(model, np.ndarray):
        return model.astype(np.float64)
    from helpers.models import predict_proba

    return predict_proba(model, X)


def _labels(y: Any, n: int, k: int) -> np.ndarray:
    y = np.asarray(y).reshape(-1)
    if len(y) != n:
        raise ValueError(f"y must have one label per example ({n}), got {len(y)}")
    if y.size and (np.any(y < 0) or np.any(y >= k) or not np.all(y == np.round(y))):
        raise ValueError(f"y must hold integer class labels in [0, {k - 1}]")
    return y.astype(np.int64)


def _membership(is_member: Any, n: int | None = None) -> np.ndarray:
    m = np.asarray(is_member).reshape(-1)
    if m.size == 0 or not np.all((m == 0) | (m == 1)):
        raise ValueError("is_member must be a non-empty array of 0/1 (or bool) values")
    if n is not None and len(m) != n:
        raise ValueError(f"is_member must have one entry per score ({n}), got {len(m)}")
    if m.all() or not m.any():
        raise ValueError("is_member must contain both members (1) and non-members (0)")
    return m.astype(bool)


def _scores(scores: Any) -> np.ndarray:
    return validation.finite_array("scores", scores, ndim=1)


def attack_data(model: Any, X_in: np.ndarray, y_in: np.ndarray, X_out: np.ndarray,
                y_out: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Probabilities, labels and membership (1 = member) of members then non-members."""
    proba = np.concatenate([_proba(model, X_in), _proba(model, X_out)])
    y = np.concatenate([np.asarray(y_in).reshape(-1), np.asarray(y_out).reshape(-1)])
    is_member = np.concatenate([np.ones(len(X_in), bool), np.zeros(len(X_out), bool)])
    return proba, _labels(y, len(proba), proba.shape[1]), is_member


def loss_threshold_scores(model: Any, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Membership scores ``-loss``: a low loss suggests the example was trained on."""
    return -per_example_loss(model, X, y)


def attack_features(proba: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-example features of the model's output: loss, confidence in ``y``, top
    probability, entropy and the margin between ``y`` and the best other class."""
    proba = np.asarray(proba, dtype=np.float64)
    y = _labels(y, len(proba), proba.shape[1])
    p_true = np.clip(proba[np.arange(len(y)), y], 1e-12, 1.0)
    others = proba.copy()
    others[np.arange(len(y)), y] = -np.inf
    entropy = -np.sum(proba * np.log(np.clip(proba, 1e-12, 1.0)), axis=1)
    return np.column_stack([-np.log(p_true), p_true, proba.max(axis=1), entropy,
                            np.log(p_true) - np.log(np.clip(others.max(axis=1), 1e-12, 1.0))])


def learned_attack_scores(proba: np.ndarray, y: np.ndarray, is_member: Any, folds: int = 5,
                          seed: int = 0) -> np.ndarray:
    """Out-of-fold membership scores of a logistic-regression attack on :func:`attack_features`.

    The attacker is assumed to know the membership of part of the records (the other
    folds) and learns from them; every score comes from a model that did not see that
    record's membership label.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    proba = validation.finite_array("proba", proba, ndim=2)
    m = _membership(is_member, len(proba))
    folds = validation.positive_int("folds", folds, minimum=2)
    seed = validation.positive_int("seed", seed, minimum=0)
    features = attack_features(proba, y)
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return cross_val_predict(clf, features, m, cv=cv, method="decision_function")


# --------------------------------------------------------------------------- ROC statistics

def roc(scores: Any, is_member: Any) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates at every threshold (:func:`helpers.metrics.roc_curve`)."""
    s = _scores(scores)
    fpr, tpr, _ = metrics.roc_curve(_membership(is_member, len(s)), s)
    return fpr, tpr


def auc(scores: Any, is_member: Any) -> float:
    """Area under the ROC curve (0.5 = guessing, 1 = perfect membership inference)."""
    s = _scores(scores)
    return metrics.roc_auc(_membership(is_member, len(s)), s)


def auc_with_ci(scores: Any, is_member: Any, n_bootstrap: int = 200, confidence: float = 0.95,
                rng: Any = 0) -> tuple[float, float, float]:
    """AUC and a percentile-bootstrap confidence interval ``(auc, low, high)``.

    Members and non-members are resampled separately (stratified bootstrap,
    :func:`helpers.metrics.bootstrap_interval`).
    """
    s = _scores(scores)
    m = _membership(is_member, len(s))
    n_bootstrap = validation.positive_int("n_bootstrap", n_bootstrap, minimum=10)
    low, high = metrics.bootstrap_interval(metrics.roc_auc, m, s, n_resamples=n_bootstrap,
                                           confidence=confidence, rng=rng)
    return metrics.roc_auc(m, s), low, high


def tpr_at_fpr(scores: Any, is_member: Any, fpr: float = 0.01) -> float:
    """Highest true-positive rate among thresholds whose false-positive rate is <= ``fpr``.

    The number that matters for privacy (Carlini et al., 2022): an attack is dangerous
    if it identifies *some* members with near certainty, even when its AUC is modest.
    """
    fpr = validation.fraction("fpr", fpr)
    s = _scores(scores)
    return metrics.tpr_at_fpr(_membership(is_member, len(s)), s, fpr)


# --------------------------------------------------------------------------- ε lower bounds
#
# Differential privacy is a property of a training *algorithm* (and of a neighbouring relation), never of
# one trained model. An audit therefore proves statements of the form "an algorithm that produced this
# evidence cannot be (ε, δ)-DP for any ε below the bound, except with probability 1 - confidence over the
# audit's randomness", and only under the assumptions stated in each function.

def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact two-sided binomial confidence interval for ``k`` successes in ``n`` trials.

    Each end on its own is a one-sided bound at level ``1 - (1 - confidence) / 2``.
    """
    n = validation.positive_int("n", n)
    k = validation.positive_int("k", k, minimum=0)
    if k > n:
        raise ValueError(f"k must be <= n ({n}), got {k}")
    confidence = validation.fraction("confidence", confidence)
    tail = (1 - confidence) / 2
    return float(metrics.clopper_pearson_lower(np.array(k), n, tail)), float(_cp_upper(np.array(k), n, tail))


def _cp_upper(k: np.ndarray, n: int, tail: float) -> np.ndarray:
    """One-sided Clopper-Pearson upper bound on a proportion (fails with probability <= ``tail``)."""
    return 1.0 - metrics.clopper_pearson_lower(n - np.asarray(k, dtype=np.float64), n, tail)


def _unit_rate(name: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}") from None
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    return number


def _delta(delta: Any) -> float:
    delta = validation.non_negative("delta", delta)
    if delta >= 1:
        raise ValueError(f"delta must be a number in [0, 1), got {delta!r}")
    return delta


def _ratio_epsilon(numerator: float, denominator: float) -> float:
    """The smallest ε >= 0 with ``numerator <= e^ε * denominator`` (inf if none, 0 if vacuous)."""
    if numerator <= 0:
        return 0.0
    if denominator <= 0:
        return math.inf
    return max(0.0, math.log(numerator / denominator))


def epsilon_from_rates(tpr: float, fpr: float, delta: float = 0.0) -> float:
    """The smallest ε for which an (ε, δ)-DP algorithm admits an attack with these rates.

    An (ε, δ)-DP algorithm forces every membership test (Kairouz et al., 2015) to satisfy
    ``TPR <= e^ε FPR + δ`` (the answer "member") and ``1 - FPR <= e^ε (1 - TPR) + δ``
    (the answer "non-member"), so the result is
    ``max(ln((TPR - δ) / FPR), ln((1 - FPR - δ) / (1 - TPR)), 0)`` with the edge cases
    done right: a ratio whose numerator is <= 0 constrains nothing (0), and one whose
    denominator is 0 with a positive numerator can be met by no finite ε (``inf``).
    In particular a perfect attack (TPR = 1, FPR = 0) gives ``inf`` for every δ < 1:
    (ε, δ)-DP would need ``1 <= e^ε * 0 + δ``. With δ > 0, ``TPR <= δ`` and ``FPR = 0``
    gives 0 (δ alone explains it).

    These are *rates*, i.e. probabilities: plugging in frequencies measured on a finite
    sample gives a point estimate, not a bound (see :func:`epsilon_lower_bound`).
    Scores are "higher means member": an attack worse than guessing (TPR < FPR) gives 0.
    """
    tpr, fpr = _unit_rate("tpr", tpr), _unit_rate("fpr", fpr)
    delta = _delta(delta)
    return max(_ratio_epsilon(tpr - delta, fpr), _ratio_epsilon(1 - fpr - delta, 1 - tpr))


def max_auc(epsilon: float, delta: float = 0.0) -> float:
    """The largest AUC any membership test can reach against an (ε, δ)-DP algorithm.

    Every test's ROC curve lies below ``min(1, e^ε FPR + δ, 1 - e^-ε (1 - δ - FPR))``
    (the two inequalities of :func:`epsilon_from_rates`); the area under that boundary is
    the bound. With δ = 0 it is ``e^ε / (1 + e^ε)``: 0.5 at ε = 0 (guessing), 0.73 at
    ε = 1, 0.95 at ε = 3, 0.9997 at ε = 8. So an attack AUC of 0.56 against an ε = 1 model
    contradicts nothing, and an AUC interval above 0.5 is no evidence against a DP claim
    unless it also lies above this bound. (Measured on the records of one model, an AUC is
    that model's leakage, not a trial of the algorithm: the comparison is a sanity check,
    not an audit; see :func:`one_run_epsilon_lower_bound` for an audit of the algorithm.)
    """
    delta = _delta(delta)
    if isinstance(epsilon, (int, float)) and epsilon == math.inf:
        return 1.0
    epsilon = validation.non_negative("epsilon", epsilon)
    growth = math.exp(epsilon)
    # Breakpoints of the piecewise-linear boundary; between two of them it is linear, so the
    # trapezoid rule on them is exact.
    cross = (1 - delta) / (growth + 1)  # where the two lines meet
    points = sorted({0.0, 1.0, *(min(max(x, 0.0), 1.0) for x in (cross, (1 - delta) / growth, 1 - delta))})
    x = np.array(points)
    f = np.minimum.reduce([np.ones_like(x), growth * x + delta, 1 - (1 - delta - x) / growth])
    return float(np.sum((x[1:] - x[:-1]) * (f[1:] + f[:-1]) / 2))


@dataclass(frozen=True)
class EpsilonBound:
    """An empirical lower bound on ε and the attack threshold behind it (see :func:`epsilon_lower_bound`)."""

    epsilon_lower: float      # holds with probability >= confidence, under the stated assumption
    epsilon_point: float      # same formula with the observed rates (no interval; may be inf)
    threshold: float
    tpr: float
    fpr: float
    confidence: float
    ceiling: float = math.inf  # the largest epsilon_lower these sample sizes can ever give (audit_ceiling)


def _bound_from_counts(tp: np.ndarray, n_pos: int, fp: np.ndarray, n_neg: int, delta: float,
                       confidence: float) -> np.ndarray:
    """Pessimistic ε from counts: one-sided Clopper-Pearson bounds at ``1 - (1 - confidence)/2``
    each (so both hold together with probability >= ``confidence``), then the two DP inequalities."""
    tail = (1 - confidence) / 2
    tpr_lo = metrics.clopper_pearson_lower(tp, n_pos, tail)
    fpr_hi = _cp_upper(fp, n_neg, tail)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(tpr_lo - delta > 0, np.log(np.maximum(tpr_lo - delta, 1e-300) / fpr_hi), 0.0)
        b = np.where(1 - fpr_hi - delta > 0, np.log(np.maximum(1 - fpr_hi - delta, 1e-300) / (1 - tpr_lo)), 0.0)
    return np.maximum(np.maximum(a, b), 0.0)


def audit_ceiling(n_members: int, n_nonmembers: int, delta: float, confidence: float = 0.95) -> float:
    """The largest ``epsilon_lower`` that :func:`epsilon_lower_bound` can ever report.

    That is the bound of a perfect attack (every member above the threshold, every
    non-member below) on the half of the records that is used to measure
    (``n - n // 2`` of each class; the other half chooses the threshold). With 300 vs 300
    records it is about 3.7 at δ = 1e-5 and 95 % confidence (150 vs 150 are measured);
    with 150 vs 150 records (75 vs 75 measured) about 3.0. An audit that is compared with
    an accountant's ε above its ceiling *cannot* contradict it, whatever the model does:
    a check like "the audit never exceeds ε = 8" is then true by arithmetic, not evidence.
    """
    n_members = validation.positive_int("n_members", n_members, minimum=2)
    n_nonmembers = validation.positive_int("n_nonmembers", n_nonmembers, minimum=2)
    delta = _delta(delta)
    confidence = validation.fraction("confidence", confidence)
    n_pos, n_neg = n_members - n_members // 2, n_nonmembers - n_nonmembers // 2
    return float(_bound_from_counts(np.array(n_pos), n_pos, np.array(0), n_neg, delta, confidence))


def epsilon_lower_bound(scores: Any, is_member: Any, delta: float, confidence: float = 0.95,
                        rng: Any = 0) -> EpsilonBound:
    """Empirical lower bound on ε from one model's membership scores (Jagielski et al., 2020 style).

    Procedure: half of the records of each class (seeded) choose the threshold whose
    pessimistic bound, computed on that half, is largest; the other half measure TP and FP
    at that threshold; one-sided Clopper-Pearson bounds (each at
    ``1 - (1 - confidence) / 2``, so both hold together with probability >= ``confidence``)
    give a pessimistic TPR and FPR, and ``ε >= ln((TPR_low - δ) / FPR_high)`` or
    ``ln((1 - FPR_high - δ) / (1 - TPR_low))``.

    What it assumes: every measured member is an independent trial with the same
    probability TPR of being flagged, and every non-member one with probability FPR, and
    these are the probabilities in the DP inequality for a pair of neighbouring datasets.
    Jagielski et al. (2020) make that true by training *many* models, one trial per run.
    On the records of ONE trained model it is not true: all outcomes come from the same
    training run, so they are not independent trials of the DP experiment, and the
    records differ from each other (the learned attack's scores are even fitted on the
    other records' membership). The number is then a *descriptive* leakage statistic of
    this model ("an empirical ε"), useful for comparing models, and NOT a proof that the
    training algorithm is not ε-DP. For a claim that holds with one training run use
    :func:`one_run_epsilon_lower_bound` (Steinke, Nasr & Jagielski, 2023).

    What it can show: at most :func:`audit_ceiling` (stored in ``ceiling``); a small value
    is never evidence of privacy. The threshold is chosen on data disjoint from the
    measurement, so the selection does not bias the bound.
    """
    s = _scores(scores)
    m = _membership(is_member, len(s))
    delta = _delta(delta)
    confidence = validation.fraction("confidence", confidence)
    gen = validation.rng_from(rng)
    select = np.zeros(len(s), bool)
    for cls in (True, False):
        idx = np.flatnonzero(m == cls)
        select[gen.permutation(idx)[: len(idx) // 2]] = True
    sel_pos, sel_neg = np.sort(s[select & m]), np.sort(s[select & ~m])
    thresholds = np.unique(s[select])
    tp_sel = len(sel_pos) - np.searchsorted(sel_pos, thresholds, side="left")
    fp_sel = len(sel_neg) - np.searchsorted(sel_neg, thresholds, side="left")
    pessimistic = _bound_from_counts(tp_sel, max(len(sel_pos), 1), fp_sel, max(len(sel_neg), 1), delta,
                                     confidence) if len(sel_pos) and len(sel_neg) else np.zeros(len(thresholds))
    # Ties (e.g. all 0) are broken by Youden's J = TPR - FPR on the selection half.
    youden = tp_sel / max(len(sel_pos), 1) - fp_sel / max(len(sel_neg), 1)
    best_t = float(thresholds[np.lexsort((youden, pessimistic))[-1]])
    pos, neg = s[~select & m], s[~select & ~m]
    tp, fp = int(np.sum(pos >= best_t)), int(np.sum(neg >= best_t))
    lower = float(_bound_from_counts(np.array(tp), len(pos), np.array(fp), len(neg), delta, confidence))
    tpr, fpr = tp / len(pos), fp / len(neg)
    ceiling = audit_ceiling(int(m.sum()), int((~m).sum()), delta, confidence)
    return EpsilonBound(lower, epsilon_from_rates(tpr, fpr, delta), best_t, tpr, fpr, confidence, ceiling)


# --------------------------------------------------------------------------- one-run audit
#
# Steinke, T., Nasr, M. & Jagielski, M. (2023). Privacy Auditing with One (1) Training Run.
# NeurIPS 2023, arXiv:2305.08846. m canaries are each included in the training data independently
# with probability 1/2; after ONE training run the auditor scores every canary and guesses "in" for
# r+ of them and "out" for r- (abstaining on the rest), r = r+ + r-. If the training algorithm is
# ε-DP (with respect to adding or removing one canary), the number W of correct guesses is
# stochastically dominated by Binomial(r, e^ε / (1 + e^ε)) (their main theorem, Section 3); with
# δ > 0 the tail gets an additive term 2 m δ · max_i P[v - i <= Binomial < v] / i (their
# Section 5 and the p-value of their Appendix D). Inverting the tail gives a lower bound on ε
# that holds with probability >= 1 - β over the random inclusion and the training randomness.

def one_run_canaries(n_canaries: int, rng: Any = None) -> np.ndarray:
    """Which canaries to train on: each ``True`` independently with probability 1/2.

    This independent coin per canary is what makes :func:`one_run_epsilon_lower_bound`
    valid after a single training run; a fixed-size split or a hand-picked set is not
    covered by the theorem. Train on the non-canary data plus the canaries marked ``True``.
    """
    n_canaries = validation.positive_int("n_canaries", n_canaries)
    return validation.rng_from(rng).random(n_canaries) < 0.5


def one_run_guesses(scores: Any, k_pos: int, k_neg: int) -> np.ndarray:
    """Guesses in {+1 "in", -1 "out", 0 abstain}: +1 for the ``k_pos`` highest scores, -1 for
    the ``k_neg`` lowest. Ties are broken by position (stable sort), so the order of the
    canaries must not depend on their inclusion."""
    s = _scores(scores)
    k_pos = validation.positive_int("k_pos", k_pos, minimum=0)
    k_neg = validation.positive_int("k_neg", k_neg, minimum=0)
    if k_pos + k_neg > len(s):
        raise ValueError(f"k_pos + k_neg must be <= the number of canaries ({len(s)}), got {k_pos + k_neg}")
    if k_pos + k_neg == 0:
        raise ValueError("k_pos + k_neg must be >= 1 (the auditor must guess at least once)")
    order = np.argsort(-s, kind="stable")
    guesses = np.zeros(len(s), np.int8)
    guesses[order[:k_pos]] = 1
    guesses[order[len(s) - k_neg:]] = -1
    return guesses


def _included(included: Any, n: int) -> np.ndarray:
    inc = np.asarray(included).reshape(-1)
    if inc.size == 0 or not np.all((inc == 0) | (inc == 1)):
        raise ValueError("included must be a non-empty array of 0/1 (or bool) values")
    if len(inc) != n:
        raise ValueError(f"included must have one entry per score ({n}), got {len(inc)}")
    return inc.astype(bool)


def one_run_counts(scores: Any, included: Any, k_pos: int, k_neg: int) -> tuple[int, int]:
    """``(r, v)``: the number of guesses and of correct guesses (see :func:`one_run_guesses`)."""
    guesses = one_run_guesses(scores, k_pos, k_neg)
    inc = _included(included, len(guesses))
    correct = ((guesses == 1) & inc) | ((guesses == -1) & ~inc)
    return int(np.count_nonzero(guesses)), int(np.count_nonzero(correct))


def _one_run_inputs(n_canaries: Any, n_guesses: Any, n_correct: Any) -> tuple[int, int, int]:
    m = validation.positive_int("n_canaries", n_canaries)
    r = validation.positive_int("n_guesses", n_guesses)
    v = validation.positive_int("n_correct", n_correct, minimum=0)
    if r > m:
        raise ValueError(f"n_guesses must be <= n_canaries ({m}), got {r}")
    if v > r:
        raise ValueError(f"n_correct must be <= n_guesses ({r}), got {v}")
    return m, r, v


def _one_run_p_values(m: int, r: int, v: int, epsilons: np.ndarray, delta: float) -> np.ndarray:
    """Vectorised p-values: P[Binomial(r, q) >= v] + 2 m δ max_i P[v - i <= Binomial(r, q) < v] / i."""
    from scipy.special import gammaln
    from scipy.stats import binom

    eps = np.asarray(epsilons, dtype=np.float64)
    p = binom.sf(v - 1, r, 1.0 / (1.0 + np.exp(-eps)))
    if delta > 0 and v > 0:
        log_q, log_1mq = -np.log1p(np.exp(-eps)), -eps - np.log1p(np.exp(-eps))   # ln q, ln(1 - q)
        ks = np.arange(v - 1, -1, -1, dtype=np.float64)          # v-1, v-2, ..., 0 (all < r)
        log_choose = gammaln(r + 1) - gammaln(ks + 1) - gammaln(r - ks + 1)
        i = np.arange(1, v + 1)
        chunk = max(1, 2_000_000 // v)
        alpha = np.empty(len(eps))
        for start in range(0, len(eps), chunk):
            sl = slice(start, start + chunk)
            pmf = np.exp(log_choose[None, :] + ks[None, :] * log_q[sl, None] + (r - ks)[None, :] * log_1mq[sl, None])
            alpha[sl] = np.max(np.cumsum(pmf, axis=1) / i[None, :], axis=1)
        p = p + 2 * m * delta * alpha
    return np.minimum(p, 1.0)


def one_run_p_value(n_canaries: int, n_guesses: int, n_correct: int, epsilon: float, delta: float = 0.0) -> float:
    """Probability, under the hypothesis "the algorithm is (ε, δ)-DP", of at least
    ``n_correct`` correct guesses out of ``n_guesses`` on ``n_canaries`` canaries
    (Steinke, Nasr & Jagielski, 2023; exact Binomial tail for δ = 0, their δ term otherwise)."""
    m, r, v = _one_run_inputs(n_canaries, n_guesses, n_correct)
    epsilon = validation.non_negative("epsilon", epsilon)
    return float(_one_run_p_values(m, r, v, np.array([epsilon]), _delta(delta))[0])


def one_run_epsilon_from_counts(n_canaries: int, n_guesses: int, n_correct: int, delta: float = 0.0,
                                confidence: float = 0.95) -> float:
    """Lower bound on ε at ``confidence`` from ``n_correct`` correct out of ``n_guesses`` guesses
    on ``n_canaries`` independently included canaries (Steinke, Nasr & Jagielski, 2023).

    Every ε whose p-value (:func:`one_run_p_value`) is below ``β = 1 - confidence`` is
    rejected; the result is the smallest ε that is not rejected (0 if ε = 0 is not
    rejected). δ = 0: exact, because ``P[Binomial(r, q) >= v] = β`` is solved in closed form
    by the Beta quantile ``q = B^-1(β; v, r - v + 1)`` (a one-sided Clopper-Pearson bound on
    the guessing accuracy) and ``ε = ln(q / (1 - q))``. δ > 0: the p-value of their
    Appendix D is scanned on a grid of 201 points from 0 to the δ = 0 bound (which it cannot
    exceed) for the first rejected-to-accepted crossing, then refined on finer grids to 1e-9
    and rounded down, so the reported ε is the conservative end.
    """
    from scipy.stats import beta as beta_dist

    m, r, v = _one_run_inputs(n_canaries, n_guesses, n_correct)
    delta = _delta(delta)
    confidence = validation.fraction("confidence", confidence)
    b = 1 - confidence
    if v == 0:
        return 0.0
    q = float(beta_dist.ppf(b, v, r - v + 1))
    eps0 = 0.0 if q <= 0.5 else (math.inf if q >= 1 else math.log(q / (1 - q)))
    if delta == 0 or eps0 == 0:
        return eps0
    lo, hi, points = 0.0, eps0, 201
    while hi - lo > 1e-9:             # zoom into the first crossing: 201 points, then 65 per round
        grid = np.linspace(lo, hi, points)
        accepted = np.flatnonzero(_one_run_p_values(m, r, v, grid, delta) >= b)
        if len(accepted) == 0:        # nothing accepted up to hi: the bound is hi
            return float(hi)
        j = int(accepted[0])
        if j == 0:                    # lo itself is accepted (only possible in the first round: ε = 0)
            return float(lo)
        lo, hi, points = float(grid[j - 1]), float(grid[j]), 65
    return lo


def one_run_epsilon_lower_bound(scores: Any, included: Any, k_pos: int, k_neg: int, delta: float = 0.0,
                                confidence: float = 0.95) -> float:
    """Lower bound on the ε of the training algorithm from ONE training run with canaries.

    ``included`` must come from :func:`one_run_canaries` (independent fair coins, drawn
    before training) and ``scores`` ("higher means member") from the trained model only.
    The auditor guesses "in" for the ``k_pos`` highest scores and "out" for the ``k_neg``
    lowest, abstains on the rest, and :func:`one_run_epsilon_from_counts` turns the number
    of correct guesses into the bound. Fix ``k_pos, k_neg`` in advance (or from the scores
    alone): trying several and reporting the best is multiple testing and voids the
    confidence.

    What it proves, with probability >= ``confidence`` over the canary coins and the
    training randomness: the training algorithm (as run on this data) is not (ε, δ)-DP
    for any ε below the result, for the neighbouring relation "add or remove one canary".
    It is a statement about the algorithm, not about the trained model. The largest value
    it can ever give is :func:`one_run_ceiling`. Reference: Steinke, Nasr & Jagielski
    (2023), Privacy Auditing with One (1) Training Run, NeurIPS, arXiv:2305.08846.
    """
    r, v = one_run_counts(scores, included, k_pos, k_neg)
    return one_run_epsilon_from_counts(len(_scores(scores)), r, v, delta, confidence)


def one_run_ceiling(n_canaries: int, n_guesses: int | None = None, delta: float = 0.0,
                    confidence: float = 0.95) -> float:
    """The largest bound a one-run audit with these sizes can give: a perfect attack, every one
    of ``n_guesses`` guesses (default: all canaries) correct."""
    m = validation.positive_int("n_canaries", n_canaries)
    r = m if n_guesses is None else n_guesses
    return one_run_epsilon_from_counts(m, r, r, delta, confidence)


# --------------------------------------------------------------------------- one call

@dataclass(frozen=True)
class AttackResult:
    """One attack on one model: scores, membership, and their summary statistics."""

    name: str
    scores: np.ndarray
    is_member: np.ndarray
    auc: float
    auc_low: float
    auc_high: float
    tpr_at_low_fpr: float
    low_fpr: float
    epsilon: EpsilonBound

    def summary(self) -> str:
        return (f"{self.name}: AUC {self.auc:.3f} [{self.auc_low:.3f}, {self.auc_high:.3f}], "
                f"TPR at FPR {self.low_fpr:g}: {self.tpr_at_low_fpr:.3f}, "
                f"empirical ε >= {self.epsilon.epsilon_lower:.2f} (ceiling {self.epsilon.ceiling:.2f})")


def evaluate_attack(name: str, scores: Any, is_member: Any, delta: float, low_fpr: float = 0.05,
                    n_bootstrap: int = 200, seed: int = 0) -> AttackResult:
    """AUC with a 95% bootstrap interval, TPR at ``low_fpr`` and the ε lower bound."""
    s = _scores(scores)
    m = _membership(is_member, len(s))
    value, low, high = auc_with_ci(s, m, n_bootstrap=n_bootstrap, rng=seed)
    return AttackResult(name, s, m, value, low, high, tpr_at_fpr(s, m, low_fpr), low_fpr,
                        epsilon_lower_bound(s, m, delta, rng=seed))


def membership_audit(model: Any, X_in: np.ndarray, y_in: np.ndarray, X_out: np.ndarray, y_out: np.ndarray,
                     delta: float, low_fpr: float = 0.05, seed: int = 0) -> dict[str, AttackResult]:
    """Run the loss-threshold and the learned attack on ``model``.

    ``X_in, y_in`` are training members, ``X_out, y_out`` non-members from the same
    distribution (use equally many of each). Returns ``{"loss threshold": ..., "learned": ...}``.
    Each result's ``epsilon`` is an :func:`epsilon_lower_bound` (a one-model statistic, see
    there) at 95 % confidence on its own; the larger of the two holds at 90 % (union bound).
    """
    proba, y, m = attack_data(model, X_in, y_in, X_out, y_out)
    loss_scores = -per_example_loss(proba, None, y)
    learned = learned_attack_scores(proba, y, m, seed=seed)
    return {"loss threshold": evaluate_attack("loss threshold", loss_scores, m, delta, low_fpr, seed=seed),
            "learned": evaluate_attack("learned", learned, m, delta, low_fpr, seed=seed)}
