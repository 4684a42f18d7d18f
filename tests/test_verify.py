"""helpers.verify: the big-M MILP gives the exact largest margin over an L∞ box (checked against
enumerating every ReLU activation pattern with an LP each), the cheaper bounds are sound and
ordered (interval >= linear >= LP >= MILP >= any sampled input), and verify() never calls an
image robust that an input of its ball misclassifies."""
import itertools

import numpy as np
import pytest
from scipy.optimize import linprog

tf = pytest.importorskip("tensorflow")

from helpers import models  # noqa: E402
from helpers import verify as V  # noqa: E402


def _small(seed=0, d=4, h=6, k=3):
    model = models.mlp(d, k, hidden=(h,), seed=seed, name="small")
    rng = np.random.default_rng(seed)
    for layer in model.layers:  # nonzero biases, so that some neurons are stable and some are not
        layer.bias.assign(rng.normal(0, 0.3, size=layer.bias.shape).astype(np.float32))
    return model


def _exact_by_enumeration(layers, lower, upper, label, target):
    """Max of z_target - z_label over the box: one LP per activation pattern of the hidden layer."""
    (W1, b1), (W2, b2) = layers
    c = W2[:, target] - W2[:, label]
    best = -np.inf
    for pattern in itertools.product((0.0, 1.0), repeat=len(b1)):
        p = np.array(pattern)
        # active: W1^T x + b1 >= 0; inactive: <= 0; objective (p * c) . (W1^T x + b1)
        sign = np.where(p == 1, -1.0, 1.0)
        res = linprog(-(W1 @ (p * c)), A_ub=sign[:, None] * W1.T, b_ub=-sign * b1,
                      bounds=list(zip(lower, upper)), method="highs")
        if res.status == 0:
            best = max(best, -res.fun + (p * c) @ b1 + b2[target] - b2[label])
    return best


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_milp_is_exact_and_bounds_are_sound_and_ordered(seed):
    model = _small(seed)
    layers = V.dense_relu_layers(model)
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.2, 0.8, size=4)
    lower, upper = x - 0.3, x + 0.3
    samples = rng.uniform(lower, upper, size=(20000, 4)).astype(np.float32)
    z = np.asarray(model(samples))
    l_out, u_out = V.interval_bounds(layers, lower, upper)[-1]
    for label in range(3):
        linear = V.linear_bounds(layers, lower, upper, label)
        for target in set(range(3)) - {label}:
            exact = _exact_by_enumeration(layers, lower, upper, label, target)
            milp, x_best, optimal = V.max_margin(layers, lower, upper, label, target)
            lp, _, _ = V.max_margin(layers, lower, upper, label, target, relax=True)
            sampled = np.max(z[:, target] - z[:, label])
            assert optimal and milp == pytest.approx(exact, abs=1e-5)
            assert sampled <= milp + 1e-4 <= lp + 2e-4 and lp <= linear[target] + 1e-5
            assert linear[target] <= u_out[target] - l_out[label] + 1e-5
            # the maximiser lies in the box and attains the optimum on the Keras model
            assert np.all(x_best >= lower - 1e-7) and np.all(x_best <= upper + 1e-7)
            zb = np.asarray(model(x_best[None].astype(np.float32)))[0]
            assert zb[target] - zb[label] == pytest.approx(milp, abs=1e-4)


def test_interval_bounds_contain_every_sampled_pre_activation():
    model = models.mlp(5, 4, hidden=(8, 6), seed=3)
    layers = V.dense_relu_layers(model)
    lower, upper = np.zeros(5), np.full(5, 0.5)
    x = np.random.default_rng(0).uniform(lower, upper, size=(5000, 5))
    bounds = V.interval_bounds(layers, lower, upper)
    h = x
    for (W, b), (l, u) in zip(layers, bounds):
        pre = h @ W + b
        assert np.all(pre >= l - 1e-9) and np.all(pre <= u + 1e-9)
        h = np.maximum(pre, 0)


def test_verify_agrees_with_brute_force_and_finds_checked_counterexamples():
    model = _small(4, d=3, h=5, k=3)
    rng = np.random.default_rng(4)
    x = rng.uniform(0.1, 0.9, size=(40, 3)).astype(np.float32)
    y = np.asarray(model(x)).argmax(axis=1)
    y[:3] = (y[:3] + 1) % 3  # three misclassified examples
    eps = 0.1
    result = V.verify(model, x, y, eps, clip_min=0.0, clip_max=1.0)
    assert set(result.status) <= {V.VERIFIED, V.NOT_ROBUST, V.MISCLASSIFIED}
    assert np.all(result.status[:3] == V.MISCLASSIFIED)
    assert (result.status == V.VERIFIED).any() and (result.status == V.NOT_ROBUST).any()
    for i in range(len(x)):
        box = rng.uniform(np.maximum(x[i] - eps, 0), np.minimum(x[i] + eps, 1), size=(3000, 3)).astype(np.float32)
        wrong = (np.asarray(model(box)).argmax(axis=1) != y[i]).any()
        if result.status[i] == V.VERIFIED:
            assert not wrong and result.margin[i] < 0          # sound: no sampled input is misclassified
        if result.status[i] == V.NOT_ROBUST:                   # a real counterexample, inside the ball
            cex = result.counterexample[i]
            assert np.abs(cex - x[i]).max() <= eps + 1e-6 and cex.min() >= 0 and cex.max() <= 1
            assert np.asarray(model(cex[None])).argmax() != y[i]
    assert result.verified.sum() == (result.status == V.VERIFIED).sum()


def test_eps_zero_verifies_every_correct_example():
    model = _small(5)
    x = np.random.default_rng(5).uniform(0, 1, size=(10, 4)).astype(np.float32)
    y = np.asarray(model(x)).argmax(axis=1)
    assert np.all(V.verify(model, x, y, 0.0).status == V.VERIFIED)


@pytest.mark.parametrize("kwargs, match", [
    ({"eps": -0.1}, "eps"),
    ({"y": np.array([0.5, 1.0])}, "y must"),
    ({"y": np.array([0, 7])}, "y must hold labels"),
    ({"time_limit": 0}, "time_limit"),
])
def test_bad_arguments_raise_value_error(kwargs, match):
    model = _small(0)
    args = {"x": np.zeros((2, 4), np.float32), "y": np.array([0, 1]), "eps": 0.1, **kwargs}
    with pytest.raises(ValueError, match=match):
        V.verify(model, **args)


def test_unsupported_models_are_refused():
    conv = tf.keras.Sequential([tf.keras.Input((4, 4, 1)), tf.keras.layers.Conv2D(2, 3), tf.keras.layers.Flatten(),
                                tf.keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="only Flatten and Dense"):
        V.dense_relu_layers(conv)
    tanh = tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(4, activation="tanh"),
                                tf.keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="ReLU"):
        V.dense_relu_layers(tanh)
    with pytest.raises(ValueError, match="Keras model"):
        V.dense_relu_layers(lambda x: x)
    with pytest.raises(ValueError, match="one hidden layer"):
        V.linear_bounds(V.dense_relu_layers(models.mlp(3, 2, hidden=(4, 4))), np.zeros(3), np.ones(3), 0)
