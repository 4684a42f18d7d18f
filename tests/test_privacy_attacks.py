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
        dp_training.train_mlp(X, y, 10, epochs=1, batch_size=70, noise_multiplier=1.0)
    with pytest.raises(ValueError, match="variant"):
        dp_training.build_model(64, 10, noise_multiplier=1.0, variant="fastest")
