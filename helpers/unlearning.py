"""Machine unlearning: removing patients from a trained model.

Exact unlearning retrains without them (the reference: the result *is* a model that never
saw them). Cheap approximations start from the trained model: fine-tuning on the retained
patients only, or :func:`gradient_ascent` on the forgotten ones (raise their loss). Neither
comes with a guarantee; a membership test (:mod:`helpers.privacy_attacks`) checks whether the
forgotten patients still look like members.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from helpers import validation


def forget_split(n: int, size: int, rng: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """``(forget indices, retain indices)``: ``size`` of ``n`` records drawn at random, sorted."""
    n = validation.positive_int("n", n, minimum=2)
    size = validation.positive_int("size", size)
    if size >= n:
        raise ValueError(f"size must be smaller than n ({n}): someone must remain, got {size}")
    forget = np.sort(validation.rng_from(rng).choice(n, size, replace=False))
    return forget, np.setdiff1d(np.arange(n), forget)


def gradient_ascent(model: Any, X_forget: Any, y_forget: Any, steps: int = 10, learning_rate: float = 1e-3) -> list[float]:
    """Raise the model's loss on the forget set (in place): ``steps`` full-batch steps of SGD
    *ascent* on the from-logits cross-entropy. Returns the forget-set loss before each step
    and after the last. Too many steps overshoot: the forgotten patients' loss ends far
    above that of patients never seen, which a membership test also notices."""
    import tensorflow as tf

    from helpers.models import loss_for

    X, y = validation.training_data(X_forget, y_forget, ndim=None)
    steps = validation.positive_int("steps", steps, minimum=0)
    learning_rate = validation.positive("learning_rate", learning_rate)
    k = int(model.output_shape[-1])
    loss_fn = loss_for(k)
    X = tf.constant(np.asarray(X, dtype=np.float32))
    labels = tf.constant(y.reshape(-1, 1).astype(np.float32) if k == 1 else y.astype(np.int64))
    history = []
    for _ in range(steps + 1):
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, model(X, training=True))
        history.append(float(loss))
        if len(history) > steps:
            break
        grads = tape.gradient(loss, model.trainable_variables)
        for var, grad in zip(model.trainable_variables, grads):
            var.assign_add(learning_rate * grad)
    return history
