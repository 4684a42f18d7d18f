"""DP-SGD on adversarial examples: the per-example bound that DP needs still holds."""
import numpy as np
import pytest


@pytest.fixture(scope="module")
def wdbc():
    from helpers import data

    return data.load_wdbc()


def _model(hidden=(8,), seed=0):
    from helpers import models

    return models.mlp(30, 1, hidden=hidden, seed=seed)


def test_pgd_is_per_example_and_stays_in_the_ball(wdbc):
    import tensorflow as tf

    from helpers import models
    from helpers.dp_adversarial import pgd_linf

    model = _model()
    x, y = wdbc.X_train[:16], wdbc.y_train[:16].reshape(-1, 1).astype(np.float32)
    seed = tf.constant([0, 0], tf.int64)
    adv = pgd_linf(model, x, y, 0.3, 5, 0.15, seed).numpy()
    assert np.max(np.abs(adv - x)) <= 0.3 + 1e-6
    loss = models.loss_for(1, reduction="none")
    assert np.mean(loss(y, model(adv)).numpy()) > np.mean(loss(y, model(x)).numpy())
    # patient 0's adversarial example ignores the other patients of the batch
    x2 = x.copy()
    x2[1:] = wdbc.X_test[:15]
    adv2 = pgd_linf(model, x2, y, 0.3, 5, 0.15, seed).numpy()
    np.testing.assert_allclose(adv2[0], adv[0], atol=1e-6)


def test_each_example_contribution_is_clipped(wdbc):
    """Without noise, one step moves the weights by at most lr * C (mean of clipped grads)."""
    from helpers.dp_adversarial import dp_adversarial_fit

    for eps in (0.0, 0.5):
        model = _model()
        before = np.concatenate([w.numpy().ravel() for w in model.trainable_variables])
        dp_adversarial_fit(model, wdbc.X_train[:8] * 50, wdbc.y_train[:8], eps=eps, noise_multiplier=0.0,
                           l2_norm_clip=0.1, num_epochs=1, batch_size=8, learning_rate=1.0, seed=0)
        after = np.concatenate([w.numpy().ravel() for w in model.trainable_variables])
        assert 0 < np.linalg.norm(after - before) <= 0.1 + 1e-5


def test_training_learns_reproducibly_and_reports_epsilon(wdbc):
    from helpers import dp, models
    from helpers.dp_adversarial import dp_adversarial_fit

    X, y = wdbc.X_train[:320], wdbc.y_train[:320]
    results = []
    for _ in range(2):
        model = _model()
        info = dp_adversarial_fit(model, X, y, eps=0.2, noise_multiplier=1.5, num_epochs=8, batch_size=32,
                                  nb_iter=3, delta=1e-4, seed=1)
        results.append((models.accuracy(model, wdbc.X_test, wdbc.y_test), info["loss"]))
    assert results[0] == results[1]
    assert results[0][0] > 0.85
    assert info["steps"] == 80 and len(info["loss"]) == 8 and info["seconds"] > 0
    assert info["epsilon"] == pytest.approx(dp.dp_sgd_epsilon(320, 32, 8, 1.5, 1e-4))


@pytest.mark.parametrize("kwargs, message", [
    ({"eps": -1}, "eps"), ({"noise_multiplier": -1}, "noise_multiplier"), ({"batch_size": 1000}, "batch_size"),
    ({"adv_weight": 2}, "adv_weight"), ({"l2_norm_clip": 0}, "l2_norm_clip"),
])
def test_bad_input(wdbc, kwargs, message):
    from helpers.dp_adversarial import dp_adversarial_fit

    args = dict(eps=0.1, noise_multiplier=1.0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        dp_adversarial_fit(_model(), wdbc.X_train[:64], wdbc.y_train[:64], **args)


def test_batch_norm_is_refused(wdbc):
    import tensorflow as tf

    from helpers.dp_adversarial import dp_adversarial_fit

    model = tf.keras.Sequential([tf.keras.Input((30,)), tf.keras.layers.BatchNormalization(),
                                 tf.keras.layers.Dense(1)])
    with pytest.raises(ValueError, match="BatchNormalization"):
        dp_adversarial_fit(model, wdbc.X_train[:64], wdbc.y_train[:64], eps=0.1, noise_multiplier=1.0)


def _clipped_mixed_gradients(model, x, x_adv, y, clip, adv_weight):
    """Per-patient gradient of (1 - w) loss(x) + w loss(x_adv), one tape per patient, clipped in NumPy."""
    import tensorflow as tf

    from helpers import models

    loss_fn = models.loss_for(1, reduction="none")
    out = []
    for i in range(len(x)):
        with tf.GradientTape() as tape:
            loss = (adv_weight * loss_fn(y[i:i + 1], model(x_adv[i:i + 1]))
                    + (1 - adv_weight) * loss_fn(y[i:i + 1], model(x[i:i + 1])))
        g = np.concatenate([v.numpy().ravel() for v in tape.gradient(loss, model.trainable_variables)])
        out.append(g * min(1.0, clip / np.linalg.norm(g)))
    return np.array(out)


@pytest.mark.parametrize("eps", [0.0, 0.5])
def test_one_poisson_step_is_the_clipped_mixed_sum_over_the_expected_batch(wdbc, eps):
    """noise 0, one step: w1 = w0 - lr * (sum over the sampled patients of the clipped gradient of
    their mixed clean + adversarial loss) / batch_size, with the realised batch != batch_size."""
    import tensorflow as tf

    from helpers.dp_adversarial import dp_adversarial_fit, pgd_linf
    from helpers.dp_training import step_seeds

    X, y = wdbc.X_train[:40] * 3, wdbc.y_train[:40]
    labels = y.reshape(-1, 1).astype(np.float32)
    n, batch_size, clip, lr, nb_iter, seed = 40, 10, 0.2, 0.8, 3, 5
    model = _model()
    w0 = [v.numpy().copy() for v in model.trainable_variables]
    info = dp_adversarial_fit(model, X, y, eps=eps, noise_multiplier=0.0, l2_norm_clip=clip, num_epochs=batch_size / n,
                              batch_size=batch_size, learning_rate=lr, nb_iter=nb_iter, seed=seed)
    mask = info["masks"][0]
    assert info["steps"] == 1 and 0 < mask.sum() != batch_size and info["batch_sizes"][0] == mask.sum()
    after = np.concatenate([v.numpy().ravel() for v in model.trainable_variables])
    reference = _model()
    reference.set_weights(w0)
    x, yb = X[mask], labels[mask]
    if eps > 0:  # the same PGD start as inside the step: the last of the step's stateless seeds
        pgd_seed = step_seeds(seed, tf.constant(0, tf.int64), len(reference.trainable_variables) + 1)[-1]
        x_adv = pgd_linf(reference, x, yb, eps, nb_iter, 2.5 * eps / nb_iter, pgd_seed).numpy()
    else:
        x_adv = x
    clipped = _clipped_mixed_gradients(reference, x, x_adv, yb, clip, 0.5 if eps > 0 else 1.0)
    before = np.concatenate([w.ravel() for w in w0])
    np.testing.assert_allclose(after, before - lr * clipped.sum(axis=0) / batch_size, rtol=1e-4, atol=1e-6)


def test_batches_are_poisson_samples(wdbc):
    from helpers.dp_adversarial import dp_adversarial_fit

    info = dp_adversarial_fit(_model(), wdbc.X_train[:200], wdbc.y_train[:200], eps=0.1, noise_multiplier=1.0,
                              num_epochs=5, batch_size=20, nb_iter=1, seed=2)
    masks, sizes = info["masks"], info["batch_sizes"]
    assert masks.shape == (50, 200) and info["steps"] == 50 and len(info["loss"]) == 5
    np.testing.assert_array_equal(sizes, masks.sum(axis=1))
    assert sizes.min() < 20 < sizes.max()                        # not fixed-size slices
    assert abs(masks.mean() - 0.1) < 4 * np.sqrt(0.1 * 0.9 / masks.size)
    assert np.any(masks.reshape(5, 10, 200).sum(axis=1) != 1)    # an epoch is not a partition
