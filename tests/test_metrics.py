"""Clinical metrics: agreement with scikit-learn, operating points, interval coverage."""
import math

import numpy as np
import pytest
from sklearn import metrics as skm

from helpers import metrics


@pytest.fixture
def scored():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    s = rng.normal(size=300) + 1.2 * y
    s[:20] = np.round(s[:20])  # some ties
    return y, s


def test_roc_auc_matches_sklearn(scored):
    y, s = scored
    assert metrics.roc_auc(y, s) == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)
    assert metrics.roc_auc([0, 1], [0.2, 0.9]) == 1.0
    assert metrics.roc_auc([0, 1, 0, 1], [1, 1, 1, 1]) == 0.5


def test_roc_curve_matches_sklearn(scored):
    y, s = scored
    fpr, tpr, thr = metrics.roc_curve(y, s)
    sk_fpr, sk_tpr, sk_thr = skm.roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)
    np.testing.assert_allclose(thr[1:], sk_thr[1:])
    assert np.trapz(tpr, fpr) == pytest.approx(metrics.roc_auc(y, s), abs=1e-12)


def test_tpr_at_fpr():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    s = np.array([0.1, 0.2, 0.3, 0.9, 0.95, 0.8, 0.5, 0.05])
    assert metrics.tpr_at_fpr(y, s, 0.01) == 0.25   # only the 0.95 member above every non-member
    assert metrics.tpr_at_fpr(y, s, 0.25) == 0.75
    assert metrics.tpr_at_fpr(y, s, 1.0) == 1.0


def test_sensitivity_specificity_and_confusion():
    y = [1, 1, 1, 1, 0, 0, 0, 0, 0]
    s = [0.9, 0.8, 0.4, 0.2, 0.7, 0.3, 0.1, 0.1, 0.0]
    assert metrics.confusion(y, [1, 1, 0, 0, 1, 0, 0, 0, 0]) == {"tp": 2, "fp": 1, "tn": 4, "fn": 2}
    sens, spec = metrics.sensitivity_specificity(y, s, 0.5)
    assert (sens, spec) == (0.5, 0.8)
    sens, spec = metrics.sensitivity_specificity(y, s, 0.4)  # score >= threshold is positive
    assert (sens, spec) == (0.75, 0.8)


@pytest.mark.parametrize("target", [0.5, 0.9, 0.95, 0.99, 1.0])
def test_threshold_for_sensitivity_is_largest_that_meets_target(scored, target):
    y, s = scored
    t = metrics.threshold_for_sensitivity(y, s, target)
    assert metrics.sensitivity_specificity(y, s, t)[0] >= target
    higher = np.min(s[s > t]) if np.any(s > t) else None
    if higher is not None:  # any larger threshold misses the target
        assert metrics.sensitivity_specificity(y, s, higher)[0] < target


def test_wilson_interval_known_values_and_coverage():
    low, high = metrics.wilson_interval(81, 263)  # Wikipedia / Newcombe (1998) style check
    assert low == pytest.approx(0.2553, abs=5e-4) and high == pytest.approx(0.3662, abs=5e-4)
    assert metrics.wilson_interval(0, 10)[0] == 0.0 and metrics.wilson_interval(10, 10)[1] == 1.0
    assert metrics.wilson_interval(10, 10)[0] > 0.65  # not degenerate at p = 1, unlike the Wald interval
    rng = np.random.default_rng(1)
    p, n = 0.93, 50
    hits = [lo <= p <= hi for lo, hi in (metrics.wilson_interval(int(k), n) for k in rng.binomial(n, p, 2000))]
    assert 0.92 <= np.mean(hits) <= 0.99  # nominal 95 % (discrete: a little above)


def test_bootstrap_interval_covers_auc_and_is_reproducible(scored):
    y, s = scored
    a = metrics.bootstrap_interval(metrics.roc_auc, y, s, n_resamples=300, rng=3)
    b = metrics.bootstrap_interval(metrics.roc_auc, y, s, n_resamples=300, rng=3)
    assert a == b
    auc = metrics.roc_auc(y, s)
    assert a[0] < auc < a[1] and 0.04 < a[1] - a[0] < 0.2
    # true AUC of N(1.2, 1) vs N(0, 1) is Phi(1.2 / sqrt 2) = 0.802
    assert a[0] - 0.03 < 0.802 < a[1] + 0.03


def test_clinical_metrics(scored):
    y, s = scored
    m = metrics.clinical_metrics(y, s, threshold=0.5, n_resamples=200, rng=0)
    assert set(m) == {"accuracy", "auc", "sensitivity", "specificity"}
    sens, spec = metrics.sensitivity_specificity(y, s, 0.5)
    assert m["sensitivity"].value == sens and m["specificity"].value == spec
    assert m["accuracy"].value == pytest.approx(np.mean((s >= 0.5) == y))
    for est in m.values():
        assert 0 <= est.low <= est.value <= est.high <= 1
    assert str(m["auc"]).count("[") == 1


@pytest.mark.parametrize("call, message", [
    (lambda: metrics.roc_auc([0, 0], [0.1, 0.2]), "both classes"),
    (lambda: metrics.roc_auc([0, 2], [0.1, 0.2]), "only 0 and 1"),
    (lambda: metrics.roc_auc([0, 1], [0.1]), "one value per label"),
    (lambda: metrics.roc_auc([0, 1], [0.1, np.nan]), "finite"),
    (lambda: metrics.threshold_for_sensitivity([0, 1], [0.1, 0.2], 0), "target"),
    (lambda: metrics.wilson_interval(5, 3), "successes must be <= trials"),
    (lambda: metrics.wilson_interval(1, 3, confidence=1.5), "confidence"),
    (lambda: metrics.tpr_at_fpr([0, 1], [0.1, 0.2], -0.1), "max_fpr"),
    (lambda: metrics.sensitivity_specificity([0, 1], [0.1, 0.2], np.inf), "threshold"),
    (lambda: metrics.bootstrap_interval(metrics.roc_auc, [0, 1], [0.1, 0.2], n_resamples=2), "n_resamples"),
])
def test_bad_input_raises_value_error_naming_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_predictive_values_count_the_called_patients():
    y = np.array([1, 1, 1, 0, 0, 0, 0, 0])
    s = np.array([0.9, 0.8, 0.2, 0.7, 0.1, 0.1, 0.1, 0.1])
    pv = metrics.predictive_values(y, s, 0.5)
    assert pv["ppv"].value == pytest.approx(2 / 3) and pv["npv"].value == pytest.approx(4 / 5)
    assert (pv["ppv"].low, pv["ppv"].high) == metrics.wilson_interval(2, 3)
    assert math.isnan(metrics.predictive_values(y, s, 0.95)["ppv"].value)  # nobody called positive


def test_paired_bootstrap_detects_a_difference_that_overlapping_intervals_hide():
    # two models share most of their noise (same hard patients): the paired difference is
    # clearly positive although the unpaired intervals of the two AUCs overlap widely
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(60), np.zeros(90)].astype(int)
    shared = rng.normal(size=y.size)
    a = 1.5 * y + shared
    b = a + 1.0 * rng.normal(size=y.size)  # b: a plus noise of its own, so truly worse
    diff = metrics.paired_auc_difference(y, a, b, n_resamples=1000, rng=1)
    assert diff.value == pytest.approx(metrics.roc_auc(y, a) - metrics.roc_auc(y, b))
    assert 0 < diff.low <= diff.value <= diff.high
    ia = metrics.bootstrap_interval(metrics.roc_auc, y, a, n_resamples=1000, rng=1)
    ib = metrics.bootstrap_interval(metrics.roc_auc, y, b, n_resamples=1000, rng=1)
    assert ib[1] > ia[0]  # the separate intervals overlap: "inside both intervals" would see nothing
    # a model against itself: exactly zero; reproducible with a seed
    same = metrics.paired_auc_difference(y, a, a, n_resamples=50, rng=2)
    assert (same.value, same.low, same.high) == (0.0, 0.0, 0.0)
    assert metrics.paired_auc_difference(y, a, b, n_resamples=100, rng=3) == \
        metrics.paired_auc_difference(y, a, b, n_resamples=100, rng=3)


def test_paired_bootstrap_coverage_under_no_difference():
    # two exchangeable models: the 95 % interval should contain 0 in about 95 % of data sets
    rng = np.random.default_rng(5)
    covered = []
    for _ in range(60):
        y = (rng.uniform(size=80) < 0.4).astype(int)
        y[:2] = (0, 1)
        base = 1.0 * y + rng.normal(size=80)
        a, b = base + 0.5 * rng.normal(size=80), base + 0.5 * rng.normal(size=80)
        d = metrics.paired_auc_difference(y, a, b, n_resamples=200, rng=rng)
        covered.append(d.low <= 0 <= d.high)
    assert np.mean(covered) >= 0.85  # nominal 0.95; 60 data sets, percentile bootstrap a bit liberal


def test_mcnemar_exact_known_values():
    # 49 vs 47 cancers found: discordant 3 (a only) and 1 (b only): p = 2 * P(X >= 3 | 4, 1/2) = 0.625
    a = np.r_[np.ones(46), 1, 1, 1, 0, np.zeros(3)]
    b = np.r_[np.ones(46), 0, 0, 0, 1, np.zeros(3)]
    test = metrics.mcnemar_exact(a, b)
    assert (test.only_a, test.only_b, test.both, test.neither) == (3, 1, 46, 3)
    assert test.p_value == pytest.approx(0.625)
    assert metrics.mcnemar_exact(a, a).p_value == 1.0
    # 10 discordant, all for a: p = 2 / 2^10
    strong = metrics.mcnemar_exact(np.ones(10, bool), np.zeros(10, bool))
    assert strong.p_value == pytest.approx(2 / 1024) and "p = 0.00" in str(strong)
    with pytest.raises(ValueError, match="correct_b"):
        metrics.mcnemar_exact([1, 0], [1])
    with pytest.raises(ValueError, match="correct_a"):
        metrics.mcnemar_exact([2, 0], [1, 0])


def test_mcnemar_exact_type_one_error_is_at_most_nominal():
    rng = np.random.default_rng(2)
    rejections = []
    for _ in range(400):
        a = rng.uniform(size=60) < 0.85
        b = rng.uniform(size=60) < 0.85  # same success rate: no difference
        rejections.append(metrics.mcnemar_exact(a, b).p_value < 0.05)
    assert np.mean(rejections) <= 0.07  # exact test: conservative, at most 5 % up to sampling noise


def test_brier_and_calibration_slope():
    rng = np.random.default_rng(3)
    z = rng.normal(size=4000)
    y = (rng.uniform(size=z.size) < 1 / (1 + np.exp(-z))).astype(int)
    calibrated = 1 / (1 + np.exp(-z))
    overconfident = 1 / (1 + np.exp(-3 * z))
    a, b = metrics.calibration_slope(y, calibrated)
    assert abs(a) < 0.15 and abs(b - 1) < 0.1
    assert metrics.calibration_slope(y, overconfident)[1] == pytest.approx(1 / 3, abs=0.05)
    assert metrics.brier_score(y, calibrated) < metrics.brier_score(y, overconfident)
    assert metrics.brier_score([0, 1], [0.0, 1.0]) == 0.0
    assert metrics.brier_score([0, 1], [0.5, 0.5]) == 0.25
    with pytest.raises(ValueError, match="probabilities"):
        metrics.brier_score([0, 1], [0.5, 1.5])


def test_paired_specificity_difference_at_matched_sensitivity():
    """Issue 21: specificity of two models at the same sensitivity, paired bootstrap. A
    model whose benign scores overlap the positives more pays in specificity; the
    interval covers the truth in most simulated cohorts and 0 for identical models."""
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(50, int), np.zeros(90, int)]
    a_pos, b_neg = rng.normal(2.0, 1.0, 50), rng.normal(0.0, 1.0, 90)
    # exact value: at the largest threshold finding 95 % of positives
    t = metrics.threshold_for_sensitivity(y, np.r_[a_pos, b_neg], 0.95)
    assert metrics.specificity_at_sensitivity(y, np.r_[a_pos, b_neg], 0.95) == pytest.approx(np.mean(b_neg < t))
    same = metrics.paired_specificity_difference(y, np.r_[a_pos, b_neg], np.r_[a_pos, b_neg], n_resamples=50, rng=1)
    assert same.value == same.low == same.high == 0.0
    covered, shown = 0, 0
    from scipy import stats as st
    truth = (st.norm.cdf(st.norm.ppf(0.05, 2.0)) - st.norm.cdf(st.norm.ppf(0.05, 2.0), 1.0))  # spec_a - spec_b
    for k in range(20):
        r = np.random.default_rng(100 + k)
        pos, neg = r.normal(2.0, 1.0, 50), r.normal(0.0, 1.0, 90)
        est = metrics.paired_specificity_difference(y, np.r_[pos, neg], np.r_[pos, neg + 1.0], n_resamples=300,
                                                    rng=k)
        covered += est.low <= truth <= est.high
        shown += est.low > 0
    assert covered >= 16 and shown >= 16   # ~95 % coverage; the shift of 1 SD is found in most cohorts
    with pytest.raises(ValueError, match="sensitivity"):
        metrics.paired_specificity_difference(y, a_pos.tolist() + b_neg.tolist(), np.r_[a_pos, b_neg], sensitivity=0)


def test_verdict_probability_is_the_binomial_sum_over_wilson_verdicts():
    """Issue 28: the power of the interval rules, checked against a direct binomial sum and a simulation."""
    from scipy import stats

    n, bar = 40, 0.70
    for rate in (0.5, 0.6, 0.65, 0.7, 0.8):
        direct = sum(stats.binom.pmf(k, n, rate) for k in range(n + 1) if metrics.wilson_interval(k, n)[1] < bar)
        assert metrics.verdict_probability(n, bar, rate, "fails") == pytest.approx(direct, abs=1e-12)
        total = sum(metrics.verdict_probability(n, bar, rate, v) for v in ("fails", "meets", "not distinguishable"))
        assert total == pytest.approx(1.0, abs=1e-12)
    # the review's figures: 40 cancers, bar 0.70, true 0.50/0.55/0.60/0.65
    got = metrics.verdict_probability(n, bar, np.array([0.50, 0.55, 0.60, 0.65]))
    np.testing.assert_allclose(got, [0.785, 0.561, 0.311, 0.124], atol=0.001)
    # a simulation agrees (statistical test: 20000 draws, tolerance 4 standard errors)
    rng = np.random.default_rng(0)
    k = rng.binomial(n, 0.6, size=20000)
    simulated = np.mean([metrics.wilson_interval(int(i), n)[1] < bar for i in k])
    assert abs(simulated - got[2]) < 4 * math.sqrt(got[2] * (1 - got[2]) / 20000)
    # power grows with the distance to the bar
    assert np.all(np.diff(metrics.verdict_probability(n, bar, np.linspace(0.3, 0.7, 9))) < 0)


def test_trials_for_power_is_where_the_power_stays_above_the_target():
    n = metrics.trials_for_power(0.70, 0.60, power=0.8)
    assert all(metrics.verdict_probability(m, 0.70, 0.60) >= 0.8 for m in range(n, 2 * n + 1))
    assert metrics.verdict_probability(n - 1, 0.70, 0.60) < 0.8
    assert 150 < n < 220   # the review: about 181 malignant patients
    with pytest.raises(ValueError, match="max_trials"):
        metrics.trials_for_power(0.70, 0.69, max_trials=50)


@pytest.mark.parametrize("kwargs, message", [
    (dict(trials=0, required=0.7, true_rate=0.5), "trials"),
    (dict(trials=40, required=1.5, true_rate=0.5), "required"),
    (dict(trials=40, required=0.7, true_rate=1.2), "true_rate"),
    (dict(trials=40, required=0.7, true_rate=0.5, verdict="passes"), "verdict"),
])
def test_verdict_probability_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        metrics.verdict_probability(**kwargs)


def test_calibration_on_logits_recovers_intercept_and_slope():
    """Issue 28: calibration from logits (no clipping), with intervals that cover the truth."""
    rng = np.random.default_rng(5)
    z = rng.normal(scale=2.0, size=3000)
    y = (rng.uniform(size=z.size) < 1 / (1 + np.exp(-(0.5 + z / 3)))).astype(int)   # true a = 0.5 (at b = 1/3)
    cal = metrics.calibration(y, z, n_resamples=200, rng=0)
    assert not cal.separated
    assert cal.slope.low < 1 / 3 < cal.slope.high and cal.slope.high < 0.5
    assert cal.intercept.low <= cal.intercept.value <= cal.intercept.high
    assert metrics.calibration(y, z, n_resamples=200, rng=0) == cal   # seeded
    # a confident model: logits far beyond the probability clip of calibration_slope
    big = 40 * z
    assert metrics.calibration(y, big, n_resamples=100).slope.value == pytest.approx(cal.slope.value / 40, rel=1e-6)


def test_calibration_of_separated_scores_says_so():
    y = np.array([0, 0, 0, 1, 1, 1])
    z = np.array([-3.0, -2.0, -1.0, 1.0, 2.0, 3.0])
    cal = metrics.calibration(y, z, n_resamples=50)
    assert cal.separated and math.isinf(cal.slope.value) and math.isnan(cal.slope.low)
    assert metrics.calibration_slope(y, 1 / (1 + np.exp(-z))) == (pytest.approx(math.nan, nan_ok=True), math.inf)
    # one overlap: a finite slope, but resamples that drop the overlap separate: the upper end is inf
    z2 = np.array([-3.0, -2.0, 1.5, 1.0, 2.0, 3.0])
    cal2 = metrics.calibration(y, z2, n_resamples=200)
    assert not cal2.separated and math.isfinite(cal2.slope.value) and math.isinf(cal2.slope.high)


def test_cross_fitted_recalibration():
    rng = np.random.default_rng(6)
    z = rng.normal(size=2000)
    y = (rng.uniform(size=z.size) < 1 / (1 + np.exp(-z))).astype(int)
    p = metrics.cross_fitted_recalibration(y, 4 * z, folds=2, rng=0)   # over-confident logits, scaled back
    assert np.allclose(p, 1 / (1 + np.exp(-z)), atol=0.06)
    # no patient is scored by a fit it took part in: changing one fold's labels leaves that fold's scores alone
    fold_a = metrics.cross_fitted_recalibration(y, z, folds=2, rng=1)
    assert metrics.cross_fitted_recalibration(y, z, folds=2, rng=1) is not fold_a
    assert np.array_equal(fold_a, metrics.cross_fitted_recalibration(y, z, folds=2, rng=1))
    # separated folds still give finite probabilities (the penalty)
    ys = np.array([0] * 10 + [1] * 10)
    assert np.all(np.isfinite(metrics.cross_fitted_recalibration(ys, np.r_[-np.ones(10), np.ones(10)] * 5)))
    for kwargs, match in (({"folds": 1}, "folds"), ({"folds": 11}, "folds"), ({"penalty": -1.0}, "penalty")):
        with pytest.raises(ValueError, match=match):
            metrics.cross_fitted_recalibration(ys, np.r_[-np.ones(10), np.ones(10)], **kwargs)


def test_cross_fitted_recalibration_uses_only_other_folds():
    rng = np.random.default_rng(7)
    z = rng.normal(size=400)
    y = (rng.uniform(size=z.size) < 1 / (1 + np.exp(-z))).astype(int)
    gen = np.random.default_rng(3)
    fold = np.empty(y.size, dtype=int)
    for label in (0, 1):   # the same stratified folds as the helper draws with rng=3
        idx = np.flatnonzero(y == label)
        fold[gen.permutation(idx)] = np.arange(idx.size) % 2
    p = metrics.cross_fitted_recalibration(y, z, folds=2, rng=3, penalty=0.0)
    from sklearn.linear_model import LogisticRegression

    for k in (0, 1):   # each fold scored by an unpenalised logistic fit on the other fold alone
        fit = LogisticRegression(C=np.inf, tol=1e-10, max_iter=1000).fit(z[fold != k, None], y[fold != k])
        assert np.allclose(p[fold == k], fit.predict_proba(z[fold == k, None])[:, 1], atol=1e-6)


def test_net_benefit_and_its_crossing_with_treat_all():
    """Net benefit (Vickers and Elkin, 2006): TP/n - FP/n * t/(1-t); a rule beats treat-all exactly
    above t = share of cancers among the patients it calls negative (1 - NPV)."""
    y = np.array([1] * 50 + [0] * 90)
    called = np.r_[np.ones(44, bool), np.zeros(6, bool), np.ones(7, bool), np.zeros(83, bool)]   # FN 6, TN 83
    t = np.array([0.05, 0.2])
    nb = metrics.net_benefit(y, called, t)
    assert nb == pytest.approx(44 / 140 - 7 / 140 * t / (1 - t))
    treat_all = metrics.net_benefit(y, np.ones(140, bool), t)
    crossing = 6 / (6 + 83)
    below, above = crossing - 1e-3, crossing + 1e-3
    assert metrics.net_benefit(y, called, below) < metrics.net_benefit(y, np.ones(140, bool), below)
    assert metrics.net_benefit(y, called, above) > metrics.net_benefit(y, np.ones(140, bool), above)
    assert treat_all[0] == pytest.approx(50 / 140 - 90 / 140 * 0.05 / 0.95)
    assert isinstance(metrics.net_benefit(y, called, 0.1), float)
    for kwargs, match in (({"threshold_probability": 0.0}, "threshold_probability"),
                          ({"threshold_probability": 1.0}, "threshold_probability"),
                          ({"called": called.astype(int)}, "called"), ({"called": called[:5]}, "called")):
        args = {"y_true": y, "called": called, "threshold_probability": 0.1, **kwargs}
        with pytest.raises(ValueError, match=match):
            metrics.net_benefit(**args)


def test_predictive_values_at_prevalence():
    ppv, npv = metrics.predictive_values_at(0.9, 0.95, 0.5)
    assert ppv == pytest.approx(0.9 / 0.95) and npv == pytest.approx(0.95 / 1.05)
    # the sample's own prevalence gives the sample's own PPV and NPV
    y = np.array([1] * 53 + [0] * 90)
    s = np.r_[np.ones(47), np.zeros(6), np.ones(7), np.zeros(83)]
    pv = metrics.predictive_values(y, s, 0.5)
    se, sp = 47 / 53, 83 / 90
    ppv, npv = metrics.predictive_values_at(se, sp, 53 / 143)
    assert ppv == pytest.approx(pv["ppv"].value) and npv == pytest.approx(pv["npv"].value)
    ppvs, npvs = metrics.predictive_values_at(se, sp, np.array([0.02, 0.1, 0.37]))
    assert np.all(np.diff(ppvs) > 0) and np.all(np.diff(npvs) < 0)   # rarer disease: fewer true alarms
    for kwargs, match in (({"prevalence": 0.0}, "prevalence"), ({"sensitivity": 1.2}, "sensitivity"),
                          ({"specificity": -0.1}, "specificity")):
        args = {"sensitivity": 0.9, "specificity": 0.9, "prevalence": 0.1, **kwargs}
        with pytest.raises(ValueError, match=match):
            metrics.predictive_values_at(**args)
