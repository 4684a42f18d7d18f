"""helpers.robustness: attacks stay in budget, measure what they claim, and attack
single-logit binary models and very confident models too (issue 16); adversarial training
helps on a small fixture."""
import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from helpers import data, models, robustness as R  # noqa: E402

CLIP = {"clip_min": 0.0, "clip_max": 1.0}


def _fit(model, X, y, epochs, lr=1e-2):
    model.compile(optimizer=tf.keras.optimizers.Adam(lr), loss=models.loss_for(model.output_shape[-1]))
    model.fit(X, y, epochs=epochs, batch_size=64, verbose=0, shuffle=False)
    return model


@pytest.fixture(scope="module")
def digits():
    tf.keras.utils.set_random_seed(0)
    return data.load_digits(flatten=True)


@pytest.fixture(scope="module")
def digits_model(digits):
    return _fit(models.mlp(64, 10, hidden=(32,), seed=0), digits.X_train, digits.y_train, epochs=15)


@pytest.fixture(scope="module")
def wdbc():
    return data.load_wdbc()


@pytest.fixture(scope="module")
def wdbc_single(wdbc):
    return _fit(models.mlp(30, 1, hidden=(16,), seed=0), wdbc.X_train, wdbc.y_train, epochs=30)


@pytest.fixture(scope="module")
def wdbc_two(wdbc):
    return _fit(models.mlp(30, 2, hidden=(16,), seed=0), wdbc.X_train, wdbc.y_train, epochs=30)


def _dist(adv, x, norm):
    d = (adv - x).reshape(len(x), -1)
    return np.abs(d).max(axis=1) if norm == np.inf else np.linalg.norm(d, ord=norm, axis=1)


@pytest.mark.parametrize("attack,norm,eps", [("fgsm", np.inf, 0.1), ("fgsm", 2, 0.8), ("fgsm", 1, 2.0),
                                             ("pgd", np.inf, 0.1), ("pgd", 2, 0.8)])
def test_attacks_stay_within_budget_and_clip_range(digits, digits_model, attack, norm, eps):
    x, y = digits.X_test[:100], digits.y_test[:100]
    kwargs = {"seed": 0, "nb_iter": 10} if attack == "pgd" else {}
    adv = getattr(R, attack)(digits_model, x, y, eps, norm=norm, **CLIP, **kwargs)
    assert adv.shape == x.shape and adv.dtype == np.float32
    assert _dist(adv, x, norm).max() <= eps * (1 + 1e-5) + 1e-6
    assert adv.min() >= 0.0 and adv.max() <= 1.0
    assert _dist(adv, x, norm).mean() > 0.2 * eps, "the attack should actually move the inputs"


def test_per_feature_clip_bounds_are_respected(wdbc, wdbc_single):
    x, y = wdbc.X_test[:50], wdbc.y_test[:50]
    lo = wdbc.to_standardized(np.zeros((1, 30)))[0]  # physical lower bound: no negative sizes
    adv = R.pgd(wdbc_single, x, y, 2.0, nb_iter=10, clip_min=lo, clip_max=np.inf, seed=0)
    assert np.all(adv >= lo - 1e-6) and np.abs(adv - x).max() <= 2.0 + 1e-5


def test_eps_zero_gives_clean_accuracy(digits, digits_model):
    x, y = digits.X_test[:200], digits.y_test[:200]
    clean = models.accuracy(digits_model, x, y)
    for attack in ("pgd", "fgsm"):
        acc = R.robust_accuracy(digits_model, x, y, [0.0], attack=attack, **CLIP)
        assert acc[0] == pytest.approx(clean)
    np.testing.assert_array_equal(R.pgd(digits_model, x, y, 0.0, **CLIP), x)


def test_pgd_accuracy_is_non_increasing_in_eps_and_beats_fgsm(digits, digits_model):
    x, y = digits.X_test[:200], digits.y_test[:200]
    eps = [0.0, 0.02, 0.05, 0.1, 0.15, 0.25]
    acc_pgd = R.robust_accuracy(digits_model, x, y, eps, nb_iter=20, seed=0, **CLIP)
    acc_fgsm = R.robust_accuracy(digits_model, x, y, eps, attack="fgsm", **CLIP)
    assert np.all(np.diff(acc_pgd) <= 0.02), acc_pgd
    assert acc_pgd[-1] <= 0.05, "an undefended model falls to ~0 at large eps"
    assert np.all(acc_pgd <= acc_fgsm + 0.02), (acc_pgd, acc_fgsm)


def test_restarts_never_increase_accuracy_and_seed_is_reproducible(digits, digits_model):
    x, y = digits.X_test[:200], digits.y_test[:200]
    one = R.robust_accuracy(digits_model, x, y, [0.08], nb_iter=10, seed=1, **CLIP)
    three = R.robust_accuracy(digits_model, x, y, [0.08], nb_iter=10, seed=1, restarts=3, **CLIP)
    assert three[0] <= one[0]
    a = R.pgd(digits_model, x, y, 0.1, nb_iter=5, seed=3, **CLIP)
    b = R.pgd(digits_model, x, y, 0.1, nb_iter=5, seed=3, **CLIP)
    c = R.pgd(digits_model, x, y, 0.1, nb_iter=5, seed=4, **CLIP)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_raw_cleverhans_leaves_single_logit_model_unattacked(wdbc, wdbc_single):
    # Documents the silent failure the helpers fix: default label argmax = 0, and the
    # softmax of one logit is constant, so the gradient is exactly zero.
    from cleverhans.tf2.attacks.fast_gradient_method import fast_gradient_method
    x = wdbc.X_test
    adv = np.asarray(fast_gradient_method(wdbc_single, x, 1.0, np.inf))
    np.testing.assert_array_equal(adv, x)


@pytest.mark.parametrize("fixture", ["wdbc_single", "wdbc_two"])
def test_binary_models_are_really_attacked(wdbc, fixture, request):
    model = request.getfixturevalue(fixture)
    x, y = wdbc.X_test, wdbc.y_test
    clean = models.accuracy(model, x, y)
    assert clean > 0.9
    acc = R.robust_accuracy(model, x, y, [0.0, 0.25, 0.5, 1.0, 3.0, 10.0], nb_iter=20, seed=0)
    assert acc[0] == pytest.approx(clean)
    assert acc[2] < clean - 0.2, acc
    # Issue 16: `acc < 0.3` at eps = 1 hid a silent failure on confident patients (the
    # old [0, z] cross-entropy reported 0.15-0.17 and accuracy *rose* with eps). Fixed,
    # the worst case over ce and margin falls monotonically to 0 (<= 1 patient of 143).
    assert acc[3] < 0.15, acc
    assert np.all(np.diff(acc) <= 0) and acc[4] <= 0.01 and acc[5] <= 0.01, acc
    adv = R.fgsm(model, x, y, 0.5)
    assert models.accuracy(model, adv, y) < clean - 0.1
    # Without labels the attack uses the model's own predictions (argmax of [-z/2, z/2]).
    adv_pred = R.fgsm(model, x, None, 0.5)
    assert models.accuracy(model, adv_pred, y) < clean - 0.1


def test_single_logit_wrapper_gives_binary_cross_entropy():
    model = models.mlp(3, 1, hidden=(4,), seed=0)
    x = tf.constant(np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32))
    y = np.array([0, 1, 1, 0, 1, 0])
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=R.logits_fn(model)(x))
    bce = tf.keras.losses.binary_crossentropy(y[:, None].astype(np.float32), model(x), from_logits=True)
    np.testing.assert_allclose(ce.numpy(), bce.numpy(), rtol=1e-5, atol=1e-6)
    assert R.logits_fn(model) is R.logits_fn(model), "cached: one trace per model"


def test_probability_outputs_are_refused(digits, digits_model):
    x, y = digits.X_test[:20], digits.y_test[:20]
    softmax_layer = tf.keras.Sequential([digits_model, tf.keras.layers.Softmax()])
    as_function = lambda inputs: tf.nn.softmax(digits_model(inputs))  # noqa: E731
    dense_softmax = tf.keras.Sequential([tf.keras.Input((64,)), tf.keras.layers.Dense(10, activation="softmax")])
    for model in (softmax_layer, as_function, dense_softmax):
        for call in (lambda m: R.pgd(m, x, y, 0.1, nb_iter=2, seed=0),
                     lambda m: R.fgsm(m, x, y, 0.1),
                     lambda m: R.robust_accuracy(m, x, y, [0.1])):
            with pytest.raises(ValueError, match="model must return logits"):
                call(model)


@pytest.mark.parametrize("kwargs,match", [
    ({"eps": -0.1}, "eps"),
    ({"eps": float("nan")}, "eps"),
    ({"eps_iter": 0.2}, "eps_iter"),
    ({"nb_iter": 0}, "nb_iter"),
    ({"norm": 3}, "norm"),
    ({"norm": 1}, "norm"),
    ({"clip_min": 1.0, "clip_max": 0.0}, "clip_min"),
    ({"clip_min": 0.5, "clip_max": 1.0}, "x must lie inside"),
    ({"y": np.zeros((20, 10), dtype=int)}, "y must have shape"),
    ({"y": np.zeros(20, dtype=float)}, "dtype"),
    ({"y": np.zeros(19, dtype=int)}, "one label per row"),
    ({"y": np.full(20, 10)}, "labels < 10"),
    ({"seed": -1}, "rng"),
])
def test_bad_arguments_raise_value_error_naming_them(digits, digits_model, kwargs, match):
    args = {"x": digits.X_test[:20], "y": digits.y_test[:20], "eps": 0.1, "nb_iter": 3, "seed": 0, **CLIP}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        R.pgd(digits_model, **args)


def test_bad_arguments_of_robust_accuracy_and_fgsm(digits, digits_model):
    x, y = digits.X_test[:20], digits.y_test[:20]
    with pytest.raises(ValueError, match="attack"):
        R.robust_accuracy(digits_model, x, y, [0.1], attack="cw")
    with pytest.raises(ValueError, match="eps_values"):
        R.robust_accuracy(digits_model, x, y, [-0.1, 0.1])
    with pytest.raises(ValueError, match="restarts"):
        R.robust_accuracy(digits_model, x, y, [0.1], restarts=0)
    with pytest.raises(ValueError, match="y must hold the true labels"):
        R.robust_accuracy(digits_model, x, None, [0.1])
    with pytest.raises(ValueError, match="norm"):
        R.fgsm(digits_model, x, y, 0.1, norm="l2")
    with pytest.raises(ValueError, match="x must"):
        R.fgsm(digits_model, x[0], y[:1], 0.1)
    with pytest.raises(ValueError, match="attack"):
        R.adversarial_fit(digits_model, x, y, 0.1, attack="distillation")
    with pytest.raises(ValueError, match="adv_weight"):
        R.adversarial_fit(digits_model, x, y, 0.1, adv_weight=1.5)


def test_custom_attack_callable(digits, digits_model):
    x, y = digits.X_test[:50], digits.y_test[:50]
    identity = lambda model, x, y, eps: x  # noqa: E731
    acc = R.robust_accuracy(digits_model, x, y, [0.0, 0.3], attack=identity)
    assert acc[0] == acc[1] == pytest.approx(models.accuracy(digits_model, x, y))


def test_adversarial_training_improves_robust_accuracy(digits):
    X, y = digits.X_train, digits.y_train
    x_eval, y_eval = digits.X_test[:200], digits.y_test[:200]
    eps = 0.1
    robust = {}
    for mode in ("none", "pgd"):
        model = models.mlp(64, 10, hidden=(32,), seed=0)
        history = R.adversarial_fit(model, X, y, eps, attack=mode, num_epochs=6, nb_iter=5,
                                    learning_rate=1e-2, seed=0, **CLIP)
        assert len(history["loss"]) == 6 and history["loss"][-1] < history["loss"][0]
        robust[mode] = R.robust_accuracy(model, x_eval, y_eval, [eps], nb_iter=20, seed=0, **CLIP)[0]
    assert robust["pgd"] > robust["none"] + 0.15, robust


def test_gaussian_noise_is_unclipped_normal_of_sd_eps():
    noise = R._gaussian_noise((20000, 8), 0.25, np.random.default_rng(0))
    assert noise.dtype == np.float32 and abs(noise.mean()) < 0.01 and abs(noise.std() - 0.25) < 0.005
    assert np.abs(noise).max() > 0.75  # unbounded, no clipping


def test_gaussian_augmentation_makes_the_model_accurate_under_noise(digits):
    X, y = digits.X_train, digits.y_train
    x_noisy = digits.X_test + np.random.default_rng(1).normal(0, 0.5, digits.X_test.shape).astype(np.float32)
    acc = {}
    for mode in ("none", "gaussian"):
        model = models.mlp(64, 10, hidden=(32,), seed=0)
        R.adversarial_fit(model, X, y, 0.5, attack=mode, num_epochs=8, learning_rate=1e-2, seed=0, **CLIP)
        acc[mode] = models.accuracy(model, x_noisy, digits.y_test)
    assert acc["gaussian"] > acc["none"] + 0.1, acc


def test_adversarial_fit_on_single_logit_binary_model(wdbc):
    model = models.mlp(30, 1, hidden=(16,), seed=0)
    history = R.adversarial_fit(model, wdbc.X_train, wdbc.y_train, 0.3, attack="pgd", num_epochs=5,
                                nb_iter=5, learning_rate=1e-2, seed=0)
    assert history["loss"][-1] < history["loss"][0]
    assert models.accuracy(model, wdbc.X_test, wdbc.y_test) > 0.85


# --------------------------------------------------------------------------- issue 16: confident models

@pytest.fixture(scope="module")
def blobs():
    """Two well separated Gaussian blobs in 4 dimensions (means -1.5 and +1.5, std 0.5)."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    X = (rng.normal(size=(200, 4)) * 0.5 + np.where(y[:, None] == 1, 1.5, -1.5)).astype(np.float32)
    return X, y


def _margins(model, X, y):
    z = np.asarray(model(X))
    if z.shape[1] == 1:
        return z[:, 0] * (2 * y - 1)
    return z[np.arange(len(y)), y] - z[np.arange(len(y)), 1 - y]


@pytest.fixture(scope="module")
def confident(blobs):
    """``confident(k, min_margin)``: a trained MLP with k outputs whose last layer is
    scaled so that every kept example's logit margin is at least ``min_margin``; same
    decisions as the trained model. Returns (model, X, y)."""
    X, y = blobs
    trained = {}

    def make(k, min_margin):
        if k not in trained:
            tf.keras.utils.set_random_seed(0)
            trained[k] = _fit(models.mlp(4, k, hidden=(8,), seed=0), X, y, epochs=20)
        base = trained[k]
        margin = _margins(base, X, y)
        keep = margin > 0.5
        model = tf.keras.models.clone_model(base)
        model.set_weights(base.get_weights())
        W, b = base.layers[-1].get_weights()
        scale = min_margin / margin[keep].min()
        model.layers[-1].set_weights([W * scale, b * scale])
        return model, X[keep], y[keep]
    return make


@pytest.mark.parametrize("k,min_margin", [(1, 25), (2, 25), (1, 150), (2, 150)])
def test_confident_models_are_broken_and_accuracy_falls_monotonically(confident, k, min_margin):
    # Regression for issue 16: with logits above 20, cross-entropy gradients vanish in
    # float32; robust accuracy used to *rise* with eps. Worst case over ce and margin,
    # 20 PGD steps: must be non-increasing in eps and reach 0 (the blobs are 3 apart,
    # an L∞ radius of 4 reaches the other blob from any point).
    model, X, y = confident(k, min_margin)
    assert _margins(model, X, y).min() >= min_margin - 1e-3
    eps = [0.0, 0.25, 0.5, 1.0, 2.0, 3.0, 4.0]
    acc = R.robust_accuracy(model, X, y, eps, nb_iter=20, seed=0)
    assert acc[0] == 1.0
    assert np.all(np.diff(acc) <= 0), acc
    assert acc[-1] == 0.0, acc


def test_cross_entropy_alone_saturates_on_very_confident_model_and_worst_case_catches_it(confident):
    # Logit margins >= 150: the softmax underflows, the cross-entropy gradient is exactly 0
    # for most examples, and a ce-only attack reports robustness that is not there.
    model, X, y = confident(2, 150)
    kw = dict(nb_iter=20, seed=0)
    ce = R.robust_accuracy(model, X, y, [2.0, 4.0], losses="ce", **kw)
    margin = R.robust_accuracy(model, X, y, [2.0, 4.0], losses="margin", **kw)
    both = R.robust_accuracy(model, X, y, [2.0, 4.0], **kw)
    assert np.all(ce > 0.5), ce
    assert np.all(margin < 0.1), margin
    assert np.all(both <= np.minimum(ce, margin)), (ce, margin, both)


@pytest.mark.parametrize("loss", R.LOSSES)
def test_single_logit_gradient_does_not_vanish_for_confident_predictions(confident, loss):
    # With the logits [0, z], the ce gradient for a confident class-1 prediction was
    # sigmoid(z) - 1 = 0 exactly once z > 16.6; with [-z/2, z/2] it flows through the
    # other logit (-exp(-z)/2), nonzero up to z ~ 85. The margin never vanishes. An FGSM
    # step with a nonzero gradient moves every example by exactly eps in L∞.
    model, X, y = confident(1, 25)
    z = np.abs(np.asarray(model(X))[:, 0])
    keep = z < 80
    assert keep.sum() > 100 and np.all(z[keep] > 20)
    adv = R.fgsm(model, X[keep], y[keep], 0.1, loss=loss)
    np.testing.assert_allclose(np.abs(adv - X[keep]).max(axis=1), 0.1, rtol=1e-5)


def test_margin_loss_values():
    logits = tf.constant([[1.0, 2.0, 3.0], [5.0, 1.0, 0.0], [0.0, 4.0, -1.0]])
    np.testing.assert_allclose(R.margin_loss(tf.constant([1, 0, 2]), logits).numpy(), [1.0, -4.0, 5.0])
    # Single logit z through logits_fn: the margin is -z for class 1 and z for class 0.
    model = models.mlp(3, 1, hidden=(4,), seed=0)
    x = tf.constant(np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32))
    z = model(x).numpy()[:, 0]
    y = np.array([0, 1, 1, 0, 1, 0])
    np.testing.assert_allclose(R.margin_loss(y, R.logits_fn(model)(x)).numpy(), np.where(y == 1, -z, z),
                               rtol=1e-5, atol=1e-6)


def test_losses_worst_case_and_custom_attack_receives_loss(digits, digits_model):
    x, y = digits.X_test[:100], digits.y_test[:100]
    kw = dict(nb_iter=10, seed=0, **CLIP)
    single = {loss: R.robust_accuracy(digits_model, x, y, [0.1], losses=loss, **kw)[0] for loss in R.LOSSES}
    both = R.robust_accuracy(digits_model, x, y, [0.1], **kw)[0]
    assert both <= min(single.values()), (single, both)
    seen = []

    def recording(model, x, y, eps, loss):
        seen.append(loss)
        return x
    R.robust_accuracy(digits_model, x, y, [0.1], attack=recording, losses=("margin", "ce"), restarts=2)
    assert seen == ["margin", "ce", "margin", "ce"]


def test_bad_losses_raise_value_error(digits, digits_model):
    x, y = digits.X_test[:20], digits.y_test[:20]
    with pytest.raises(ValueError, match="loss must be one of"):
        R.pgd(digits_model, x, y, 0.1, nb_iter=2, loss="hinge", **CLIP)
    with pytest.raises(ValueError, match="loss must be one of"):
        R.fgsm(digits_model, x, y, 0.1, loss=None, **CLIP)
    for losses in ((), ("ce", "cw"), 3):
        with pytest.raises(ValueError, match="losses"):
            R.robust_accuracy(digits_model, x, y, [0.1], losses=losses)
    with pytest.raises(ValueError, match="losses="):
        R.robust_accuracy(digits_model, x, y, [0.1], loss="margin")


# --------------------------------------------------------------------------- issue 15: Square attack, loss curves

@pytest.mark.parametrize("as_images", [False, True])
def test_square_attack_breaks_an_undefended_model_without_gradients(digits, digits_model, as_images):
    x, y = digits.X_test[:200], digits.y_test[:200]
    model = digits_model
    if as_images:  # the same model on (n, 8, 8, 1) images: square windows instead of feature sets
        x = x.reshape(-1, 8, 8, 1)
        model = lambda inputs: digits_model(tf.reshape(inputs, (-1, 64)))  # noqa: E731
    clean = models.accuracy(digits_model, x.reshape(-1, 64), y)
    adv = R.square_attack(model, x, y, 0.2, n_queries=500, seed=0, **CLIP)
    assert adv.shape == x.shape and adv.dtype == np.float32
    assert np.abs(adv - x).max() <= 0.2 + 1e-6 and adv.min() >= 0.0 and adv.max() <= 1.0
    attacked = models.accuracy(digits_model, adv.reshape(-1, 64), y)
    # PGD-20 leaves <= 0.05 at eps = 0.25 (test above); 500 queries get close at eps = 0.2.
    assert clean > 0.9 and attacked < 0.15, (clean, attacked)
    small = R.square_attack(model, x, y, 0.1, n_queries=300, seed=0, **CLIP)
    assert models.accuracy(digits_model, small.reshape(-1, 64), y) < clean - 0.25


def test_square_attack_is_seeded_queries_only_the_outputs_and_stops_on_success(digits, digits_model):
    x, y = digits.X_test[:100], digits.y_test[:100]
    calls = []

    def black_box(inputs):  # a NumPy model: no TensorFlow gradient could flow through it
        calls.append(len(inputs))
        return tf.constant(np.asarray(digits_model(np.asarray(inputs))))

    a = R.square_attack(black_box, x, y, 0.15, n_queries=50, seed=3, **CLIP)
    assert len(calls) <= 50 + 1  # one query per round on the whole batch (+1 for check_model)
    b = R.square_attack(digits_model, x, y, 0.15, n_queries=50, seed=3, **CLIP)
    c = R.square_attack(digits_model, x, y, 0.15, n_queries=50, seed=4, **CLIP)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(b, c)
    # An example misclassified at the initial stripes is not changed any more.
    first = R.square_attack(digits_model, x, y, 0.15, n_queries=1, seed=3, **CLIP)
    wrong = models.predict(digits_model, first) != y
    assert wrong.any()
    np.testing.assert_array_equal(b[wrong], first[wrong])
    np.testing.assert_array_equal(R.square_attack(digits_model, x, y, 0.0, seed=0, **CLIP), x)


def test_square_attack_defeats_gradient_masking_that_fools_pgd(digits, digits_model):
    # Logits times 50: the same decisions, a saturated cross-entropy (defensive distillation's effect).
    x, y = digits.X_test[:200], digits.y_test[:200]
    saturated = lambda inputs: 50.0 * digits_model(inputs)  # noqa: E731
    pgd_ce = R.robust_accuracy(saturated, x, y, [0.2], losses="ce", nb_iter=20, seed=0, **CLIP)[0]
    square = R.robust_accuracy(saturated, x, y, [0.2], attack=R.square_attack, n_queries=500, seed=0, **CLIP)[0]
    assert pgd_ce > 0.3 and square < 0.15, (pgd_ce, square)


@pytest.mark.parametrize("kwargs,match", [({"n_queries": 0}, "n_queries"), ({"p_init": 0.0}, "p_init"),
                                          ({"p_init": 1.5}, "p_init"), ({"loss": "hinge"}, "loss"),
                                          ({"eps": -1.0}, "eps"), ({"seed": -1}, "rng")])
def test_square_attack_bad_arguments(digits, digits_model, kwargs, match):
    args = {"x": digits.X_test[:10], "y": digits.y_test[:10], "eps": 0.1, "n_queries": 5, "seed": 0, **CLIP}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        R.square_attack(digits_model, **args)


def test_square_schedule_halves_the_window_on_the_papers_steps():
    assert R._square_fraction(0.4, 0, 10000) == 0.4
    assert R._square_fraction(0.4, 11, 10000) == 0.2
    assert R._square_fraction(0.4, 51, 10000) == 0.1
    assert R._square_fraction(0.4, 9999, 10000) == pytest.approx(0.4 / 2 ** 9)
    assert R._square_fraction(0.4, 2, 1000) == 0.2  # rescaled: query 2 of 1000 is 20 of 10000
    mask = R._square_mask((5, 8, 8, 1), 0.25, np.random.default_rng(0))
    assert mask.shape == (5, 8, 8, 1) and np.all(mask.sum(axis=(1, 2, 3)) == 16)  # 4 x 4 squares
    flat = R._square_mask((5, 64), 0.25, np.random.default_rng(0))
    assert np.all(flat.sum(axis=1) == 16)


def test_pgd_loss_curve_records_every_step_and_matches_pgd(digits, digits_model):
    x, y = digits.X_test[:100], digits.y_test[:100]
    curve = R.pgd_loss_curve(digits_model, x, y, 0.1, nb_iter=15, seed=2, loss="margin", **CLIP)
    assert curve.shape == (16, 100)
    adv = R.pgd(digits_model, x, y, 0.1, nb_iter=15, seed=2, loss="margin", **CLIP)
    last = np.asarray(R.margin_loss(y, R.logits_fn(digits_model)(tf.constant(adv))))
    np.testing.assert_allclose(curve[-1], last, rtol=1e-5, atol=1e-5)
    mean = curve.mean(axis=1)
    assert mean[-1] > mean[0] + 1.0 and mean[-1] >= mean[-5] - 0.05  # rises, then levels off
    watched = R.pgd_loss_curve(digits_model, x, y, 0.1, nb_iter=15, seed=2, loss="ce", measure="margin", **CLIP)
    assert watched.shape == (16, 100) and watched.mean(axis=1)[-1] > watched.mean(axis=1)[0]
    flat = R.pgd_loss_curve(digits_model, x, y, 0.0, nb_iter=3, **CLIP)
    assert flat.shape == (4, 100) and np.all(flat == flat[0])


def test_robust_examples_are_the_per_example_view_of_robust_accuracy():
    """Same arguments, same draws: robust_accuracy is the mean of robust_examples, row by row."""
    import helpers
    from helpers import data, models, robustness
    helpers.setup(0, verbose=False)
    d = data.load_digits(seed=0)
    m = models.mlp((8, 8, 1), 10, hidden=(16,), seed=0)
    m.compile(optimizer="adam", loss=models.loss_for(10))
    m.fit(d.X_train[:300], d.y_train[:300], epochs=3, batch_size=64, verbose=0)
    x, y = d.X_test[:60], d.y_test[:60]
    kw = dict(nb_iter=5, restarts=2, clip_min=0.0, clip_max=1.0, seed=3)
    ok = robustness.robust_examples(m, x, y, [0.0, 0.05, 0.2], **kw)
    assert ok.shape == (3, 60) and ok.dtype == bool
    assert np.array_equal(ok.mean(axis=1), robustness.robust_accuracy(m, x, y, [0.0, 0.05, 0.2], **kw))
    assert np.array_equal(ok[0], models.predict(m, x) == y)       # eps = 0: clean correctness


def test_logits_fn_cache_does_not_keep_models_alive():
    """The per-model cache of logits_fn is weak: a model nobody holds any more is freed."""
    import gc
    import weakref
    import helpers
    from helpers import models, robustness
    helpers.setup(0, verbose=False)
    m = models.mlp(4, 1, hidden=(3,), seed=0)
    fn = robustness.logits_fn(m)
    assert fn is robustness.logits_fn(m) and fn(np.ones((2, 4), np.float32)).shape == (2, 2)
    alive = weakref.ref(m)
    del m, fn
    gc.collect()
    assert alive() is None


def test_square_attack_redraws_proposals_that_change_nothing(digits, digits_model):
    # Replay the attack from its queries: for each round, is the candidate of every example still
    # being attacked different from that example's current image? Without re-drawing, about half
    # of the proposals on these digits (pixels at 0 or 1, clipped windows) are no-ops.
    x, y = digits.X_test[:100].reshape(-1, 8, 8, 1), digits.y_test[:100]  # images: square windows
    queries = []

    def black_box(inputs):
        queries.append(np.array(inputs))
        return digits_model(np.asarray(inputs).reshape(len(inputs), -1))

    R.square_attack(black_box, x, y, 0.1, n_queries=100, seed=0, **CLIP)
    queries = queries[1:]  # the first call is check_model's
    adv = queries[0]
    z = np.asarray(black_box(adv))
    rows = np.arange(len(y))

    def margin(z):
        others = z.copy()
        others[rows, y] = -np.inf
        return z[rows, y] - others.max(axis=1)

    best, fooled = margin(z), z.argmax(axis=1) != y
    no_ops = attacked = 0
    for cand in queries[1:]:
        active = ~fooled
        attacked += active.sum()
        no_ops += np.all((cand == adv).reshape(len(y), -1), axis=1)[active].sum()
        zc = np.asarray(black_box(cand))
        better = (margin(zc) < best) & active
        adv = np.where(better[:, None, None, None], cand, adv)
        best = np.where(better, margin(zc), best)
        fooled |= better & (zc.argmax(axis=1) != y)
    assert attacked > 1000 and no_ops / attacked < 0.01


def test_pgd_ever_fooled_keeps_the_first_fooling_iterate(digits, digits_model):
    x, y = digits.X_test[:300], digits.y_test[:300]
    kw = dict(eps=0.1, nb_iter=20, loss="ce", **CLIP)
    last = R.pgd(digits_model, x, y, seed=5, **kw)
    ever = R.pgd(digits_model, x, y, seed=5, ever_fooled=True, **kw)
    # the same path: the iterates of pgd_loss_curve's loop; judge every iterate with the model
    iterates = list(R._pgd_iterates(R.logits_fn(digits_model), tf.constant(x), tf.constant(y), 0.1,
                                    R.default_step_size(0.1, 20), 20, np.inf, np.float32(0.0), np.float32(1.0), True,
                                    np.random.default_rng(5), R.cross_entropy_loss))
    wrong = np.stack([models.predict(digits_model, np.asarray(a)) != y for a in iterates])  # (steps + 1, n)
    any_wrong = wrong.any(axis=0)
    assert np.array_equal(models.predict(digits_model, ever) != y, any_wrong)
    np.testing.assert_allclose(last, np.asarray(iterates[-1]), atol=1e-6)
    first = wrong.argmax(axis=0)
    for i in np.flatnonzero(any_wrong)[:20]:
        np.testing.assert_allclose(ever[i], np.asarray(iterates[first[i]])[i], atol=1e-6)
    assert np.all(np.abs(ever - x) <= 0.1 + 1e-6) and ever.min() >= 0 and ever.max() <= 1
    # ever fooled can only lower robust accuracy, for the same draws
    acc_last = R.robust_accuracy(digits_model, x, y, [0.1], nb_iter=20, seed=5, **CLIP)[0]
    acc_ever = R.robust_accuracy(digits_model, x, y, [0.1], nb_iter=20, seed=5, ever_fooled=True, **CLIP)[0]
    assert acc_ever <= acc_last
