"""Small Keras models shared by the notebooks, and functions to read their outputs.

Conventions used across the course:

* models output **logits** (no softmax/sigmoid layer): attacks need logits, and
  losses use ``from_logits=True``;
* a binary classifier has either **one logit** (``P(y=1) = sigmoid(z)``) or **two
  logits** (softmax); :func:`predict_proba` returns ``(n, num_classes)``
  probabilities for both, so LIME, metrics and audits need not care which.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from helpers import validation


def mlp(input_shape: int | Sequence[int], num_outputs: int, hidden: Sequence[int] = (32,),
        seed: int = 0, name: str = "mlp"):
    """A dense ReLU network with ``num_outputs`` logits (uncompiled).

    ``num_outputs=1`` gives a single-logit binary classifier. Weights are initialised
    from ``seed``, so the same seed gives the same model.
    """
    import tensorflow as tf

    num_outputs = validation.positive_int("num_outputs", num_outputs)
    seed = validation.positive_int("seed", seed, minimum=0)
    shape = (int(input_shape),) if np.isscalar(input_shape) else tuple(int(d) for d in input_shape)
    if any(d < 1 for d in shape):
        raise ValueError(f"input_shape must contain positive sizes, got {input_shape!r}")
    for width in hidden:
        validation.positive_int("hidden", width)
    layers = [tf.keras.Input(shape=shape)]
    if len(shape) > 1:
        layers.append(tf.keras.layers.Flatten())
    for i, width in enumerate(hidden):
        init = tf.keras.initializers.GlorotUniform(seed=seed + i)
        layers.append(tf.keras.layers.Dense(width, activation="relu", kernel_initializer=init))
    init = tf.keras.initializers.GlorotUniform(seed=seed + len(hidden))
    layers.append(tf.keras.layers.Dense(num_outputs, kernel_initializer=init))
    return tf.keras.Sequential(layers, name=name)


def _stain_normalisation_layer():
    """The Keras layer class of :func:`cnn`'s first step, made once (Keras needs one class)."""
    import tensorflow as tf

    global _StainNormalisation
    if _StainNormalisation is None:
        class StainNormalisation(tf.keras.layers.Layer):
            """Per-image standardisation: ``(x - mean(x)) / (std(x) + 1e-3)`` over each image's
            pixels. A different slide brightness or stain contrast (an affine change of the
            grey levels) gives the same output; no weights, and no mixing of the examples
            of a batch (each image uses its own statistics), so DP-SGD's per-example
            clipping still bounds one patient's influence."""

            def call(self, x):
                mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
                std = tf.math.reduce_std(x, axis=[1, 2, 3], keepdims=True)
                return (x - mean) / (std + 1e-3)

        _StainNormalisation = StainNormalisation
    return _StainNormalisation


_StainNormalisation = None


def cnn(input_shape: Sequence[int] = (32, 32, 1), num_outputs: int = 1, filters: Sequence[int] = (8, 16, 16),
        seed: int = 0, name: str = "cnn"):
    """A small convolutional network with ``num_outputs`` logits (uncompiled).

    Per-image stain normalisation, then 3x3 ReLU convolutions with ``filters`` channels
    (2x2 max-pooling between them), global average pooling and one dense layer of logits:
    3,585 weights with the defaults. Every trainable layer (Conv2D, Dense) has a
    fast-clipping rule (:func:`helpers.dp_training.layer_registry`), and no layer mixes
    the examples of a batch, so :func:`helpers.dp_training.dp_sgd_fit` trains it privately.
    """
    import tensorflow as tf

    num_outputs = validation.positive_int("num_outputs", num_outputs)
    seed = validation.positive_int("seed", seed, minimum=0)
    shape = tuple(int(d) for d in input_shape)
    if len(shape) != 3 or any(d < 1 for d in shape):
        raise ValueError(f"input_shape must be (height, width, channels) with positive sizes, got {input_shape!r}")
    if not filters:
        raise ValueError("filters must list at least one convolution width")
    for width in filters:
        validation.positive_int("filters", width)
    if min(shape[:2]) < 2 ** (len(filters) - 1):
        raise ValueError(f"input_shape must be at least {2 ** (len(filters) - 1)} pixels per side for "
                         f"{len(filters)} convolutions with pooling, got {shape[:2]}")
    layers: list = [tf.keras.Input(shape=shape), _stain_normalisation_layer()(name="stain_normalisation")]
    for i, width in enumerate(filters):
        if i:
            layers.append(tf.keras.layers.MaxPooling2D(2))
        layers.append(tf.keras.layers.Conv2D(width, 3, padding="same", activation="relu",
                                             kernel_initializer=tf.keras.initializers.GlorotUniform(seed=seed + i)))
    layers += [tf.keras.layers.GlobalAveragePooling2D(),
               tf.keras.layers.Dense(num_outputs, kernel_initializer=tf.keras.initializers.GlorotUniform(
                   seed=seed + len(filters)))]
    return tf.keras.Sequential(layers, name=name)


def loss_for(num_outputs: int, reduction: str = "auto"):
    """The from-logits cross-entropy that matches a model with ``num_outputs`` logits.

    ``reduction="none"`` gives per-example losses (what DP optimizers need).
    """
    import tensorflow as tf

    num_outputs = validation.positive_int("num_outputs", num_outputs)
    if reduction not in {"auto", "none", "sum_over_batch_size", "sum"}:
        raise ValueError(f"reduction must be 'auto', 'none', 'sum' or 'sum_over_batch_size', got {reduction!r}")
    if num_outputs == 1:
        return tf.keras.losses.BinaryCrossentropy(from_logits=True, reduction=reduction)
    return tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=reduction)


def logits(model, X: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """The model's raw outputs, as a float64 array ``(n, num_outputs)``."""
    X = np.asarray(X, dtype=np.float32)
    out = [np.asarray(model(X[i:i + batch_size], training=False)) for i in range(0, len(X), batch_size)]
    return np.concatenate(out).astype(np.float64) if out else np.zeros((0, 1))


def predict_proba(model, X: np.ndarray) -> np.ndarray:
    """Class probabilities ``(n, num_classes)`` for single- and multi-logit models.

    A single-logit model gives ``[1 - sigmoid(z), sigmoid(z)]``, i.e. column 1 is
    ``P(y=1)``; a multi-logit model gives ``softmax(z)``.
    """
    z = logits(model, X)
    if z.shape[1] == 1:
        p1 = 1.0 / (1.0 + np.exp(-z[:, 0]))
        return np.column_stack([1.0 - p1, p1])
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def predict(model, X: np.ndarray) -> np.ndarray:
    """Predicted class labels (argmax of :func:`predict_proba`)."""
    return predict_proba(model, X).argmax(axis=1)


def accuracy(model, X: np.ndarray, y: np.ndarray) -> float:
    """Fraction of examples whose predicted label equals ``y``."""
    y = np.asarray(y).reshape(-1)
    if len(y) != len(X):
        raise ValueError(f"y must have one label per row of X ({len(X)}), got {len(y)}")
    return float(np.mean(predict(model, X) == y))
