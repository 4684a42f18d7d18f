"""Exercises of notebook 04 (medical case study): keys ``case_study.*``."""
from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from helpers.exercises.core import Finding, exercise

# --------------------------------------------------------------------------- operating point


def _operating_point_reference(y_val, p_val, target):
    """Largest threshold whose sensitivity on the validation patients is >= target."""
    import math

    import numpy as np

    malignant = np.sort(np.asarray(p_val)[np.asarray(y_val) == 1])[::-1]  # highest first
    needed = math.ceil(target * len(malignant) - 1e-9)                   # tumours we must catch
    return float(malignant[max(needed, 1) - 1])                           # the needed-th highest score


def _fixed_half(y_val, p_val, target):
    return 0.5


def _smallest_score(y_val, p_val, target):
    return float(np.min(p_val))


def _specificity_quantile(y_val, p_val, target):
    benign = np.asarray(p_val)[np.asarray(y_val) == 0]
    return float(np.quantile(benign, target))


def _cases() -> list[tuple[np.ndarray, np.ndarray, float]]:
    rng = np.random.default_rng(4)
    cases = []
    for n, target in ((60, 0.95), (200, 0.9), (41, 0.99), (25, 0.8)):
        y = (rng.uniform(size=n) < 0.4).astype(int)
        y[:2] = (0, 1)
        p = 1 / (1 + np.exp(-(rng.normal(size=n) * 1.5 + 2.2 * (y - 0.5))))
        cases.append((y, np.round(p, 4), target))
    return cases


def _sens_spec(y: np.ndarray, p: np.ndarray, t: float) -> tuple[float, float]:
    called = p >= t
    return float(np.mean(called[y == 1])), float(np.mean(~called[y == 0]))


@exercise(
    "case_study.operating_point", "choose the operating point for a required sensitivity",
    hint="Call a patient malignant when P(malignant) >= threshold. Sort the malignant patients' scores "
         "from high to low: to catch a fraction `target` of them you must go down to the "
         "ceil(target * n_malignant)-th score, and no lower (every lower threshold costs specificity).",
    reference=_operating_point_reference,
    wrong_answers=[(_fixed_half, "does not reach"), (_smallest_score, "largest"),
                   (_specificity_quantile, "does not reach")],
)
def _check_operating_point(answer: Any):
    if not callable(answer):
        yield Finding(False, "answer must be a function operating_point(y_val, p_val, target) returning a threshold")
        return
    for i, (y, p, target) in enumerate(_cases(), 1):
        got = float(answer(y.copy(), p.copy(), target))
        best = _operating_point_reference(y, p, target)
        sens, spec = _sens_spec(y, p, got)
        best_sens, best_spec = _sens_spec(y, p, best)
        if sens < target:
            yield Finding(False, f"case {i}: threshold {got:.4f} gives sensitivity {sens:.3f}, which does not reach "
                                 f"the required {target:.2f}: {round((target - sens) * (y == 1).sum())} more "
                                 f"malignant tumour(s) would be missed")
        elif got < best - 1e-12:
            yield Finding(False, f"case {i}: threshold {got:.4f} reaches sensitivity {sens:.3f} but is not the "
                                 f"largest that does ({best:.4f}): specificity {spec:.3f} instead of "
                                 f"{best_spec:.3f}, so more benign patients are sent to biopsy")
        else:
            yield Finding(True, f"case {i}: threshold {got:.4f} gives sensitivity {sens:.3f} >= {target:.2f} "
                                f"with the best possible specificity {spec:.3f}")


# --------------------------------------------------------------------------- deployment decision

#: The requirements of exercise ``case_study.deployment``: name -> (column, minimum, maximum).
REQUIREMENTS: dict[str, tuple[str, float, float]] = {
    "sensitivity": ("sensitivity", 0.90, math.inf),
    "privacy": ("epsilon", 0.0, 4.0),
    "robustness": ("robust_accuracy", 0.70, 1.0),
}

#: A *hypothetical* scorecard of another hospital (illustrative numbers for the exercise).
HOSPITAL_B: list[dict[str, Any]] = [
    {"model": "baseline", "auc": 0.991, "sensitivity": 0.94, "epsilon": math.inf, "robust_accuracy": 0.62},
    {"model": "DP ε=1", "auc": 0.930, "sensitivity": 0.81, "epsilon": 1.0, "robust_accuracy": 0.40},
    {"model": "DP ε=4", "auc": 0.985, "sensitivity": 0.92, "epsilon": 4.0, "robust_accuracy": 0.55},
    {"model": "adversarial", "auc": 0.990, "sensitivity": 0.93, "epsilon": math.inf, "robust_accuracy": 0.85},
    {"model": "DP ε=4 + adversarial", "auc": 0.978, "sensitivity": 0.91, "epsilon": 4.0, "robust_accuracy": 0.78},
    {"model": "DP ε=8 + adversarial", "auc": 0.986, "sensitivity": 0.93, "epsilon": 8.0, "robust_accuracy": 0.81},
]


def _failed(row: dict[str, Any]) -> list[str]:
    return [name for name, (col, lo, hi) in REQUIREMENTS.items() if not lo <= row[col] <= hi]


def _value(row: dict[str, Any], name: str) -> str:
    col = REQUIREMENTS[name][0]
    value = row[col]
    return f"{col} = {'∞' if math.isinf(value) else format(value, 'g')}"


def _deployment_reference() -> dict[str, str]:
    return {"baseline": "privacy", "DP ε=1": "sensitivity", "DP ε=4": "robustness", "adversarial": "privacy",
            "DP ε=4 + adversarial": "deploy", "DP ε=8 + adversarial": "privacy"}


@exercise(
    "case_study.deployment", "argue a deployment decision from a scorecard",
    hint="Check every model against the three requirements in turn (sensitivity >= 0.90, ε <= 4, robust "
         "accuracy >= 0.70). Exactly one model passes all three: 'deploy' it; for every other model name "
         "one requirement it fails. The best-looking numbers do not matter if a requirement fails.",
    reference=_deployment_reference(),
    wrong_answers=[
        ({**_deployment_reference(), "DP ε=8 + adversarial": "deploy", "DP ε=4 + adversarial": "robustness"},
         "cannot be deployed"),
        ({**_deployment_reference(), "DP ε=1": "privacy"}, "meets the privacy requirement"),
        ("DP ε=4 + adversarial", "a dict"),
    ],
)
def _check_deployment(answer: Any):
    if not isinstance(answer, dict):
        yield Finding(False, "answer must be a dict from every model name to 'deploy' or the requirement it "
                             f"fails ({', '.join(REQUIREMENTS)})")
        return
    for row in HOSPITAL_B:
        model, failed = row["model"], _failed(row)
        given = answer.get(model)
        if given is None or given is Ellipsis:
            yield Finding(False, f"{model}: no answer yet")
            continue
        given = str(given).strip().lower()
        if given == "deploy":
            if failed:
                yield Finding(False, f"{model} cannot be deployed: it fails the {failed[0]} requirement "
                                     f"({_value(row, failed[0])})")
            else:
                yield Finding(True, f"{model} meets all three requirements "
                                    f"({', '.join(_value(row, r) for r in REQUIREMENTS)})")
        elif given not in REQUIREMENTS:
            yield Finding(False, f"{model}: {answer[model]!r} is neither 'deploy' nor one of {tuple(REQUIREMENTS)}")
        elif given in failed:
            yield Finding(True, f"{model} is ruled out by {given} ({_value(row, given)})")
        elif not failed:
            yield Finding(False, f"{model} meets the {given} requirement ({_value(row, given)}), and every other "
                                 f"one: it is the model to deploy")
        else:
            yield Finding(False, f"{model} meets the {given} requirement ({_value(row, given)}); "
                                 f"it fails {failed[0]} ({_value(row, failed[0])})")
    chosen = [m for m, v in answer.items() if str(v).strip().lower() == "deploy"]
    if len(chosen) > 1:
        yield Finding(False, f"deploy exactly one model, not {len(chosen)} ({', '.join(chosen)})")


# --------------------------------------------------------------------------- verdict with uncertainty


def _verdict_reference(found, cancers, required):
    """'meets', 'fails' or 'not distinguishable': where the 95 % Wilson interval lies."""
    from helpers import metrics

    low, high = metrics.wilson_interval(found, cancers)
    if low >= required:
        return "meets"
    if high < required:
        return "fails"
    return "not distinguishable"


def _verdict_point(found, cancers, required):
    return "meets" if found / cancers >= required else "fails"


def _verdict_wald(found, cancers, required):
    p = found / cancers
    half = 1.96 * math.sqrt(p * (1 - p) / cancers)
    return "meets" if p - half >= required else "fails" if p + half < required else "not distinguishable"


#: (cancers found, malignant patients, required sensitivity) of exercise ``case_study.verdict``.
VERDICT_CASES: tuple[tuple[int, int, float], ...] = (
    (49, 53, 0.90), (47, 53, 0.90), (53, 53, 0.90), (40, 53, 0.90), (20, 20, 0.90), (105, 106, 0.90),
    (38, 40, 0.95),
)


@exercise(
    "case_study.verdict", "a verdict that respects uncertainty",
    hint="Compute the 95 % Wilson interval of found / cancers with helpers.metrics.wilson_interval. 'meets' "
         "if its lower end reaches the requirement, 'fails' if its upper end is below it, otherwise 'not "
         "distinguishable'. Do not compare the measured value alone, and do not use the textbook p ± 1.96·SE "
         "interval: it is too narrow at proportions near 1 (and degenerate at 100 %).",
    reference=_verdict_reference,
    wrong_answers=[(_verdict_point, "straddles the requirement"), (_verdict_wald, "collapses to a point")],
)
def _check_verdict(answer: Any):
    if not callable(answer):
        yield Finding(False, "answer must be a function verdict(found, cancers, required) returning 'meets', "
                             "'fails' or 'not distinguishable'")
        return
    from helpers import metrics

    for found, cancers, required in VERDICT_CASES:
        expected = _verdict_reference(found, cancers, required)
        got = answer(found, cancers, required)
        low, high = metrics.wilson_interval(found, cancers)
        where = (f"{found} of {cancers} found: sensitivity {found / cancers:.3f}, 95 % Wilson interval "
                 f"{low:.3f} to {high:.3f}, requirement {required:.2f}")
        if got == expected:
            yield Finding(True, f"{where}: {expected}")
        elif cancers == found:
            yield Finding(False, f"{where}: {got!r} is wrong; at 100 % the textbook interval collapses to a point, "
                                 f"the Wilson interval does not: {expected!r}")
        elif expected == "not distinguishable":
            yield Finding(False, f"{where}: the interval straddles the requirement, so the data cannot tell; the "
                                 f"answer is 'not distinguishable', not {got!r}")
        else:
            yield Finding(False, f"{where}: expected {expected!r}, got {got!r} (use the Wilson interval)")


# --------------------------------------------------------------------------- which DP variants keep the guarantee

#: Variants of "DP-SGD + adversarial training" in exercise ``case_study.dp_variants``: key -> description.
DP_VARIANTS: dict[str, str] = {
    "own_record": "each patient's PGD example is computed from that patient's record and the current weights; "
                  "the clean and adversarial losses are mixed per patient, then clipped",
    "batch_perturbation": "one perturbation is fitted on the whole batch and added to every patient",
    "batch_norm": "the network has a batch-normalisation layer (statistics of the batch in training mode)",
    "clip_clean_only": "the clean gradient is clipped per patient, the adversarial gradient is added unclipped",
    "concatenate": "clean and adversarial examples are concatenated into one batch, each clipped on its own, "
                   "with the noise of plain DP-SGD",
    "best_of_five": "five runs on the same patients, the best on validation is published with the ε of one run",
    "public_seed": "the Gaussian noise is drawn from a fixed seed published with the code",
}

_WHY = {
    "own_record": "each patient still changes exactly one clipped term of the sum",
    "batch_perturbation": "a patient's record changes every other patient's example, so one patient moves many terms",
    "batch_norm": "batch statistics mix patients: one patient changes every other patient's gradient",
    "clip_clean_only": "an unclipped gradient has no bound, so no noise hides it",
    "concatenate": "each patient contributes two clipped terms: the sensitivity doubles while the noise does not",
    "best_of_five": "the published model depends on all five runs: the guarantee is their composition",
    "public_seed": "an attacker who knows the seed can subtract the noise: the guarantee assumes secret randomness",
}


def _dp_variants_reference() -> dict[str, str]:
    return {k: ("keeps" if k == "own_record" else "breaks") for k in DP_VARIANTS}


@exercise(
    "case_study.dp_variants", "which variants of DP + adversarial training keep the ε",
    hint="The accountant's ε needs three things: each patient changes the noisy sum by at most the clipping norm "
         "(one clipped term per patient, computed from that patient alone), the noise is secret, and what is "
         "published is one run (or the composition of all runs it depends on).",
    reference=_dp_variants_reference(),
    wrong_answers=[({k: "keeps" for k in DP_VARIANTS}, "sensitivity doubles"),
                   ({**_dp_variants_reference(), "own_record": "breaks"}, "exactly one clipped term"),
                   ("breaks", "a dict")],
)
def _check_dp_variants(answer: Any):
    if not isinstance(answer, dict):
        yield Finding(False, f"answer must be a dict from each of {tuple(DP_VARIANTS)} to 'keeps' or 'breaks'")
        return
    reference = _dp_variants_reference()
    for key in DP_VARIANTS:
        given = answer.get(key)
        if given is None or given is Ellipsis:
            yield Finding(False, f"{key}: no answer yet")
            continue
        given = str(given).strip().lower()
        if given not in ("keeps", "breaks"):
            yield Finding(False, f"{key}: {answer[key]!r} is neither 'keeps' nor 'breaks'")
        elif given == reference[key]:
            yield Finding(True, f"{key}: {given} the guarantee: {_WHY[key]}")
        else:
            yield Finding(False, f"{key}: it {reference[key]} the guarantee: {_WHY[key]}")


# --------------------------------------------------------------------------- write two statements of a model card


def _card_row() -> dict[str, Any]:
    from helpers import metrics

    found, cancers = 48, 53
    low, high = metrics.wilson_interval(found, cancers)
    return {"model": "DP ε=3 + adversarial", "evaluated_on": "test", "epsilon": 3.0, "delta": 1e-6,
            "neighbours": "add or remove one patient's record", "sensitivity": found / cancers,
            "sensitivity_low": low, "sensitivity_high": high, "n_malignant": cancers,
            "membership_auc": 0.52, "empirical_epsilon": 0.0, "empirical_epsilon_ceiling": 2.95,
            "validation_patients": 106}


#: A *hypothetical* test row of exercise ``case_study.card`` (illustrative numbers; the interval is Wilson's).
CARD_ROW: dict[str, Any] = _card_row()


def _card_reference() -> dict[str, str]:
    r = CARD_ROW
    return {
        "privacy": f"Trained with DP-SGD: (ε = {r['epsilon']:.1f}, δ = {r['delta']:g})-differential privacy for datasets "
                   f"that differ by one patient (add or remove one patient's record). The guarantee does not cover the "
                   f"{r['validation_patients']} validation patients who chose the model and its threshold, nor the "
                   f"selection among several runs, nor what can be inferred about groups of patients. A membership "
                   f"attack measured an empirical ε of {r['empirical_epsilon']:.2f} (at most "
                   f"{r['empirical_epsilon_ceiling']:.2f} could be shown): a lower bound from one weak audit, not "
                   f"evidence of privacy.",
        "performance": f"On the test patients the sensitivity is {r['sensitivity']:.3f} (95 % CI "
                       f"{r['sensitivity_low']:.3f} to {r['sensitivity_high']:.3f}) on {r['n_malignant']} cancers.",
    }


_NUMBER = re.compile(r"[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?")


def _numbers(text: str) -> list[float]:
    return [float(x) for x in _NUMBER.findall(text.replace("−", "-").replace("⁻⁶", "e-6"))]


def _mentions(text: str, value: float, tol: float) -> bool:
    return any(abs(x - value) <= tol for x in _numbers(text))


def _states_delta(text: str, delta: float) -> bool:
    low = text.lower()
    spelled = ("δ" in text or "delta" in low)
    return spelled and (any(abs(x - delta) <= delta * 1e-6 for x in _numbers(text)) or "10^-6" in low or "10⁻⁶" in text)


def _check_privacy_statement(text: str):
    r = CARD_ROW
    low = text.lower()
    if ("ε" in text or "epsilon" in low) and _mentions(text, r["epsilon"], 0.05):
        yield Finding(True, f"privacy: states ε = {r['epsilon']:g}")
    else:
        yield Finding(False, f"privacy: state the accountant's ε (= {r['epsilon']:g}) of the training run")
    if _states_delta(text, r["delta"]):
        yield Finding(True, f"privacy: states δ = {r['delta']:g}")
    else:
        yield Finding(False, f"privacy: no δ (= {r['delta']:g}): an ε alone is not a guarantee for DP-SGD, whose "
                             "guarantee is (ε, δ)")
    if any(w in low for w in ("one patient", "a single patient", "one record", "one person")) and "add" in low \
            and "remov" in low:
        yield Finding(True, "privacy: states the neighbouring relation (add or remove one patient)")
    else:
        yield Finding(False, "privacy: state the neighbouring relation: the guarantee compares datasets that differ "
                             "by adding or removing one patient's record (write 'one patient', 'add', 'remove')")
    if any(w in low for w in ("not cover", "not protect", "no guarantee", "not covered")):
        yield Finding(True, "privacy: says what the guarantee does not cover")
    else:
        yield Finding(False, "privacy: say what the guarantee does not cover (write 'does not cover ...'): e.g. the "
                             "validation patients who chose the model and its threshold, the selection among runs")
    if any(w in low for w in ("agree", "confirm", "consistent with", "matches", "verif")):
        yield Finding(False, f"privacy: an empirical ε of {r['empirical_epsilon']:.2f} is not agreement with the "
                             f"accountant: it is a lower bound from one attack (it could show at most "
                             f"{r['empirical_epsilon_ceiling']:.2f}); a weak attack finds 0.00 even without DP")
    else:
        yield Finding(True, "privacy: does not present the empirical lower bound as a confirmation of ε")


def _check_performance_statement(text: str):
    r = CARD_ROW
    low = text.lower()
    if "sensitivity" in low and _mentions(text, r["sensitivity"], 0.006):
        yield Finding(True, f"performance: states the sensitivity {r['sensitivity']:.3f}")
    else:
        yield Finding(False, f"performance: state the measured sensitivity ({r['sensitivity']:.3f}, write "
                             "'sensitivity')")
    if _mentions(text, r["sensitivity_low"], 0.006) and _mentions(text, r["sensitivity_high"], 0.006):
        yield Finding(True, f"performance: gives the 95 % interval {r['sensitivity_low']:.3f} to "
                            f"{r['sensitivity_high']:.3f}")
    else:
        yield Finding(False, f"performance: give the 95 % interval of the sensitivity ({r['sensitivity_low']:.3f} to "
                             f"{r['sensitivity_high']:.3f}): {r['n_malignant']} cancers cannot pin it down")
    if "test" in low:
        yield Finding(True, "performance: says the figures are on the test patients")
    else:
        yield Finding(False, f"performance: say on which patients it was measured (evaluated_on="
                             f"{r['evaluated_on']!r}: the test patients)")


@exercise(
    "case_study.card", "write the privacy and performance statements of a model card",
    hint="Read CARD_ROW. Privacy: 'Trained with DP-SGD: (ε = ..., δ = ...)-DP for datasets that differ by one "
         "patient (add or remove one patient's record)', then what the guarantee does not cover, and the empirical "
         "ε as a lower bound only. Performance: the test sensitivity with its 95 % interval (…_low to …_high).",
    reference=_card_reference(),
    wrong_answers=[
        ({**_card_reference(), "privacy": f"The model is ε = {CARD_ROW['epsilon']:g} differentially private; the "
                                          "guarantee does not cover the validation patients."}, "no δ"),
        ({**_card_reference(), "privacy": _card_reference()["privacy"] + " The empirical ε of 0.00 agrees with the "
                                                                          "accountant."}, "not agreement"),
        ({**_card_reference(), "performance": f"Sensitivity {CARD_ROW['sensitivity']:.3f} on the test patients."},
         "95 % interval"),
        (_card_reference()["privacy"], "a dict"),
    ],
)
def _check_card(answer: Any):
    if not isinstance(answer, dict):
        yield Finding(False, "answer must be a dict {'privacy': '...', 'performance': '...'} of two strings")
        return
    for key, checker in (("privacy", _check_privacy_statement), ("performance", _check_performance_statement)):
        text = answer.get(key)
        if text is None or text is Ellipsis:
            yield Finding(False, f"{key}: no answer yet")
        elif not isinstance(text, str):
            yield Finding(False, f"{key}: must be a string, got {type(text).__name__}")
        else:
            yield from checker(text)
