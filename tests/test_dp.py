"""helpers.dp: mechanisms have the claimed noise, clamp, respect ε empirically and exactly
(worst-case vector counterexamples); the grid sampler stays on its grid; the exact sampler
has the exact pmf; data never raise; the ledger refuses overspending; DP-SGD accounting
(RDP, PLD, shuffled) agrees with dp_accounting and tensorflow-privacy. Statistical tests use
fixed seeds; their thresholds are set so a correct implementation fails with probability
< 1e-3."""
import math
import re
from fractions import Fraction

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
    step, _ = dp.laplace_grid(sensitivity, epsilon, 5000)
    assert math.log2(step) == int(math.log2(step))
    out = dp.laplace_mechanism(np.full(5000, 0.123456789), sensitivity, epsilon, rng=0)
    units = out / step
    assert np.all(units == np.round(units))
    g = dp.gaussian_mechanism(np.full(5000, 3.3), 1.0, 1.0, 1e-5, rng=0)
    gs, _ = dp.gaussian_grid(1.0, 1.0, 1e-5, 5000)
    assert np.all(g / gs == np.round(g / gs))


def test_textbook_sampler_has_holes_and_secure_does_not():
    scale = 1.0
    out = dp.textbook_laplace(np.zeros(20_000), scale, rng=0)
    assert dp.textbook_possible(out, 0.0, scale).all()  # the check reproduces the sampler exactly
    impossible = ~dp.textbook_possible(out, 1.0, scale)
    assert impossible.mean() > 0.05  # Mironov: many outputs reveal the input
    # Secure: outputs are whole grid steps, and the discrete Laplace's exact privacy loss
    # between inputs 0 and 1 is |k - k'| / t <= ε for every output.
    step, t = dp.laplace_grid(1.0, 1.0, 1000)
    a = dp.laplace_mechanism(np.zeros(1000), 1.0, 1.0, rng=1) / step
    assert np.all(a == np.round(a))
    assert np.max(np.abs(np.abs(a - round(1 / step)) - np.abs(a))) / t <= 1.0


def test_grids_cost_at_most_a_factor_1_plus_2_to_minus_9_of_noise():
    for sensitivity, epsilon, d in [(1.0, 1.0, 1), (2.0, 0.1, 7), (1.0, 20.0, 1000), (0.3, 1.0, 100_000)]:
        step, t = dp.laplace_grid(sensitivity, epsilon, d)
        assert 1 <= t * step / (sensitivity / epsilon) <= 1 + 2 ** -9
        gstep, sigma_steps = dp.gaussian_grid(sensitivity, min(epsilon, 5.0), 1e-5, d)
        sigma = dp.gaussian_sigma(sensitivity, min(epsilon, 5.0), 1e-5)
        assert 1 <= sigma_steps * gstep / sigma <= 1 + 2 ** -9


# ----------------------------------------------------------------- vector releases (issue 10, item 2)

def _worst_pair(step, d, distance_per_coordinate):
    """Two inputs whose every coordinate rounds the wrong way: a just below -step/2 (rounds to
    -1 step), b = a + distance (rounds up)."""
    a = np.full(d, -(0.5 + 1e-4) * step)
    return a, a + distance_per_coordinate


def test_vector_laplace_exact_worst_case_privacy_loss_is_at_most_epsilon():
    # The counterexample: d = 1000 coordinates each moved by 0.999/1000 (L1 0.999 <= Δ = 1).
    d, sensitivity, epsilon = 1000, 1.0, 1.0
    # The old code (grid 2**-10 from Δ/ε, one step for rounding in total) lost ≈ 1.95 > ε:
    old_step = dp.grid_step(sensitivity / epsilon)
    old_t = (math.ceil(sensitivity / old_step) + 1) / epsilon
    a, b = _worst_pair(old_step, d, 0.999 / d)
    old_loss = np.abs(np.rint(a / old_step) - np.rint(b / old_step)).sum() / old_t
    assert old_loss > 1.9
    # Now: the exact privacy loss of the discrete Laplace on the rounded inputs is the L1
    # distance in steps divided by t, for the worst-rounded pair and for random pairs.
    step, t = dp.laplace_grid(sensitivity, epsilon, d)
    a, b = _worst_pair(step, d, 0.999 / d)
    assert np.abs(np.rint(a / step) - np.rint(b / step)).sum() / t <= epsilon
    rng = np.random.default_rng(0)
    for _ in range(200):
        a = rng.normal(0, 10, d)
        move = rng.dirichlet(np.ones(d)) * sensitivity * rng.choice([-1, 1], d)
        assert np.abs(np.rint(a / step) - np.rint((a + move) / step)).sum() / t <= epsilon
    # And the mechanism really uses that grid and t (its outputs on the grid, its spread t * step).
    out = dp.laplace_mechanism(np.zeros(d), sensitivity, epsilon, rng=3)
    assert np.all(out / step == np.round(out / step))


def test_vector_gaussian_true_delta_is_at_most_claimed():
    d, sensitivity, epsilon, delta = 1000, 1.0, 1.0, 1e-5
    # Old code: grid from σ, one step for rounding in total: true δ ≈ 2.1e-5 for a claimed 1e-5.
    old_step = dp.grid_step(dp.gaussian_sigma(sensitivity, epsilon, delta))
    old_sigma = dp.gaussian_sigma(sensitivity + old_step, epsilon, delta)
    a, b = _worst_pair(old_step, d, 0.999 / math.sqrt(d))
    old_l2 = np.linalg.norm(np.rint(a / old_step) - np.rint(b / old_step))
    assert dp.gaussian_delta(old_sigma / old_step, old_l2, epsilon) > 2 * delta
    # Now: the rounded output is post-processing of a Gaussian mechanism on the rounded
    # inputs, whose exact δ at ε (Balle & Wang) must be <= the claimed δ.
    step, sigma_steps = dp.gaussian_grid(sensitivity, epsilon, delta, d)
    a, b = _worst_pair(step, d, 0.999 / math.sqrt(d))
    l2 = np.linalg.norm(np.rint(a / step) - np.rint(b / step))
    assert dp.gaussian_delta(sigma_steps, l2, epsilon) <= delta


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


def test_no_exception_depends_on_the_data():
    # Issue 10, item 7: empty or missing data must not raise (the exception would tell the
    # neighbours apart with certainty); they are handled inside the mechanism.
    nan, inf = float("nan"), float("inf")
    for data in ([], [nan], [nan, nan, 3.0], [inf, -inf, 2.0], np.zeros((0, 4))):
        assert math.isfinite(dp.dp_count(data, 1.0, rng=0))
        assert math.isfinite(dp.dp_sum(np.ravel(data), 0, 10, 1.0, rng=0))
        assert 0 <= dp.dp_mean(np.ravel(data), 0, 10, 1.0, rng=0) <= 10
        assert np.all(np.isfinite(dp.dp_histogram(np.ravel(data), [0, 5, 10], 1.0, rng=0)))
    assert 0 <= dp.dp_mean([1.0, nan], 0, 10, 1.0, rng=0, relation="replace_one") <= 10


def test_empty_data_release_noise_around_zero():
    counts = [dp.dp_count([], 1.0, rng=s) for s in range(400)]
    assert abs(np.mean(counts)) < 0.3  # sd of the mean of 400 Laplace(1) draws is 0.07
    assert np.std(counts) > 1.0        # noise of scale 1 (sd √2), not a constant
    hist = np.array([dp.dp_histogram([], [0, 1, 2], 1.0, rng=s) for s in range(400)])
    assert np.all(np.abs(hist.mean(axis=0)) < 0.3)
    assert abs(np.mean([dp.dp_mean([], 0, 10, 1.0, rng=s) for s in range(400)]) - 5) < 0.5  # middle of range


def test_nan_policy_missing_is_absent_and_counted_as_a_record():
    data, with_nan = [1.0, 2.0, 3.0], [1.0, 2.0, 3.0, float("nan")]
    # add/remove: a NaN record is dropped, exactly as if it were absent (same seed, same output)
    assert dp.dp_mean(with_nan, 0, 10, 1.0, rng=4) == dp.dp_mean(data, 0, 10, 1.0, rng=4)
    assert dp.dp_sum(with_nan, 0, 10, 1.0, rng=4) == dp.dp_sum(data, 0, 10, 1.0, rng=4)
    assert np.array_equal(dp.dp_histogram(with_nan, [0, 2, 4], 1.0, rng=4),
                          dp.dp_histogram(data, [0, 2, 4], 1.0, rng=4))
    # dp_count counts records, whatever their values
    assert dp.dp_count(with_nan, 1.0, rng=4) == dp.dp_count([0.0] * 4, 1.0, rng=4)
    # replace-one: n is public, NaN is imputed as the middle of the range
    mid = dp.dp_mean([2.0, 4.0, 6.0, 5.0], 0, 10, 1.0, rng=4, relation="replace_one")
    assert dp.dp_mean([2.0, 4.0, 6.0, float("nan")], 0, 10, 1.0, rng=4, relation="replace_one") == mid
    # inf is an outlier like any other: clamped
    assert dp.dp_sum([float("inf")], 0, 10, 1.0, rng=4) == dp.dp_sum([10.0], 0, 10, 1.0, rng=4)


def test_exponential_mechanism_frequencies_match_exact_probabilities():
    scores, sensitivity, epsilon = np.array([0.0, 1.0, 2.0, 4.0, 4.0]), 1.0, 1.5
    probs = dp.exponential_probabilities(scores, sensitivity, epsilon)
    expected = np.exp(epsilon * scores / (2 * sensitivity))
    assert np.allclose(probs, expected / expected.sum(), rtol=1e-12)
    gen = np.random.default_rng(0)
    n = 20_000
    picks = np.array([dp.exponential_mechanism(scores, sensitivity, epsilon, rng=gen) for _ in range(n)])
    observed = np.bincount(picks, minlength=len(scores))
    # Chi-square goodness of fit (every expected count > 1000): a correct sampler fails w.p. 1e-3.
    assert stats.chisquare(observed, n * probs).pvalue > 1e-3
    # Huge scores do not overflow (Gumbel-max), and the best score wins almost surely at large ε.
    assert dp.exponential_mechanism([1e6, 0.0, -1e6], 1.0, 1.0, rng=0) == 0


def test_epsilon_meaning_matches_the_hypothesis_testing_region():
    m = dp.epsilon_meaning(1.0)
    assert m["max_tpr"] == pytest.approx(math.e * 0.05)            # e^ε FPR binds at small FPR
    assert m["max_posterior"] == pytest.approx(math.e / (math.e + 1))
    assert m["max_advantage"] == pytest.approx((math.e - 1) / (math.e + 1))
    assert dp.epsilon_meaning(1.0, fpr=0.6)["max_tpr"] == pytest.approx(1 - 0.4 / math.e)  # other side binds
    assert dp.epsilon_meaning(10.0)["max_tpr"] == pytest.approx(1 - 0.95 * math.exp(-10))
    assert dp.epsilon_meaning(1.0, delta=0.5, fpr=0.5)["max_tpr"] == 1.0
    assert dp.epsilon_meaning(1.0, delta=1e-5)["max_tpr"] == pytest.approx(math.e * 0.05 + 1e-5)
    assert dp.epsilon_meaning(2.0, prior=0.01)["max_posterior"] == pytest.approx(
        math.exp(2) * 0.01 / (math.exp(2) * 0.01 + 0.99))
    # Tightness: randomized response with ε reaches the region's corner (TPR = e^ε/(1+e^ε) at
    # FPR = 1/(1+e^ε)), and the region's TPR at that FPR is exactly that.
    e = 1.3
    corner = 1 / (1 + math.exp(e))
    assert dp.epsilon_meaning(e, fpr=corner)["max_tpr"] == pytest.approx(1 - corner)


def test_randomized_response_estimate_is_unbiased():
    truth = np.r_[np.ones(3000), np.zeros(7000)].astype(bool)
    answers = dp.randomized_response(truth, math.log(3), rng=0)
    assert abs(answers.mean() - (0.3 * 0.75 + 0.7 * 0.25)) < 0.02
    assert abs(dp.randomized_response_estimate(answers, math.log(3)) - 0.3) < 0.04


# ----------------------------------------------------------------- Gaussian calibration (item 4)

@pytest.mark.parametrize("epsilon,true_delta", [(10.0, 2.3e-5), (20.0, 1.5e-3)])
def test_classic_gaussian_is_not_private_at_large_epsilon_and_is_refused(epsilon, true_delta):
    delta = 1e-5
    classic = math.sqrt(2 * math.log(1.25 / delta)) / epsilon  # the formula, Δ = 1
    assert dp.gaussian_delta(classic, 1.0, epsilon) == pytest.approx(true_delta, rel=0.05)
    assert dp.gaussian_delta(classic, 1.0, epsilon) > delta
    with pytest.raises(ValueError, match=r"epsilon must be in \(0, 1\).*method='analytic'"):
        dp.gaussian_sigma(1.0, epsilon, delta, method="classic")
    analytic = dp.gaussian_sigma(1.0, epsilon, delta)
    assert dp.gaussian_delta(analytic, 1.0, epsilon) <= delta


def test_analytic_gaussian_is_private_at_every_epsilon():
    for epsilon in (0.01, 0.5, 1.0, 3.0, 10.0, 20.0, 50.0):
        sigma = dp.gaussian_sigma(2.0, epsilon, 1e-5)
        assert 0.999e-5 < dp.gaussian_delta(sigma, 2.0, epsilon) <= 1e-5
    assert dp.gaussian_sigma(1.0, 0.5, 1e-5) < dp.gaussian_sigma(1.0, 0.5, 1e-5, method="classic")


# ----------------------------------------------------------------- exact sampler (item 3)

@pytest.mark.parametrize("t", [2.5, Fraction(7, 3), 0.5])
def test_exact_discrete_laplace_has_the_exact_pmf(t):
    import random

    gen = random.Random(0)
    n = 20_000
    draws = np.array([dp.exact_discrete_laplace(t, rng=gen) for _ in range(n)])
    assert draws.dtype.kind == "i"
    q = math.exp(-1 / float(t))
    pmf = lambda k: (1 - q) / (1 + q) * q ** abs(k)  # noqa: E731
    # Chi-square over the values with expected count >= 50, the two tails pooled (Cochran's
    # rule is 5; 50 keeps the approximation good). A correct sampler fails w.p. 1e-3.
    kmax = max(k for k in range(200) if n * pmf(k) >= 50)
    ks = np.arange(-kmax, kmax + 1)
    probs = np.array([pmf(k) for k in ks] + [2 * q ** (kmax + 1) / (1 + q)])
    observed = np.array([np.sum(draws == k) for k in ks] + [np.sum(np.abs(draws) > kmax)])
    assert probs.sum() == pytest.approx(1.0)
    assert stats.chisquare(observed, n * probs).pvalue > 1e-3


def test_exact_sampler_is_reproducible_only_when_seeded_and_costs_microseconds():
    import random
    import time

    assert [dp.exact_discrete_laplace(3, rng=random.Random(1)) for _ in range(3)] == \
           [dp.exact_discrete_laplace(3, rng=random.Random(1)) for _ in range(3)]
    start = time.perf_counter()
    for _ in range(2000):
        dp.exact_discrete_laplace(Fraction(2049) / Fraction(0.7))  # secrets.SystemRandom
    per_sample = (time.perf_counter() - start) / 2000
    assert per_sample < 2e-3  # measured ~60-85 µs on 2 shared cores; generous for slow CI
    out = dp.exact_laplace_mechanism(10.0, 1.0, 0.7, rng=random.Random(2))
    step, _ = dp.laplace_grid(1.0, 0.7)
    assert out / step == round(out / step)


def test_exact_laplace_mechanism_has_the_claimed_scale():
    import random

    gen = random.Random(5)
    noise = np.array([dp.exact_laplace_mechanism(0.0, 2.0, 0.5, rng=gen) for _ in range(4000)])
    assert abs(np.mean(np.abs(noise)) / 4.0 - 1) < 0.06  # E|X| ≈ b = 4; sd of the estimate 1.6 %


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


@pytest.mark.parametrize("n,batch,epochs,delta", [(300, 60, 20, 1e-4), (455, 25, 100, 1e-4), (300, 50, 100, 1e-5)])
def test_pld_accountant_is_tighter_fast_and_agrees_with_dp_accounting(n, batch, epochs, delta):
    import time

    import dp_accounting

    sigma = dp.noise_multiplier_for_epsilon(n, batch, epochs, 3.0, delta)
    start = time.perf_counter()
    pld = dp.dp_sgd_epsilon(n, batch, epochs, sigma, delta, accountant="pld")
    seconds = time.perf_counter() - start
    assert seconds < 1.0  # measured 0.02-0.12 s
    rdp = dp.dp_sgd_epsilon(n, batch, epochs, sigma, delta)
    assert pld < rdp <= 3.0
    # The default 1e-4 discretization gives the same ε within 1 % (ours is pessimistic: never below).
    q = batch / n
    event = dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), math.ceil(epochs / q))
    fine = dp_accounting.pld.PLDAccountant().compose(event).get_epsilon(delta)
    assert fine * (1 - 1e-9) <= pld <= fine * 1.01


def test_noise_multiplier_for_epsilon_with_pld_hits_target():
    for target in (1.0, 3.0, 8.0):
        sigma = dp.noise_multiplier_for_epsilon(300, 60, 20, target, 1e-4, accountant="pld")
        assert dp.dp_sgd_epsilon(300, 60, 20, sigma, 1e-4, accountant="pld") <= target
        assert dp.dp_sgd_epsilon(300, 60, 20, sigma * 0.99, 1e-4, accountant="pld") > target
        assert sigma < dp.noise_multiplier_for_epsilon(300, 60, 20, target, 1e-4)  # PLD needs less noise


@pytest.mark.parametrize("target", [1.0, 3.0, 8.0])
def test_shuffled_epsilon_is_tf_privacy_once_per_epoch_figure(target):
    from tensorflow_privacy.privacy.analysis.compute_dp_sgd_privacy_lib import compute_dp_sgd_privacy_statement

    n, batch, epochs, delta = 300, 60, 20, 1e-4
    sigma = dp.noise_multiplier_for_epsilon(n, batch, epochs, target, delta)
    ours = dp.dp_sgd_epsilon_shuffled(n, batch, epochs, sigma, delta)
    text = compute_dp_sgd_privacy_statement(n, batch, epochs, sigma, delta, used_microbatching=False)
    reported = float(re.search(r"Epsilon with each example occurring once per epoch:\s+([0-9.]+)", text).group(1))
    assert ours == pytest.approx(reported, abs=1e-3)
    assert ours > 2 * target  # no amplification: far larger than the Poisson figure
    assert dp.dp_sgd_epsilon_shuffled(n, batch, epochs, sigma, delta, relation="replace_one") > ours


def test_compose_epsilon_pld_is_tighter_than_rdp_and_basic():
    k, delta = 50, 1e-5
    for mechanism in ("gaussian", "laplace"):
        rdp = dp.compose_epsilon(k, delta, 10.0, mechanism, accountant="rdp")
        pld = dp.compose_epsilon(k, delta, 10.0, mechanism, accountant="pld")
        assert pld < rdp
    assert dp.compose_epsilon(k, delta, 10.0, "laplace", accountant="pld") < k * 0.1  # basic: k ε₀
    # One Gaussian: PLD recovers the exact (analytic) calibration.
    sigma = dp.gaussian_sigma(1.0, 1.0, 1e-5)
    assert dp.compose_epsilon(1, 1e-5, sigma, accountant="pld") == pytest.approx(1.0, abs=0.01)


# ----------------------------------------------------------------- bad input

@pytest.mark.parametrize("call,name", [
    (lambda: dp.laplace_mechanism(1.0, 1.0, 0.0), "epsilon"),
    (lambda: dp.laplace_mechanism(1.0, 1.0, float("inf")), "epsilon"),
    (lambda: dp.laplace_mechanism(1.0, -1.0, 1.0), "sensitivity"),
    (lambda: dp.gaussian_mechanism(1.0, 1.0, 1.0, 1.0), "delta"),
    (lambda: dp.gaussian_mechanism(1.0, 1.0, 1.0, 0.0), "delta"),
    (lambda: dp.dp_mean([1, 2], 5, 5, 1.0), "lower"),
    (lambda: dp.dp_mean([], 0, 1, 1.0, relation="replace_one"), "values"),  # n is public there
    (lambda: dp.dp_mean(["a", "b"], 0, 1, 1.0), "values"),
    (lambda: dp.dp_count(5, 1.0), "values"),
    (lambda: dp.dp_sum([1], 1, 0, 1.0), "lower"),
    (lambda: dp.dp_histogram([1], [0, 1], 0.0), "epsilon"),
    (lambda: dp.gaussian_sigma(1.0, 1.0, 1e-5, method="classic"), "epsilon"),
    (lambda: dp.gaussian_sigma(1.0, 0.5, 1e-5, method="exact"), "method"),
    (lambda: dp.laplace_grid(1.0, 1.0, 0), "dimension"),
    (lambda: dp.exact_discrete_laplace(0), "t"),
    (lambda: dp.exact_discrete_laplace(1.0, rng=np.random.default_rng(0)), "rng"),
    (lambda: dp.exponential_mechanism([], 1.0, 1.0), "scores"),
    (lambda: dp.exponential_mechanism([1.0, float("nan")], 1.0, 1.0), "scores"),
    (lambda: dp.epsilon_meaning(1.0, fpr=1.5), "fpr"),
    (lambda: dp.epsilon_meaning(1.0, prior=1.0), "prior"),
    (lambda: dp.dp_sgd_epsilon(100, 10, 1, 1.0, 1e-5, accountant="moments"), "accountant"),
    (lambda: dp.compose_epsilon(10, 1e-5, 1.0, mechanism="exponential"), "mechanism"),
    (lambda: dp.dp_sgd_epsilon_shuffled(100, 10, 1, 1.0, 1e-5, relation="swap"), "relation"),
    (lambda: dp.laplace_mechanism(1.0, 1.0, 1.0, bounds=(1.0, 0.0)), "bounds"),
    (lambda: dp.laplace_mechanism(1.0, 1.0, 1.0, bounds=(0.0, float("inf"))), "bounds"),
    (lambda: dp.gaussian_mechanism(1.0, 1.0, 1.0, 1e-5, bounds=5.0), "bounds"),
    (lambda: dp.laplace_mechanism(float("nan"), 1.0, 1.0), "value"),   # no bounds: caller must pre-clamp
    (lambda: dp.exact_discrete_gaussian(0), "sigma2"),
    (lambda: dp.max_tpr_from_profile(1.5, [1.0], [0.0]), "fpr"),
    (lambda: dp.max_tpr_from_profile(0.1, [1.0, 2.0], [0.0]), "epsilons"),
    (lambda: dp.dp_sgd_privacy_profile(100, 10, 1, 1.0, epsilons=[-1.0]), "epsilons"),
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


def test_dp_sgd_steps_are_counted_exactly_like_the_training():
    assert dp.dp_sgd_steps(50, 35, 21) == 30          # 21 / (35 / 50) is 30.000000000000004 in floating point
    assert dp.dp_sgd_steps(300, 60, 20) == 100 and dp.dp_sgd_steps(300, 60, 0.2) == 1
    assert dp.dp_sgd_epsilon(50, 35, 21, 1.0, 1e-5) < dp.dp_sgd_epsilon(50, 35, 21.5, 1.0, 1e-5)
    from helpers import dp_training
    assert dp_training.num_steps(50, 35, 21) == dp.dp_sgd_steps(50, 35, 21)


# ----------------------------------------------------------------- private values never raise (issue 24)

@pytest.mark.parametrize("release", [
    lambda v, b: dp.laplace_mechanism(v, 1.0, 1.0, rng=0, bounds=b),
    lambda v, b: dp.secure_laplace(v, 1.0, 1.0, rng=0, bounds=b),
    lambda v, b: dp.gaussian_mechanism(v, 1.0, 1.0, 1e-5, rng=0, bounds=b),
])
def test_mechanisms_with_bounds_clamp_instead_of_raising(release):
    nan, inf = float("nan"), float("inf")
    bounds = (0.0, 10.0)
    values = np.array([nan, inf, -inf, 1e308, -1e308, 3.0])
    clamped = np.array([5.0, 10.0, 0.0, 10.0, 0.0, 3.0])   # NaN -> midpoint, the rest -> nearer bound
    out = release(values, bounds)
    assert np.all(np.isfinite(out))
    np.testing.assert_array_equal(out, release(clamped, bounds))   # same seed: exactly the clamped release


def test_exact_laplace_with_bounds_clamps_and_huge_values_do_not_raise():
    import random

    for value, clamped in ((float("nan"), 5.0), (float("inf"), 10.0), (-1e308, 0.0)):
        assert dp.exact_laplace_mechanism(value, 1.0, 1.0, rng=random.Random(3), bounds=(0, 10)) == \
            dp.exact_laplace_mechanism(clamped, 1.0, 1.0, rng=random.Random(3))
    # Without bounds a finite huge value is clamped to the grid's limit, never refused.
    step, _ = dp.laplace_grid(1.0, 1.0)
    for release in (lambda: dp.laplace_mechanism(1e300, 1.0, 1.0, rng=0),
                    lambda: dp.gaussian_mechanism(1e300, 1.0, 1.0, 1e-5, rng=0),
                    lambda: dp.exact_laplace_mechanism(1e300, 1.0, 1.0, rng=0)):
        assert math.isfinite(release())


# ----------------------------------------------------------------- exact discrete Gaussian (CKS 2020, Alg. 3)

@pytest.mark.parametrize("sigma2", [Fraction(9, 4), 4, 0.5])
def test_exact_discrete_gaussian_has_the_exact_pmf(sigma2):
    import random

    gen = random.Random(1)
    n = 10_000
    draws = np.array([dp.exact_discrete_gaussian(sigma2, rng=gen) for _ in range(n)])
    assert draws.dtype.kind == "i"
    s2 = float(sigma2)
    support = np.arange(-60, 61)
    weights = np.exp(-support.astype(float) ** 2 / (2 * s2))
    pmf = weights / weights.sum()
    # Chi-square over the values with expected count >= 50 and the pooled tails; a correct
    # sampler fails with probability 1e-3.
    keep = n * pmf >= 50
    ks = support[keep]
    probs = np.append(pmf[keep], 1 - pmf[keep].sum())
    observed = np.append([np.sum(draws == k) for k in ks], np.sum(~np.isin(draws, ks)))
    expected = n * probs
    if expected[-1] < 5:   # tails too thin to test on their own: pool them with the cell k = kmax
        observed = np.append(observed[:-2], observed[-2] + observed[-1])
        expected = np.append(expected[:-2], expected[-2] + expected[-1])
    assert stats.chisquare(observed, expected).pvalue > 1e-3
    assert dp.exact_discrete_gaussian(2, rng=random.Random(7)) == dp.exact_discrete_gaussian(2, rng=random.Random(7))


# ----------------------------------------------------------------- privacy profile and trade-off curve

def test_profile_trade_off_is_below_one_pair_and_matches_its_definition():
    n, batch, epochs, delta = 300, 60, 20, 1e-4
    for target, expected in ((1.0, 0.086), (3.0, 0.178), (8.0, 0.455)):
        sigma = dp.noise_multiplier_for_epsilon(n, batch, epochs, target, delta)
        eps, deltas = dp.dp_sgd_privacy_profile(n, batch, epochs, sigma)
        assert np.all(np.diff(deltas) <= 1e-12)            # δ(ε) decreases with ε
        # The profile's δ at the accountant's ε is at most the δ it was built for (PLD is tighter than RDP).
        at_target = dp.dp_sgd_privacy_profile(n, batch, epochs, sigma, epsilons=[target])[1][0]
        assert at_target <= delta
        cap = dp.max_tpr_from_profile(0.05, eps, deltas)
        one_pair = dp.epsilon_meaning(target, delta, fpr=0.05)["max_tpr"]
        assert 0.05 <= cap < one_pair
        assert cap == pytest.approx(expected, abs=0.002)
        # The whole profile caps every FPR at least as tightly as the single pair does.
        fprs = np.linspace(0, 1, 21)
        curve = dp.max_tpr_from_profile(fprs, eps, deltas)
        pair = np.array([dp.epsilon_meaning(target, delta, fpr=a)["max_tpr"] for a in fprs])
        assert np.all(curve <= pair + 1e-9) and np.all(curve >= fprs - 1e-12) and np.all(np.diff(curve) >= -1e-12)


def test_max_tpr_from_one_pair_is_epsilon_meaning():
    for eps, delta, fpr in ((1.0, 0.0, 0.05), (3.0, 1e-4, 0.2), (0.5, 1e-3, 0.9)):
        assert dp.max_tpr_from_profile(fpr, [eps], [delta]) == pytest.approx(
            dp.epsilon_meaning(eps, delta, fpr=fpr)["max_tpr"])


def test_profile_of_a_gaussian_trade_off_is_the_gdp_curve():
    # One Gaussian step without sampling is μ-GDP with μ = 1/σ: TPR = Φ(Φ^-1(FPR) + μ) (Dong, Roth & Su).
    sigma = 1.0
    eps, deltas = dp.dp_sgd_privacy_profile(100, 100, 1, sigma, epsilons=np.linspace(0, 12, 2401))
    for fpr in (0.01, 0.05, 0.3):
        exact = stats.norm.cdf(stats.norm.ppf(fpr) + 1 / sigma)
        cap = dp.max_tpr_from_profile(fpr, eps, deltas)
        assert exact - 1e-3 <= cap <= exact + 0.01


def test_shuffled_epsilon_relations():
    n, batch, epochs, delta = 300, 60, 20, 1e-4
    sigmas = [dp.noise_multiplier_for_epsilon(n, batch, epochs, t, delta) for t in (1.0, 3.0, 8.0)]
    zero_out = [dp.dp_sgd_epsilon_shuffled(n, batch, epochs, s, delta) for s in sigmas]
    assert zero_out == [dp.dp_sgd_epsilon_shuffled(n, batch, epochs, s, delta, relation="add_remove") for s in sigmas]
    replace = [dp.dp_sgd_epsilon_shuffled(n, batch, epochs, s, delta, relation="replace_one") for s in sigmas]
    assert replace == pytest.approx([5.41, 17.09, 45.70], abs=0.01)
    # Replace-one is the zero-out mechanism with twice the sensitivity: the same as σ/2 under zero-out.
    assert replace[0] == pytest.approx(dp.dp_sgd_epsilon_shuffled(n, batch, epochs, sigmas[0] / 2, delta))


def test_empirical_epsilon_split_chooses_thresholds_on_other_samples():
    a = dp.laplace_mechanism(np.zeros(20_000), 1.0, 1.0, rng=0)
    b = dp.laplace_mechanism(np.ones(20_000), 1.0, 1.0, rng=1)
    split, joint = dp.empirical_epsilon(a, b), dp.empirical_epsilon(a, b, split=False)
    assert 0.5 < split <= 1.0 and 0.5 < joint <= 1.0
    # The first halves only choose thresholds: replacing them by other draws of the same
    # mechanisms leaves a valid bound.
    a2 = np.concatenate([dp.laplace_mechanism(np.zeros(10_000), 1.0, 1.0, rng=5), a[10_000:]])
    assert 0.5 < dp.empirical_epsilon(a2, b) <= 1.0
    with pytest.raises(ValueError, match="samples"):
        dp.empirical_epsilon([0.0, 1.0], [0.0, 1.0])
