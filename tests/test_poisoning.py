"""helpers.poisoning: label flips, backdoor triggers, detection, the group-privacy bound, fast logistic regression."""
import math

import numpy as np
import pytest

from helpers import poisoning


def _labels(n=200, positives=80, seed=0):
    y = np.r_[np.ones(positives, dtype=np.int64), np.zeros(n - positives, dtype=np.int64)]
    return np.random.default_rng(seed).permutation(y)


# ----------------------------------------------------------------- label flipping

def test_flip_labels_counts_and_directions():
    y = _labels()
    flipped, idx = poisoning.flip_labels(y, 0.1, rng=0)
    assert len(idx) == 20 and np.all(flipped[idx] == 1 - y[idx])
    assert np.array_equal(np.delete(flipped, idx), np.delete(y, idx))
    targeted, idx = poisoning.flip_labels(y, 0.1, rng=0, source_class=1)
    assert len(idx) == 20 and np.all(y[idx] == 1) and np.all(targeted[idx] == 0)
    assert np.array_equal(poisoning.flip_labels(y, 0.0, rng=0)[0], y)


def test_random_flips_are_uniform():
    """Statistical: over many draws each record is flipped with probability rate (binomial 4-sigma band)."""
    y = _labels(50, 20)
    hits = np.zeros(50)
    draws = 2000
    rng = np.random.default_rng(3)
    for _ in range(draws):
        hits[poisoning.flip_labels(y, 0.2, rng=rng)[1]] += 1
    sd = math.sqrt(draws * 0.2 * 0.8)
    assert np.all(np.abs(hits - draws * 0.2) < 4.5 * sd)


@pytest.mark.parametrize("rate", [-0.1, 1.5, float("nan"), "a"])
def test_flip_labels_rejects_bad_rates(rate):
    with pytest.raises(ValueError, match="rate must"):
        poisoning.flip_labels(_labels(), rate, rng=0)


def test_flip_labels_rejects_too_many_targeted_and_bad_labels():
    with pytest.raises(ValueError, match="rate must be at most"):
        poisoning.flip_labels(_labels(100, 10), 0.2, rng=0, source_class=1)
    with pytest.raises(ValueError, match="y must"):
        poisoning.flip_labels(np.array([0.5, 1.0]), 0.5)
    with pytest.raises(ValueError, match="target_class"):
        poisoning.flip_labels(np.array([0, 1, 2, 2]), 0.5, rng=0)


# ----------------------------------------------------------------- backdoor

def test_stamp_trigger_changes_only_the_patch():
    X = np.full((3, 32, 32, 1), 0.5, dtype=np.float32)
    out = poisoning.stamp_trigger(X)
    changed = np.argwhere(np.any(out != X, axis=(0, 3)))
    assert changed.min(axis=0).tolist() == [27, 27] and changed.max(axis=0).tolist() == [30, 30]
    assert set(np.unique(out[:, 27:31, 27:31])) == {0.0, 1.0}
    assert np.all(X == 0.5)   # the input is not modified
    assert np.array_equal(poisoning.stamp_trigger(X, size=2, position=(0, 0))[0, :2, :2, 0], poisoning.checkerboard(2))


@pytest.mark.parametrize("size, position", [(4, (30, 0)), (4, (-1, 3)), (40, None), (3, (0, 30))])
def test_trigger_outside_the_image_is_refused(size, position):
    with pytest.raises(ValueError, match="inside the"):
        poisoning.stamp_trigger(np.zeros((1, 32, 32, 1)), size=size, position=position)


def test_stamp_trigger_rejects_non_images():
    with pytest.raises(ValueError, match="X must be images"):
        poisoning.stamp_trigger(np.zeros((4, 32)))


def test_backdoor_poisons_source_images_only():
    rng = np.random.default_rng(0)
    X = rng.uniform(0.3, 0.7, (100, 16, 16, 1)).astype(np.float32)
    y = _labels(100, 40)
    Xp, yp, idx = poisoning.backdoor(X, y, 0.05, rng=1)
    assert len(idx) == 5 and np.all(y[idx] == 1) and np.all(yp[idx] == 0)
    assert np.array_equal(Xp[idx], poisoning.stamp_trigger(X[idx]))
    rest = np.setdiff1d(np.arange(100), idx)
    assert np.array_equal(Xp[rest], X[rest]) and np.array_equal(yp[rest], y[rest])
    with pytest.raises(ValueError, match="one label per image"):
        poisoning.backdoor(X, y[:50], 0.05)


# ----------------------------------------------------------------- detection

def _separable_minority(seed=0, n=200, k=10, d=12):
    rng = np.random.default_rng(seed)
    acts = rng.normal(size=(n, d))
    acts[:k] += 6.0 * np.eye(d)[0]   # the poisoned rows sit apart along one direction
    truth = np.zeros(n, dtype=bool)
    truth[:k] = True
    return acts, truth


def test_spectral_scores_find_a_separable_minority():
    acts, truth = _separable_minority()
    flagged = poisoning.top_k_mask(poisoning.spectral_scores(acts), 15)
    assert np.sum(flagged & truth) == truth.sum()


def test_activation_clusters_find_a_separable_minority():
    acts, truth = _separable_minority(seed=1)
    flagged = poisoning.activation_clusters(acts, seed=0)
    assert np.sum(flagged & truth) == truth.sum() and np.sum(flagged & ~truth) <= 5


def test_spectral_scores_on_pure_noise_flag_at_chance():
    """Statistical: without poison, the top 10 % catch about 10 % of any fixed subset."""
    caught = []
    for seed in range(30):
        acts = np.random.default_rng(seed).normal(size=(200, 8))
        caught.append(poisoning.top_k_mask(poisoning.spectral_scores(acts), 20)[:20].mean())
    assert abs(np.mean(caught) - 0.1) < 0.05


def test_detection_argument_checks():
    with pytest.raises(ValueError, match="at least 2 rows"):
        poisoning.spectral_scores(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="n_components"):
        poisoning.activation_clusters(np.random.default_rng(0).normal(size=(10, 3)), n_components=5)
    with pytest.raises(ValueError, match="k must be at most"):
        poisoning.top_k_mask([1.0, 2.0], 3)


# ----------------------------------------------------------------- group privacy

def test_group_privacy_bound_values():
    assert poisoning.group_privacy_bound(0.02, 0, 2.0, 1e-5) == 0.02
    assert poisoning.group_privacy_bound(0.01, 1, 1.0) == pytest.approx(math.e * 0.01)
    expected = math.exp(1.5) * 0.001 + 3 * math.exp(1.0) * 1e-5
    assert poisoning.group_privacy_bound(0.001, 3, 0.5, 1e-5) == pytest.approx(expected)
    assert poisoning.group_privacy_bound(0.05, 16, 2.0, 1e-5) == 1.0
    assert poisoning.group_privacy_bound(0.05, 10_000, 8.0, 1e-5) == 1.0   # no overflow
    np.testing.assert_allclose(poisoning.group_privacy_bound([0.0, 0.1], 1, 1.0), [0.0, min(1, math.e * 0.1)])


def test_group_privacy_bound_holds_for_randomized_response():
    """Statistical check against a mechanism whose ε is exact: randomized response on k flipped bits."""
    eps = math.log(3)   # keep a bit with probability 3/4
    rng = np.random.default_rng(0)
    for k in (1, 2):
        # outcome: all k reported bits equal 1; data all-0 (P_0) against data all-1 (P_k)
        p0, pk = 0.25 ** k, 0.75 ** k
        assert pk <= poisoning.group_privacy_bound(p0, k, eps) + 1e-12
        sim = np.mean(np.all(rng.random((20000, k)) < 0.75, axis=1))
        assert abs(sim - pk) < 0.02


def test_group_privacy_arguments_and_useful_size():
    with pytest.raises(ValueError, match="p0 must be a probability"):
        poisoning.group_privacy_bound(1.5, 1, 1.0)
    with pytest.raises(ValueError, match="k must be"):
        poisoning.group_privacy_bound(0.1, -1, 1.0)
    with pytest.raises(ValueError, match="delta must be"):
        poisoning.group_privacy_bound(0.1, 1, 1.0, 1.0)
    assert poisoning.useful_group_size(0.05, 2.0, 1e-5) == 1
    assert poisoning.useful_group_size(0.05, 8.0, 1e-5) == 0
    assert poisoning.useful_group_size(0.001, 0.5) == 13   # e^(0.5 k) * 0.001 < 1 up to k = 13
    with pytest.raises(ValueError, match="epsilon must be > 0"):
        poisoning.useful_group_size(0.1, 0.0)


# ----------------------------------------------------------------- logistic regression

def test_fit_logistic_matches_scikit_learn():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 5))
    y = (X @ np.array([1.0, -2.0, 0.5, 0.0, 1.0]) + rng.normal(size=300) > 0).astype(np.int64)
    w, b = poisoning.fit_logistic(X, y, l2=1.0)
    reference = LogisticRegression(C=1.0, tol=1e-10, max_iter=10_000).fit(X, y)
    np.testing.assert_allclose(w, reference.coef_[0], atol=1e-4)
    assert b == pytest.approx(reference.intercept_[0], abs=1e-4)
    w2, b2 = poisoning.fit_logistic(X, y, init=(w, b))
    np.testing.assert_allclose(w2, w, atol=1e-8)
    p = poisoning.logistic_proba(X, w, b)
    assert p.shape == (300,) and np.all((p > 0) & (p < 1))


def test_fit_logistic_argument_checks():
    X = np.zeros((4, 2))
    with pytest.raises(ValueError, match="binary labels"):
        poisoning.fit_logistic(X, np.array([0, 1, 2, 1]))
    with pytest.raises(ValueError, match="l2 must"):
        poisoning.fit_logistic(X, np.array([0, 1, 0, 1]), l2=0)
    with pytest.raises(ValueError, match="init must hold"):
        poisoning.fit_logistic(X, np.array([0, 1, 0, 1]), init=(np.zeros(3), 0.0))
    with pytest.raises(ValueError, match="columns"):
        poisoning.logistic_proba(X, np.zeros(3), 0.0)


# ----------------------------------------------------------------- activations of a model

def test_penultimate_and_feature_maps_shapes():
    pytest.importorskip("tensorflow")
    from helpers import models

    model = models.cnn(seed=0)
    X = np.random.default_rng(0).uniform(size=(5, 32, 32, 1)).astype(np.float32)
    assert poisoning.penultimate(model, X).shape == (5, 16)
    assert poisoning.feature_maps(model, X).shape == (5, 8 * 8 * 16)
    with pytest.raises(ValueError, match="Conv2D"):
        poisoning.feature_maps(models.mlp(4, 1), np.zeros((2, 4)))
