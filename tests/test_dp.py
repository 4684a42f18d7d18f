"""helpers.dp: mechanisms have the claimed noise, clamp, respect ε empirically; the secure
sampler stays on its grid; the ledger refuses overspending; DP-SGD accounting agrees
with dp_accounting and tensorflow-privacy. Statistical tests use fixed seeds; their
thresholds are set so a correct implementation fails with probability < 1e-3."""
import math
import re

import numpy as np
import pytest
from scipy import stats

from helpers import dp


# ----------------------------------------------------------------- noise distribution

def test_laplace_noise_has_claimed_distribution_and_scale():
    sensitivity, epsilon = 2.0, 0.5
    noise = dp.laplace_mechanism(np.zeros(20_000), sensitivity, epsilon, rng=1)
    scale = sensitivity / epsilon
    # Kolmogorov-Smirnov against Laplace(0, Δ/ε); the grid (~scale/1024) is far below KS resolution.
    assert stats.kstest(noise, stats.laplace(scale=scale).cdf).pvalue > 1e-3
    assert abs(np.mean(np.abs(noise)) / scale - 1) < 0.03  # E|X| = b, sd of estimate ~0.7%


def test_gaussian_noise_has_claimed_distribution_and_scale():
    sensitivity, epsilon, delta = 1.0, 1.0, 1e-5
    sigma = dp.gaussian_sigma(sensitivity, epsilon, delta)
    noise = dp.gaussian_mechanism(np.zeros(20_000), sensitivity, epsilon, delta, rng=2)
    assert stats.kstest(noise, stats.norm(scale=sigma).cdf).pvalue > 1e-3
    assert abs(noise.std() / sigma - 1) < 0.03


def test_analytic_gaussian_is_tight_and_below_classic():
    from scipy.stats import norm
    s, e, d = 1.0, 0.5, 1e-5
    sigma = dp.gaussian_sigma(s, e, d)
    achieved = norm.cdf(s / (2 * sigma) - e * sigma / s) - math.exp(e) * norm.cdf(-s / (2 * sigma) - e * sigma / s)
    assert achieved <= d and achieved > 0.99 * d
    assert sigma < dp.gaussian_sigma(s, e, d, method="classic")


def test_same_seed_same_output_and_generator_accepted():
    a = dp.laplace_mechanism(10.0, 1.0, 1.0, rng=5)
    b = dp.laplace_mechanism(10.0, 1.0, 1.0, rng=np.random.default_rng(5))
    assert a == b and isinstance(a, float)
    assert dp.dp_mean([1, 2, 3], 0, 10, 1.0, rng=3) == dp.dp_mean([1, 2, 3], 0, 10, 1.0, rng=3)


# ----------------------------------------------------------------- secure sampler

def test_secure_sampler_outputs_lie_on_power_of_two_grid():
    sensitivity, epsilon = 1.0, 0.7
    step = dp.grid_step(sensitivity / epsilon)
    assert math.log2(step) == int(math.log2(step))
    out = dp.laplace_mechanism(np.full(5000, 0.123456789), sensitivity, epsilon, rng=0)
    units = out / step
    assert np.all(units == np.round(units))
    g = dp.gaussian_mechanism(np.full(5000, 3.3), 1.0, 1.0, 1e-5, rng=0)
    gs = dp.grid_step(dp.gaussian_sigma(1.0, 1.0, 1e-5))
    assert np.all(g / gs == np.round(g / gs))


def test_textbook_sampler_has_holes_and_secure_does_not():
    scale = 1.0
    out = dp.textbook_laplace(np.zeros(20_000), scale, rng=0)
    assert dp.textbook_possible(out, 0.0, scale).all()  # the check reproduces the sampler exactly
    impossible = ~dp.textbook_possible(out, 1.0, scale)
    assert impossible.mean() > 0.05  # Mironov: many outputs reveal the input
    # Secure: every grid point has positive probability from either input (discrete Laplace).
    step = dp.grid_step(scale)
    a = dp.laplace_mechanism(np.zeros(1000), 1.0, 1.0, rng=1) / step
    assert np.all(a == np.round(a))


# ----------------------------------------------------------------- mechanisms

def test_dp_mean_clamps_outliers():
    values = np.r_[np.full(999, 5.0), 1e9]
    est = [dp.dp_mean(values, 0, 10, epsilon=50.0, rng=s) for s in range(20)]
    clamped_mean = (999 * 5 + 10) / 1000
    assert abs(np.median(est) - clamped_mean) < 0.05
    for relation in ("replace_one",):
        assert 0 <= dp.dp_mean(values, 0, 10, 1.0, rng=0, relation=relation) <= 10


def test_dp_mean_is_unbiased_enough_and_noise_shrinks_with_epsilon():
    rng = np.random.default_rng(0)
    values = rng.uniform(20, 80, size=500)
    errs = {e: np.std([dp.dp_mean(values, 0, 100, e, rng=s) - values.mean() for s in range(300)])
            for e in (0.1, 1.0)}
    assert errs[0.1] > 3 * errs[1.0]


def test_dp_count_and_histogram():
    assert abs(np.mean([dp.dp_count(np.ones(100), 1.0, rng=s) for s in range(400)]) - 100) < 0.3
    h = dp.dp_histogram([0.5, 1.5, 1.6, 99], bins=[0, 1, 2, 3], epsilon=100.0, rng=0)
    assert h.shape == (3,) and np.allclose(h, [1, 2, 1], atol=0.2)  # 99 clamped into the last bin


def test_randomized_response_estimate_is_unbiased():
    truth = np.r_[np.ones(3000), np.zeros(7000)].astype(bool)
    answers = dp.randomized_response(truth, math.log(3), rng=0)
    assert abs(answers.mean() - (0.3 * 0.75 + 0.7 * 0.25)) < 0.02
    assert abs(dp.randomized_response_estimate(answers, math.log(3)) - 0.3) < 0.04


# ----------------------------------------------------------------- empirical ε

@pytest.mark.parametrize("mechanism", ["laplace", "gaussian", "rr"])
def test_empirical_epsilon_does_not_exceed_claim(mechanism):
    epsilon, delta, n = 1.0, 1e-5, 20_000
    if mechanism == "laplace":
        a = dp.laplace_mechanism(np.zeros(n), 1.0, epsilon, rng=0)
        b = dp.laplace_mechanism(np.ones(n), 1.0, epsilon, rng=1)
    elif mechanism == "gaussian":
        a = dp.gaussian_mechanism(np.zeros(n), 1.0, epsilon, delta, rng=0)
        b = dp.gaussian_mechanism(np.ones(n), 1.0, epsilon, delta, rng=1)
    else:
        a = dp.randomized_response(np.ones(n), epsilon, rng=0).astype(float)
        b = dp.randomized_response(np.zeros(n), epsilon, rng=1).astype(float)
    low = dp.empirical_epsilon(a, b, delta=delta if mechanism == "gaussian" else 0.0)
    assert low <= epsilon
    # The audit is not vacuous. A Gaussian's ε at small δ lives in far tails that 20,000
    # samples rarely reach, so it sees less of it.
    assert low > (0.2 if mechanism == "gaussian" else 0.5) * epsilon


def test_empirical_epsilon_catches_a_broken_mechanism():
    # Claimed ε=0.5 but noise calibrated for ε=3: the audit must prove ε > 0.5.
    a = dp.laplace_mechanism(np.zeros(20_000), 1.0, 3.0, rng=0)
    b = dp.laplace_mechanism(np.ones(20_000), 1.0, 3.0, rng=1)
    assert dp.empirical_epsilon(a, b) > 0.5


# ----------------------------------------------------------------- composition and ledger

def test_composition():
    assert dp.basic_composition([0.1, 0.2], [1e-6, 1e-6]) == pytest.approx((0.3, 2e-6))
    eps, delta = dp.advanced_composition(0.01, 0.0, 1000, 1e-5)
    assert eps < 1000 * 0.01 and delta == pytest.approx(1e-5)


def test_ledger_refuses_overspending():
    ledger = dp.PrivacyLedger(epsilon=1.0)
    ledger.laplace(5.0, 1.0, 0.6, label="a", rng=0)
    with pytest.raises(dp.BudgetExceeded, match="refused 'b'"):
        ledger.laplace(5.0, 1.0, 0.5, label="b", rng=0)
    assert ledger.spent_epsilon == pytest.approx(0.6) and len(ledger.entries) == 1
    ledger.spend(0.4, label="c")  # exactly the rest is fine
    assert ledger.remaining_epsilon == pytest.approx(0.0)
    with pytest.raises(dp.BudgetExceeded):
        ledger.spend(1e-6)


# ----------------------------------------------------------------- DP-SGD accounting

@pytest.mark.parametrize("n,batch,epochs,sigma,delta", [(300, 60, 20, 1.4, 1e-4), (60000, 256, 15, 1.1, 1e-5)])
def test_dp_sgd_epsilon_agrees_with_dp_accounting_and_tf_privacy(n, batch, epochs, sigma, delta):
    import dp_accounting
    from tensorflow_privacy.privacy.analysis.compute_dp_sgd_privacy_lib import compute_dp_sgd_privacy_statement

    ours = dp.dp_sgd_epsilon(n, batch, epochs, sigma, delta)
    q = batch / n
    event = dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), math.ceil(epochs / q))
    assert ours == pytest.approx(dp_accounting.rdp.RdpAccountant().compose(event).get_epsilon(delta), rel=1e-9)
    text = compute_dp_sgd_privacy_statement(n, batch, epochs, sigma, delta, used_microbatching=False)
    reported = float(re.search(r"Epsilon assuming Poisson sampling \(\*\):\s+([0-9.]+)", text).group(1))
    assert ours == pytest.approx(reported, rel=1e-3)


def test_noise_multiplier_for_epsilon_hits_target():
    for target in (1.0, 3.0, 8.0):
        sigma = dp.noise_multiplier_for_epsilon(300, 60, 20, target, 1e-4)
        assert dp.dp_sgd_epsilon(300, 60, 20, sigma, 1e-4) <= target
        assert dp.dp_sgd_epsilon(300, 60, 20, sigma * 0.99, 1e-4) > target


# ----------------------------------------------------------------- bad input

@pytest.mark.parametrize("call,name", [
    (lambda: dp.laplace_mechanism(1.0, 1.0, 0.0), "epsilon"),
    (lambda: dp.laplace_mechanism(1.0, 1.0, float("inf")), "epsilon"),
    (lambda: dp.laplace_mechanism(1.0, -1.0, 1.0), "sensitivity"),
    (lambda: dp.gaussian_mechanism(1.0, 1.0, 1.0, 1.0), "delta"),
    (lambda: dp.gaussian_mechanism(1.0, 1.0, 1.0, 0.0), "delta"),
    (lambda: dp.dp_mean([1, 2], 5, 5, 1.0), "lower"),
    (lambda: dp.dp_mean([], 0, 1, 1.0), "values"),
    (lambda: dp.dp_mean([1, float("nan")], 0, 1, 1.0), "values"),
    (lambda: dp.dp_mean([1, 2], 0, 1, 1.0, relation="swap"), "relation"),
    (lambda: dp.dp_histogram([1], [0], 1.0), "bins"),
    (lambda: dp.laplace_mechanism(1.0, 1.0, 1.0, rng="x"), "rng"),
    (lambda: dp.dp_sgd_epsilon(100, 200, 1, 1.0, 1e-5), "batch_size"),
    (lambda: dp.dp_sgd_epsilon(100, 10, 1, 1.0, 2.0), "delta"),
    (lambda: dp.noise_multiplier_for_epsilon(100, 10, 1, -1, 1e-5), "target_epsilon"),
    (lambda: dp.PrivacyLedger(epsilon=0), "epsilon"),
    (lambda: dp.randomized_response([0, 2], 1.0), "truth"),
])
def test_bad_input_raises_value_error_naming_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()
