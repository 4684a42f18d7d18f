"""Audit a trained binary classifier on the four pillars, compare models, write a model card.

:func:`audit` is the one call a learner needs to audit their own model::

    row = audit(model, split, name="my model", validation=(X_val, y_val),
                privacy=PrivacyClaim(epsilon=3.0, delta=1e-4), train_seconds=2.5)

Five small immutable settings objects say what is measured, each checking its fields when
it is built: :class:`PrivacyClaim` (the training algorithm's guarantee),
:class:`ThreatModel` (the attacker), :class:`OperatingPoint` (the threshold),
:class:`ExplanationAudit` (LIME) and :class:`Evaluation` (which patients, the seed).
It returns a flat ``dict`` (a tidy table row, :data:`COLUMNS` describes every key):

* **clinical performance** on ``split.X_test`` (or, with ``Evaluation(on="validation")``,
  on the validation patients, to *select* a model without touching the test set):
  accuracy, ROC AUC, sensitivity, specificity, PPV and NPV at an operating point chosen
  on validation data for a required sensitivity, each with a 95 % confidence interval
  (:mod:`helpers.metrics`);
* **privacy**: the accountant's ε and δ (given by the caller: they belong to the
  training algorithm, not to the model) and a membership-inference audit of the model
  (:mod:`helpers.privacy_attacks`): training patients (``split.X_train``, the members)
  against as many test patients (non-members), the stronger of the loss-threshold and
  the learned attack, its AUC, TPR at 5 % FPR and the empirical ε with its ceiling. The
  empirical ε treats the records of this ONE model as independent trials: it describes
  this model's measured leakage and is no proof about the training algorithm (for that,
  see the one-run canary audit in :mod:`helpers.privacy_attacks`); it can never exceed
  its ceiling (:func:`helpers.privacy_attacks.audit_ceiling`), so a small value is not
  evidence of privacy;
* **robustness**: accuracy under L∞ PGD (:mod:`helpers.robustness`), the worst case over
  the attack losses (cross-entropy and logit margin by default: the margin does not
  saturate on confident models) and the random restarts, with a Wilson interval; and
  what the attacker of the threat model wants, the **robust sensitivity**: the share of
  malignant patients still called malignant *at the operating point* when the attack
  tries to make them read as benign;
* **transparency**: stability of LIME explanations over seeds (:mod:`helpers.explain`),
  with a bootstrap interval over the explained patients;
* the training time, if given.

:func:`format_table` prints rows as one table, :func:`plot_tradeoffs` draws them,
:func:`decide` applies stated deployment requirements under a stated rule (on the point
value, or on the 95 % interval: "confirmed", "not refuted", "not distinguishable") and
:func:`model_card` writes the chosen model's card in Markdown, every number taken from
the row.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from helpers import validation

#: Every key of an :func:`audit` row, with its meaning.
COLUMNS: dict[str, str] = {
    "model": "name of the model",
    "evaluated_on": "'test' (report) or 'validation' (model selection): the patients every metric below uses",
    "modality": "'table' (rows of features) or 'image' (grey-level images): what the model reads",
    "accuracy": "accuracy on the evaluation patients at the operating point",
    "accuracy_low": "95 % Wilson interval, lower end", "accuracy_high": "95 % Wilson interval, upper end",
    "auc": "ROC AUC on the test patients (threshold-free)",
    "auc_low": "95 % stratified-bootstrap interval, lower end", "auc_high": "upper end",
    "sensitivity": "share of malignant test tumours called malignant at the operating point",
    "sensitivity_low": "95 % Wilson interval, lower end", "sensitivity_high": "upper end",
    "specificity": "share of benign test tumours called benign at the operating point",
    "specificity_low": "95 % Wilson interval, lower end", "specificity_high": "upper end",
    "ppv": "positive predictive value: share of patients called malignant who are (depends on prevalence)",
    "ppv_low": "95 % Wilson interval, lower end", "ppv_high": "upper end",
    "npv": "negative predictive value: share of patients called benign who are benign",
    "npv_low": "95 % Wilson interval, lower end", "npv_high": "upper end",
    "threshold": "operating point: P(malignant) >= threshold is called malignant",
    "target_sensitivity": "sensitivity the threshold was chosen for (on validation data), or nan",
    "operating_point_set_on": ("which patients set the operating point of the threshold-dependent figures: "
                               "'validation', 'other folds (k=...)' (OperatingPoint(cross_fit=k): each validation "
                               "patient judged at the threshold chosen on the other folds), 'fixed' or "
                               "'0.5 (no validation data)'"),
    "n_test": "number of evaluation patients (test patients, or validation patients with Evaluation(on='validation'))",
    "epsilon": "accountant's ε of the training algorithm (inf: no formal guarantee)",
    "delta": "δ of the guarantee (and of the empirical bound)",
    "mia_attack": "the stronger membership attack (larger AUC)",
    "mia_auc": "its ROC AUC, members vs non-members (evaluation patients; 0.5 = guessing)",
    "mia_auc_low": "95 % bootstrap interval, lower end", "mia_auc_high": "upper end",
    "mia_tpr_at_5pct_fpr": "its true-positive rate at a false-positive rate <= 5 %",
    "empirical_epsilon": ("empirical ε of the two attacks (max over both): a one-model leakage statistic, "
                          "not a proof about the training algorithm"),
    "empirical_epsilon_ceiling": "the largest empirical ε these member counts can ever show (a perfect attack)",
    "n_members": "members (= non-members) in the membership audit",
    "robust_eps": "L∞ radius of the PGD attack, in the model's input units (grey levels in [0, 1] for images)",
    "robust_accuracy": ("accuracy of the test subset under that attack, worst case over the losses and restarts "
                        "(0 eps: clean)"),
    "robust_accuracy_low": "95 % Wilson interval, lower end", "robust_accuracy_high": "upper end",
    "threshold_clamped": ("True when the attacks ran at a clamped operating point (a saturated model; "
                          "OperatingPoint(exact=True) attacks the exact one)"),
    "robust_threshold": ("P(malignant) threshold at which robust accuracy is measured (0.5, or the operating point; "
                         "nan: each cross-fitting fold at its own)"),
    "robust_sensitivity": ("share of the attacked malignant patients still called malignant at the operating point "
                           "when the attack tries to make them read as benign (the threat model's goal)"),
    "robust_sensitivity_low": "95 % Wilson interval, lower end", "robust_sensitivity_high": "upper end",
    "n_robust_malignant": "malignant patients among those attacked",
    "validated_robust_accuracy": ("with input validation as a defence (``ThreatModel.input_check``): share of the "
                                  "attacked patients that no attack record passing the checks flips, nor the clean "
                                  "record (nan: no checks given); against the attack of ``validated_attack``, at "
                                  "the same threshold(s) as ``robust_accuracy``"),
    "validated_attack": ("'adaptive': PGD projected onto the checks (an InputValidator); 'plain': PGD that ignores "
                         "them (an upper bound only); 'none': no checks given"),
    "validated_robust_accuracy_low": "95 % Wilson interval, lower end", "validated_robust_accuracy_high": "upper end",
    "attacks_rejected": ("share of the patients flipped by plain PGD (which ignores the checks; not counting those "
                         "misclassified without attack) whose every flipping record the input checks reject: the "
                         "checks as a data-quality filter (nan: no checks given, or nobody flipped)"),
    "attack_steps": "PGD steps", "attack_restarts": "PGD random restarts", "n_robust": "patients attacked",
    "attack_losses": "attack losses, joined by '+' ('ce': cross-entropy, 'margin': logit margin)",
    "explanation_stability": "mean top-k Jaccard of LIME explanations over seeds (1 = same features)",
    "explanation_stability_low": "95 % percentile bootstrap over the explained patients, lower end",
    "explanation_stability_high": "upper end",
    "n_explained": "patients explained",
    "lime_features": "k of the top-k feature sets compared (superpixels for images)",
    "train_seconds": "training time in seconds (nan: not given)",
}

#: Columns of :func:`format_table` by default: (key, header, format).
TABLE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("model", "model", "s"), ("accuracy", "acc", ".3f"), ("auc", "AUC", ".3f"),
    ("sensitivity", "sens", ".3f"), ("specificity", "spec", ".3f"), ("epsilon", "ε", "eps"),
    ("mia_auc", "MIA AUC", ".3f"), ("empirical_epsilon", "emp. ε≥", ".2f"),
    ("robust_accuracy", "robust acc", ".3f"), ("validated_robust_accuracy", "validated", ".3f"),
    ("robust_sensitivity", "robust sens", ".3f"),
    ("explanation_stability", "LIME stab.", ".2f"),
    ("train_seconds", "train time", "time"),
)


# --------------------------------------------------------------------------- audit settings

def _flag(name: str, value: Any) -> bool:
    """True or False (numbers and other truthy values are refused)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _pair(name: str, value: Any) -> tuple[float, float]:
    """A pair ``(low, high)`` of numbers with ``low < high``."""
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (low, high) of numbers, got {value!r}") from None
    if not low < high:
        raise ValueError(f"{name} must have low < high, got {value!r}")
    return low, high


def _attack_losses(losses: Any, allowed: Sequence[str], name: str) -> tuple[str, ...]:
    """A name or a non-empty sequence of names from ``allowed``, as a tuple of unique names."""
    names = (losses,) if isinstance(losses, str) else tuple(losses) if isinstance(losses, (list, tuple)) else None
    if not names or any(not isinstance(n, str) or n not in allowed for n in names):
        raise ValueError(f"{name} must be a non-empty sequence of names from {tuple(allowed)}, got {losses!r}")
    return tuple(dict.fromkeys(names))


def _store(settings: Any, **values: Any) -> None:
    """Write validated (converted) values into a frozen dataclass, once, from ``__post_init__``."""
    for key, value in values.items():
        object.__setattr__(settings, key, value)


@dataclass(frozen=True)
class PrivacyClaim:
    """The privacy guarantee of the training algorithm, as its accountant states it (the
    audit cannot measure it from the model: it belongs to the algorithm, not to the model).

    ``epsilon`` (default ``math.inf``, no guarantee)
        The accountant's ε of the training algorithm: a number > 0, or ``inf``.
    ``delta`` (default ``1e-5``)
        δ of the guarantee, also the δ of the empirical ε bound of the membership audit: a
        number in the open interval (0, 1).
    ``n_members`` (default ``None``)
        Members (and as many non-members) in the membership audit, an integer >= 1; ``None``:
        as many as the smaller of the two sets allows (a larger value is cut to that too).
    """

    epsilon: float = math.inf
    delta: float = 1e-5
    n_members: int | None = None

    def __post_init__(self) -> None:
        try:
            epsilon = float(self.epsilon)
        except (TypeError, ValueError):
            epsilon = math.nan
        if not epsilon > 0:   # nan and -inf fail too; inf passes
            raise ValueError(f"PrivacyClaim.epsilon must be a number > 0 or inf, got {self.epsilon!r}")
        _store(self, epsilon=epsilon, delta=validation.fraction("PrivacyClaim.delta", self.delta),
               n_members=None if self.n_members is None else validation.positive_int("PrivacyClaim.n_members",
                                                                                      self.n_members))


@dataclass(frozen=True)
class ThreatModel:
    """The attacker of the robustness pillar: L∞ PGD with the weights known (white box).

    ``radius`` (default ``0.25``)
        L∞ radius of the attack in the model's input units (standard deviations of the
        training data for a standardized table; grey levels in [0, 1] for images, e.g.
        ``4 / 255``): a number >= 0 (0: clean accuracy).
    ``steps`` (default ``20``)
        PGD steps, an integer >= 1.
    ``restarts`` (default ``1``)
        PGD random restarts, an integer >= 1. A patient counts as robust only if every loss
        and every restart fails to flip it (:func:`helpers.robustness.robust_accuracy`).
    ``losses`` (default ``("ce", "margin")``)
        Attack losses: a name or a non-empty sequence of names from
        :data:`helpers.robustness.LOSSES` (``"ce"``: cross-entropy, ``"margin"``: logit
        margin), stored as a tuple of unique names. Keep both: the cross-entropy alone
        saturates on confident models and overstates robustness.
    ``input_range`` (default ``None``)
        ``(low, high)`` bounds of a valid input (``low < high``), kept by every attack (PGD
        clips to them); :func:`audit` checks that they contain every input. ``None``:
        unbounded for tables, ``(0.0, 1.0)`` for images (grey levels).
    ``input_check`` (default ``None``, no checks)
        Input validation as a defence: a function of a batch of inputs in the model's units
        that returns True for each record it rejects. ``validated_robust_accuracy`` is the
        share of attacked patients that no attack record passing the checks flips (a patient
        misclassified without attack is never defended). With an :class:`InputValidator`
        (:func:`input_validator`) it is measured against the **adaptive** attack that knows
        the checks (:func:`adaptive_attack`, same steps, restarts and losses); with any
        other function, against plain PGD that ignores them, which only bounds it from above
        (the row's ``validated_attack`` says which). ``attacks_rejected``: the share of the
        patients plain PGD flips whose every flipping record the checks reject (the checks
        as a data-quality filter).
    """

    radius: float = 0.25
    steps: int = 20
    restarts: int = 1
    losses: tuple[str, ...] = ("ce", "margin")
    input_range: tuple[float, float] | None = None
    input_check: Callable[[np.ndarray], np.ndarray] | None = None

    def __post_init__(self) -> None:
        from helpers.robustness import LOSSES

        if self.input_check is not None and not callable(self.input_check):
            raise ValueError(f"ThreatModel.input_check must be None or a function of a batch of inputs, "
                             f"got {type(self.input_check).__name__}")
        _store(self, radius=validation.non_negative("ThreatModel.radius", self.radius),
               steps=validation.positive_int("ThreatModel.steps", self.steps),
               restarts=validation.positive_int("ThreatModel.restarts", self.restarts),
               losses=_attack_losses(self.losses, LOSSES, "ThreatModel.losses"),
               input_range=None if self.input_range is None else _pair("ThreatModel.input_range", self.input_range))


@dataclass(frozen=True)
class OperatingPoint:
    """Where the model's P(malignant) is cut into a call: P(malignant) >= threshold reads
    malignant.

    ``target_sensitivity`` (default ``0.95``)
        Without ``threshold``: the operating point is the largest threshold whose
        sensitivity on the validation patients is >= this share
        (:func:`helpers.metrics.threshold_for_sensitivity`), a number in (0, 1]. Without
        validation patients, 0.5 is used.
    ``threshold`` (default ``None``)
        A fixed operating point instead, a number in the open interval (0, 1).
    ``exact`` (default ``False``)
        True: attack at the exact operating point (:func:`at_threshold` with
        ``clamp=False``); False: a saturated operating point is clamped to
        :data:`CLAMP_RANGE`, and the row's ``threshold_clamped`` says so.
    ``at_operating_point`` (default ``False``)
        False: robust accuracy is two-class accuracy at 0.5. True: it is measured at the
        operating point (a benign patient counts as robust if the attack cannot push it to
        >= threshold, a malignant one if it cannot push it below); the row's
        ``robust_threshold`` says which. The robust sensitivity is always measured at the
        operating point.
    ``cross_fit`` (default ``0``, off)
        0, or a number of folds k >= 2. It acts only when the evaluation patients are the
        ones that set the threshold (``Evaluation(on="validation")`` and no fixed
        ``threshold``): the validation patients are split into k stratified folds (seeded
        by ``Evaluation.seed``, :func:`cross_fit_thresholds`) and each patient is called at
        the threshold chosen on the **other** folds, so no patient is judged at an operating
        point it set. Every threshold-dependent figure (accuracy, sensitivity, specificity,
        PPV, NPV, robust sensitivity, and robust accuracy with ``at_operating_point``) then
        uses these per-patient thresholds, and the validation sensitivity can test a
        sensitivity requirement; the row's ``threshold`` is still the one chosen on all
        validation patients (the one that would be deployed) and ``operating_point_set_on``
        says which patients set the figures' operating point. A fixed ``threshold`` with
        ``cross_fit`` raises ``ValueError`` (nothing to cross-fit).
    """

    target_sensitivity: float = 0.95
    threshold: float | None = None
    exact: bool = False
    at_operating_point: bool = False
    cross_fit: int = 0

    def __post_init__(self) -> None:
        target = validation.positive("OperatingPoint.target_sensitivity", self.target_sensitivity)
        if target > 1.0:
            raise ValueError(f"OperatingPoint.target_sensitivity must be in (0, 1], got {self.target_sensitivity!r}")
        folds = validation.positive_int("OperatingPoint.cross_fit", self.cross_fit, minimum=0)
        if folds == 1:
            raise ValueError("OperatingPoint.cross_fit must be 0 (off) or a number of folds >= 2, got 1")
        if folds and self.threshold is not None:
            raise ValueError(f"OperatingPoint.cross_fit={folds} needs a threshold chosen from target_sensitivity: "
                             f"a fixed threshold={self.threshold!r} is set by no patient")
        _store(self, target_sensitivity=target, cross_fit=folds,
               threshold=None if self.threshold is None else validation.fraction("OperatingPoint.threshold",
                                                                                   self.threshold),
               exact=_flag("OperatingPoint.exact", self.exact),
               at_operating_point=_flag("OperatingPoint.at_operating_point", self.at_operating_point))


@dataclass(frozen=True)
class ExplanationAudit:
    """The transparency pillar: are the LIME explanations of a few evaluation patients
    stable over seeds? The interval is a percentile bootstrap over the explained patients
    (crude for a few).

    ``n_explained`` (default ``3``)
        Evaluation patients explained (the first ones), an integer >= 0 (0: no LIME, the
        stability is nan).
    ``seeds`` (default ``(0, 1, 2)``)
        LIME seeds compared, at least 2 different integers >= 0, stored as a tuple: the
        stability is the mean top-``num_features`` Jaccard over their pairs.
    ``lime_samples`` (default ``1000``)
        Perturbed samples per LIME explanation, an integer >= 1.
    ``num_features`` (default ``5``)
        k of the top-k feature sets compared, an integer >= 1 (superpixels for images).
    ``segment_fn`` (default ``None``)
        Images only: ``image -> segments`` (an ``(h, w)`` label array, or a ``(segments,
        kinds)`` pair) for LIME; ``None``: :func:`helpers.explain.nucleus_segments`
        (superpixels that follow the nuclei). A superpixel switched off is painted with the
        image's median grey level.
    """

    n_explained: int = 3
    seeds: tuple[int, ...] = (0, 1, 2)
    lime_samples: int = 1000
    num_features: int = 5
    segment_fn: Callable[[np.ndarray], Any] | None = None

    def __post_init__(self) -> None:
        try:
            seeds = tuple(validation.positive_int("ExplanationAudit.seeds", s, minimum=0) for s in self.seeds)
        except TypeError:
            raise ValueError(f"ExplanationAudit.seeds must be a sequence of integers >= 0, "
                             f"got {self.seeds!r}") from None
        if len(set(seeds)) < 2 or len(set(seeds)) != len(seeds):
            raise ValueError(f"ExplanationAudit.seeds must hold at least 2 different integers >= 0 (no repeats), "
                             f"got {self.seeds!r}")
        if self.segment_fn is not None and not callable(self.segment_fn):
            raise ValueError(f"ExplanationAudit.segment_fn must be None or a function image -> segments, "
                             f"got {type(self.segment_fn).__name__}")
        _store(self, seeds=seeds,
               n_explained=validation.positive_int("ExplanationAudit.n_explained", self.n_explained, minimum=0),
               lime_samples=validation.positive_int("ExplanationAudit.lime_samples", self.lime_samples),
               num_features=validation.positive_int("ExplanationAudit.num_features", self.num_features))


#: Splits an audit can be evaluated on (:attr:`Evaluation.on`).
EVALUATED_ON: tuple[str, ...] = ("test", "validation")


@dataclass(frozen=True)
class Evaluation:
    """Which patients the audit measures, how many are attacked, and its randomness.

    ``on`` (default ``"test"``)
        ``"test"``: every metric on ``data.X_test``; report the chosen model this way, once.
        ``"validation"``: every metric on the validation patients (the non-members of the
        membership audit, the attacked and explained patients too), to **select** among
        models without touching the test set. The operating point is then chosen on the
        same patients, so the validation sensitivity meets the target by construction and
        cannot test a sensitivity requirement, unless ``OperatingPoint(cross_fit=k)``
        judges each patient at a threshold set on the others.
    ``n_robust`` (default ``100``)
        Evaluation patients attacked, an integer >= 1 (a seeded subset; all of them when
        ``n_robust`` is at least their number).
    ``n_resamples`` (default ``500``)
        Bootstrap resamples for the AUC and stability intervals, an integer >= 10.
    ``seed`` (default ``0``)
        Seeds every random choice (subsets, bootstrap, attacks, cross-fitting folds), an
        integer >= 0.
    """

    on: str = "test"
    n_robust: int = 100
    n_resamples: int = 500
    seed: int = 0

    def __post_init__(self) -> None:
        if self.on not in EVALUATED_ON:
            raise ValueError(f"Evaluation.on must be one of {EVALUATED_ON}, got {self.on!r}")
        _store(self, n_robust=validation.positive_int("Evaluation.n_robust", self.n_robust),
               n_resamples=validation.positive_int("Evaluation.n_resamples", self.n_resamples, minimum=10),
               seed=validation.positive_int("Evaluation.seed", self.seed, minimum=0))


#: The settings classes of :func:`audit`, by parameter name.
SETTINGS: dict[str, type] = {"privacy": PrivacyClaim, "threat": ThreatModel, "operating_point": OperatingPoint,
                             "explanations": ExplanationAudit, "evaluation": Evaluation}


def _subset(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.permutation(n)[:min(n, size)])


def _shared_rows(a: np.ndarray, b: np.ndarray) -> int:
    """How many rows of ``a`` also occur (exactly) in ``b``."""
    if a.size == 0 or b.size == 0 or a.shape[1:] != b.shape[1:]:
        return 0
    seen = {row.tobytes() for row in np.ascontiguousarray(b, dtype=np.float32)}
    return sum(row.tobytes() in seen for row in np.ascontiguousarray(a, dtype=np.float32))


def threshold_logit(threshold: float) -> float:
    """log(threshold / (1 - threshold)), the logit at which P(class 1) = ``threshold``.

    ``threshold`` must be a number in the open interval (0, 1) (``ValueError`` otherwise:
    0 and 1 have no finite logit)."""
    value = validation.fraction("threshold", threshold)
    if not 0.0 < value < 1.0:
        raise ValueError(f"threshold must be in the open interval (0, 1) (an operating point with a finite logit), "
                         f"got {threshold!r}: the model calls every patient one class there")
    return float(math.log(value) - math.log1p(-value))


#: Thresholds :func:`at_threshold` clamps to by default (the historical behaviour; reported, not silent).
CLAMP_RANGE: tuple[float, float] = (1e-7, 1 - 1e-7)


def at_threshold(model: Any, threshold: float, *, clamp: bool = True) -> Any:
    """``x -> logits`` of ``model`` shifted so that class 1 wins exactly when
    P(class 1) >= ``threshold`` (up to the tie at equality): an attack on the result is an
    attack on the model *at its operating point*, not at 0.5. Works for one logit
    (sigmoid) and two logits (softmax).

    ``clamp=False``: the shift is the exact log-odds of ``threshold`` (float64), so a
    saturated model whose operating point sits at P = 1e-8 is attacked at P = 1e-8;
    ``threshold`` must lie in the open interval (0, 1) (``ValueError`` otherwise: at 0 or 1
    every patient is called one class and there is no boundary to attack).

    ``clamp=True`` (default, kept so that existing results do not move): a threshold
    outside :data:`CLAMP_RANGE` is moved to its nearest end, and the move is **reported**:
    the returned function's attributes ``threshold`` (the one asked for),
    ``threshold_used`` and ``clamped`` (True when they differ) say what was attacked, and
    :func:`audit` copies ``clamped`` into its row (``threshold_clamped``). A clamped
    threshold attacks another operating point than the model's: prefer ``clamp=False``."""
    import tensorflow as tf

    shift = tf.Variable(0.0, dtype=tf.float64, trainable=False)

    def shifted(x, training=False):   # a callable model: helpers.models.predict_proba works on it too
        z = model(x, training=False)
        if z.shape[-1] == 1:
            return z - tf.cast(shift, z.dtype)
        return z - tf.cast(tf.stack([tf.constant(0.0, tf.float64), shift])[None, :], z.dtype)

    def retarget(new_threshold: float) -> Any:
        """Move this function to another threshold (same clamping); returns it. The shift is
        a variable, so functions TensorFlow traced for it (attacks) serve every threshold."""
        asked = validation.fraction("threshold", new_threshold)
        used = asked if not clamp else min(max(asked, CLAMP_RANGE[0]), CLAMP_RANGE[1])
        shift.assign(threshold_logit(used))
        shifted.threshold, shifted.threshold_used, shifted.clamped = asked, used, used != asked  # type: ignore[attr-defined]
        return shifted

    shifted.retarget = retarget  # type: ignore[attr-defined]
    return retarget(threshold)


def _bootstrap_mean(values: Sequence[float], n_resamples: int, rng: np.random.Generator) -> tuple[float, float]:
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return math.nan, math.nan
    if v.size == 1:
        return float(v[0]), float(v[0])
    means = v[rng.integers(0, v.size, (n_resamples, v.size))].mean(axis=1)
    low, high = np.quantile(means, [0.025, 0.975])
    return float(low), float(high)


def cross_fit_thresholds(y_true: Any, scores: Any, target: float, folds: int,
                         seed: int = 0) -> tuple[np.ndarray, tuple[float, ...]]:
    """Cross-fitted operating points: ``(fold, thresholds)``, where ``fold[i]`` (in
    ``0 .. folds - 1``) is patient ``i``'s fold and ``thresholds[f]`` the largest threshold
    whose sensitivity is ``>= target`` on the patients of every **other** fold
    (:func:`helpers.metrics.threshold_for_sensitivity`). Patient ``i`` is then called at
    ``thresholds[fold[i]]``, an operating point it took no part in setting.

    The folds are stratified: the patients of each class, in a random order drawn from
    ``numpy.random.default_rng(seed)`` (benign first, then malignant), are dealt to the folds
    in turn. ``folds`` must be an integer >= 2, and every fold's complement must hold at
    least one malignant and one benign patient (``ValueError`` otherwise, e.g. with a single
    malignant patient)."""
    from helpers import metrics

    y = np.asarray(y_true).reshape(-1)
    s = validation.finite_array("scores", scores, ndim=1)
    if len(s) != len(y):
        raise ValueError(f"scores must have one value per label ({len(y)}), got {len(s)}")
    folds = validation.positive_int("folds", folds, minimum=2)
    fold = metrics.stratified_folds(y, folds, validation.positive_int("seed", seed, minimum=0))
    for f in range(folds):
        for label, kind in ((1, "malignant"), (0, "benign")):
            if not np.any(y[fold != f] == label):
                raise ValueError(f"cross_fit={folds}: the threshold of fold {f} is set on the other folds, which hold "
                                 f"no {kind} patient ({int(np.sum(y == label))} among the {len(y)} validation "
                                 f"patients): use fewer folds or more validation patients")
    return fold, tuple(metrics.threshold_for_sensitivity(y[fold != f], s[fold != f], target) for f in range(folds))


@dataclass(frozen=True, eq=False)
class _Point:
    """The operating point of an audit: the deployed ``threshold`` and, when cross-fitted,
    each evaluation patient's fold and each fold's threshold."""

    threshold: float
    target: float
    set_on: str
    fold: np.ndarray | None = None
    fold_thresholds: tuple[float, ...] = ()

    def groups(self, idx: np.ndarray) -> list[tuple[float, np.ndarray]]:
        """``(threshold, patients)`` pairs that cover the evaluation patients ``idx``."""
        if self.fold is None:
            return [(self.threshold, idx)]
        return [(t, idx[self.fold[idx] == f]) for f, t in enumerate(self.fold_thresholds)]


def audit(model: Any, data: Any, *, name: str = "model", validation: tuple[Any, Any] | None = None,
          privacy: PrivacyClaim = PrivacyClaim(), threat: ThreatModel = ThreatModel(),
          operating_point: OperatingPoint = OperatingPoint(), explanations: ExplanationAudit = ExplanationAudit(),
          evaluation: Evaluation = Evaluation(), train_seconds: float | None = None) -> dict[str, Any]:
    """Audit a trained Keras binary classifier (logit outputs) on the four pillars.

    Every argument is checked before anything slow runs (the settings objects check their
    own fields when they are built).

    Parameters
    ----------
    model:
        A trained Keras model with one logit (or two) for classes 0/1 (checked first: a
        sigmoid or softmax last layer raises ``ValueError`` before anything slow runs).
    data:
        A :class:`helpers.data.Split` (a table: rows of features), or an image split such as
        :class:`helpers.data.ImageSplit` (``X_*`` of shape ``(n, height, width, 1)``, grey
        levels): the row's ``modality`` says which. ``X_train, y_train`` **must be exactly the patients
        the model was trained on** (they are the members of the membership audit);
        ``X_test, y_test`` are new patients (test metrics, non-members, attacks, LIME).
        LIME explains in original units when the split is standardized.
    name:
        Row label.
    validation:
        ``(X_val, y_val)``, validation patients (neither trained on nor tested): the
        operating point is chosen on them (:class:`OperatingPoint`), and with
        ``Evaluation(on="validation")`` every metric is measured on them. They must not be in
        ``data.X_train`` (``ValueError`` otherwise: a validation part held out of training
        must also be removed from the split, or the audit counts untrained patients as
        members). ``None``: no validation patients.
    privacy:
        :class:`PrivacyClaim`: the training algorithm's (ε, δ) and the membership audit's size.
    threat:
        :class:`ThreatModel`: the L∞ PGD attacker and the input checks in front of the model.
    operating_point:
        :class:`OperatingPoint`: the threshold, where robustness is measured, cross-fitting.
    explanations:
        :class:`ExplanationAudit`: the LIME stability measurement.
    evaluation:
        :class:`Evaluation`: which patients (test or validation), how many are attacked,
        bootstrap resamples, the seed.
    train_seconds:
        Training time to report, a number >= 0 (``None``: reported as nan).

    Returns
    -------
    A flat ``dict`` with the keys of :data:`COLUMNS`.
    """
    from helpers import robustness

    _check_settings(privacy=privacy, threat=threat, operating_point=operating_point, explanations=explanations,
                    evaluation=evaluation)
    X_train, y_train, modality = _training_patients(data, name)
    val = _validation_patients(validation, X_train, evaluation.on)
    seconds = _seconds(train_seconds)
    robustness.check_model(model, X_train)  # logits, not probabilities: fail before the slow parts
    X_test, y_test = np.asarray(data.X_test, np.float32), np.asarray(data.y_test).reshape(-1)
    clip = _input_range(threat.input_range, modality, X_train, X_test)
    X_eval, y_eval = val if evaluation.on == "validation" else (X_test, y_test)
    point = _operating_point(model, val, operating_point, evaluation)
    rng = np.random.default_rng(evaluation.seed)   # one stream: membership subsets first, then the attacked ones
    row: dict[str, Any] = {"model": name, "evaluated_on": evaluation.on, "modality": modality}
    row.update(_clinical(model, X_eval, y_eval, point, evaluation))
    row.update(_privacy(model, (X_train, y_train), (X_eval, y_eval), privacy, rng, evaluation.seed))
    row.update(_robustness(model, X_eval, y_eval, point, threat, operating_point, rng, evaluation, clip))
    row.update(_transparency(model, data, X_train, X_eval, explanations, evaluation, modality))
    row["train_seconds"] = seconds
    return row


def _check_settings(**settings: Any) -> None:
    """Each settings argument of :func:`audit` is an instance of its class (:data:`SETTINGS`)."""
    for key, value in settings.items():
        if not isinstance(value, SETTINGS[key]):
            raise ValueError(f"{key} must be a scorecard.{SETTINGS[key].__name__}(...), got {type(value).__name__}")


def _training_patients(data: Any, name: Any) -> tuple[np.ndarray, np.ndarray, str]:
    """``(X_train, y_train, modality)`` of a split, after checking the split and the row's name."""
    for attr in ("X_train", "y_train", "X_test", "y_test", "feature_names", "class_names"):
        if not hasattr(data, attr):
            raise ValueError(f"data must be a helpers.data.Split (it has no {attr!r})")
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    X_train = np.asarray(data.X_train, np.float32)
    return X_train, np.asarray(data.y_train).reshape(-1), _modality(X_train)


def _validation_patients(pair: Any, X_train: np.ndarray, on: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The validation pair as arrays (``None`` if not given), checked against the training patients."""
    if pair is None:
        if on == "validation":
            raise ValueError("Evaluation(on='validation') needs validation=(X_val, y_val)")
        return None
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise ValueError(f"validation must be None or a pair (X_val, y_val), got {type(pair).__name__}"
                         + (f" of length {len(pair)}" if isinstance(pair, (tuple, list)) else ""))
    X_val, y_val = np.asarray(pair[0], np.float32), np.asarray(pair[1]).reshape(-1)
    if len(X_val) != len(y_val):
        raise ValueError(f"validation must hold one label per row of X_val ({len(X_val)}), got {len(y_val)}")
    shared = _shared_rows(X_val, X_train)
    if shared:
        raise ValueError(f"X_val must not be in data.X_train: {shared} of its {len(X_val)} rows are. Remove the "
                         f"validation patients from the split (dataclasses.replace(split, X_train=X_fit, "
                         f"y_train=y_fit)): data.X_train must be exactly the patients the model was trained on")
    return X_val, y_val


def _seconds(train_seconds: Any) -> float:
    return math.nan if train_seconds is None else validation.non_negative("train_seconds", train_seconds)


def _operating_point(model: Any, val: tuple[np.ndarray, np.ndarray] | None, settings: OperatingPoint,
                     evaluation: Evaluation) -> _Point:
    """The operating point, chosen before looking at the test set (and cross-fitted on
    request when the validation patients are also the evaluated ones)."""
    from helpers import metrics
    from helpers.models import predict_proba

    if settings.threshold is not None:
        return _Point(settings.threshold, math.nan, "fixed")
    if val is None:
        return _Point(0.5, math.nan, "0.5 (no validation data)")
    X_val, y_val = val
    p_val = predict_proba(model, X_val)[:, 1]
    threshold = metrics.threshold_for_sensitivity(y_val, p_val, settings.target_sensitivity)
    if not settings.cross_fit or evaluation.on != "validation":
        return _Point(threshold, settings.target_sensitivity, "validation")
    fold, thresholds = cross_fit_thresholds(y_val, p_val, settings.target_sensitivity, settings.cross_fit,
                                            evaluation.seed)
    return _Point(threshold, settings.target_sensitivity, f"other folds (k={settings.cross_fit})", fold, thresholds)


def _clinical(model: Any, X: np.ndarray, y: np.ndarray, point: _Point, evaluation: Evaluation) -> dict[str, Any]:
    """Clinical performance at the operating point: accuracy, AUC, sensitivity, specificity,
    PPV and NPV with their intervals, the threshold and the number of evaluation patients."""
    from helpers import metrics
    from helpers.models import predict_proba

    p = predict_proba(model, X)[:, 1]
    clinical = metrics.clinical_metrics(y, p, point.threshold, n_resamples=evaluation.n_resamples,
                                        rng=evaluation.seed)
    clinical.update(metrics.predictive_values(y, p, point.threshold))
    if point.fold is not None:
        # each patient at its own fold's threshold: p >= t_i exactly when p - t_i >= 0 (float64, no rounding to
        # the wrong side, no infinite logit at p = 0 or 1); the AUC is threshold-free and stays on p
        shifted = np.asarray(p, dtype=np.float64) - np.asarray(point.fold_thresholds)[point.fold]
        own = metrics.clinical_metrics(y, shifted, 0.0, n_resamples=evaluation.n_resamples, rng=evaluation.seed)
        own.update(metrics.predictive_values(y, shifted, 0.0))
        clinical.update({key: est for key, est in own.items() if key != "auc"})
    row: dict[str, Any] = {}
    for key, est in clinical.items():
        row[key], row[f"{key}_low"], row[f"{key}_high"] = est.value, est.low, est.high
    row.update(threshold=float(point.threshold), target_sensitivity=point.target,
               operating_point_set_on=point.set_on, n_test=len(y))
    return row


def _privacy(model: Any, members_set: tuple[np.ndarray, np.ndarray], outsiders_set: tuple[np.ndarray, np.ndarray],
             claim: PrivacyClaim, rng: np.random.Generator, seed: int) -> dict[str, Any]:
    """The claimed (ε, δ) and a membership-inference audit, members vs equally many non-members."""
    from helpers import privacy_attacks

    (X_in, y_in), (X_out, y_out) = members_set, outsiders_set
    size = min(len(X_in), len(X_out)) if claim.n_members is None else claim.n_members
    size = min(size, len(X_in), len(X_out))
    members, outsiders = _subset(len(X_in), size, rng), _subset(len(X_out), size, rng)
    attacks = privacy_attacks.membership_audit(model, X_in[members], y_in[members], X_out[outsiders],
                                               y_out[outsiders], delta=claim.delta, low_fpr=0.05, seed=seed)
    best = max(attacks.values(), key=lambda r: r.auc)
    return dict(epsilon=claim.epsilon, delta=claim.delta, mia_attack=best.name, mia_auc=best.auc,
                mia_auc_low=best.auc_low, mia_auc_high=best.auc_high, mia_tpr_at_5pct_fpr=best.tpr_at_low_fpr,
                empirical_epsilon=max(r.epsilon.epsilon_lower for r in attacks.values()),
                empirical_epsilon_ceiling=privacy_attacks.audit_ceiling(size, size, claim.delta), n_members=size)


def _robustness(model: Any, X: np.ndarray, y: np.ndarray, point: _Point, threat: ThreatModel,
                settings: OperatingPoint, rng: np.random.Generator, evaluation: Evaluation,
                clip: tuple[Any, Any]) -> dict[str, Any]:
    """L∞ PGD on a seeded subset of evaluation patients (all of them if ``n_robust`` allows):
    robust accuracy, robust sensitivity at the operating point (each cross-fitting fold at
    its own threshold), and validated robustness behind the input checks."""
    from helpers import metrics, robustness

    idx = _subset(len(X), evaluation.n_robust, rng)
    attack = dict(attack="pgd", losses=threat.losses, nb_iter=threat.steps, restarts=threat.restarts,
                  seed=evaluation.seed, clip_min=clip[0], clip_max=clip[1])

    def kept(attacked: Any, part: np.ndarray) -> int:
        """How many of the patients ``part`` no attack flips."""
        if not part.size:
            return 0
        share = float(robustness.robust_accuracy(attacked, X[part], y[part], [threat.radius], **attack)[0])
        return int(round(share * part.size))

    groups = point.groups(idx)
    moved = at_threshold(model, groups[0][0], clamp=not settings.exact)   # one function, moved fold by fold
    clamped = any(bool(moved.retarget(t).clamped) for t, _ in groups)
    if settings.at_operating_point:
        robust = sum(kept(moved.retarget(t), part) for t, part in groups)
        robust_threshold = float(moved.retarget(groups[0][0]).threshold_used) if len(groups) == 1 else math.nan
    else:
        robust, robust_threshold = kept(model, idx), 0.5
    malignant = idx[y[idx] == 1]
    robust_sens = rs_low = rs_high = math.nan
    if malignant.size:
        found = sum(kept(moved.retarget(t), part[y[part] == 1]) for t, part in groups)
        robust_sens = found / malignant.size
        rs_low, rs_high = metrics.wilson_interval(found, malignant.size)
    validated = rejected = val_low = val_high = math.nan
    validated_attack = "none"
    if threat.input_check is not None:   # at the same threshold(s) as the robust accuracy
        parts = groups if settings.at_operating_point else [(None, idx)]
        counts = [_validated_robustness(model if t is None else moved.retarget(t), X[part], y[part], threat.radius,
                                        threat.input_check, threat.losses, threat.steps, threat.restarts,
                                        evaluation.seed, clip)
                  for t, part in parts if part.size]
        defended, n_rejected, n_flipped = (sum(c[i] for c in counts) for i in range(3))
        validated, validated_attack = defended / len(idx), counts[0][3]
        rejected = n_rejected / n_flipped if n_flipped else math.nan
        val_low, val_high = metrics.wilson_interval(defended, len(idx))
    low, high = metrics.wilson_interval(robust, len(idx))
    return dict(validated_robust_accuracy=validated, validated_robust_accuracy_low=val_low,
                validated_robust_accuracy_high=val_high, attacks_rejected=rejected, validated_attack=validated_attack,
                robust_eps=threat.radius, robust_accuracy=robust / len(idx), robust_threshold=robust_threshold,
                threshold_clamped=clamped, robust_accuracy_low=low,
                robust_accuracy_high=high, robust_sensitivity=robust_sens, robust_sensitivity_low=rs_low,
                robust_sensitivity_high=rs_high, n_robust_malignant=int(malignant.size), attack_steps=threat.steps,
                attack_restarts=threat.restarts, attack_losses="+".join(threat.losses), n_robust=len(idx))


def _transparency(model: Any, data: Any, X_train: np.ndarray, X: np.ndarray, settings: ExplanationAudit,
                  evaluation: Evaluation, modality: str) -> dict[str, Any]:
    """Are the LIME explanations of the first evaluation patients stable over seeds?"""
    from helpers import explain

    patients = range(min(settings.n_explained, len(X)))
    if modality == "image":
        stabilities = [_image_stability(model, X[i], settings.segment_fn, settings.num_features,
                                        settings.lime_samples, settings.seeds) for i in patients]
    else:
        split = data if getattr(data, "mean", None) is not None else None
        stabilities = [explain.explanation_stability(model, X_train, X[i], data.feature_names, data.class_names,
                                                     num_features=settings.num_features,
                                                     num_samples=settings.lime_samples, seeds=settings.seeds,
                                                     split=split)
                       for i in patients]
    low, high = _bootstrap_mean(stabilities, evaluation.n_resamples, np.random.default_rng(evaluation.seed))
    return dict(explanation_stability=float(np.mean(stabilities)) if stabilities else math.nan,
                explanation_stability_low=low, explanation_stability_high=high, n_explained=len(stabilities),
                lime_features=settings.num_features)


def _modality(X: np.ndarray) -> str:
    """``"table"`` for ``(n, features)``, ``"image"`` for ``(n, height, width, channels)``."""
    if X.ndim == 2:
        return "table"
    if X.ndim == 4:
        return "image"
    raise ValueError(f"data.X_train must be a table (n, features) or images (n, height, width, channels), "
                     f"got shape {X.shape}")


def _input_range(input_range: Any, modality: str, *arrays: np.ndarray) -> tuple[float | None, float | None]:
    """Validated ``(low, high)`` for the attacks (``(None, None)``: unbounded)."""
    if input_range is None:
        if modality == "table":
            return None, None
        input_range = (0.0, 1.0)
    low, high = _pair("input_range", input_range)
    for X in arrays:
        if X.size and (X.min() < low or X.max() > high):
            raise ValueError(f"input_range must contain every input: ({low:g}, {high:g}) does not contain values in "
                             f"[{X.min():.4g}, {X.max():.4g}]")
    return low, high


def _image_stability(model: Any, image: np.ndarray, segment_fn: Callable | None, num_features: int,
                     lime_samples: int, seeds: Sequence[int]) -> float:
    from helpers import explain

    segments = (segment_fn or explain.nucleus_segments)(image)
    if isinstance(segments, tuple):
        segments = segments[0]
    return explain.image_explanation_stability(model, image, np.asarray(segments), num_features=num_features,
                                               num_samples=lime_samples, seeds=tuple(seeds),
                                               hide_color=float(np.median(image)))


def _validated_robustness(model: Any, x: np.ndarray, y: np.ndarray, eps: float, input_check: Callable,
                          losses: Sequence[str], steps: int, restarts: int, seed: int,
                          clip: tuple[Any, Any] = (None, None)) -> tuple[int, int, int, str]:
    """(patients defended, patients flipped by plain PGD whose every flipping record the
    checks reject, patients flipped by plain PGD, which attack measured the first).

    Plain L∞ PGD (every loss and restart) ignores the checks: the share it leaves to be
    rejected measures the checks as a data-quality filter. Validated robust accuracy is
    the share of patients that no attack record passing the checks flips; when
    ``input_check`` is an :class:`InputValidator` it is measured against the adaptive attack
    (:func:`adaptive_attack`, PGD projected onto the checks), otherwise against plain PGD
    (an attacker who ignores the checks: an upper bound only). A patient misclassified
    without any attack is never counted as defended."""
    from helpers import robustness
    from helpers.models import predict_proba

    if not callable(input_check):
        raise ValueError(f"input_check must be a function of a batch of inputs, got {type(input_check).__name__}")
    clean_wrong = predict_proba(model, x).argmax(axis=1) != y
    flipped = np.zeros(len(y), dtype=bool)
    passed_flip = clean_wrong.copy()
    rng = np.random.default_rng(seed)   # the attempts of robustness.robust_accuracy, in its order
    for _ in range(restarts):
        for loss in losses:
            adv = robustness.pgd(model, x, y, eps, nb_iter=steps, seed=rng, loss=loss,
                                 clip_min=clip[0], clip_max=clip[1])
            flips = predict_proba(model, adv).argmax(axis=1) != y
            rejected = np.asarray(input_check(adv), dtype=bool).reshape(-1)
            if rejected.shape != flips.shape:
                raise ValueError(f"input_check must return one bool per record ({len(y)}), got shape {rejected.shape}")
            flipped |= flips & ~clean_wrong
            passed_flip |= flips & ~rejected
    n_rejected, n_flipped = int(np.sum(~passed_flip[flipped])), int(flipped.sum())
    if isinstance(input_check, InputValidator):
        adaptive, _ = adaptive_attack(model, x, y, eps, input_check, steps=steps, restarts=restarts, losses=losses,
                                      seed=seed)
        return int(np.sum(~(adaptive | clean_wrong))), n_rejected, n_flipped, "adaptive"
    return int(np.sum(~passed_flip)), n_rejected, n_flipped, "plain"


# --------------------------------------------------------------------------- input validation

#: The checks of :func:`plausibility_checks`.
CHECKS: dict[str, str] = {
    "range": "a feature outside the range [min, max] of the reference records",
    "negative": "a negative value (every WDBC feature is a length, area, count or ratio >= 0)",
    "mean above worst": "a 'mean' feature above its 'worst' (the mean of the three largest nuclei)",
    "area vs radius": "area / (π · radius²) of the mean or worst nucleus outside the reference records' range",
}


def plausibility_checks(X_original: Any, feature_names: Sequence[str], reference: Any) -> dict[str, np.ndarray]:
    """Input validation for WDBC-style records in **original units**: for each check of
    :data:`CHECKS`, a boolean array, True where a record violates it.

    ``reference`` are real records (original units) that define the ranges, e.g. all
    patients of the data set. Checks whose features are absent from ``feature_names`` are
    skipped (all False). A record that fails any check cannot come from a real aspirate
    (or was mistyped): rejecting it is a cheap defence against edits that ignore the
    relations between features, and no defence against edits that respect them.
    """
    X = validation.finite_array("X_original", X_original)
    ref = validation.finite_array("reference", reference)
    names = list(feature_names)
    if X.ndim != 2 or X.shape[1] != len(names):
        raise ValueError(f"X_original must have shape (n, {len(names)}) (one column per feature name), got {X.shape}")
    if ref.ndim != 2 or ref.shape[1] != len(names) or len(ref) == 0:
        raise ValueError(f"reference must have shape (m, {len(names)}) with m >= 1, got {ref.shape}")
    none = np.zeros(len(X), dtype=bool)
    tol = 1e-5 * (ref.std(axis=0) + 1e-12)  # float32 round trips through standardization move values slightly
    out = {"range": np.any((X < ref.min(axis=0) - tol) | (X > ref.max(axis=0) + tol), axis=1),
           "negative": np.any(X < -tol, axis=1)}
    above = none.copy()
    for j, name in enumerate(names):
        if name.startswith("mean ") and "worst " + name[5:] in names:
            k = names.index("worst " + name[5:])
            above |= X[:, j] > X[:, k] + tol[k]
    out["mean above worst"] = above
    ratio_bad = none.copy()
    for prefix in ("mean", "worst"):
        if f"{prefix} area" in names and f"{prefix} radius" in names:
            a, r = names.index(f"{prefix} area"), names.index(f"{prefix} radius")

            def ratio(M: np.ndarray) -> np.ndarray:
                with np.errstate(divide="ignore", invalid="ignore"):
                    return M[:, a] / (math.pi * M[:, r] ** 2)

            lo, hi = np.nanmin(ratio(ref)), np.nanmax(ratio(ref))
            q = ratio(X)
            ratio_bad |= ~((q >= lo * (1 - 1e-5)) & (q <= hi * (1 + 1e-5)))  # nan (radius 0) is a violation
    out["area vs radius"] = ratio_bad
    return out


def implausible(X_original: Any, feature_names: Sequence[str], reference: Any,
                checks: Sequence[str] | None = None) -> np.ndarray:
    """True where a record fails any of ``checks`` (default: all of :data:`CHECKS`)."""
    results = plausibility_checks(X_original, feature_names, reference)
    chosen = list(CHECKS) if checks is None else list(checks)
    unknown = [c for c in chosen if c not in CHECKS]
    if unknown or not chosen:
        raise ValueError(f"checks must be a non-empty subset of {tuple(CHECKS)}, got {checks!r}")
    return np.any([results[c] for c in chosen], axis=0)


@dataclass(frozen=True, eq=False)
class InputValidator:
    """The checks of :func:`implausible` as an ``input_check`` for :func:`audit`: calling it
    on records in the model's units (``split``'s standardization) returns True where they
    are rejected. :meth:`project` moves records onto the checks, which is what an attacker
    who knows them does (:func:`adaptive_attack`); :func:`audit` uses it, so validated
    robustness is measured against that adaptive attacker. Build one with
    :func:`input_validator`."""

    split: Any
    reference: np.ndarray
    checks: tuple[str, ...]

    def __call__(self, X: np.ndarray) -> np.ndarray:
        names = tuple(self.split.feature_names)
        return implausible(self.split.to_original_units(np.asarray(X, dtype=float)), names, self.reference,
                           self.checks)

    def project(self, X: np.ndarray, anchor: np.ndarray | None = None, radius: float | None = None,
                rounds: int = 4) -> np.ndarray:
        """Records (model units) moved onto the checks by alternating simple projections
        in original units: into the reference range (and >= 0), a "mean" feature above
        its "worst" set with it to their midpoint, an area clipped to the reference range
        of area / (π · radius²); with ``anchor`` and ``radius``, back into the L∞ ball of
        ``radius`` around ``anchor`` (model units) after every round, the ball last. The
        result is not guaranteed to pass (the sets are intersected approximately): callers
        check it with the validator itself."""
        names = list(self.split.feature_names)
        ref = self.reference
        lo, hi = ref.min(axis=0), ref.max(axis=0)
        Z = np.asarray(X, dtype=np.float64)
        if anchor is not None:
            anchor = np.asarray(anchor, dtype=np.float64)
            radius = validation.non_negative("radius", radius)
        pairs = [(j, names.index("worst " + n[5:])) for j, n in enumerate(names)
                 if n.startswith("mean ") and "worst " + n[5:] in names]
        ratios = []
        for prefix in ("mean", "worst"):
            if f"{prefix} area" in names and f"{prefix} radius" in names:
                a, r = names.index(f"{prefix} area"), names.index(f"{prefix} radius")
                with np.errstate(divide="ignore", invalid="ignore"):
                    q = ref[:, a] / (math.pi * ref[:, r] ** 2)
                ratios.append((a, r, float(np.nanmin(q)), float(np.nanmax(q))))
        for _ in range(validation.positive_int("rounds", rounds)):
            O = self.split.to_original_units(Z)
            if "range" in self.checks:
                O = np.clip(O, lo, hi)
            if "negative" in self.checks:
                O = np.maximum(O, 0.0)
            if "mean above worst" in self.checks:
                for j, k in pairs:
                    mid = (O[:, j] + O[:, k]) / 2
                    bad = O[:, j] > O[:, k]
                    O[bad, j], O[bad, k] = mid[bad], mid[bad]
            if "area vs radius" in self.checks:
                for a, r, q_lo, q_hi in ratios:
                    base = math.pi * O[:, r] ** 2
                    O[:, a] = np.clip(O[:, a], q_lo * base * (1 + 1e-7), q_hi * base * (1 - 1e-7))
            Z = np.asarray(self.split.to_standardized(O), dtype=np.float64)
            if anchor is not None:
                Z = np.clip(Z, anchor - radius, anchor + radius)
        return Z.astype(np.float32)


def input_validator(split: Any, reference: Any, checks: Sequence[str] | None = None) -> InputValidator:
    """An ``input_check`` for :func:`audit` (an :class:`InputValidator`): takes records in the
    model's units (``split``'s standardization), returns True where :func:`implausible`
    rejects them in original units against the real ``reference`` records."""
    if not hasattr(split, "to_original_units") or not hasattr(split, "feature_names"):
        raise ValueError("split must be a helpers.data.Split")
    names = tuple(split.feature_names)
    reference = validation.finite_array("reference", reference)
    implausible(reference[:1], names, reference, checks)  # validate arguments now
    return InputValidator(split, reference, tuple(CHECKS) if checks is None else tuple(checks))


def adaptive_attack(model: Any, x: Any, y: Any, eps: float, validator: InputValidator, *, steps: int = 100,
                    restarts: int = 3, losses: Sequence[str] = ("ce", "margin"), seed: int = 0,
                    step_size: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """L∞ PGD that knows the input checks (the adaptive attack on a detector; Carlini and
    Wagner, 2017; Tramèr et al., 2020): every step is projected onto the L∞ ball of radius
    ``eps`` around the record **and** onto the checks (:meth:`InputValidator.project`), and
    an iterate counts only if the validator accepts it. Returns ``(flipped, records)``:
    per patient, True when some accepted iterate of some loss and restart is misclassified
    (two-class decision at 0.5), and the first such record (the clean record otherwise).
    Patients misclassified without attack count as flipped when their own record passes.
    ``restarts`` random starts per loss, the first one at the record itself."""
    import tensorflow as tf

    from helpers import robustness

    if not isinstance(validator, InputValidator):
        raise ValueError(f"validator must be an InputValidator (scorecard.input_validator), got "
                         f"{type(validator).__name__}")
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y).reshape(-1).astype(np.int32)
    if len(x) != len(y):
        raise ValueError(f"x and y must have the same length, got {len(x)} and {len(y)}")
    eps = validation.non_negative("eps", eps)
    steps = validation.positive_int("steps", steps)
    restarts = validation.positive_int("restarts", restarts)
    names = _attack_losses(losses, robustness.LOSSES, "losses")
    alpha = robustness.default_step_size(eps, steps) if step_size is None else validation.positive("step_size", step_size)
    fn = robustness.logits_fn(model)
    rng = np.random.default_rng(validation.positive_int("seed", seed, minimum=0))
    y_t = tf.constant(y)

    def stepper(loss_fn: Callable) -> Callable:
        @tf.function(reduce_retracing=True)
        def step(z):
            with tf.GradientTape() as tape:
                tape.watch(z)
                logits = fn(z)
                value = tf.reduce_sum(loss_fn(y_t, logits))
            return tf.argmax(logits, axis=-1, output_type=tf.int32), tape.gradient(value, z)
        return step

    steppers = {loss: stepper({"ce": robustness.cross_entropy_loss, "margin": robustness.margin_loss}[loss])
                for loss in names}
    predicted, _ = steppers[names[0]](tf.constant(x))
    flipped = (np.asarray(predicted) != y) & ~np.asarray(validator(x), dtype=bool)
    records = x.copy()
    for loss in names:
        for restart in range(restarts):
            start = x if restart == 0 else x + rng.uniform(-eps, eps, size=x.shape).astype(np.float32)
            adv = validator.project(start, x, eps)
            for _ in range(steps + 1):
                predicted, grad = steppers[loss](tf.constant(adv))
                hit = (np.asarray(predicted) != y) & ~np.asarray(validator(adv), dtype=bool) & ~flipped
                records[hit], flipped = adv[hit], flipped | hit
                if flipped.all():
                    return flipped, records
                adv = validator.project(adv + alpha * np.sign(np.asarray(grad)), x, eps)
    return flipped, records


# --------------------------------------------------------------------------- presenting rows

def _cell(value: Any, fmt: str) -> str:
    if fmt == "s":
        return str(value)
    value = float(value)
    if fmt == "eps":
        return "∞ (none)" if math.isinf(value) else f"{value:.1f}"
    if fmt == "time":
        return "n/a" if math.isnan(value) else f"{value:.1f} s"
    return "n/a" if math.isnan(value) else format(value, fmt)


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str, str]] = TABLE_COLUMNS) -> str:
    """The rows as a fixed-width text table (one line per model).

    ``columns`` are ``(key, header, format)`` with format ``"s"``, a float format such as
    ``".3f"``, ``"eps"`` (∞ for none) or ``"time"`` (``"<x> s"``). The last column is not
    padded, so a varying last column (the training time) does not shift the others.
    """
    rows = list(rows)
    if not rows:
        raise ValueError("rows must contain at least one audit row")
    for key, _, _ in columns:
        for row in rows:
            if key not in row:
                raise ValueError(f"columns must be keys of every row; {key!r} is missing from {row.get('model')!r}")
    cells = [[header for _, header, _ in columns]] + [[_cell(r[k], f) for k, _, f in columns] for r in rows]
    widths = [max(len(line[j]) for line in cells) for j in range(len(columns))]
    lines = []
    for i, line in enumerate(cells):
        parts = [line[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(line[1:-1], widths[1:-1])] + [line[-1]]
        lines.append("  ".join(parts))
        if i == 0:
            lines.append("-" * (sum(widths) + 2 * (len(widths) - 1)))
    return "\n".join(lines)


def plot_tradeoffs(rows: Sequence[dict[str, Any]], ax: Any = None) -> Any:
    """Two panels: clinical AUC (with its interval) against the privacy guarantee ε, and
    clean against robust accuracy. One marker per model (models with the same ε are
    spread slightly sideways); the legend sits right of the panels. Returns the two axes."""
    import matplotlib.pyplot as plt

    from helpers.env import COLORS

    rows = list(rows)
    if not rows:
        raise ValueError("rows must contain at least one audit row")
    if ax is None:
        _, ax = plt.subplots(1, 2, figsize=(10.0, 3.4))
    finite = [r["epsilon"] for r in rows if math.isfinite(r["epsilon"])]
    inf_at = 2 * max(finite) if finite else 1.0
    colors = [c for name, c in COLORS.items() if name != "yellow"]  # yellow markers are hard to see
    markers = "osD^vP*X"
    seen: dict[float, int] = {}
    for i, r in enumerate(rows):
        eps = r["epsilon"] if math.isfinite(r["epsilon"]) else inf_at
        shift = seen.get(round(eps, 6), 0)
        seen[round(eps, 6)] = shift + 1
        style = dict(marker=markers[i % len(markers)], color=colors[i % len(colors)], linestyle="none",
                     markersize=7, label=r["model"])
        ax[0].errorbar(eps * 1.07 ** shift, r["auc"], yerr=[[r["auc"] - r["auc_low"]], [r["auc_high"] - r["auc"]]],
                       capsize=3, **style)
        ax[1].plot(r["robust_accuracy"], r["accuracy"], **style)
    ax[0].set_xscale("log")
    ticks = sorted(set(round(e, 6) for e in finite)) + [inf_at]
    ax[0].set_xticks(ticks, [f"{t:.2g}" for t in ticks[:-1]] + ["∞"])
    ax[0].minorticks_off()
    ax[0].set(xlabel="accountant's ε (smaller = more private)", ylabel="test ROC AUC (95 % CI)",
              title="Privacy vs diagnostic quality")
    ax[1].set(xlabel=f"robust accuracy (L∞ PGD, radius {rows[0]['robust_eps']:g})", ylabel="clean accuracy",
              title="Robustness vs accuracy")
    ax[1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return ax


# --------------------------------------------------------------------------- deployment decision

#: Decision rules of :func:`decide`.
RULES: dict[str, str] = {
    "point": "the measured value must meet the requirement",
    "confirmed": "the whole 95 % interval must meet the requirement (shown at 95 % confidence)",
    "not_refuted": "a model is ruled out only when its whole 95 % interval misses the requirement",
}

#: The three verdicts of :meth:`Requirement.status`.
MEETS, FAILS, UNDECIDED = "meets", "fails", "not distinguishable"


@dataclass(frozen=True)
class Requirement:
    """A deployment requirement on one column: ``minimum <= row[column] <= maximum``.

    If the row holds an interval for the column (``column + "_low"`` and ``"_high"``, as
    :func:`audit` rows do for every measured figure), :meth:`status` compares the whole
    interval; exact columns (``epsilon``) count as their own interval."""

    column: str
    minimum: float = -math.inf
    maximum: float = math.inf
    why: str = ""

    def _value(self, row: dict[str, Any]) -> float:
        if self.column not in row:
            raise ValueError(f"column must be a key of the audit rows, got {self.column!r}")
        return float(row[self.column])

    def bounds(self, row: dict[str, Any]) -> tuple[float, float]:
        """The 95 % interval of the column in ``row`` (the value twice if it has none)."""
        value = self._value(row)
        low, high = row.get(self.column + "_low"), row.get(self.column + "_high")
        if low is None or high is None or math.isnan(float(low)) or math.isnan(float(high)):
            return value, value
        return float(low), float(high)

    def met(self, row: dict[str, Any]) -> bool:
        """Does the measured value meet the requirement?"""
        value = self._value(row)
        return self.minimum <= value <= self.maximum

    def status(self, row: dict[str, Any]) -> str:
        """``"meets"`` if the whole interval meets the requirement, ``"fails"`` if the whole
        interval misses it, else ``"not distinguishable"`` (the data cannot tell)."""
        low, high = self.bounds(row)
        if self.minimum <= low and high <= self.maximum:
            return MEETS
        if high < self.minimum or low > self.maximum:
            return FAILS
        return UNDECIDED

    def satisfied(self, row: dict[str, Any], rule: str = "point") -> bool:
        """Is the requirement satisfied under ``rule`` (a key of :data:`RULES`)?"""
        if rule not in RULES:
            raise ValueError(f"rule must be one of {tuple(RULES)}, got {rule!r}")
        if rule == "point":
            return self.met(row)
        status = self.status(row)
        return status == MEETS if rule == "confirmed" else status != FAILS

    def describe(self) -> str:
        if math.isfinite(self.minimum) and math.isfinite(self.maximum):
            return f"{self.minimum:g} <= {self.column} <= {self.maximum:g}"
        return f"{self.column} >= {self.minimum:g}" if math.isfinite(self.minimum) else f"{self.column} <= {self.maximum:g}"

    def measured(self, row: dict[str, Any]) -> str:
        """``"measured 0.78, 95 % CI 0.69 to 0.85"`` (no interval for exact columns)."""
        value, (low, high) = self._value(row), self.bounds(row)
        return f"measured {value:.3g}" if low == high == value else f"measured {value:.3g}, 95 % CI {low:.3g} to {high:.3g}"


@dataclass
class Decision:
    """Which models meet every requirement under ``rule``, and the chosen one (best ``rank_by``)."""

    chosen: str | None
    rank_by: str
    largest: bool = True
    failures: dict[str, list[str]] = field(default_factory=dict)  # model -> failed requirement texts
    rule: str = "point"
    status: dict[str, dict[str, str]] = field(default_factory=dict)  # model -> requirement -> verdict
    resolution: float = 0.0
    tied: list[str] = field(default_factory=list)  # eligible models within ``resolution`` of the best
    tie_break: tuple[str, bool] | None = None
    process_epsilon: float | None = None  # ε of the whole selection process, if the requirements were judged on it

    def eligible(self) -> list[str]:
        """Models that meet every requirement under the rule, in the order of the rows."""
        return [m for m, failed in self.failures.items() if not failed]

    def undecided(self, model: str) -> list[str]:
        """The requirements the data cannot decide for ``model`` (interval on both sides)."""
        return [req for req, verdict in self.status.get(model, {}).items() if verdict == UNDECIDED]

    def text(self) -> str:
        """One line per model (what it fails; under an interval rule also what the data
        cannot decide) and the decision."""
        lines = []
        for model, failed in self.failures.items():
            line = f"{model}: " + ("meets every requirement" if not failed else "fails " + "; ".join(failed))
            if self.rule != "point":
                if not failed:
                    line = f"{model}: " + ("not ruled out" if self.rule == "not_refuted" else "confirmed")
                open_ = [r for r in self.undecided(model) if not any(f.startswith(r + " (") for f in failed)]
                if open_:
                    line += "; not distinguishable: " + "; ".join(open_)
            lines.append(line)
        best = "largest" if self.largest else "smallest"
        among = {"point": "the eligible models", "confirmed": "the models that meet every requirement at 95 %",
                 "not_refuted": "the models not ruled out"}[self.rule]
        if len(self.tied) > 1:
            tie = (f"{', '.join(self.tied)} tie on {self.rank_by} (within {self.resolution:g})")
            if self.chosen:
                column, larger = self.tie_break  # type: ignore[misc]
                lines.append(f"Deploy: {self.chosen} ({tie}; tie broken by the {'largest' if larger else 'smallest'} "
                             f"{column})")
            else:
                lines.append(f"Deploy: undecided ({tie}" + (f", and on {self.tie_break[0]}" if self.tie_break else "")
                             + ": the data cannot rank them)")
            return "\n".join(lines)
        lines.append(f"Deploy: {self.chosen} ({best} {self.rank_by} among {among})" if self.chosen
                     else "Deploy: none of the models meets every requirement")
        return "\n".join(lines)


def decide(rows: Sequence[dict[str, Any]], requirements: Iterable[Requirement], rank_by: str = "auc",
           largest: bool = True, rule: str = "point", *, resolution: float = 0.0,
           tie_break: tuple[str, bool] | None = None, min_class_rate: float | None = None,
           process_epsilon: float | None = None, evaluated_on: str | None = None) -> Decision:
    """Check every row against ``requirements`` under ``rule``; among the rows that
    satisfy all of them, choose the one with the largest ``rank_by`` (``largest=False``:
    the smallest, e.g. ``rank_by="epsilon"`` for the strongest privacy guarantee; ties:
    the first row).

    ``rule`` (:data:`RULES`): ``"point"`` compares the measured value; ``"confirmed"``
    requires the whole 95 % interval to meet each requirement (the conservative reading:
    shown, not just measured); ``"not_refuted"`` rules a model out only when the whole
    interval misses a requirement. Whatever the rule, :attr:`Decision.status` holds every
    requirement's verdict (meets, fails, not distinguishable), so "not distinguishable" is
    reported as such. Failed requirements are reported with the measured value (and its
    interval under the interval rules), e.g. ``"epsilon <= 8 (measured inf)"``.

    ``resolution`` (>= 0, in units of ``rank_by``): eligible models whose ``rank_by`` lies
    within ``resolution`` of the best one are a **tie** (:attr:`Decision.tied`), not
    ranked by digits below the resolution or by row order. A tie is broken only by the
    explicit ``tie_break = (column, largest)`` (the tied model with the largest, or
    smallest, value of that column; a second tie within ``resolution`` of that column's
    best leaves it undecided); without ``tie_break``, or if it does not separate them,
    :attr:`Decision.chosen` is ``None``. The default ``resolution=0`` keeps the historical
    behaviour (exact ties: the first row).

    ``min_class_rate`` (in [0, 1], default off): refuse degenerate models. A row whose
    whole 95 % interval of sensitivity or of specificity lies below ``min_class_rate``
    (a model that calls (almost) every patient one class at its operating point, e.g. a
    constant classifier) is ruled out with ``"degenerate: ..."``, whatever the rule.

    ``process_epsilon`` (> 0 or inf, default off): judge privacy on the **process** that
    produces the deployed model, not on one run. Choosing among several DP runs on the
    same patients by their results releases a function of all of them, so a training
    patient is protected by their composition (e.g. an RDP accountant over every run that
    was tried). With ``process_epsilon`` given, every requirement on the ``"epsilon"``
    column is checked against ``max(row["epsilon"], process_epsilon)`` (a model without DP
    stays at inf), and its failure reads ``"... (measured 6.88 for the selection process;
    this run 2)"``. Ranking (``rank_by``) still uses the rows' own values.

    ``evaluated_on`` (``"validation"`` or ``"test"``, default off): the split every row must
    have been evaluated on (the rows' ``evaluated_on`` key), checked before anything else. A
    selection should pass ``"validation"``: choosing among test-evaluated rows spends the
    test set."""
    rows, requirements = list(rows), list(requirements)
    if not rows:
        raise ValueError("rows must contain at least one audit row")
    if evaluated_on is not None:
        if evaluated_on not in ("validation", "test"):
            raise ValueError(f"evaluated_on must be 'validation', 'test' or None, got {evaluated_on!r}")
        other = [r.get("model", "?") for r in rows if r.get("evaluated_on") != evaluated_on]
        if other:
            raise ValueError(f"evaluated_on={evaluated_on!r}: rows {other} were evaluated on another split (or do "
                             f"not say which): choose on validation rows, report on test rows")
    if rank_by not in rows[0]:
        raise ValueError(f"rank_by must be a key of the audit rows, got {rank_by!r}")
    if rule not in RULES:
        raise ValueError(f"rule must be one of {tuple(RULES)}, got {rule!r}")
    resolution = validation.non_negative("resolution", resolution)
    if tie_break is not None:
        if (not isinstance(tie_break, tuple) or len(tie_break) != 2 or tie_break[0] not in rows[0]
                or not isinstance(tie_break[1], bool)):
            raise ValueError(f"tie_break must be (column, largest) with a key of the audit rows and a bool, "
                             f"got {tie_break!r}")
    if min_class_rate is not None and not 0.0 <= float(min_class_rate) <= 1.0:
        raise ValueError(f"min_class_rate must be in [0, 1] or None, got {min_class_rate!r}")
    if process_epsilon is not None:
        process_epsilon = float(process_epsilon)
        if math.isnan(process_epsilon) or not process_epsilon > 0:
            raise ValueError(f"process_epsilon must be a number > 0 or inf (or None), got {process_epsilon!r}")
    failures: dict[str, list[str]] = {}
    status: dict[str, dict[str, str]] = {}
    for row in rows:
        judged = row
        if process_epsilon is not None and "epsilon" in row:
            judged = dict(row, epsilon=max(float(row["epsilon"]), process_epsilon))

        def failure(req: Requirement) -> str:
            if process_epsilon is not None and req.column == "epsilon":
                return (f"{req.describe()} (measured {float(judged['epsilon']):.3g} for the selection process; "
                        f"this run {float(row['epsilon']):.3g})")
            return (f"{req.describe()} (measured {float(row[req.column]):.3g})" if rule == "point"
                    else f"{req.describe()} ({req.measured(row)})")

        status[row["model"]] = {req.describe(): req.status(judged) for req in requirements}
        failures[row["model"]] = [failure(req) for req in requirements if not req.satisfied(judged, rule)]
        if min_class_rate is not None:
            for column in ("sensitivity", "specificity"):
                if column not in row:
                    raise ValueError(f"min_class_rate needs a {column!r} column in every row")
                high = float(row.get(column + "_high", row[column]))
                if high < min_class_rate:
                    failures[row["model"]].append(f"degenerate: {column} {float(row[column]):.3g} (95 % CI up to "
                                                  f"{high:.3g}) below {float(min_class_rate):g} at the operating point")
    eligible = [r for r in rows if not failures[r["model"]]]
    sign = 1.0 if largest else -1.0
    if not eligible:
        return Decision(None, rank_by, bool(largest), failures, rule, status, resolution, [], tie_break,
                        process_epsilon)
    best = max(sign * float(r[rank_by]) for r in eligible)
    if resolution == 0:
        chosen = max(eligible, key=lambda r: sign * float(r[rank_by]))["model"]
        return Decision(chosen, rank_by, bool(largest), failures, rule, status, resolution, [], tie_break,
                        process_epsilon)
    tied = [r for r in eligible if best - sign * float(r[rank_by]) <= resolution]
    chosen = tied[0]["model"] if len(tied) == 1 else None
    if len(tied) > 1 and tie_break is not None:
        column, larger = tie_break
        s2 = 1.0 if larger else -1.0
        best2 = max(s2 * float(r[column]) for r in tied)
        winners = [r for r in tied if best2 - s2 * float(r[column]) <= resolution]
        chosen = winners[0]["model"] if len(winners) == 1 else None
    return Decision(chosen, rank_by, bool(largest), failures, rule, status, resolution,
                    [r["model"] for r in tied], tie_break, process_epsilon)


# --------------------------------------------------------------------------- model card

_LOSS_NAMES = {"ce": "cross-entropy", "margin": "logit margin"}


def _losses_text(losses: str) -> str:
    names = [_LOSS_NAMES.get(n, n) for n in str(losses).split("+") if n]
    return ("each with the " + " and the ".join(names) + " loss") if names else "default loss"


def _ci(row: dict[str, Any], key: str) -> str:
    return f"{row[key]:.3f} (95 % CI {row[key + '_low']:.3f} to {row[key + '_high']:.3f})"


def model_card(row: dict[str, Any], *, intended_use: str, data: str, limitations: Sequence[str],
               out_of_scope: str = "", input_units: str = "standard deviations of the training data",
               neighbours: str = "add or remove one patient's record", training: str = "", details: str = "",
               factors: str = "", selection: str = "", privacy_scope: str = "",
               ethical_considerations: str = "", recommendations: Sequence[str] = (),
               process_epsilon: float | None = None, process_runs: int | None = None,
               test_use: str = "reported once after the model was chosen") -> str:
    """A model card (Mitchell et al., 2019) in Markdown, every number read from ``row``
    (an :func:`audit` row on the **test** patients: a row with ``evaluated_on="validation"``
    raises ``ValueError``, validation rows select, test rows report). The prose arguments
    describe what numbers cannot, in the card's sections: ``details`` (version, date,
    owner), ``intended_use`` and ``out_of_scope``, ``factors`` (groups and conditions the
    performance may depend on), ``data`` (training and evaluation data), ``training``,
    ``selection`` (the requirements and how the decision was taken), ``privacy_scope``
    (what the DP guarantee covers and what it does not), ``ethical_considerations``,
    ``limitations`` (caveats) and ``recommendations``. Only ``intended_use``, ``data`` and
    ``limitations`` are required.

    ``process_epsilon`` (with ``process_runs``, the number of DP runs composed): the ε of the
    whole process that produced the model (every run tried on the same patients and a choice
    by their results). When given, the privacy headline is the process's (ε, δ) and the
    chosen run's own ε is stated as what it is: a guarantee only if no other run had been
    tried. ``test_use`` says how the test patients were used (default: "reported once after
    the model was chosen"; say so when a test split was used by an earlier decision)."""
    missing = [k for k in COLUMNS if k not in row]
    if missing:
        raise ValueError(f"row must be an audit() row; it lacks {missing}")
    if row["evaluated_on"] != "test":
        raise ValueError(f"row must be evaluated on the test patients (evaluated_on='test'), got "
                         f"{row['evaluated_on']!r}: a card reports the chosen model once on held-out data")
    if not intended_use or not data:
        raise ValueError("intended_use and data must describe the model's use and its training data")
    target = ("" if math.isnan(row["target_sensitivity"])
              else f", chosen on validation patients for a sensitivity of at least {row['target_sensitivity']:.2f}")
    if math.isinf(row["epsilon"]):
        guarantee = "**None.** The model was trained without differential privacy: no formal bound on what it reveals about a training patient."
    elif process_epsilon is not None:
        runs = "" if process_runs is None else f"{validation.positive_int('process_runs', process_runs)} DP runs and "
        guarantee = (f"**(ε = {float(process_epsilon):.2f}, δ = {row['delta']:g})-differential privacy for the "
                     f"process that produced this model** ({runs}a choice among them by their results, on the same "
                     f"patients), for neighbouring datasets that differ by one patient ({neighbours}), from the RDP "
                     f"accountant. The chosen training run alone is (ε = {row['epsilon']:.2f}, δ = {row['delta']:g})"
                     f"-DP, a guarantee only had no other run been tried.")
    else:
        guarantee = (f"Trained with DP-SGD: **(ε = {row['epsilon']:.2f}, δ = {row['delta']:g})-differential privacy** "
                     f"for neighbouring datasets that differ by one patient ({neighbours}), from the RDP accountant.")
    lines = [f"## Model card: {row['model']}", ""]
    if details:
        lines += ["**Model details.** " + details, ""]
    lines += ["**Intended use.** " + intended_use]
    if out_of_scope:
        lines += ["", "**Out of scope.** " + out_of_scope]
    if factors:
        lines += ["", "**Factors.** " + factors]
    lines += ["", "**Data.** " + data]
    if training:
        lines += ["", "**Training.** " + training]
    if selection:
        lines += ["", "**Requirements and decision.** " + selection]
    rows_ = [("accuracy", "accuracy"), ("ROC AUC", "auc"), ("sensitivity (malignant found)", "sensitivity"),
             ("specificity (benign cleared)", "specificity")]
    if not math.isnan(row["ppv"]):
        rows_.append(("PPV (share malignant among those called malignant; at this cohort's prevalence)", "ppv"))
    if not math.isnan(row["npv"]):
        rows_.append(("NPV (share benign among those called benign)", "npv"))
    lines += [
        "",
        f"**Metrics** on {row['n_test']} held-out test patients, {test_use}, "
        f"operating point: called malignant when the model's score (its sigmoid output, a ranking score, not a "
        f"calibrated probability) is ≥ {row['threshold']:.3f}{target}:",
        "",
        "| metric | value |",
        "|---|---|",
    ] + [f"| {label} | {_ci(row, key)} |" for label, key in rows_]
    lines += [
        "",
        "**Privacy guarantee.** " + guarantee
        + (" " + privacy_scope if privacy_scope else "")
        + f" Membership-inference audit ({row['n_members']} training vs {row['n_members']} test patients, "
          f"{row['mia_attack']} attack): AUC {_ci(row, 'mia_auc')}, TPR {row['mia_tpr_at_5pct_fpr']:.3f} at 5 % FPR, "
          f"empirical ε ≥ {row['empirical_epsilon']:.2f} (δ = {row['delta']:g}), a statistic of this model's "
          f"measured leakage, not a proof about the training algorithm; these patient counts could show at most "
          f"{row['empirical_epsilon_ceiling']:.2f}"
        + (", so this value is no evidence either way." if row["empirical_epsilon"] <= 1e-9
           else ", so a small value is no evidence of privacy."),
        "",
        f"**Robustness.** Accuracy {_ci(row, 'robust_accuracy')} on {row['n_robust']} test patients"
        + ("" if row["robust_threshold"] == 0.5 else
           f", called at the operating point {row['robust_threshold']:.3f}," if math.isfinite(row["robust_threshold"])
           else ", each called at its own fold's operating point,")
        + f" under an L∞ PGD "
        f"attack of radius {row['robust_eps']:g} ({input_units}), {row['attack_steps']} steps, "
        f"{row['attack_restarts']} random start(s), {_losses_text(row['attack_losses'])} (a patient counts as robust "
        f"only if no loss and no start flips it); the attacker knows the weights (white box).",
    ]
    if not math.isnan(row.get("validated_robust_accuracy", math.nan)):
        rejected = row["attacks_rejected"]
        adaptive = row.get("validated_attack") == "adaptive"
        lines[-1] += (f" With input validation (range and consistency checks of each record) in front of the model, "
                      f"{_ci(row, 'validated_robust_accuracy')} of them are not flipped by any attack record that "
                      f"passes the checks, against "
                      + ("an attacker who knows the checks (PGD projected onto them at every step)."
                         if adaptive else "PGD that ignores the checks: an upper bound, not a defence.")
                      + (f" As a data-quality filter, the checks reject every flipping record of plain PGD for "
                         f"{rejected:.2f} of the patients it flips." if not math.isnan(rejected) else ""))
    if not math.isnan(row["robust_sensitivity"]):
        lines[-1] += (f" What the attacker wants, a malignant tumour read as benign: at the operating point, "
                      f"robust sensitivity {_ci(row, 'robust_sensitivity')} on the {row['n_robust_malignant']} "
                      f"malignant patients attacked.")
    lines += [
        "",
        f"**Explanations.** LIME explanations of {row['n_explained']} test patients have a mean top-{row['lime_features']} "
        f"Jaccard stability of {row['explanation_stability']:.2f} (95 % bootstrap interval over the patients "
        f"{row['explanation_stability_low']:.2f} to {row['explanation_stability_high']:.2f}) across seeds "
        f"(1 = identical feature sets).",
    ]
    if ethical_considerations:
        lines += ["", "**Ethical considerations.** " + ethical_considerations]
    lines += ["", "**Caveats and known limitations.**", ""]
    lines += [f"- {item}" for item in limitations]
    if recommendations:
        lines += ["", "**Recommendations.**", ""] + [f"- {item}" for item in recommendations]
    return "\n".join(lines)
