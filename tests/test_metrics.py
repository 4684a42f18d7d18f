"""Clinical metrics: agreement with scikit-learn, operating points, interval coverage."""
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
