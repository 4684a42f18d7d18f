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
