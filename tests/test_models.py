import numpy as np
import pytest

from helpers import models


def test_mlp_is_seeded_and_outputs_logits():
    a = models.mlp(4, 3, hidden=(8,), seed=1)
    b = models.mlp(4, 3, hidden=(8,), seed=1)
    X = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    np.testing.assert_array_equal(models.logits(a, X), models.logits(b, X))
    assert models.logits(a, X).shape == (5, 3)
    assert models.mlp((8, 8, 1), 10).output_shape == (None, 10)


def test_predict_proba_single_and_multi_logit():
    single = models.mlp(2, 1, hidden=(), seed=0)
    X = np.array([[0.0, 0.0], [1.0, -2.0]], dtype=np.float32)
    p = models.predict_proba(single, X)
    z = models.logits(single, X)[:, 0]
    np.testing.assert_allclose(p[:, 1], 1 / (1 + np.exp(-z)))
    np.testing.assert_allclose(p.sum(axis=1), 1)
    multi = models.mlp(2, 3, seed=0)
    np.testing.assert_allclose(models.predict_proba(multi, X).sum(axis=1), 1)
    assert models.predict(multi, X).shape == (2,)


def test_loss_for_and_accuracy():
    import tensorflow as tf
    assert isinstance(models.loss_for(1), tf.keras.losses.BinaryCrossentropy)
    assert models.loss_for(3, reduction="none").reduction == "none"
    with pytest.raises(ValueError, match="reduction"):
        models.loss_for(2, reduction="mean")
    model = models.mlp(2, 2, seed=0)
    with pytest.raises(ValueError, match="y must have one label per row"):
        models.accuracy(model, np.zeros((3, 2)), np.zeros(2))


@pytest.mark.parametrize("kwargs,match", [({"num_outputs": 0}, "num_outputs"), ({"hidden": (0,)}, "hidden"),
                                          ({"input_shape": 0}, "input_shape")])
def test_mlp_bad_arguments(kwargs, match):
    args = dict(input_shape=3, num_outputs=2) | kwargs
    with pytest.raises(ValueError, match=match):
        models.mlp(**args)


def test_cnn_is_small_invariant_to_stain_and_trainable_privately():
    import tensorflow as tf

    from helpers import dp_training, models

    model = models.cnn(seed=0)
    assert model.count_params() == 3585 and model.output_shape == (None, 1)
    x = np.random.default_rng(0).uniform(0.2, 0.9, (4, 32, 32, 1)).astype(np.float32)
    # a brighter slide with weaker staining (an affine change of the grey levels) reads the same
    np.testing.assert_allclose(models.logits(model, 0.5 * x + 0.4), models.logits(model, x), rtol=1e-3, atol=1e-3)
    assert not np.allclose(models.logits(model, x[::-1]), models.logits(model, x))
    same = models.cnn(seed=0)
    for a, b in zip(same.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    trainer = dp_training._FastClippingDPSGD(model, 1.0, 1.0, 8.0, 0.1, seed=0)
    assert trainer.fast   # Conv2D and Dense are in the fast-clipping registry
    assert not any(isinstance(layer, tf.keras.layers.BatchNormalization) for layer in model.layers)


@pytest.mark.parametrize("kwargs, match", [({"input_shape": (32, 32)}, "input_shape"),
                                           ({"filters": ()}, "filters"), ({"filters": (4, 0)}, "filters"),
                                           ({"input_shape": (3, 3, 1)}, "input_shape"),
                                           ({"num_outputs": 0}, "num_outputs")])
def test_cnn_rejects_bad_arguments(kwargs, match):
    from helpers import models

    with pytest.raises(ValueError, match=match):
        models.cnn(**kwargs)
