"""The audit returns every column in a sensible range; table, decision and model card
are built from the computed numbers."""
import dataclasses
import math

import numpy as np
import pytest

from helpers import scorecard


def small_wdbc_model():
    """A small single-logit MLP trained on 96 WDBC patients: (model, split of 96/60, full data)."""
    import tensorflow as tf

    from helpers import data, models

    tf.keras.utils.set_random_seed(0)
    d = data.load_wdbc()
    small = dataclasses.replace(d, X_train=d.X_train[:96], y_train=d.y_train[:96], X_test=d.X_test[:60],
                                y_test=d.y_test[:60])
    model = models.mlp(30, 1, hidden=(8,), seed=0)
    model.compile(optimizer=tf.keras.optimizers.Adam(0.02), loss=models.loss_for(1))
    model.fit(small.X_train, small.y_train, epochs=20, batch_size=32, verbose=0)
    return model, small, d


@pytest.fixture(scope="module")
def fixture():
    model, small, d = small_wdbc_model()
    val = (d.X_train[96:160], d.y_train[96:160])
    return model, small, val


#: The small audit of the module's fixture row (fast: few steps, few patients, two LIME seeds).
TINY = dict(privacy=scorecard.PrivacyClaim(epsilon=3.0, delta=1e-4), threat=scorecard.ThreatModel(radius=0.3, steps=5),
            explanations=scorecard.ExplanationAudit(n_explained=2, seeds=(0, 1), lime_samples=300),
            evaluation=scorecard.Evaluation(n_robust=30, n_resamples=100, seed=0))


def fast(radius=0.3, steps=5, n_robust=60, threshold=None, **threat):
    """Settings for a quick audit without LIME: (threat, operating point, explanations, evaluation) as keywords."""
    return dict(threat=scorecard.ThreatModel(radius=radius, steps=steps, **threat),
                operating_point=scorecard.OperatingPoint(threshold=threshold),
                explanations=scorecard.ExplanationAudit(n_explained=0),
                evaluation=scorecard.Evaluation(n_robust=n_robust, n_resamples=20))


@pytest.fixture(scope="module")
def row(fixture):
    model, small, (X_val, y_val) = fixture
    return scorecard.audit(model, small, name="tiny", **TINY, train_seconds=1.5, validation=(X_val, y_val))


def test_audit_returns_every_column_in_range(row, fixture):
    from helpers import metrics, models

    model, small, (X_val, y_val) = fixture
    assert set(row) == set(scorecard.COLUMNS)
    assert row["operating_point_set_on"] == "validation"
    for key in ("accuracy", "auc", "sensitivity", "specificity", "mia_auc"):
        assert 0 <= row[f"{key}_low"] <= row[key] <= row[f"{key}_high"] <= 1, key
    assert row["accuracy"] > 0.85 and row["auc"] > 0.9  # WDBC is easy even for a tiny model
    assert 0 <= row["mia_tpr_at_5pct_fpr"] <= 1 and row["empirical_epsilon"] >= 0
    # the empirical ε is a one-model statistic with a ceiling fixed by the member counts (30 vs 30 measured)
    from helpers import privacy_attacks

    assert row["empirical_epsilon_ceiling"] == privacy_attacks.audit_ceiling(60, 60, 1e-4)
    assert row["empirical_epsilon"] <= row["empirical_epsilon_ceiling"]
    assert row["attack_losses"] == "ce+margin"  # the fixed attack of issue 16 by default
    assert row["mia_attack"] in ("loss threshold", "learned")
    assert 0 <= row["robust_accuracy"] <= row["accuracy"] + 0.1
    assert 0 <= row["explanation_stability"] <= 1
    assert row["n_members"] == 60 and row["n_test"] == 60 and row["n_robust"] == 30 and row["n_explained"] == 2
    assert (row["epsilon"], row["delta"], row["train_seconds"], row["target_sensitivity"]) == (3.0, 1e-4, 1.5, 0.95)
    # the operating point is the one chosen on the validation patients
    p_val = models.predict_proba(model, X_val)[:, 1]
    assert row["threshold"] == metrics.threshold_for_sensitivity(y_val, p_val, 0.95)
    p_test = models.predict_proba(model, small.X_test)[:, 1]
    assert row["sensitivity"] == metrics.sensitivity_specificity(small.y_test, p_test, row["threshold"])[0]
    # issue 14: every figure has an interval
    assert row["evaluated_on"] == "test"
    for key in ("robust_accuracy", "robust_sensitivity", "explanation_stability", "ppv", "npv"):
        assert 0 <= row[f"{key}_low"] <= row[key] <= row[f"{key}_high"] <= 1, key
    kept = round(row["robust_accuracy"] * row["n_robust"])
    assert (row["robust_accuracy_low"], row["robust_accuracy_high"]) == metrics.wilson_interval(kept, 30)
    pv = metrics.predictive_values(small.y_test, p_test, row["threshold"])
    assert row["ppv"] == pv["ppv"].value and row["npv"] == pv["npv"].value
    # robust sensitivity: the malignant patients among those attacked, at the operating point
    assert 0 < row["n_robust_malignant"] < row["n_robust"]
    assert row["robust_sensitivity"] <= row["sensitivity"] + 0.25


def test_audit_is_reproducible_and_robustness_drops_with_eps(fixture, row):
    model, small, (X_val, y_val) = fixture
    again = scorecard.audit(model, small, name="tiny", validation=(X_val, y_val), train_seconds=1.5, **TINY)
    assert again == row
    strong = scorecard.audit(model, small, **fast(radius=1.5, n_robust=30, threshold=0.5))
    assert strong["robust_accuracy"] < row["robust_accuracy"]
    assert strong["threshold"] == 0.5 and math.isnan(strong["target_sensitivity"])
    assert math.isinf(strong["epsilon"]) and math.isnan(strong["train_seconds"])
    assert math.isnan(strong["explanation_stability"]) and strong["operating_point_set_on"] == "fixed"
    unset = scorecard.audit(model, small, **fast(n_robust=10))
    assert unset["threshold"] == 0.5 and unset["operating_point_set_on"] == "0.5 (no validation data)"


def test_audit_robustness_is_the_worst_case_over_losses():
    """Issue 16: on a confident model the cross-entropy attack alone saturates; the audit's
    default (cross-entropy and margin, worst case) finds at least as many adversarial
    examples as either loss alone, and strictly more here."""
    model, small, _ = small_wdbc_model()
    last = model.layers[-1]
    kernel, bias = last.get_weights()
    last.set_weights([kernel * 20.0, bias * 20.0])   # same decisions, logits 20 times larger (|z| up to ~550): saturated ce
    common = dict(threshold=0.5, radius=0.5, steps=10, n_robust=60)
    both = scorecard.audit(model, small, **fast(**common))
    ce = scorecard.audit(model, small, **fast(losses="ce", **common))
    margin = scorecard.audit(model, small, **fast(losses=["margin"], **common))
    assert (ce["attack_losses"], margin["attack_losses"], both["attack_losses"]) == ("ce", "margin", "ce+margin")
    assert both["robust_accuracy"] <= min(ce["robust_accuracy"], margin["robust_accuracy"])
    assert both["robust_accuracy"] < ce["robust_accuracy"] - 0.1   # ce alone overstates robustness


def test_at_threshold_moves_the_decision_to_the_operating_point(fixture):
    from helpers import models

    model, small, _ = fixture
    p = models.predict_proba(model, small.X_test)[:, 1]
    for t in (0.05, 0.5, 0.9):
        z = np.asarray(scorecard.at_threshold(model, t)(small.X_test))[:, 0]
        called = z > 0
        clear = np.abs(p - t) > 1e-4  # away from the tie
        assert np.array_equal(called[clear], (p >= t)[clear])


def test_audit_robust_sensitivity_is_measured_at_the_operating_point(fixture):
    """A low threshold calls more tumours malignant, so the attacker needs more to hide
    them: robust sensitivity at a low threshold is at least that at a high one."""
    model, small, _ = fixture
    low = scorecard.audit(model, small, **fast(threshold=0.05))
    high = scorecard.audit(model, small, **fast(threshold=0.95))
    assert low["n_robust_malignant"] == high["n_robust_malignant"] == int(small.y_test.sum())
    assert low["robust_sensitivity"] >= high["robust_sensitivity"] + 0.1
    assert low["robust_accuracy"] == high["robust_accuracy"]  # two-class accuracy at 0.5: the threshold plays no part


def test_audit_on_validation_patients_for_model_selection(fixture, row):
    from helpers import metrics, models

    model, small, (X_val, y_val) = fixture
    sel = scorecard.audit(model, small, name="tiny", validation=(X_val, y_val),
                          **{**fast(n_robust=200), "evaluation": scorecard.Evaluation("validation", 200, 20)})
    assert sel["evaluated_on"] == "validation" and sel["n_test"] == len(y_val) == sel["n_robust"]
    assert sel["threshold"] == row["threshold"]  # same operating point, chosen on validation
    assert sel["sensitivity"] >= 0.95  # met by construction on the patients that chose the threshold
    p_val = models.predict_proba(model, X_val)[:, 1]
    assert sel["auc"] == pytest.approx(metrics.roc_auc(y_val, p_val))
    with pytest.raises(ValueError, match="evaluated on the test patients"):
        scorecard.model_card(dict(row, evaluated_on="validation"), intended_use="a", data="b", limitations=[])
    with pytest.raises(ValueError, match=r"needs validation=\(X_val, y_val\)"):
        scorecard.audit(model, small, evaluation=scorecard.Evaluation(on="validation"))
    with pytest.raises(ValueError, match="Evaluation.on"):
        scorecard.Evaluation(on="train")


def test_audit_refuses_validation_patients_counted_as_members(fixture):
    """Issue 14, item 7: holding validation patients out of training but passing the
    unchanged split would count them as members; the audit refuses."""
    model, small, _ = fixture
    X_val, y_val = small.X_train[-20:], small.y_train[-20:]
    with pytest.raises(ValueError, match="X_val must not be in data.X_train: 20 of its 20 rows"):
        scorecard.audit(model, small, validation=(X_val, y_val))


def test_audit_checks_the_output_layer_first(fixture):
    import tensorflow as tf

    _, small, _ = fixture
    sigmoid = tf.keras.Sequential([tf.keras.Input((30,)), tf.keras.layers.Dense(1, activation="sigmoid")])
    with pytest.raises(ValueError, match="model must return logits"):
        scorecard.audit(sigmoid, small, explanations=scorecard.ExplanationAudit(n_explained=0))


@pytest.mark.parametrize("kwargs, message", [
    ({"validation": np.zeros((2, 30))}, r"validation must be None or a pair \(X_val, y_val\)"),
    ({"validation": (np.zeros((2, 30)),)}, r"validation must be None or a pair"),
    ({"validation": (np.zeros((2, 30)), np.zeros(3))}, "one label per row of X_val"),
    ({"name": ""}, "name"), ({"train_seconds": -1.0}, "train_seconds"),
    ({"privacy": {"epsilon": 3.0}}, r"privacy must be a scorecard.PrivacyClaim\(...\), got dict"),
    ({"threat": scorecard.OperatingPoint()}, "threat must be a scorecard.ThreatModel"),
    ({"operating_point": 0.5}, "operating_point must be a scorecard.OperatingPoint"),
    ({"explanations": None}, "explanations must be a scorecard.ExplanationAudit"),
    ({"evaluation": "validation"}, "evaluation must be a scorecard.Evaluation"),
])
def test_audit_bad_input(fixture, kwargs, message):
    model, small, _ = fixture
    with pytest.raises(ValueError, match=message):
        scorecard.audit(model, small, **kwargs)
    with pytest.raises(ValueError, match="data must be a helpers.data.Split"):
        scorecard.audit(model, (small.X_train, small.y_train))


#: Every settings field with a value outside its allowed range (the old audit keywords of issue 14-28 included).
BAD_SETTINGS = [
    (scorecard.PrivacyClaim, "epsilon", -1), (scorecard.PrivacyClaim, "epsilon", 0.0),
    (scorecard.PrivacyClaim, "epsilon", math.nan), (scorecard.PrivacyClaim, "epsilon", -math.inf),
    (scorecard.PrivacyClaim, "epsilon", "big"), (scorecard.PrivacyClaim, "delta", 0),
    (scorecard.PrivacyClaim, "delta", 1.0), (scorecard.PrivacyClaim, "n_members", 0),
    (scorecard.PrivacyClaim, "n_members", 2.5),
    (scorecard.ThreatModel, "radius", -0.1), (scorecard.ThreatModel, "radius", math.inf),
    (scorecard.ThreatModel, "steps", 0), (scorecard.ThreatModel, "steps", 1.5), (scorecard.ThreatModel, "restarts", 0),
    (scorecard.ThreatModel, "losses", ()), (scorecard.ThreatModel, "losses", ("ce", "l2")),
    (scorecard.ThreatModel, "losses", 3), (scorecard.ThreatModel, "input_range", (1.0, 0.0)),
    (scorecard.ThreatModel, "input_range", (0.0,)), (scorecard.ThreatModel, "input_range", "ab"),
    (scorecard.ThreatModel, "input_check", "reject everything"),
    (scorecard.OperatingPoint, "target_sensitivity", 0.0), (scorecard.OperatingPoint, "target_sensitivity", 1.5),
    (scorecard.OperatingPoint, "target_sensitivity", math.nan), (scorecard.OperatingPoint, "threshold", 0.0),
    (scorecard.OperatingPoint, "threshold", 1.0), (scorecard.OperatingPoint, "threshold", 1.5),
    (scorecard.OperatingPoint, "exact", 1), (scorecard.OperatingPoint, "exact", "yes"),
    (scorecard.OperatingPoint, "at_operating_point", None), (scorecard.OperatingPoint, "cross_fit", 1),
    (scorecard.OperatingPoint, "cross_fit", -1), (scorecard.OperatingPoint, "cross_fit", 2.0),
    (scorecard.ExplanationAudit, "n_explained", -1), (scorecard.ExplanationAudit, "seeds", (0,)),
    (scorecard.ExplanationAudit, "seeds", (0, 0)), (scorecard.ExplanationAudit, "seeds", (-1, 2)),
    (scorecard.ExplanationAudit, "seeds", 3), (scorecard.ExplanationAudit, "lime_samples", 0),
    (scorecard.ExplanationAudit, "num_features", 0), (scorecard.ExplanationAudit, "segment_fn", "slic"),
    (scorecard.Evaluation, "on", "train"), (scorecard.Evaluation, "n_robust", 0),
    (scorecard.Evaluation, "n_resamples", 5), (scorecard.Evaluation, "seed", -1),
]


@pytest.mark.parametrize("cls, field, value", BAD_SETTINGS,
                         ids=[f"{c.__name__}.{f}={v!r}" for c, f, v in BAD_SETTINGS])
def test_settings_refuse_each_bad_field_when_built(cls, field, value):
    """Issue 28: a bad setting raises when its object is built, before any audit runs, and
    the message names the field (with its class)."""
    import re

    with pytest.raises(ValueError, match=re.escape(f"{cls.__name__}.{field}")):
        cls(**{field: value})


def test_settings_refuse_cross_fitting_a_fixed_threshold():
    with pytest.raises(ValueError, match=r"OperatingPoint.cross_fit=2 needs a threshold chosen from"):
        scorecard.OperatingPoint(threshold=0.3, cross_fit=2)


def test_settings_defaults_are_the_old_audit_defaults_and_objects_are_frozen():
    """The defaults of the 26 keywords the audit took before issue 28, field by field."""
    assert dataclasses.astuple(scorecard.ThreatModel()) == (0.25, 20, 1, ("ce", "margin"), None, None)
    assert dataclasses.astuple(scorecard.OperatingPoint()) == (0.95, None, False, False, 0)
    assert dataclasses.astuple(scorecard.PrivacyClaim()) == (math.inf, 1e-5, None)
    assert dataclasses.astuple(scorecard.ExplanationAudit()) == (3, (0, 1, 2), 1000, 5, None)
    assert dataclasses.astuple(scorecard.Evaluation()) == ("test", 100, 500, 0)
    import inspect

    params = inspect.signature(scorecard.audit).parameters
    assert len(params) <= 10
    for key, cls in scorecard.SETTINGS.items():
        assert params[key].default == cls()
    # normalised when built: one loss name becomes a tuple, a list of seeds a tuple, numbers floats
    assert scorecard.ThreatModel(losses="margin", radius=1).losses == ("margin",)
    assert scorecard.ThreatModel(losses=["ce", "ce"]).losses == ("ce",)
    assert scorecard.ThreatModel(input_range=[0, 1]).input_range == (0.0, 1.0)
    assert scorecard.ExplanationAudit(seeds=[3, 4]).seeds == (3, 4)
    for cls in scorecard.SETTINGS.values():
        settings = cls()
        name = dataclasses.fields(cls)[0].name
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(settings, name, getattr(settings, name))
    # a changed copy is checked again
    with pytest.raises(ValueError, match="ThreatModel.steps"):
        dataclasses.replace(scorecard.ThreatModel(), steps=0)


def _row(name, **changes):
    base = {k: 0.5 for k in scorecard.COLUMNS}
    base.update(model=name, accuracy=0.95, accuracy_low=0.9, accuracy_high=0.97, auc=0.98, auc_low=0.96,
                auc_high=0.99, sensitivity=0.93, sensitivity_low=0.84, sensitivity_high=0.97, specificity=0.96,
                specificity_low=0.9, specificity_high=0.98, threshold=0.42, target_sensitivity=0.95, n_test=143,
                epsilon=math.inf, delta=1e-5, mia_attack="learned", mia_auc=0.55, mia_auc_low=0.49,
                mia_auc_high=0.61, mia_tpr_at_5pct_fpr=0.08, empirical_epsilon=0.0, n_members=143,
                robust_eps=0.25, robust_accuracy=0.7, attack_steps=20, attack_restarts=2, n_robust=100,
                attack_losses="ce+margin", empirical_epsilon_ceiling=2.95, evaluated_on="test",
                explanation_stability=0.6, n_explained=3, lime_features=5, train_seconds=2.0)
    base.update(changes)
    return base


def test_format_table_one_line_per_model_and_time_last():
    rows = [_row("baseline"), _row("DP ε=2", epsilon=2.0, train_seconds=12.25)]
    text = scorecard.format_table(rows)
    lines = text.splitlines()
    assert len(lines) == 4 and lines[0].startswith("model")
    assert "∞ (none)" in lines[2] and " 2.0 " in lines[3]
    assert lines[2].endswith("2.0 s") and lines[3].endswith("12.2 s")
    # the varying time is the unpadded last column: everything before it lines up
    assert lines[2].rsplit("  ", 1)[0].__len__() == lines[3].rsplit("  ", 1)[0].__len__()
    with pytest.raises(ValueError, match="rows"):
        scorecard.format_table([])
    with pytest.raises(ValueError, match="columns"):
        scorecard.format_table(rows, columns=[("nope", "x", "s")])


def test_decide_applies_requirements_and_ranks():
    rows = [_row("baseline", auc=0.99), _row("DP", epsilon=3.0, auc=0.97, robust_accuracy=0.5),
            _row("DP+adv", epsilon=3.0, auc=0.96), _row("DP weak", epsilon=1.0, sensitivity=0.8)]
    reqs = [scorecard.Requirement("epsilon", maximum=4.0), scorecard.Requirement("sensitivity", minimum=0.9),
            scorecard.Requirement("robust_accuracy", minimum=0.6)]
    decision = scorecard.decide(rows, reqs, rank_by="auc")
    assert decision.chosen == "DP+adv" and decision.eligible() == ["DP+adv"]
    assert decision.failures["baseline"] == ["epsilon <= 4 (measured inf)"]
    assert decision.failures["DP"] == ["robust_accuracy >= 0.6 (measured 0.5)"]
    assert "Deploy: DP+adv" in decision.text()
    rows.append(_row("DP+adv strong", epsilon=1.5, auc=0.95))
    private = scorecard.decide(rows, reqs, rank_by="epsilon", largest=False)
    assert private.chosen == "DP+adv strong" and private.eligible() == ["DP+adv", "DP+adv strong"]
    assert "smallest epsilon" in private.text()
    with pytest.raises(ValueError, match="rank_by"):
        scorecard.decide(rows, reqs, rank_by="nope")
    none = scorecard.decide(rows, [scorecard.Requirement("auc", minimum=0.999)])
    assert none.chosen is None and "none of the models" in none.text()
    assert scorecard.Requirement("auc", 0.1, 0.2).describe() == "0.1 <= auc <= 0.2"
    with pytest.raises(ValueError, match="column"):
        scorecard.decide(rows, [scorecard.Requirement("nope", minimum=0)])
    with pytest.raises(ValueError, match="rule"):
        scorecard.decide(rows, reqs, rule="lenient")


def test_decide_with_intervals_reports_not_distinguishable():
    """Issue 14, item 2: a stated rule on the 95 % intervals; a one-patient difference
    around the bar is "not distinguishable", not a finding."""
    reqs = [scorecard.Requirement("epsilon", maximum=4.0), scorecard.Requirement("sensitivity", minimum=0.9),
            scorecard.Requirement("robust_accuracy", minimum=0.7)]
    rows = [
        _row("just above", epsilon=4.0, sensitivity=0.925, sensitivity_low=0.82, sensitivity_high=0.97,
             robust_accuracy=0.78, robust_accuracy_low=0.69, robust_accuracy_high=0.85),
        _row("just below", epsilon=2.0, sensitivity=0.887, sensitivity_low=0.77, sensitivity_high=0.95,
             robust_accuracy=0.72, robust_accuracy_low=0.63, robust_accuracy_high=0.80),
        _row("clearly not robust", epsilon=1.0, sensitivity=0.98, sensitivity_low=0.9, sensitivity_high=1.0,
             robust_accuracy=0.3, robust_accuracy_low=0.22, robust_accuracy_high=0.4),
        _row("confirmed", epsilon=3.0, sensitivity=0.99, sensitivity_low=0.95, sensitivity_high=1.0,
             robust_accuracy=0.9, robust_accuracy_low=0.82, robust_accuracy_high=0.95),
    ]
    point = scorecard.decide(rows, reqs, rank_by="epsilon", largest=False)
    assert point.eligible() == ["just above", "confirmed"] and point.chosen == "confirmed"
    lenient = scorecard.decide(rows, reqs, rank_by="epsilon", largest=False, rule="not_refuted")
    assert lenient.eligible() == ["just above", "just below", "confirmed"] and lenient.chosen == "just below"
    assert lenient.failures["clearly not robust"] == ["robust_accuracy >= 0.7 (measured 0.3, 95 % CI 0.22 to 0.4)"]
    assert lenient.undecided("just below") == ["sensitivity >= 0.9", "robust_accuracy >= 0.7"]
    assert lenient.status["just above"] == {"epsilon <= 4": "meets", "sensitivity >= 0.9": "not distinguishable",
                                            "robust_accuracy >= 0.7": "not distinguishable"}
    text = lenient.text()
    assert "just below: not ruled out; not distinguishable: sensitivity >= 0.9; robust_accuracy >= 0.7" in text
    assert "among the models not ruled out" in text
    strict = scorecard.decide(rows, reqs, rank_by="epsilon", largest=False, rule="confirmed")
    assert strict.eligible() == ["confirmed"] and strict.chosen == "confirmed"
    assert "confirmed: confirmed" in strict.text()
    # the exact column (epsilon) is its own interval: inf is a plain failure under every rule
    assert scorecard.Requirement("epsilon", maximum=4).status(_row("b", epsilon=math.inf)) == "fails"


def test_robust_sensitivity_requirement_uses_the_audits_interval(row):
    """Issue 14, item 3: robust sensitivity at the operating point is a requirement like the
    others, judged on its own Wilson interval over the attacked malignant patients."""
    low, high = row["robust_sensitivity_low"], row["robust_sensitivity_high"]
    assert low < row["robust_sensitivity"] < high or row["robust_sensitivity"] in (0.0, 1.0)
    req = scorecard.Requirement("robust_sensitivity", minimum=(low + high) / 2)
    assert req.bounds(row) == (low, high) and req.status(row) == scorecard.UNDECIDED
    above = scorecard.Requirement("robust_sensitivity", minimum=high + 1e-9)
    assert above.status(row) == scorecard.FAILS
    assert not scorecard.decide([row], [above], rule="not_refuted").eligible()
    assert scorecard.decide([row], [scorecard.Requirement("robust_sensitivity", minimum=low)],
                            rule="confirmed").eligible() == [row["model"]]


def test_model_card_contains_the_computed_numbers(row):
    card = scorecard.model_card(row, intended_use="Decision support.", data="WDBC.", limitations=["Small data."])
    for key in ("accuracy", "auc", "sensitivity", "specificity", "mia_auc"):
        assert f"{row[key]:.3f}" in card and f"{row[key + '_low']:.3f}" in card
    assert f"ε = {row['epsilon']:.2f}" in card and f"δ = {row['delta']:g}" in card
    assert f"{row['robust_accuracy']:.3f}" in card and f"{row['threshold']:.3f}" in card
    assert f"{row['explanation_stability']:.2f}" in card and "- Small data." in card
    # what the membership number is, and what the attack was
    assert f"{row['empirical_epsilon_ceiling']:.2f}" in card and "not a proof about the training algorithm" in card
    for key in ("robust_accuracy", "robust_sensitivity", "ppv", "npv"):
        assert f"{row[key]:.3f} (95 % CI {row[key + '_low']:.3f} to {row[key + '_high']:.3f})" in card, key
    assert f"{row['explanation_stability_low']:.2f} to {row['explanation_stability_high']:.2f}" in card
    full = scorecard.model_card(row, intended_use="Decision support.", data="WDBC.", limitations=["Small data."],
                                details="v1, 2026-11-27, the hospital.", factors="No demographics.",
                                selection="Chosen on validation.", privacy_scope="Covers the fit patients only.",
                                ethical_considerations="Cancer is sensitive.", recommendations=["Revalidate."])
    for heading in ("**Model details.** v1", "**Factors.**", "**Requirements and decision.** Chosen on validation.",
                    "Covers the fit patients only.", "**Ethical considerations.**", "**Recommendations.**",
                    "- Revalidate."):
        assert heading in full, heading
    zero = scorecard.model_card(dict(row, empirical_epsilon=0.0), intended_use="a", data="b", limitations=[])
    assert "no evidence either way" in zero
    assert "each with the cross-entropy and the logit margin loss" in card
    # change a number: the card follows (nothing typed in)
    other = dict(row, sensitivity=0.123456, epsilon=math.inf, robust_accuracy=0.654321)
    card2 = scorecard.model_card(other, intended_use="Decision support.", data="WDBC.", limitations=[])
    assert "0.123" in card2 and "0.654" in card2 and "**None.**" in card2 and "ε = " not in card2.split("Membership")[0]
    with pytest.raises(ValueError, match="audit"):
        scorecard.model_card({"model": "x"}, intended_use="a", data="b", limitations=[])
    # issue 28: the headline is the process's ε when the model was chosen among several runs
    dp_row = dict(row, epsilon=2.0)
    process = scorecard.model_card(dp_row, intended_use="a", data="b", limitations=[], process_epsilon=6.88,
                                   process_runs=5, test_use="re-analysed on a spent test split")
    headline = process.split("**Privacy guarantee.** ")[1]
    assert headline.startswith("**(ε = 6.88, δ = ") and "5 DP runs" in headline and "(ε = 2.00" in headline
    assert "re-analysed on a spent test split" in process and "reported once" not in process


def test_plot_tradeoffs_draws_every_model():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [_row("baseline"), _row("DP", epsilon=2.0), _row("DP+adv", epsilon=2.0, robust_accuracy=0.8)]
    ax = scorecard.plot_tradeoffs(rows)
    labels = ax[1].get_legend_handles_labels()[1]
    assert labels == ["baseline", "DP", "DP+adv"]
    assert ax[0].get_xticklabels()[-1].get_text() == "∞"
    plt.close("all")


def test_readme_audit_snippet_runs_as_written():
    """Issue 14, item 7: the README's "Audit your own model" block, executed as written."""
    import pathlib
    import re

    readme = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Audit your own model", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace: dict = {}
    exec(compile(block, "README.md (Audit your own model)", "exec"), namespace)
    row, card, split = namespace["row"], namespace["card"], namespace["split"]
    assert set(row) == set(scorecard.COLUMNS) and row["evaluated_on"] == "test"
    # issue 28: chosen on a validation row (each patient at a threshold the other half set), reported on test
    selection, decision = namespace["selection"], namespace["decision"]
    assert selection["evaluated_on"] == "validation" and decision.chosen == "my model"
    assert selection["operating_point_set_on"] == "other folds (k=2)" and row["operating_point_set_on"] == "validation"
    assert selection["threshold"] == row["threshold"]   # the deployed threshold: chosen on all validation patients
    assert row["n_members"] == min(len(namespace["X_fit"]), len(split.X_test))
    assert "## Model card: my model" in card
    # and the misuse the README warns about raises instead of auditing silently
    with pytest.raises(ValueError, match="X_val must not be in data.X_train"):
        scorecard.audit(namespace["model"], split, validation=(namespace["X_val"], namespace["y_val"]))


def test_plausibility_checks_pass_real_records_and_catch_impossible_ones():
    """Issue 17: consistency checks as input validation."""
    from helpers import data

    d = data.load_wdbc(seed=0)
    real = np.concatenate([d.to_original_units(d.X_train), d.to_original_units(d.X_test)])
    checks = scorecard.plausibility_checks(real, d.feature_names, real)
    assert set(checks) == set(scorecard.CHECKS)
    assert not any(mask.any() for mask in checks.values())  # every real record passes every check
    names = list(d.feature_names)
    bad = np.repeat(real[:1], 4, axis=0)
    bad[0, names.index("mean radius")] = bad[0, names.index("worst radius")] + 0.5      # mean above worst
    bad[1, names.index("worst area")] *= 1.6                                           # area too large for radius
    bad[2, names.index("mean concavity")] = -0.01                                      # negative
    found = scorecard.plausibility_checks(bad, d.feature_names, real)
    assert found["mean above worst"].tolist() == [True, False, False, False]
    assert found["area vs radius"].tolist() == [True, True, False, False]  # raising mean radius changes the ratio too
    assert found["negative"].tolist() == [False, False, True, False]
    assert found["range"][2] and not found["range"][3]
    assert scorecard.implausible(bad, d.feature_names, real).tolist() == [True, True, True, False]
    assert scorecard.implausible(bad, d.feature_names, real, checks=["negative"]).tolist() == [False, False, True, False]
    with pytest.raises(ValueError, match="checks"):
        scorecard.implausible(bad, d.feature_names, real, checks=["nope"])
    with pytest.raises(ValueError, match="X_original"):
        scorecard.plausibility_checks(bad[:, :5], d.feature_names, real)


def test_audit_with_input_validation_as_a_defence():
    """Issue 17: input validation in the robustness pillar. Checks that reject every record
    defend every patient the model gets right without attack (issue 28: never one it gets
    wrong); checks that reject nothing defend exactly the unflipped ones."""
    import numpy as np

    model, small, d = small_wdbc_model()
    common = dict(threshold=0.5, radius=1.0, steps=10, n_robust=40)
    reject_all = scorecard.audit(model, small, **fast(input_check=lambda X: np.ones(len(X), bool), **common))
    reject_none = scorecard.audit(model, small, **fast(input_check=lambda X: np.zeros(len(X), bool), **common))
    clean = scorecard.audit(model, small, **fast(**{**common, "radius": 0.0}))
    assert reject_all["validated_robust_accuracy"] == pytest.approx(clean["robust_accuracy"])
    assert reject_all["attacks_rejected"] == 1.0 and reject_all["validated_attack"] == "plain"
    assert reject_none["attacks_rejected"] == 0.0
    assert reject_none["validated_robust_accuracy"] <= reject_none["robust_accuracy"] + 1 / 40
    plain = scorecard.audit(model, small, **fast(**common))
    assert math.isnan(plain["validated_robust_accuracy"]) and math.isnan(plain["attacks_rejected"])
    with pytest.raises(ValueError, match="input_check"):
        scorecard.audit(model, small, **fast(input_check=lambda X: np.ones(3, bool), **common))
    card = scorecard.model_card(reject_all, intended_use="test", data="WDBC", limitations=["small"])
    assert "input validation" in card and "not flipped by any attack record that passes the checks" in card


def test_adaptive_attack_stays_within_the_ball_and_the_checks():
    """Issue 28: the attack that knows the checks returns only records that pass them, within
    the radius, and misclassified; against the same checks it flips at least as many patients
    as plain PGD gets past them, and the audit measures validated robustness with it."""
    import numpy as np

    from helpers import data
    from helpers.models import predict_proba

    model, small, d = small_wdbc_model()
    reference = np.concatenate([d.to_original_units(d.X_train), d.to_original_units(d.X_test)])
    check = scorecard.input_validator(d, reference)
    assert isinstance(check, scorecard.InputValidator) and not check(small.X_test).any()
    x, y = small.X_test[:40], small.y_test[:40]
    projected = check.project(x + 0.3, x, 0.25)
    assert np.abs(projected - x).max() <= 0.25 + 1e-5
    flipped, records = scorecard.adaptive_attack(model, x, y, 0.5, check, steps=20, restarts=2, seed=0)
    assert not check(records[flipped]).any()
    assert np.abs(records - x).max() <= 0.5 + 1e-5
    assert np.all(predict_proba(model, records[flipped]).argmax(axis=1) != y[flipped])
    assert np.array_equal(records[~flipped], x[~flipped])
    clean_wrong = predict_proba(model, x).argmax(axis=1) != y
    assert np.all(flipped[clean_wrong])   # real records pass the checks: a clean error is an error
    common = dict(threshold=0.5, radius=0.5, steps=20, restarts=2, n_robust=40)
    adaptive = scorecard.audit(model, small, **fast(input_check=check, **common))
    plain = scorecard.audit(model, small, **fast(input_check=lambda X: check(X), **common))
    assert adaptive["validated_attack"] == "adaptive" and plain["validated_attack"] == "plain"
    assert adaptive["validated_robust_accuracy"] <= plain["validated_robust_accuracy"]
    assert adaptive["validated_robust_accuracy"] <= adaptive["robust_accuracy"] + 3 / 40
    with pytest.raises(ValueError, match="validator"):
        scorecard.adaptive_attack(model, x, y, 0.5, lambda X: check(X))
    with pytest.raises(ValueError, match="steps"):
        scorecard.adaptive_attack(model, x, y, 0.5, check, steps=0)


def test_decide_judges_privacy_on_the_selection_process():
    """Issue 28: with process_epsilon, an ε requirement is checked against the whole process."""
    rows = [dict(model="a", epsilon=2.0, auc=0.9), dict(model="b", epsilon=4.0, auc=0.95),
            dict(model="c", epsilon=math.inf, auc=0.99)]
    req = [scorecard.Requirement("epsilon", maximum=4.0)]
    assert scorecard.decide(rows, req, rank_by="epsilon", largest=False).chosen == "a"   # unchanged default
    dec = scorecard.decide(rows, req, rank_by="epsilon", largest=False, process_epsilon=6.88)
    assert dec.chosen is None and dec.process_epsilon == 6.88
    assert "6.88 for the selection process; this run 2" in dec.failures["a"][0]
    assert "inf" in dec.failures["c"][0]
    assert scorecard.decide(rows, req, rank_by="epsilon", largest=False, process_epsilon=3.5).chosen == "a"
    assert scorecard.decide(rows, req, rank_by="epsilon", largest=False, process_epsilon=3.5).eligible() == ["a", "b"]
    for bad in (0.0, -1.0, math.nan):
        with pytest.raises(ValueError, match="process_epsilon"):
            scorecard.decide(rows, req, process_epsilon=bad)


def test_decide_refuses_rows_from_another_split():
    rows = [dict(model="a", epsilon=2.0, auc=0.9, evaluated_on="validation"),
            dict(model="b", epsilon=4.0, auc=0.95, evaluated_on="test")]
    req = [scorecard.Requirement("epsilon", maximum=4.0)]
    assert scorecard.decide(rows[:1], req, evaluated_on="validation").chosen == "a"
    with pytest.raises(ValueError, match=r"evaluated_on='validation': rows \['b'\]"):
        scorecard.decide(rows, req, evaluated_on="validation")
    with pytest.raises(ValueError, match="evaluated_on must be"):
        scorecard.decide(rows, req, evaluated_on="train")
    assert scorecard.decide(rows, req).chosen == "b"   # default: unchecked, as before


def test_input_validator_accepts_real_records_and_rejects_impossible_ones():
    import numpy as np

    from helpers import data

    d = data.load_wdbc(seed=0)
    reference = np.concatenate([d.to_original_units(d.X_train), d.to_original_units(d.X_test)])
    check = scorecard.input_validator(d, reference)
    assert not check(d.X_test).any()
    broken = d.X_test.copy()
    broken[:, list(d.feature_names).index("mean area")] += 50.0      # 50 SD: far outside every real record
    assert check(broken).all()
    with pytest.raises(ValueError, match="split"):
        scorecard.input_validator(object(), reference)


@pytest.fixture(scope="module")
def image_fixture():
    """The course CNN trained on 120 phantom nucleus images (issue 13)."""
    from helpers import data, models, robustness

    d = data.load_nuclei_images(seed=0)
    small = dataclasses.replace(d, X_train=d.X_train[:120], y_train=d.y_train[:120], X_test=d.X_test[:50],
                                y_test=d.y_test[:50])
    model = models.cnn(seed=0)
    robustness.adversarial_fit(model, small.X_train, small.y_train, 0.0, attack="none", num_epochs=30,
                               batch_size=32, learning_rate=3e-3, seed=0)
    return model, small, (d.X_train[120:180], d.y_train[120:180])


def test_audit_audits_an_image_model(image_fixture):
    model, small, (X_val, y_val) = image_fixture
    kwargs = dict(validation=(X_val, y_val), explanations=scorecard.ExplanationAudit(n_explained=2, seeds=(0, 1),
                                                                                    lime_samples=200),
                  evaluation=scorecard.Evaluation(n_robust=30, n_resamples=100, seed=0))
    clean = scorecard.audit(model, small, name="cnn", threat=scorecard.ThreatModel(radius=0.0, steps=5), **kwargs)
    attacked = scorecard.audit(model, small, name="cnn", threat=scorecard.ThreatModel(radius=8 / 255, steps=5),
                               **kwargs)
    assert clean["modality"] == attacked["modality"] == "image" and set(scorecard.COLUMNS) <= set(attacked)
    assert 0.5 < clean["auc"] <= 1 and clean["n_test"] == 50 and clean["n_members"] == 50
    assert clean["robust_accuracy"] <= 1 and attacked["robust_accuracy"] < clean["robust_accuracy"]
    assert attacked["robust_sensitivity"] <= clean["robust_sensitivity"]
    assert 0 <= attacked["explanation_stability"] <= 1 and attacked["lime_features"] == 5
    # the attack keeps grey levels in [0, 1]: an impossible range is refused before anything slow runs
    with pytest.raises(ValueError, match="input_range must contain every input"):
        scorecard.audit(model, small, threat=scorecard.ThreatModel(input_range=(0.0, 0.5)), **kwargs)
    with pytest.raises(ValueError, match="ThreatModel.input_range must have low < high"):
        scorecard.ThreatModel(input_range=(1.0, 0.0))
    with pytest.raises(ValueError, match="ExplanationAudit.segment_fn"):
        scorecard.ExplanationAudit(segment_fn="slic")
    flat = dataclasses.replace(small, X_train=small.X_train[..., 0], X_test=small.X_test[..., 0])
    with pytest.raises(ValueError, match="X_train"):
        scorecard.audit(model, flat, **kwargs)


def test_image_audit_uses_the_given_superpixels(image_fixture):
    from helpers import explain

    model, small, (X_val, y_val) = image_fixture
    calls = []

    def grid(image):
        calls.append(image.shape)
        return explain.grid_segments((32, 32), patch=8)

    row = scorecard.audit(model, small, validation=(X_val, y_val),
                          threat=scorecard.ThreatModel(radius=2 / 255, steps=3),
                          explanations=scorecard.ExplanationAudit(n_explained=2, seeds=(0, 1), lime_samples=100,
                                                                  segment_fn=grid),
                          evaluation=scorecard.Evaluation(n_robust=10, n_resamples=50))
    assert calls == [(32, 32, 1), (32, 32, 1)] and row["n_explained"] == 2


# --------------------------------------------------------------------------- issue 21, item 4 (notebook 06)

def test_at_threshold_is_exact_for_saturated_models_and_refuses_0_and_1(fixture):
    """No silent clamp: with clamp=False a threshold of 1e-9 is attacked at 1e-9, and 0 or
    1, which have no finite logit, are refused naming the argument; the default clamp
    (kept for existing results) reports what it did."""
    model, small, _ = fixture
    z = np.asarray(model(small.X_test[:5], training=False))[:, 0]
    for t in (1e-9, 1e-3, 1 - 1e-9):
        f = scorecard.at_threshold(model, t, clamp=False)
        shifted = np.asarray(f(small.X_test[:5]))[:, 0]
        np.testing.assert_allclose(z - shifted, math.log(t / (1 - t)), rtol=1e-5, atol=1e-4)
        assert not f.clamped and f.threshold_used == t
    reported = scorecard.at_threshold(model, 1e-9)
    assert reported.clamped and reported.threshold == 1e-9 and reported.threshold_used == scorecard.CLAMP_RANGE[0]
    assert not scorecard.at_threshold(model, 0.3).clamped
    assert scorecard.threshold_logit(1e-9) == pytest.approx(math.log(1e-9), rel=1e-9)
    for bad in (0.0, 1.0, -0.1, 1.5, math.nan):
        with pytest.raises(ValueError, match="threshold"):
            scorecard.at_threshold(model, bad, clamp=False)
        with pytest.raises(ValueError, match="threshold"):
            scorecard.at_threshold(model, bad)


def test_audit_robust_accuracy_at_the_operating_point_is_opt_in(fixture):
    """OperatingPoint(at_operating_point=True) measures robust accuracy at the operating point:
    at a threshold near 0 every benign patient is one push from 'malignant', so the
    robust accuracy falls; the default stays two-class accuracy at 0.5."""
    model, small, _ = fixture
    common = fast(threshold=0.02)
    default = scorecard.audit(model, small, **common)
    at_op = scorecard.audit(model, small, **{**common, "operating_point": scorecard.OperatingPoint(
        threshold=0.02, at_operating_point=True)})
    assert default["robust_threshold"] == 0.5 and at_op["robust_threshold"] == 0.02
    assert not default["threshold_clamped"] and not at_op["threshold_clamped"]
    clamped = scorecard.audit(model, small, **fast(threshold=1e-9))
    exact = scorecard.audit(model, small, **{**common, "operating_point": scorecard.OperatingPoint(
        threshold=1e-9, exact=True)})
    assert clamped["threshold_clamped"] and not exact["threshold_clamped"]
    assert at_op["robust_accuracy"] < default["robust_accuracy"]
    assert at_op["robust_sensitivity"] == default["robust_sensitivity"]


def test_decide_reports_ties_within_the_resolution_and_breaks_them_explicitly():
    """Two ε = 2.00 models are not ranked by the 4th decimal nor by row order."""
    reqs = [scorecard.Requirement("epsilon", maximum=4.0)]
    rows = [_row("first", epsilon=2.0004, auc=0.90), _row("second", epsilon=1.9998, auc=0.95),
            _row("loose", epsilon=3.0, auc=0.99)]
    legacy = scorecard.decide(rows, reqs, rank_by="epsilon", largest=False)
    assert legacy.chosen == "second" and legacy.tied == []  # resolution 0: the 4th decimal decides
    tie = scorecard.decide(rows, reqs, rank_by="epsilon", largest=False, resolution=0.01)
    assert tie.tied == ["first", "second"] and tie.chosen is None
    assert "tie on epsilon (within 0.01)" in tie.text() and "undecided" in tie.text()
    broken = scorecard.decide(rows, reqs, rank_by="epsilon", largest=False, resolution=0.01,
                              tie_break=("auc", True))
    assert broken.chosen == "second" and "tie broken by the largest auc" in broken.text()
    # the order of the rows plays no part
    assert scorecard.decide(rows[::-1], reqs, rank_by="epsilon", largest=False, resolution=0.01,
                            tie_break=("auc", True)).chosen == "second"
    # the tie-break column tied too (within the resolution): undecided, not the first row
    close = [_row("a", epsilon=2.0, auc=0.951), _row("b", epsilon=2.0, auc=0.952)]
    assert scorecard.decide(close, reqs, rank_by="epsilon", largest=False, resolution=0.01,
                            tie_break=("auc", True)).chosen is None
    for kwargs, message in [(dict(resolution=-1), "resolution"), (dict(tie_break=("nope", True)), "tie_break"),
                            (dict(tie_break="auc"), "tie_break"), (dict(min_class_rate=2), "min_class_rate")]:
        with pytest.raises(ValueError, match=message):
            scorecard.decide(rows, reqs, **kwargs)


def test_decide_refuses_a_constant_classifier():
    """A classifier that calls every patient benign passes 'robust accuracy at 0.5 >= 0.7,
    not refuted' (0.623 = 66/106, upper limit 0.709); min_class_rate rules it out."""
    reqs = [scorecard.Requirement("robust_accuracy", minimum=0.7)]
    constant = _row("everyone benign", sensitivity=0.0, sensitivity_low=0.0, sensitivity_high=0.088,
                    specificity=1.0, specificity_low=0.945, specificity_high=1.0,
                    robust_accuracy=0.623, robust_accuracy_low=0.528, robust_accuracy_high=0.709)
    fair = _row("fair", robust_accuracy=0.75, robust_accuracy_low=0.66, robust_accuracy_high=0.82)
    assert scorecard.decide([constant], reqs, rule="not_refuted").chosen == "everyone benign"  # the loophole
    decision = scorecard.decide([constant, fair], reqs, rule="not_refuted", min_class_rate=0.5)
    assert decision.chosen == "fair"
    assert decision.failures["everyone benign"][0].startswith("degenerate: sensitivity 0")


# --------------------------------------------------------------------------- issue 28: cross-fitted operating point

def _on_validation(operating_point, **threat):
    return dict(threat=scorecard.ThreatModel(radius=0.3, steps=5, **threat), operating_point=operating_point,
                explanations=scorecard.ExplanationAudit(n_explained=0),
                evaluation=scorecard.Evaluation(on="validation", n_robust=200, n_resamples=20))


def test_cross_fit_judges_each_validation_patient_at_a_threshold_the_other_folds_set(fixture):
    """OperatingPoint(cross_fit=2) on validation rows: every patient is called at the threshold
    chosen on the other fold (recomputed here from the folds), so the validation sensitivity
    is no longer met by construction; the AUC and the deployed threshold do not move."""
    from helpers import metrics, models, robustness

    model, small, (X_val, y_val) = fixture
    plain = scorecard.audit(model, small, validation=(X_val, y_val), **_on_validation(scorecard.OperatingPoint()))
    crossed = scorecard.audit(model, small, validation=(X_val, y_val),
                              **_on_validation(scorecard.OperatingPoint(cross_fit=2)))
    p = models.predict_proba(model, X_val)[:, 1]
    fold, thresholds = scorecard.cross_fit_thresholds(y_val, p, 0.95, 2, seed=0)
    # the folds: a stratified partition into 2 (each class split as evenly as it can be)
    assert set(fold.tolist()) == {0, 1}
    for label in (0, 1):
        sizes = np.bincount(fold[y_val == label], minlength=2)
        assert abs(sizes[0] - sizes[1]) <= 1
    # (a) each fold's threshold comes from the other fold alone, and each patient is called at its fold's
    for f in (0, 1):
        assert thresholds[f] == metrics.threshold_for_sensitivity(y_val[fold != f], p[fold != f], 0.95)
    called = p >= np.array([thresholds[f] for f in fold])
    tp, fn = int(np.sum(called & (y_val == 1))), int(np.sum(~called & (y_val == 1)))
    tn, fp = int(np.sum(~called & (y_val == 0))), int(np.sum(called & (y_val == 0)))
    assert crossed["sensitivity"] == tp / (tp + fn) and crossed["specificity"] == tn / (tn + fp)
    assert crossed["accuracy"] == (tp + tn) / len(y_val)
    assert crossed["ppv"] == tp / (tp + fp) and crossed["npv"] == tn / (tn + fn)
    assert (crossed["sensitivity_low"], crossed["sensitivity_high"]) == metrics.wilson_interval(tp, tp + fn)
    assert crossed["auc"] == plain["auc"] and crossed["auc_low"] == plain["auc_low"]
    assert crossed["threshold"] == plain["threshold"] == metrics.threshold_for_sensitivity(y_val, p, 0.95)
    # (b) not forced: without cross-fitting the validation sensitivity meets 0.95 by construction, here it does not
    assert plain["sensitivity"] >= 0.95 and crossed["sensitivity"] < 0.95
    # (c) the row says which patients set the operating point of its figures
    assert plain["operating_point_set_on"] == "validation"
    assert crossed["operating_point_set_on"] == "other folds (k=2)"
    # the robust sensitivity attacks each fold's malignant patients at that fold's threshold
    attack = dict(attack="pgd", losses=("ce", "margin"), nb_iter=5, restarts=1, seed=0, clip_min=None, clip_max=None)
    kept = 0
    for f in (0, 1):
        mal = (fold == f) & (y_val == 1)
        share = robustness.robust_accuracy(scorecard.at_threshold(model, thresholds[f]), X_val[mal], y_val[mal],
                                           [0.3], **attack)[0]
        kept += round(share * mal.sum())
    assert crossed["n_robust_malignant"] == int(y_val.sum())
    assert crossed["robust_sensitivity"] == kept / y_val.sum()
    # two-class robust accuracy at 0.5 has no threshold to cross-fit; at the operating point, each fold at its own
    assert crossed["robust_accuracy"] == plain["robust_accuracy"] and crossed["robust_threshold"] == 0.5
    at_op = scorecard.audit(model, small, validation=(X_val, y_val),
                            **_on_validation(scorecard.OperatingPoint(cross_fit=2, at_operating_point=True)))
    assert math.isnan(at_op["robust_threshold"]) and at_op["robust_sensitivity"] == crossed["robust_sensitivity"]


def test_cross_fit_changes_nothing_on_test_rows(fixture):
    """(d) the test patients never set the threshold: cross_fit leaves a test row as it was."""
    model, small, (X_val, y_val) = fixture
    rows = [scorecard.audit(model, small, validation=(X_val, y_val), **{
        **_on_validation(scorecard.OperatingPoint(cross_fit=k)), "evaluation": scorecard.Evaluation(n_robust=20,
                                                                                                   n_resamples=20)})
            for k in (0, 2)]
    assert rows[0] == rows[1] and rows[1]["operating_point_set_on"] == "validation"


def test_cross_fit_refuses_a_fold_without_malignant_patients_to_set_its_threshold(fixture):
    """(e) one malignant validation patient cannot set a threshold for the fold that holds it."""
    model, small, (X_val, y_val) = fixture
    keep = np.concatenate([np.flatnonzero(y_val == 0), np.flatnonzero(y_val == 1)[:1]])
    with pytest.raises(ValueError, match="cross_fit=2: the threshold of fold . is set on the other folds, which hold "
                                         "no malignant patient"):
        scorecard.audit(model, small, validation=(X_val[keep], y_val[keep]),
                        **_on_validation(scorecard.OperatingPoint(cross_fit=2)))
    with pytest.raises(ValueError, match="folds"):
        scorecard.cross_fit_thresholds(y_val, np.linspace(0, 1, len(y_val)), 0.95, 1)
    with pytest.raises(ValueError, match="scores"):
        scorecard.cross_fit_thresholds(y_val, np.ones(3), 0.95, 2)


@pytest.mark.parametrize("point", [scorecard.OperatingPoint(at_operating_point=True, cross_fit=2),
                                   scorecard.OperatingPoint(at_operating_point=True, exact=True),
                                   scorecard.OperatingPoint()])
def test_validated_robustness_is_measured_at_the_threshold_of_robust_accuracy(fixture, point):
    """Issue 28: input checks that reject nothing leave exactly the robust accuracy, whichever
    operating point it is measured at (0.5, the deployed threshold, or each fold's own)."""
    model, small, (X_val, y_val) = fixture
    kwargs = _on_validation(point)
    kwargs["threat"] = dataclasses.replace(kwargs["threat"], input_check=lambda X: np.zeros(len(X), dtype=bool))
    row = scorecard.audit(model, small, validation=(X_val, y_val), **kwargs)
    assert row["validated_attack"] == "plain"
    assert row["validated_robust_accuracy"] == pytest.approx(row["robust_accuracy"])
    assert (row["validated_robust_accuracy_low"], row["validated_robust_accuracy_high"]) == pytest.approx(
        (row["robust_accuracy_low"], row["robust_accuracy_high"]))
