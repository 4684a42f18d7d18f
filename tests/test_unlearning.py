"""helpers.unlearning: forget splits and gradient ascent."""
import numpy as np
import pytest

from helpers import unlearning


def test_forget_split_partitions():
    forget, retain = unlearning.forget_split(50, 10, rng=0)
    assert len(forget) == 10 and len(retain) == 40
    assert np.array_equal(np.sort(np.r_[forget, retain]), np.arange(50))
    with pytest.raises(ValueError, match="size must be smaller"):
        unlearning.forget_split(5, 5)
    with pytest.raises(ValueError, match="size must be"):
        unlearning.forget_split(5, 0)


def test_forget_split_is_uniform():
    """Statistical: each record is forgotten with probability size / n (binomial 4.5-sigma band)."""
    rng = np.random.default_rng(1)
    hits = np.zeros(20)
    for _ in range(2000):
        hits[unlearning.forget_split(20, 5, rng=rng)[0]] += 1
    sd = np.sqrt(2000 * 0.25 * 0.75)
    assert np.all(np.abs(hits - 500) < 4.5 * sd)


def test_gradient_ascent_raises_the_forget_loss():
    pytest.importorskip("tensorflow")
    from helpers import models

    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    model = models.mlp(4, 1, hidden=(8,), seed=0)
    history = unlearning.gradient_ascent(model, X, y, steps=5, learning_rate=0.05)
    assert len(history) == 6 and history[-1] > history[0]
    assert unlearning.gradient_ascent(model, X, y, steps=0) == [pytest.approx(history[-1], rel=1e-5)]
    with pytest.raises(ValueError, match="learning_rate"):
        unlearning.gradient_ascent(model, X, y, learning_rate=0)
