"""helpers.dp_training: the private training runs Poisson-subsampled DP-SGD, the algorithm
that helpers.dp.dp_sgd_epsilon accounts for (not shuffled fixed-size batches)."""
import math

import numpy as np
import pytest
from scipy import stats


def _toy(n=200, d=10, classes=3, seed=0):
    """Separable-ish synthetic data: small and fast, no dataset needed."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    w = rng.normal(size=(d, classes))
    return X, np.argmax(X @ w, axis=1)


def _flat(model):
    return np.concatenate([w.ravel() for w in model.get_weights()])


@pytest.fixture(scope="module")
def recorded():
    """A tiny private model and its recorded masks: n = 200, q = 0.1, 20 epochs = 200 steps."""
    import helpers
    from helpers import dp_training

    helpers.setup(seed=0, verbose=False)
    X, y = _toy()
    model, masks = dp_training.train_mlp(X, y, 3, epochs=20, batch_size=20, hidden=(8,), noise_multiplier=1.0,
                                         seed=3, record_masks=True)
    return model, masks


# ----------------------------------------------------------------------------- sampling

def test_recorded_masks_are_independent_bernoulli_q(recorded):
    _, masks = recorded
    steps, n = masks.shape
    q = 20 / 200
    assert (steps, n) == (200, 200)
    m = masks.astype(float)
    # 1. Inclusion rate: the mean of 40,000 Bernoulli(0.1) has sd 0.0015; 4 sd is a false alarm
    #    rate of 6e-5 (and the seed is fixed, so the test is deterministic anyway).
    assert abs(m.mean() - q) <= 4 * math.sqrt(q * (1 - q) / m.size)
    # 2. Each example's count over the steps is Binomial(steps, q): the dispersion statistic
    #    sum (c - steps q)^2 / (steps q (1 - q)) is ~chi2(n). Shuffled epochs give every example
    #    the same count (statistic 0); correlated steps inflate it. Two-sided test at 0.2%.
    counts = m.sum(axis=0)
    stat = np.sum((counts - steps * q) ** 2) / (steps * q * (1 - q))
    assert 0.001 < stats.chi2.cdf(stat, n) < 0.999
    # 3. Each step's batch size is Binomial(n, q) (the same dispersion test over steps): the
    #    examples of one step are not correlated, and batch sizes vary.
    sizes = m.sum(axis=1)
    stat = np.sum((sizes - n * q) ** 2) / (n * q * (1 - q))
    assert 0.001 < stats.chi2.cdf(stat, steps) < 0.999
    assert len(np.unique(sizes)) > 5
    # 4. Independence across steps: being drawn at step t says nothing about step t + 1
    #    (without-replacement epochs make this correlation negative). |r| <= 4 / sqrt(N).
    r_steps = np.corrcoef(m[:-1].ravel(), m[1:].ravel())[0, 1]
    assert abs(r_steps) <= 4 / math.sqrt(m[1:].size)
    # 5. Independence across examples: 2x2 contingency of disjoint pairs (0, 1), (2, 3), ... in
    #    the same step, chi-square test of independence.
    a, b = masks[:, 0::2].ravel(), masks[:, 1::2].ravel()
    table = np.array([[np.sum(~a & ~b), np.sum(~a & b)], [np.sum(a & ~b), np.sum(a & b)]])
    assert stats.chi2_contingency(table, correction=False)[1] > 0.001


def test_batches_are_not_shuffled_fixed_size_slices(recorded):
    """Fails if train_mlp goes back to shuffled fixed-size batches while ε assumes Poisson sampling."""
    from helpers import dp_training

    _, masks = recorded
    sizes = masks.sum(axis=1)
    assert sizes.min() < 20 < sizes.max()                      # the batch size varies around its expectation
    per_epoch = masks.reshape(20, 10, 200).sum(axis=1)         # 10 steps per epoch
    assert np.any(per_epoch == 0) and np.any(per_epoch >= 2)   # an epoch is not a partition of the data
    assert len(masks) == dp_training.num_steps(200, 20, 20) == 200


def test_poisson_masks_arguments_and_steps():
    from helpers import dp_training

    assert dp_training.num_steps(300, 60, 20) == 100
    assert dp_training.num_steps(50, 35, 21) == 30      # exact: 21 / (35 / 50) is 30.000000000000004 in floats
    assert dp_training.num_steps(300, 60, 0.2) == 1      # fractional epochs
    assert dp_training.num_steps(300, 60, 0.21) == 2
    a = dp_training.poisson_masks(100, 10, 3, rng=5)
    np.testing.assert_array_equal(a, dp_training.poisson_masks(100, 10, 3, rng=5))
    assert a.shape == (30, 100) and a.dtype == bool
    assert dp_training.poisson_masks(7, 7, 2, rng=0).all()   # q = 1: everyone, every step
    with pytest.raises(ValueError, match="batch_size"):
        dp_training.poisson_masks(10, 11, 1)
    with pytest.raises(ValueError, match="epochs"):
        dp_training.poisson_masks(10, 5, 0)
    index, weights = dp_training.padded_batch(np.array([False, True, False, True]), 3)
    np.testing.assert_array_equal(index, [1, 3, 0])
    np.testing.assert_array_equal(weights, [1, 1, 0])
    with pytest.raises(ValueError, match="size"):
        dp_training.padded_batch(np.array([True, True]), 1)


# ----------------------------------------------------------------------------- the private step

def _per_example_clipped(model, X, y, num_outputs, clip):
    """Per-example gradients, one GradientTape per example, clipped in NumPy."""
    import tensorflow as tf

    from helpers.models import loss_for

    loss_fn = loss_for(num_outputs, reduction="none")
    labels = y.reshape(-1, 1).astype(np.float32) if num_outputs == 1 else y.astype(np.int64)
    out = []
    for i in range(len(X)):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(loss_fn(labels[i:i + 1], model(X[i:i + 1])))
        g = np.concatenate([v.numpy().ravel() for v in tape.gradient(loss, model.trainable_variables)])
        out.append(g * min(1.0, clip / np.linalg.norm(g)))
    return np.array(out), np.array([np.linalg.norm(g) for g in out])


@pytest.mark.parametrize("num_outputs", [1, 3])
def test_one_step_is_the_clipped_sum_over_the_expected_batch(num_outputs):
    """noise_multiplier=0, one step: w1 = w0 - lr * (sum of clipped gradients of the included) / (q n)."""
    from helpers import dp_training, models

    X, y = _toy(n=40, classes=3)
    X = X * np.linspace(0.05, 4, 40, dtype=np.float32)[:, None]   # some gradients below the clip norm, some above
    if num_outputs == 1:
        y = (y == 0).astype(int)
    n, batch_size, clip, lr = 40, 10, 0.5, 0.7
    model = models.mlp(10, num_outputs, hidden=(6,), seed=1)
    raw, _ = _per_example_clipped(model, X, y, num_outputs, np.inf)
    clipped, _ = _per_example_clipped(model, X, y, num_outputs, clip)
    norms = np.linalg.norm(raw, axis=1)
    assert np.any(norms < clip) and np.any(norms > clip)          # the test exercises both cases
    before = _flat(model)
    info = dp_training.dp_sgd_fit(model, X, y, epochs=batch_size / n, batch_size=batch_size, noise_multiplier=0.0,
                                  l2_norm_clip=clip, learning_rate=lr, seed=4)
    mask = info["masks"][0]
    assert info["steps"] == 1 and 0 < mask.sum() != batch_size       # the realised batch is not the divisor
    expected = before - lr * clipped[mask].sum(axis=0) / batch_size
    np.testing.assert_allclose(_flat(model), expected, rtol=1e-4, atol=1e-6)
    assert info["batch_sizes"][0] == mask.sum() and len(info["loss"]) == 1


def test_noise_has_the_stated_standard_deviation():
    """Same seed, same masks: the σ = 1 step minus the σ = 0 step is lr * N(0, (σC)^2) / (q n)."""
    from helpers import dp_training, models

    X, y = _toy(n=50)
    lr, clip, sigma, batch_size = 0.1, 2.0, 1.0, 10
    after = {}
    for nm in (0.0, sigma):
        model = models.mlp(10, 3, hidden=(64,), seed=0)
        dp_training.dp_sgd_fit(model, X, y, epochs=0.2, batch_size=batch_size, noise_multiplier=nm,
                               l2_norm_clip=clip, learning_rate=lr, seed=7)
        after[nm] = _flat(model)
    noise = (after[sigma] - after[0.0]) * batch_size / lr
    # 899 coordinates: the sample sd is within 10% of σC (about 4 of its standard errors, 1/sqrt(2 * 899) = 2.4%),
    # the mean within 4 standard errors of 0.
    assert noise.size == 899
    assert abs(noise.std() / (sigma * clip) - 1) < 0.1
    assert abs(noise.mean()) < 4 * sigma * clip / math.sqrt(noise.size)
    assert stats.normaltest(noise).pvalue > 0.001


def test_same_seed_same_model_and_noise_is_present():
    from helpers import dp_training

    X, y = _toy()
    kwargs = dict(epochs=3, batch_size=25, hidden=(8,), learning_rate=0.5)
    a = dp_training.train_mlp(X, y, 3, noise_multiplier=1.0, seed=1, **kwargs)
    b = dp_training.train_mlp(X, y, 3, noise_multiplier=1.0, seed=1, **kwargs)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)                         # bit for bit
    c = dp_training.train_mlp(X, y, 3, noise_multiplier=0.0, seed=1, **kwargs)   # same masks, no noise
    assert not np.allclose(_flat(a), _flat(c))
    d = dp_training.train_mlp(X, y, 3, noise_multiplier=1.0, seed=2, **kwargs)
    assert not np.allclose(_flat(a), _flat(d))


def test_unseeded_runs_differ_and_seeded_runs_regenerate_the_noise():
    """seed=None draws masks and noise from OS entropy; a seed lets anyone regenerate both."""
    from helpers import dp_training, models

    X, y = _toy()
    kwargs = dict(epochs=2, batch_size=25, noise_multiplier=1.0)
    runs = []
    for _ in range(2):
        model = models.mlp(10, 3, hidden=(8,), seed=0)           # the same initial weights
        info = dp_training.dp_sgd_fit(model, X, y, seed=None, **kwargs)
        runs.append((_flat(model), info["masks"]))
    assert not np.array_equal(runs[0][1], runs[1][1])            # different batches
    assert not np.allclose(runs[0][0], runs[1][0])               # different noise and batches
    seeded = []
    for _ in range(2):
        model = models.mlp(10, 3, hidden=(8,), seed=0)
        info = dp_training.dp_sgd_fit(model, X, y, seed=5, **kwargs)
        seeded.append((_flat(model), info["masks"]))
    np.testing.assert_array_equal(seeded[0][1], seeded[1][1])
    np.testing.assert_array_equal(seeded[0][0], seeded[1][0])   # whoever knows the seed has the noise
    # Unseeded masks are still Poisson(q): the mean inclusion rate over 2 x 16 x 200 draws.
    rate = np.mean([m.mean() for _, m in runs])
    assert abs(rate - 25 / 200) < 4 * math.sqrt(0.125 * 0.875 / (2 * runs[0][1].size))
    a = dp_training.train_mlp(X, y, 3, epochs=1, batch_size=25, hidden=(8,), noise_multiplier=1.0, seed=None)
    b = dp_training.train_mlp(X, y, 3, epochs=1, batch_size=25, hidden=(8,), noise_multiplier=1.0, seed=None)
    assert not np.allclose(_flat(a), _flat(b))


def test_dp_sgd_fit_input_bounds_clamp_non_finite_inputs():
    from helpers import dp_training, models

    X, y = _toy(n=60)
    bad = X.copy()
    bad[0, 0], bad[1, 1], bad[2, 2] = np.nan, np.inf, -1e30
    clamped = np.clip(np.where(np.isnan(bad), 0.0, bad), -3.0, 3.0)     # midpoint of (-3, 3) is 0
    outs = []
    for data in (bad, clamped):
        model = models.mlp(10, 3, hidden=(8,), seed=0)
        dp_training.dp_sgd_fit(model, data, y, epochs=1, batch_size=20, noise_multiplier=1.0, seed=2,
                               input_bounds=(-3.0, 3.0))
        outs.append(_flat(model))
    assert np.all(np.isfinite(outs[0]))
    np.testing.assert_array_equal(outs[0], outs[1])
    with pytest.raises(ValueError, match="X"):                           # no bounds: the caller pre-clamps
        dp_training.dp_sgd_fit(models.mlp(10, 3, hidden=(8,), seed=0), bad, y, epochs=1, batch_size=20,
                               noise_multiplier=1.0)
    with pytest.raises(ValueError, match="input_bounds"):
        dp_training.dp_sgd_fit(models.mlp(10, 3, hidden=(8,), seed=0), X, y, epochs=1, batch_size=20,
                               noise_multiplier=1.0, input_bounds=(1.0, 0.0))


def test_clipping_only_control_learns():
    """noise_multiplier=0.0: the same sampling and clipping without noise still learns."""
    from helpers import dp_training, models

    X, y = _toy(n=200)
    model = dp_training.train_mlp(X, y, 3, epochs=20, batch_size=20, hidden=(16,), noise_multiplier=0.0, seed=0)
    assert models.accuracy(model, X, y) > 0.8


# ----------------------------------------------------------------------------- tensorflow-privacy's DPSequential

def test_dpsequential_weights_clip_first_but_divide_by_the_rows():
    """What tensorflow-privacy 0.9.0's DPSequential (fast clipping) does with 0/1 sample weights.

    Zero-weight rows contribute nothing and the others are clipped (right for Poisson
    masks), but the sum is divided by the number of rows of the batch tensor, not by the
    expected batch size: fed a gathered Poisson batch it divides by the realised size.
    This is why dp_training divides by q * n itself.
    """
    import tensorflow as tf
    from tensorflow_privacy.privacy.fast_gradient_clipping import layer_registry
    from tensorflow_privacy.privacy.keras_models.dp_keras_model import DPSequential

    from helpers import models

    X, y = _toy(n=12)
    X = X * np.linspace(0.05, 4, 12, dtype=np.float32)[:, None]
    clip, lr = 0.5, 1.0
    weights = np.array([1, 0, 1, 1, 0, 0, 1, 0, 1, 1, 0, 1], np.float32)
    reference = models.mlp(10, 3, hidden=(6,), seed=1)
    clipped, _ = _per_example_clipped(reference, X, y, 3, clip)
    model = DPSequential(l2_norm_clip=clip, noise_multiplier=0.0, use_xla=False,
                         layer_registry=layer_registry.make_default_layer_registry(), layers=reference.layers)
    model.compile(tf.keras.optimizers.SGD(lr), models.loss_for(3))
    before = _flat(model)
    model.fit(X, y, sample_weight=weights, batch_size=12, epochs=1, shuffle=False, verbose=0)
    expected = before - lr * clipped[weights == 1].sum(axis=0) / len(X)   # divisor: 12 rows, not 7 weights
    np.testing.assert_allclose(_flat(model), expected, rtol=1e-4, atol=1e-6)


# ----------------------------------------------------------------------------- arguments and timing

@pytest.mark.parametrize("kwargs, message", [
    ({"batch_size": 201}, "batch_size"), ({"batch_size": 0}, "batch_size"), ({"epochs": 0}, "epochs"),
    ({"noise_multiplier": -1.0}, "noise_multiplier"), ({"l2_norm_clip": 0.0}, "l2_norm_clip"),
    ({"learning_rate": 0.0}, "learning_rate"), ({"seed": -1}, "seed"), ({"num_outputs": 0}, "num_outputs"),
    ({"noise_multiplier": None, "record_masks": True}, "record_masks"),
])
def test_train_mlp_bad_arguments(kwargs, message):
    from helpers import dp_training

    X, y = _toy()
    args = dict(num_outputs=3, epochs=1, batch_size=20, noise_multiplier=1.0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        dp_training.train_mlp(X, y, **args)


def test_jacobian_path_computes_the_same_private_step_as_fast_clipping():
    """Models with layers outside the fast-clipping registry take the per-example Jacobian path;
    on a Dense model both paths must give the same clipped, noised updates (same masks and seeds)."""
    from helpers import dp_training, models

    X, y = _toy(n=40)
    masks = dp_training.poisson_masks(40, 10, 2, np.random.default_rng(3))
    trained = []
    for jacobian in (False, True):
        model = models.mlp(10, 3, hidden=(6,), seed=1)
        trainer = dp_training._FastClippingDPSGD(model, 0.7, 0.5, 10.0, 0.3, seed=5, jacobian=jacobian)
        assert trainer.fast is not jacobian
        trainer.run(X, y.astype(np.int64), masks, int(masks.sum(axis=1).max()))
        trained.append(_flat(model))
    np.testing.assert_allclose(trained[0], trained[1], rtol=1e-4, atol=1e-6)
    assert not np.allclose(trained[0], _flat(models.mlp(10, 3, hidden=(6,), seed=1)))


@pytest.mark.parametrize("padding, strides, bias", [("same", 1, True), ("valid", 2, False)])
def test_conv2d_fast_clipping_matches_per_example_jacobians(padding, strides, bias):
    """The Conv2D registry function's per-example gradient norms give the same private
    updates as exact per-example Jacobians."""
    import tensorflow as tf

    from helpers import dp_training

    rng = np.random.default_rng(0)
    X = rng.normal(size=(24, 7, 7, 2)).astype(np.float32)
    y = rng.integers(0, 2, 24)
    masks = dp_training.poisson_masks(24, 8, 2, np.random.default_rng(1))
    trained = []
    for jacobian in (False, True):
        tf.keras.utils.set_random_seed(3)
        model = tf.keras.Sequential([tf.keras.Input((7, 7, 2)),
                                     tf.keras.layers.Conv2D(3, 3, strides=strides, padding=padding, use_bias=bias,
                                                            activation="relu"),
                                     tf.keras.layers.GlobalAveragePooling2D(), tf.keras.layers.Dense(1)])
        start = _flat(model)
        trainer = dp_training._FastClippingDPSGD(model, 0.5, 0.05, 8.0, 1.0, seed=2, jacobian=jacobian)
        assert trainer.fast is not jacobian
        trainer.run(X, y.reshape(-1, 1).astype(np.float32), masks, int(masks.sum(axis=1).max()))
        trained.append(_flat(model))
    np.testing.assert_allclose(trained[0], trained[1], rtol=1e-4, atol=1e-6)
    assert not np.allclose(trained[0], start)


def test_course_cnn_fast_clipping_matches_per_example_jacobians():
    """The course's own CNN (stain normalisation, three convolutions, max-pooling, global
    average pooling): fast clipping and per-example Jacobians give the same private updates."""
    from helpers import dp_training, models

    rng = np.random.default_rng(0)
    X = rng.uniform(0.2, 0.9, (16, 16, 16, 1)).astype(np.float32)
    y = rng.integers(0, 2, 16)
    masks = dp_training.poisson_masks(16, 6, 1, np.random.default_rng(1))
    trained = []
    for jacobian in (False, True):
        model = models.cnn((16, 16, 1), seed=0)
        trainer = dp_training._FastClippingDPSGD(model, 0.5, 0.1, 6.0, 0.5, seed=2, jacobian=jacobian)
        assert trainer.fast is not jacobian
        trainer.run(X, y.reshape(-1, 1).astype(np.float32), masks, int(masks.sum(axis=1).max()))
        trained.append(_flat(model))
    np.testing.assert_allclose(trained[0], trained[1], rtol=1e-4, atol=1e-6)


def test_dp_sgd_fit_trains_a_convolutional_network():
    import tensorflow as tf

    from helpers import dp_training, models

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 60)
    X = (rng.normal(0, 0.3, (60, 8, 8, 1)) + y[:, None, None, None] * np.eye(8)[None, :, :, None]).astype(np.float32)
    tf.keras.utils.set_random_seed(0)
    model = tf.keras.Sequential([tf.keras.Input((8, 8, 1)), tf.keras.layers.Conv2D(4, 3, activation="relu"),
                                 tf.keras.layers.GlobalMaxPooling2D(), tf.keras.layers.Dense(1)])
    before = models.accuracy(model, X, y)
    out = dp_training.dp_sgd_fit(model, X, y, epochs=15, batch_size=20, noise_multiplier=0.5, learning_rate=1.0)
    assert out["steps"] == dp_training.num_steps(60, 20, 15) and out["masks"].shape == (out["steps"], 60)
    assert models.accuracy(model, X, y) >= max(before, 0.8)


def test_dp_sgd_fit_refuses_layers_that_mix_examples():
    import tensorflow as tf

    from helpers import dp_training

    X, y = _toy(n=20)
    model = tf.keras.Sequential([tf.keras.Input((10,)), tf.keras.layers.BatchNormalization(),
                                 tf.keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="model"):
        dp_training.dp_sgd_fit(model, X, y, epochs=1, batch_size=5, noise_multiplier=1.0)
    with pytest.raises(ValueError, match="y"):
        dp_training.dp_sgd_fit(model, X, y[:5], epochs=1, batch_size=5, noise_multiplier=1.0)


def test_time_epochs_includes_the_poisson_step():
    from helpers import dp_training

    X, y = _toy(n=100)
    seconds = dp_training.time_epochs(X, y, 3, batch_size=20, hidden=(8,),
                                      variants=("non-private", dp_training.POISSON_VARIANT))
    assert set(seconds) == {"non-private", dp_training.POISSON_VARIANT}
    assert all(s > 0 for s in seconds.values())
    with pytest.raises(ValueError, match="batch_size"):
        dp_training.time_epochs(X, y, 3, batch_size=30)
    with pytest.raises(ValueError, match="variants"):
        dp_training.time_epochs(X, y, 3, batch_size=20, variants=("fastest",))
    with pytest.raises(ValueError, match="repeats"):
        dp_training.time_epochs(X, y, 3, batch_size=20, repeats=0)
    best = dp_training.time_epochs(X, y, 3, batch_size=20, hidden=(8,), repeats=3,
                                   variants=("non-private", dp_training.POISSON_VARIANT))
    assert set(best) == set(seconds) and all(s > 0 for s in best.values())
