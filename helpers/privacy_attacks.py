"""Membership-inference attacks and the statistics to read them.

The attacker has a trained model (any Keras model that outputs logits, one logit for
binary or one per class) and asks, for a record ``(x, y)``: was it a training member?
Scores are "higher means more likely a member".

* :func:`loss_threshold_scores` (Yeom et al., 2018): members tend to have a lower loss.
* :func:`learned_attack_scores`: a logistic regression on features of the model's output
  (loss, confidence, entropy, margin), trained on records whose membership the attacker
  knows and evaluated out-of-fold (cross-validation), so every score is honest.
* :func:`roc`, :func:`auc_with_ci` (bootstrap), :func:`tpr_at_fpr`.
* :func:`epsilon_lower_bound`: turn an attack's TPR/FPR into a lower bound on the ε of the
  training algorithm, with Clopper-Pearson intervals (Jagielski et al., 2020).

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

def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact two-sided binomial confidence interval for ``k`` successes in ``n`` trials."""
    from scipy.stats import beta

    n = validation.positive_int("n", n)
    k = validation.positive_int("k", k, minimum=0)
    if k > n:
        raise ValueError(f"k must be <= n ({n}), got {k}")
    confidence = validation.fraction("confidence", confidence)
    alpha = 1 - confidence
    low = 0.0 if k == 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    high = 1.0 if k == n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return low, high


def epsilon_from_rates(tpr: float, fpr: float, delta: float = 0.0) -> float:
    """The ε an (ε, δ)-DP algorithm must have for an attack with these rates to exist:
    ``max(ln((TPR - δ) / FPR), ln((1 - FPR - δ) / (1 - TPR)))`` (0 if not positive)."""
    best = 0.0
    if tpr - delta > 0 and fpr > 0:
        best = max(best, math.log((tpr - delta) / fpr))
    if 1 - fpr - delta > 0 and tpr < 1:
        best = max(best, math.log((1 - fpr - delta) / (1 - tpr)))
    return best


@dataclass(frozen=True)
class EpsilonBound:
    """An empirical lower bound on ε and the attack threshold behind it."""

    epsilon_lower: float      # holds with probability >= confidence
    epsilon_point: float      # same formula with the observed rates (no interval)
    threshold: float
    tpr: float
    fpr: float
    confidence: float


def epsilon_lower_bound(scores: Any, is_member: Any, delta: float, confidence: float = 0.95,
                        rng: Any = 0) -> EpsilonBound:
    """Empirical lower bound on the ε of the training algorithm from attack scores.

    Half of the records (stratified, seeded) choose the threshold with the largest
    point estimate; the other half measure TPR and FPR at that threshold, and the
    Clopper-Pearson interval (at ``confidence``, two-sided) gives a pessimistic TPR and
    FPR: ``ε >= ln((TPR_low - δ) / FPR_high)`` or ``ln((1 - FPR_high - δ) / (1 - TPR_low))``.
    With ``n`` records per class no bound above about ``ln(n)`` can be shown, so small
    audits give small bounds: a low value is *not* evidence of privacy.
    """
    s = _scores(scores)
    m = _membership(is_member, len(s))
    delta = validation.non_negative("delta", delta)
    confidence = validation.fraction("confidence", confidence)
    gen = validation.rng_from(rng)
    select = np.zeros(len(s), bool)
    for cls in (True, False):
        idx = np.flatnonzero(m == cls)
        select[gen.permutation(idx)[: len(idx) // 2]] = True
    best_t, best_eps = np.inf, -1.0
    for t in np.unique(s[select]):
        tpr = np.mean(s[select & m] >= t)
        fpr = np.mean(s[select & ~m] >= t)
        e = epsilon_from_rates(tpr, fpr, delta)
        if e > best_eps:
            best_t, best_eps = float(t), e
    pos, neg = s[~select & m], s[~select & ~m]
    tp, fp = int(np.sum(pos >= best_t)), int(np.sum(neg >= best_t))
    # Each interval at 1 - (1 - confidence)/2, so both hold together with prob. >= confidence.
    level = 1 - (1 - confidence) / 2
    tpr_lo, _ = clopper_pearson(tp, len(pos), level)
    _, fpr_hi = clopper_pearson(fp, len(neg), level)
    lower = 0.0
    if tpr_lo - delta > 0:   # P(say member | member) <= e^ε P(say member | non-member) + δ
        lower = max(lower, math.log((tpr_lo - delta) / fpr_hi))
    if 1 - fpr_hi - delta > 0:  # the same for the answer "non-member"
        lower = max(lower, math.log((1 - fpr_hi - delta) / (1 - tpr_lo)))
    tpr, fpr = tp / len(pos), fp / len(neg)
    return EpsilonBound(lower, epsilon_from_rates(tpr, fpr, delta), best_t, tpr, fpr, confidence)


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
                f"empirical ε >= {self.epsilon.epsilon_lower:.2f}")


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
    """
    proba, y, m = attack_data(model, X_in, y_in, X_out, y_out)
    loss_scores = -per_example_loss(proba, None, y)
    learned = learned_attack_scores(proba, y, m, seed=seed)
    return {"loss threshold": evaluate_attack("loss threshold", loss_scores, m, delta, low_fpr, seed=seed),
            "learned": evaluate_attack("learned", learned, m, delta, low_fpr, seed=seed)}
