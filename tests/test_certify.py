"""helpers.certify: randomized smoothing's certificate is the formula R = sigma * Phi^-1(p_A_lower)
with a one-sided Clopper-Pearson bound, and it is sound and nearly tight where the exact
answer is known (a linear classifier, whose smoothed version is itself)."""
import numpy as np
import pytest
from scipy import stats

tf = pytest.importorskip("tensorflow")

from helpers import certify as C  # noqa: E402
from helpers import data, models  # noqa: E402

W = np.array([3.0, -4.0], dtype=np.float32)  # ||W|| = 5
B = 0.5


def linear(x):
    """Two logits [0, w.x + b]: class 1 exactly when w.x + b > 0."""
    z = tf.linalg.matvec(tf.cast(x, tf.float32), tf.constant(W)) + B
    return tf.stack([tf.zeros_like(z), z], axis=1)


def _points(m=40, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, size=(m, 2)).astype(np.float32)
    signed = (x @ W + B) / np.linalg.norm(W)  # signed distance to the decision boundary
    return x, (signed > 0).astype(int), np.abs(signed)


def test_clopper_pearson_lower_bound_values_and_coverage():
    assert C.clopper_pearson_lower(0, 100, 0.05) == 0.0
    assert C.clopper_pearson_lower(100, 100, 0.05) == pytest.approx(0.05 ** (1 / 100))  # closed form at k = n
    assert C.clopper_pearson_lower(37, 100, 0.01) == pytest.approx(stats.beta.ppf(0.01, 37, 64))
    ks = np.arange(0, 101)
    bounds = C.clopper_pearson_lower(ks, 100, 0.001)
    assert bounds.shape == (101,) and np.all(np.diff(bounds) > 0) and np.all(bounds <= ks / 100)
    # Coverage: over 20 000 simulated counts at p = 0.7, the bound exceeds p in at most alpha = 5 %
    # of them (Clopper-Pearson is conservative; 3 standard errors of slack for the simulation).
    counts = np.random.default_rng(0).binomial(200, 0.7, size=20000)
    miss = np.mean(C.clopper_pearson_lower(counts, 200, 0.05) > 0.7)
    assert miss <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 20000), miss


def test_certificate_is_the_papers_formula():
    x, _, _ = _points()
    cert = C.certify(linear, x, sigma=0.5, n0=50, n=500, alpha=0.01, seed=0)
    p_lower = C.clopper_pearson_lower(cert.count, 500, 0.01)
    np.testing.assert_allclose(cert.p_lower, p_lower)
    certified = cert.prediction != C.ABSTAIN
    np.testing.assert_array_equal(certified, p_lower > 0.5)
    np.testing.assert_allclose(cert.radius[certified], 0.5 * stats.norm.ppf(p_lower[certified]), rtol=1e-12)
    assert np.all(cert.radius[~certified] == 0)
    assert cert.n == 500 and cert.sigma == 0.5 and cert.alpha == 0.01


def test_certified_radius_is_sound_and_nearly_tight_for_a_linear_classifier():
    # Smoothing a linear classifier gives the same classifier, whose exact robust radius is the
    # distance to the boundary: P(class) = Phi(distance / sigma). A certificate must never exceed
    # it (alpha = 1e-3 per example, 40 examples, fixed seed), and with n = 20 000 it is close to it
    # wherever the distance is below the largest certifiable radius sigma * Phi^-1(alpha^(1/n)).
    x, y, distance = _points()
    sigma, n, alpha = 0.5, 20000, 0.001
    cert = C.certify(linear, x, sigma=sigma, n0=100, n=n, alpha=alpha, seed=0)
    assert np.all(cert.radius <= distance + 1e-9)
    ceiling = sigma * stats.norm.ppf(alpha ** (1 / n))
    reachable = (distance < ceiling - 0.1) & (distance > 0.1)
    assert reachable.sum() >= 10
    np.testing.assert_array_equal(cert.prediction[reachable], y[reachable])
    assert np.all(cert.radius[reachable] >= distance[reachable] - 0.1), (cert.radius - distance)[reachable]


def test_abstains_on_the_boundary_and_smoothed_predict_agrees_far_from_it():
    on_boundary = np.array([[0.1, 0.2]], dtype=np.float32)  # 3 * 0.1 - 4 * 0.2 + 0.5 = 0
    cert = C.certify(linear, on_boundary, sigma=0.5, n=2000, alpha=0.001, seed=0)
    assert cert.prediction[0] == C.ABSTAIN and cert.radius[0] == 0
    assert C.smoothed_predict(linear, on_boundary, sigma=0.5, n=2000, seed=0)[0] == C.ABSTAIN
    x, y, distance = _points(seed=1)
    far = distance > 0.5
    pred = C.smoothed_predict(linear, x[far], sigma=0.5, n=200, alpha=0.001, seed=0)
    np.testing.assert_array_equal(pred, y[far])


def test_certified_accuracy_counts_correct_predictions_with_enough_radius():
    cert = C.Certificate(prediction=np.array([1, 0, C.ABSTAIN, 2]), radius=np.array([0.5, 1.0, 0.0, 0.2]),
                         p_lower=np.array([0.8, 0.9, 0.4, 0.6]), count=np.array([9, 9, 5, 7]), n=10, sigma=1.0,
                         alpha=0.001)
    y = np.array([1, 0, 2, 1])  # the last one is certified, but for the wrong class
    np.testing.assert_allclose(C.certified_accuracy(cert, y, [0.0, 0.5, 0.75, 2.0]), [0.5, 0.5, 0.25, 0.0])
    with pytest.raises(ValueError, match="y must have one label"):
        C.certified_accuracy(cert, y[:3], [0.0])
    with pytest.raises(ValueError, match="radii"):
        C.certified_accuracy(cert, y, [-1.0])


def test_certify_a_trained_digits_model_and_a_single_logit_model():
    digits = data.load_digits(flatten=True)
    model = models.mlp(64, 10, hidden=(32,), seed=0)
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-2), loss=models.loss_for(10))
    rng = np.random.default_rng(0)
    for _ in range(8):  # Gaussian augmentation, as Cohen et al. train the base classifier
        model.fit(digits.X_train + rng.normal(0, 0.25, digits.X_train.shape).astype(np.float32), digits.y_train,
                  epochs=1, batch_size=64, verbose=0)
    x, y = digits.X_test[:100], digits.y_test[:100]
    cert = C.certify(model, x, sigma=0.25, n0=100, n=1000, alpha=0.001, seed=0)
    acc = C.certified_accuracy(cert, y, [0.0, 0.25, 0.5, 1.0])
    assert acc[0] > 0.8 and acc[1] > 0.5 and np.all(np.diff(acc) <= 0) and acc[-1] == 0  # 1.0 > 2.5 sigma
    a = C.certify(model, x[:5], sigma=0.25, n=200, seed=7)
    b = C.certify(model, x[:5], sigma=0.25, n=200, seed=7)
    np.testing.assert_array_equal(a.count, b.count)
    single = lambda inputs: tf.reshape(linear(inputs)[:, 1], (-1, 1))  # noqa: E731  one logit w.x + b
    xs, ys, _ = _points()
    np.testing.assert_array_equal(C.certify(single, xs, 0.5, n=500, seed=0).count,
                                  C.certify(linear, xs, 0.5, n=500, seed=0).count)


@pytest.mark.parametrize("kwargs,match", [({"sigma": 0.0}, "sigma"), ({"sigma": -1.0}, "sigma"),
                                          ({"alpha": 0.0}, "alpha"), ({"alpha": 0.6}, "alpha"),
                                          ({"n": 0}, "n"), ({"n0": 0}, "n0"), ({"seed": -2}, "rng")])
def test_bad_arguments_raise_value_error_naming_them(kwargs, match):
    args = {"sigma": 0.5, "n": 10, "n0": 5, "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=match):
        C.certify(linear, _points(5)[0], **args)
    with pytest.raises(ValueError, match="k must be in"):
        C.clopper_pearson_lower(11, 10, 0.05)
    with pytest.raises(ValueError, match="probabilities"):
        C.certify(lambda inputs: tf.nn.softmax(linear(inputs)), _points(5)[0], 0.5, n=10)


def test_smoothed_attack_flips_the_smoothed_linear_classifier_exactly_beyond_its_distance():
    # g of a linear classifier is the classifier itself: the attack on g must succeed when eps
    # exceeds the distance to the boundary and cannot when it is below it.
    x, y, dist = _points(200, seed=3)
    eps = 0.3
    adv = C.smoothed_attack(linear, x, y, sigma=0.2, eps=eps, nb_iter=20, num_noise=32, seed=0)
    assert np.all(np.linalg.norm(adv - x, axis=1) <= eps + 1e-5)
    pred = C.majority_vote(linear, adv, 0.2, n=2000, seed=1)
    far, near = dist > eps + 0.05, dist < eps - 0.05
    assert np.all(pred[far] == y[far]) and np.mean(pred[near] != y[near]) > 0.95
    again = C.smoothed_attack(linear, x, y, sigma=0.2, eps=eps, nb_iter=20, num_noise=32, seed=0)
    assert np.array_equal(adv, again)


def test_smoothed_attack_respects_clip_range_and_bad_arguments():
    x, y, _ = _points(20)
    x01 = (x + 1) / 2
    adv = C.smoothed_attack(linear, x01, y, sigma=0.25, eps=0.5, clip_min=0.0, clip_max=1.0, seed=0)
    assert adv.min() >= 0 and adv.max() <= 1
    assert np.array_equal(C.smoothed_attack(linear, x01, y, 0.25, 0.0), x01)
    for kwargs, match in (({"eps": -1}, "eps"), ({"nb_iter": 0}, "nb_iter"), ({"num_noise": 0}, "num_noise"),
                          ({"sigma": 0}, "sigma")):
        args = {"sigma": 0.25, "eps": 0.5, **kwargs}
        with pytest.raises(ValueError, match=match):
            C.smoothed_attack(linear, x01, y, **args)
    with pytest.raises(ValueError, match="n"):
        C.majority_vote(linear, x01, 0.25, n=0)
