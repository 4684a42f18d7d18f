"""helpers.privacy_attacks (membership inference) and helpers.dp_training (DP-SGD)."""
import math

import numpy as np
import pytest

from helpers import privacy_attacks as pa


def _same_distribution(n=400, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=2 * n), np.r_[np.ones(n), np.zeros(n)].astype(bool)


# ----------------------------------------------------------------- statistics

def test_auc_is_half_when_members_and_non_members_are_alike():
    scores, m = _same_distribution()
    value, low, high = pa.auc_with_ci(scores, m, rng=0)
    assert low < 0.5 < high and abs(value - 0.5) < 0.06
    assert value == pytest.approx(pa.auc(scores, m))


def test_learned_attack_is_half_on_identical_distributions():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(600, 3)) * 2
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = rng.integers(0, 3, size=600)
    m = np.r_[np.ones(300), np.zeros(300)].astype(bool)
    scores = pa.learned_attack_scores(proba, y, m, seed=0)
    _, low, high = pa.auc_with_ci(scores, m, rng=0)
    assert low < 0.5 < high
    assert pa.epsilon_lower_bound(scores, m, 1e-5).epsilon_lower < 0.5


def test_attack_detects_a_real_difference():
    rng = np.random.default_rng(2)
    scores = np.r_[rng.normal(1.5, 1, 500), rng.normal(0, 1, 500)]
    m = np.r_[np.ones(500), np.zeros(500)].astype(bool)
    value, low, _ = pa.auc_with_ci(scores, m, rng=0)
    assert low > 0.8 and value == pytest.approx(0.856, abs=0.03)  # Φ(1.5/√2) = 0.856
    assert pa.tpr_at_fpr(scores, m, 0.05) > 0.3
    bound = pa.epsilon_lower_bound(scores, m, delta=1e-5)
    assert 0.5 < bound.epsilon_lower < bound.epsilon_point


def test_epsilon_lower_bound_respects_a_known_epsilon():
    # Randomized response with ε = 1 as the "training algorithm": the audit must stay below 1.
    eps = 1.0
    p = math.exp(eps) / (1 + math.exp(eps))
    rng = np.random.default_rng(3)
    m = np.r_[np.ones(5000), np.zeros(5000)].astype(bool)
    says_member = np.where(rng.random(10_000) < p, m, ~m).astype(float)
    bound = pa.epsilon_lower_bound(says_member, m, delta=0.0)
    assert 0.7 < bound.epsilon_lower <= eps


def test_clopper_pearson():
    low, high = pa.clopper_pearson(0, 10)
    assert low == 0 and high == pytest.approx(1 - 0.025 ** 0.1)
    low, high = pa.clopper_pearson(50, 100)
    assert low < 0.5 < high and high - low == pytest.approx(0.2, abs=0.01)
    assert pa.epsilon_from_rates(0.5, 0.05) == pytest.approx(math.log(10))


def test_per_example_loss_from_probabilities():
    proba = np.array([[0.9, 0.1], [0.2, 0.8]])
    assert pa.per_example_loss(proba, None, [0, 0]) == pytest.approx([-math.log(0.9), -math.log(0.2)])


@pytest.mark.parametrize("call,name", [
    (lambda: pa.auc([0.1, 0.2], [1, 1]), "is_member"),
    (lambda: pa.auc([0.1, float("nan")], [1, 0]), "scores"),
    (lambda: pa.auc([0.1, 0.2, 0.3], [1, 0]), "is_member"),
    (lambda: pa.tpr_at_fpr([0.1, 0.2], [1, 0], fpr=0), "fpr"),
    (lambda: pa.clopper_pearson(5, 3), "k"),
    (lambda: pa.per_example_loss(np.array([[0.5, 0.5]]), None, [2]), "y"),
    (lambda: pa.auc_with_ci([0.1, 0.2], [1, 0], confidence=1.5), "confidence"),
])
def test_bad_input(call, name):
    with pytest.raises(ValueError, match=name):
        call()


# ----------------------------------------------------------------- Keras models and DP-SGD

@pytest.fixture(scope="module")
def digits():
    from helpers.data import load_digits
    return load_digits(flatten=True)


def test_audit_works_on_single_logit_and_multi_logit_models(digits):
    import helpers
    from helpers import dp_training

    helpers.setup(seed=0, verbose=False)
    X, y = digits.X_train[:200], digits.y_train[:200]
    Xo, yo = digits.X_train[200:400], digits.y_train[200:400]
    multi = dp_training.train_mlp(X, y, 10, epochs=60, batch_size=50, hidden=(64,), seed=0)
    result = pa.membership_audit(multi, X, y, Xo, yo, delta=1e-4)
    assert result["loss threshold"].auc > 0.55  # an overfit digits model leaks membership
    binary = dp_training.train_mlp(X, (y == 3).astype(int), 1, epochs=5, batch_size=50, seed=0,
                                   noise_multiplier=1.0)
    loss = pa.per_example_loss(binary, X, (y == 3).astype(int))
    assert loss.shape == (200,) and np.all(np.isfinite(loss)) and np.all(loss >= 0)
    res = pa.membership_audit(binary, X, (y == 3).astype(int), Xo, (yo == 3).astype(int), delta=1e-4)
    assert set(res) == {"loss threshold", "learned"} and 0 <= res["learned"].auc <= 1


def test_dp_training_is_deterministic_and_validates(digits):
    import helpers
    from helpers import dp_training
    from helpers.models import accuracy

    helpers.setup(seed=0, verbose=False)
    X, y = digits.X_train[:300], digits.y_train[:300]
    a = dp_training.train_mlp(X, y, 10, epochs=3, batch_size=60, noise_multiplier=1.0, seed=1)
    b = dp_training.train_mlp(X, y, 10, epochs=3, batch_size=60, noise_multiplier=1.0, seed=1)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert accuracy(a, digits.X_test, digits.y_test) > 0.3  # it learns despite the noise
    with pytest.raises(ValueError, match="batch_size"):
        dp_training.train_mlp(X, y, 10, epochs=1, batch_size=301, noise_multiplier=1.0)  # > n
    with pytest.raises(ValueError, match="variant"):
        dp_training.build_model(64, 10, noise_multiplier=1.0, variant="fastest")


# ----------------------------------------------------------------- ε from rates: the edges

@pytest.mark.parametrize("tpr,fpr,delta,expected", [
    (1.0, 0.0, 0.0, math.inf),            # perfect attack: no ε explains it
    (1.0, 0.0, 1e-5, math.inf),           # ... nor any (ε, δ) with δ < 1: DP would need 1 <= δ
    (0.5, 0.0, 0.0, math.inf),            # TPR > 0 with FPR = 0
    (0.5, 0.0, 0.6, 0.0),                 # δ >= TPR: the slack alone explains it
    (1.0, 0.5, 0.0, math.inf),            # 1 - FPR > 0 = 1 - TPR: the answer "non-member" is never wrong
    (0.5, 0.05, 0.0, math.log(10)),       # ln(TPR / FPR)
    (0.95, 0.5, 0.0, math.log(0.5 / 0.05)),   # the complementary rates: ln((1 - FPR) / (1 - TPR))
    (0.5, 0.05, 0.1, math.log(0.4 / 0.05)),   # δ subtracted from the numerator
    (0.5, 0.5, 0.0, 0.0),                 # guessing
    (0.2, 0.5, 0.0, 0.0),                 # worse than guessing: "higher means member" shows nothing
    (0.0, 0.0, 0.0, 0.0),
])
def test_epsilon_from_rates_edges(tpr, fpr, delta, expected):
    assert pa.epsilon_from_rates(tpr, fpr, delta) == pytest.approx(expected)


def test_epsilon_from_rates_is_the_smallest_consistent_epsilon():
    # The returned ε satisfies both DP inequalities, and any smaller ε violates one of them.
    rng = np.random.default_rng(7)
    for tpr, fpr, delta in zip(rng.random(200), rng.random(200), rng.random(200) * 0.1):
        eps = pa.epsilon_from_rates(tpr, fpr, delta)
        assert tpr <= math.exp(eps) * fpr + delta + 1e-12
        assert 1 - fpr <= math.exp(eps) * (1 - tpr) + delta + 1e-12
        if eps > 0:
            e = eps - 1e-6
            assert tpr > math.exp(e) * fpr + delta or 1 - fpr > math.exp(e) * (1 - tpr) + delta


# ----------------------------------------------------------------- the one-model audit and its ceiling

def test_audit_ceiling_is_what_a_perfect_attack_gets():
    # 150 members and 150 non-members: 75 of each measure; one-sided Clopper-Pearson at 0.975 each.
    tpr_lo = 0.025 ** (1 / 75)
    expected = math.log((tpr_lo - 1e-5) / (1 - tpr_lo))
    assert pa.audit_ceiling(150, 150, 1e-5, 0.95) == pytest.approx(expected)
    assert pa.audit_ceiling(150, 150, 1e-5, 0.95) == pytest.approx(2.987, abs=1e-3)
    assert pa.audit_ceiling(300, 300, 1e-5, 0.95) == pytest.approx(3.693, abs=1e-3)
    m = np.r_[np.ones(150), np.zeros(150)].astype(bool)
    perfect = pa.epsilon_lower_bound(m.astype(float), m, delta=1e-5)
    assert perfect.epsilon_lower == pytest.approx(pa.audit_ceiling(150, 150, 1e-5))
    assert perfect.ceiling == perfect.epsilon_lower and perfect.epsilon_point == math.inf
    # The ceiling grows with the sample and shrinks with the confidence asked for.
    assert pa.audit_ceiling(1000, 1000, 1e-5) > pa.audit_ceiling(300, 300, 1e-5)
    assert pa.audit_ceiling(300, 300, 1e-5, 0.99) < pa.audit_ceiling(300, 300, 1e-5, 0.95)


def test_epsilon_lower_bound_is_valid_when_its_assumption_holds():
    # Independent trials of an exactly ε-DP test (randomized response, ε = 1): the bound exceeds 1
    # with probability <= 0.05. 500 audits: reject only above the 0.999 quantile of Binomial(500, 0.05).
    from scipy.stats import binom

    eps, n, reps = 1.0, 200, 500
    p = math.exp(eps) / (1 + math.exp(eps))
    rng = np.random.default_rng(13)
    m = np.r_[np.ones(n), np.zeros(n)].astype(bool)
    over = 0
    for _ in range(reps):
        says_member = np.where(rng.random(2 * n) < p, m, ~m).astype(float)
        over += pa.epsilon_lower_bound(says_member, m, delta=0.0, rng=rng).epsilon_lower > eps
    assert over <= binom.ppf(0.999, reps, 0.05)


def test_epsilon_lower_bound_never_exceeds_its_ceiling():
    rng = np.random.default_rng(5)
    scores = np.r_[rng.normal(3, 1, 150), rng.normal(0, 1, 150)]
    m = np.r_[np.ones(150), np.zeros(150)].astype(bool)
    bound = pa.epsilon_lower_bound(scores, m, delta=1e-5)
    assert 0 < bound.epsilon_lower <= bound.ceiling == pytest.approx(pa.audit_ceiling(150, 150, 1e-5))


# ----------------------------------------------------------------- one-run audit (Steinke, Nasr & Jagielski 2023)

def _logit(q):
    return math.log(q / (1 - q))


def test_one_run_canaries_are_fair_independent_coins():
    a = pa.one_run_canaries(20_000, rng=0)
    assert a.dtype == bool and a.shape == (20_000,)
    np.testing.assert_array_equal(a, pa.one_run_canaries(20_000, rng=0))
    # Binomial(20000, 1/2): sd 70.7, so +-4 sd = 283 (fails with probability < 1e-4 if correct).
    assert abs(int(a.sum()) - 10_000) < 283
    # No serial dependence: neighbours agree about half of the time (same +-4 sd argument, n = 19999).
    assert abs(int(np.sum(a[1:] == a[:-1])) - 9_999.5) < 283


def test_one_run_perfect_attack_gives_the_known_ceiling():
    # δ = 0: all r of r guesses correct is rejected at level β iff q^r < β, so ε = logit(β^(1/r)).
    for m in (300, 500, 1000):
        assert pa.one_run_ceiling(m) == pytest.approx(_logit(0.05 ** (1 / m)), rel=1e-9)
    assert pa.one_run_ceiling(300) == pytest.approx(4.602, abs=1e-3)
    included = pa.one_run_canaries(300, rng=1)
    scores = included.astype(float)
    k = int(included.sum())
    for delta in (0.0, 1e-5):
        bound = pa.one_run_epsilon_lower_bound(scores, included, k, 300 - k, delta=delta)
        assert bound == pytest.approx(pa.one_run_ceiling(300, delta=delta), abs=1e-8)
    # δ > 0 can only lower the bound, and only a little at δ = 1e-5.
    assert pa.one_run_ceiling(300, delta=1e-5) == pytest.approx(4.594, abs=1e-3)
    assert pa.one_run_ceiling(1000, delta=1e-5) < pa.one_run_ceiling(1000)


def test_one_run_reproduces_the_paper():
    # Steinke, Nasr & Jagielski (2023), arXiv:2305.08846v1: Appendix D's example (m = 1000,
    # r = 100, v = 75, δ = 1e-4, β = 0.05) prints 0.673; Section 7 (m = 1e5, r = 1510,
    # v = 1439, δ = 1e-5) reports 2.675 (truncated).
    assert pa.one_run_epsilon_from_counts(1000, 100, 75, delta=1e-4) == pytest.approx(0.673, abs=1e-3)
    assert pa.one_run_epsilon_from_counts(100_000, 1510, 1439, delta=1e-5) == pytest.approx(2.6755, abs=1e-3)


def test_one_run_bound_is_monotone_in_correct_guesses():
    for delta in (0.0, 1e-5):
        bounds = [pa.one_run_epsilon_from_counts(300, 200, v, delta=delta) for v in range(0, 201, 5)]
        assert all(b2 >= b1 for b1, b2 in zip(bounds, bounds[1:]))
        assert bounds[0] == 0 and bounds[20] == 0   # v = 100 of 200: guessing shows nothing
        assert bounds[-1] == pytest.approx(pa.one_run_ceiling(300, 200, delta=delta))
    # And its p-value is monotone in ε (the search takes the first crossing of β).
    for m, r, v, delta in [(1000, 100, 75, 1e-4), (300, 300, 200, 1e-3), (50, 50, 40, 1e-2)]:
        p = [pa.one_run_p_value(m, r, v, e, delta) for e in np.linspace(0, 8, 81)]
        assert all(b >= a - 1e-15 for a, b in zip(p, p[1:]))


def _randomized_response_audit(eps, m, n_reps, delta, seed):
    """Audit an exactly ε-DP "training algorithm": each canary's output is its inclusion bit,
    flipped with probability 1 / (1 + e^ε) (randomized response; changing one canary changes
    only its own output, by a likelihood ratio of e^ε). Returns the bounds and the correct counts."""
    rng = np.random.default_rng(seed)
    q = math.exp(eps) / (1 + math.exp(eps))
    bounds, correct = [], []
    for _ in range(n_reps):
        included = pa.one_run_canaries(m, rng)
        output = np.where(rng.random(m) < q, included, ~included)
        k = int(output.sum())          # guess from the output only: "in" where it says 1
        scores = output + 1e-3 * rng.random(m)
        bounds.append(pa.one_run_epsilon_lower_bound(scores, included, k, m - k, delta=delta))
        correct.append(int(np.sum(output == included)))
    return np.array(bounds), np.array(correct)


def test_one_run_audit_is_valid_on_an_exactly_dp_mechanism():
    from scipy.stats import binom

    eps, m, n_reps, beta = 1.0, 200, 2000, 0.05
    bounds, correct = _randomized_response_audit(eps, m, n_reps, 0.0, seed=11)
    # Here W ~ Binomial(m, q) exactly, the worst case of the theorem. The bound exceeds the true ε
    # exactly when W >= v*, the smallest count rejected at ε; its probability is <= β by the
    # theorem and is computed exactly here (discreteness makes it a little below β).
    q = math.exp(eps) / (1 + math.exp(eps))
    v_star = next(v for v in range(m + 1) if pa.one_run_p_value(m, m, v, eps) < beta)
    size = float(binom.sf(v_star - 1, m, q))
    assert size <= beta
    violations = int(np.sum(bounds > eps))
    assert violations == int(np.sum(correct >= v_star))   # the implementation inverts the test exactly
    # Statistical check of the frequency: reject only if above the 0.999 quantile of Binomial(n_reps, β).
    assert violations <= binom.ppf(0.999, n_reps, beta)
    assert violations >= binom.ppf(0.001, n_reps, size)  # and it is not vacuous: close to its exact size
    # With δ = 1e-5 the bound is never larger than with δ = 0, so it is valid too.
    b_delta, _ = _randomized_response_audit(eps, m, 500, 1e-5, seed=11)
    assert np.all(b_delta <= bounds[:500] + 1e-9)


def test_one_run_random_attack_shows_nothing_most_of_the_time():
    from scipy.stats import binom

    rng = np.random.default_rng(12)
    n_reps, m = 1000, 300
    positive = 0
    for _ in range(n_reps):
        included = pa.one_run_canaries(m, rng)
        scores = rng.normal(size=m)                          # independent of membership: ε = 0 mechanism
        positive += pa.one_run_epsilon_lower_bound(scores, included, 150, 150) > 0
    # Any positive bound rejects ε = 0, which happens with probability <= β = 0.05.
    assert positive <= binom.ppf(0.999, n_reps, 0.05)


def test_one_run_guesses_and_counts():
    scores = np.array([0.9, 0.1, 0.5, 0.8, 0.2, 0.5])
    np.testing.assert_array_equal(pa.one_run_guesses(scores, 2, 2), [1, -1, 0, 1, -1, 0])
    np.testing.assert_array_equal(pa.one_run_guesses(scores, 1, 0), [1, 0, 0, 0, 0, 0])
    included = [1, 0, 1, 0, 0, 1]
    assert pa.one_run_counts(scores, included, 2, 2) == (4, 3)   # canary 3 was guessed "in" but is out


@pytest.mark.parametrize("call,name", [
    (lambda: pa.epsilon_from_rates(1.5, 0.1), "tpr"),
    (lambda: pa.epsilon_from_rates(0.5, -0.1), "fpr"),
    (lambda: pa.epsilon_from_rates(0.5, 0.1, 1.0), "delta"),
    (lambda: pa.audit_ceiling(1, 150, 1e-5), "n_members"),
    (lambda: pa.audit_ceiling(150, 150, -1.0), "delta"),
    (lambda: pa.audit_ceiling(150, 150, 1e-5, confidence=1.0), "confidence"),
    (lambda: pa.one_run_canaries(0), "n_canaries"),
    (lambda: pa.one_run_guesses([0.1, 0.2], 2, 1), "k_pos"),
    (lambda: pa.one_run_guesses([0.1, 0.2], 0, 0), "k_pos"),
    (lambda: pa.one_run_guesses([0.1, 0.2], -1, 1), "k_pos"),
    (lambda: pa.one_run_counts([0.1, 0.2], [1, 0, 1], 1, 1), "included"),
    (lambda: pa.one_run_counts([0.1, 0.2], [2, 0], 1, 1), "included"),
    (lambda: pa.one_run_epsilon_lower_bound([0.1, float("nan")], [1, 0], 1, 1), "scores"),
    (lambda: pa.one_run_epsilon_lower_bound([0.1, 0.2], [1, 0], 1, 1, confidence=0), "confidence"),
    (lambda: pa.one_run_epsilon_from_counts(10, 11, 5), "n_guesses"),
    (lambda: pa.one_run_epsilon_from_counts(10, 5, 6), "n_correct"),
    (lambda: pa.one_run_epsilon_from_counts(10, 5, 3, delta=1.5), "delta"),
    (lambda: pa.one_run_p_value(10, 5, 3, -1.0), "epsilon"),
    (lambda: pa.one_run_ceiling(10, 11), "n_guesses"),
])
def test_bad_input_audits(call, name):
    with pytest.raises(ValueError, match=name):
        call()


@pytest.mark.parametrize("epsilon", [0.0, 0.5, 1.0, 3.0, 8.0])
def test_max_auc_without_delta_is_the_logistic_of_epsilon(epsilon):
    assert pa.max_auc(epsilon) == pytest.approx(math.exp(epsilon) / (1 + math.exp(epsilon)), abs=1e-12)


@pytest.mark.parametrize("epsilon, delta", [(1.0, 0.05), (0.3, 0.2), (2.0, 1e-5), (0.0, 0.1)])
def test_max_auc_is_the_area_under_the_dp_boundary(epsilon, delta):
    x = np.linspace(0, 1, 200_001)
    boundary = np.minimum.reduce([np.ones_like(x), math.exp(epsilon) * x + delta,
                                  1 - (1 - delta - x) / math.exp(epsilon)])
    assert pa.max_auc(epsilon, delta) == pytest.approx(np.trapz(boundary, x), abs=1e-8)


def test_max_auc_bounds_every_roc_that_satisfies_the_dp_inequalities():
    """Randomized: ROC points allowed by (ε, δ)-DP (epsilon_from_rates <= ε) never exceed the bound."""
    rng = np.random.default_rng(0)
    epsilon, delta = 1.0, 1e-3
    fpr = np.sort(rng.uniform(0, 1, 50))
    tpr = np.minimum(1.0, np.minimum(math.exp(epsilon) * fpr + delta, 1 - (1 - delta - fpr) / math.exp(epsilon)))
    assert all(pa.epsilon_from_rates(t, f, delta) <= epsilon + 1e-9 for t, f in zip(tpr, fpr))
    x, y = np.concatenate([[0], fpr, [1]]), np.concatenate([[0], tpr, [1]])
    assert np.trapz(y, x) <= pa.max_auc(epsilon, delta) + 1e-12
    assert pa.max_auc(math.inf) == 1.0 and pa.max_auc(0.0) == 0.5


@pytest.mark.parametrize("epsilon, delta", [(-1.0, 0.0), (1.0, -0.1), (1.0, 1.0), ("x", 0.0)])
def test_max_auc_refuses_bad_arguments(epsilon, delta):
    with pytest.raises(ValueError, match="epsilon|delta"):
        pa.max_auc(epsilon, delta)
