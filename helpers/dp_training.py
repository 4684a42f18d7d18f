"""Training small Keras MLPs with and without DP-SGD (tensorflow-privacy).

:func:`train_mlp` uses ``DPSequential`` with *fast gradient clipping* (the per-example
gradient norms of Dense layers come from one backward pass, "ghost clipping"), the
fastest correct variant in tensorflow-privacy 0.9.0 for these models. Each example is
clipped on its own (no microbatches), so :func:`helpers.dp.dp_sgd_epsilon` (with
``used_microbatching=False`` semantics) gives its ε.

Sampling caveat: the accountant assumes Poisson sampling (each example joins each
batch independently with probability ``batch_size / n``); Keras' ``fit`` shuffles and
cuts fixed-size batches instead, as most DP-SGD code does. The ε is therefore the ε of
the Poisson-sampled algorithm; for shuffled batches the true ε can be larger
(Chua et al., 2024).

:func:`time_epochs` times the variants of tensorflow-privacy on one model.
"""
from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np

from helpers import validation

VARIANTS = ("non-private", "DPKerasSGDOptimizer (microbatches)", "VectorizedDPKerasSGDOptimizer",
            "DPSequential fast clipping")


def _layers(input_dim: int, num_outputs: int, hidden: Sequence[int], seed: int) -> list:
    """Fresh layers of :func:`helpers.models.mlp` (same architecture and initialisation)."""
    import tensorflow as tf

    input_dim = validation.positive_int("input_dim", input_dim)
    num_outputs = validation.positive_int("num_outputs", num_outputs)
    seed = validation.positive_int("seed", seed, minimum=0)
    layers = [tf.keras.Input(shape=(input_dim,))]
    for i, width in enumerate(hidden):
        validation.positive_int("hidden", width)
        init = tf.keras.initializers.GlorotUniform(seed=seed + i)
        layers.append(tf.keras.layers.Dense(width, activation="relu", kernel_initializer=init))
    init = tf.keras.initializers.GlorotUniform(seed=seed + len(hidden))
    layers.append(tf.keras.layers.Dense(num_outputs, kernel_initializer=init))
    return layers


def _check_fit_args(X: Any, y: Any, batch_size: Any, epochs: Any) -> tuple[np.ndarray, np.ndarray, int, int]:
    X, y = validation.training_data(X, y)
    batch_size = validation.positive_int("batch_size", batch_size)
    if len(X) % batch_size:
        raise ValueError(f"batch_size must divide the number of examples ({len(X)}) "
                         f"so every DP-SGD step has the same batch size, got {batch_size}")
    epochs = validation.positive_int("epochs", epochs)
    return X, y.astype(np.int64), batch_size, epochs


def build_model(input_dim: int, num_outputs: int, hidden: Sequence[int] = (64,), seed: int = 0,
                noise_multiplier: float | None = None, l2_norm_clip: float = 1.0,
                learning_rate: float = 0.5, variant: str | None = None, batch_size: int | None = None):
    """A compiled MLP that outputs logits: plain SGD (``noise_multiplier=None``) or DP-SGD.

    ``variant`` selects the DP implementation (one of :data:`VARIANTS`; default
    ``"DPSequential fast clipping"``); the optimizer variants need ``batch_size``
    (one microbatch per example).
    """
    import tensorflow as tf

    from helpers.models import loss_for

    learning_rate = validation.positive("learning_rate", learning_rate)
    if noise_multiplier is None:
        variant = "non-private"
    else:
        validation.non_negative("noise_multiplier", noise_multiplier)
        validation.positive("l2_norm_clip", l2_norm_clip)
        variant = variant or "DPSequential fast clipping"
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    layers = _layers(input_dim, num_outputs, hidden, seed)
    sgd = tf.keras.optimizers.SGD(learning_rate)
    if variant == "non-private":
        model = tf.keras.Sequential(layers)
        model.compile(sgd, loss_for(num_outputs))
    elif variant == "DPSequential fast clipping":
        from tensorflow_privacy.privacy.fast_gradient_clipping import layer_registry
        from tensorflow_privacy.privacy.keras_models.dp_keras_model import DPSequential

        model = DPSequential(l2_norm_clip=float(l2_norm_clip), noise_multiplier=float(noise_multiplier),
                             layer_registry=layer_registry.make_default_layer_registry(), use_xla=False,
                             layers=layers)
        model.compile(sgd, loss_for(num_outputs))  # mean reduction: the noise is scaled by 1/batch
    else:
        from tensorflow_privacy.privacy.optimizers import dp_optimizer_keras, dp_optimizer_keras_vectorized

        batch_size = validation.positive_int("batch_size", batch_size)
        cls = (dp_optimizer_keras.DPKerasSGDOptimizer if variant.startswith("DPKeras")
               else dp_optimizer_keras_vectorized.VectorizedDPKerasSGDOptimizer)
        opt = cls(l2_norm_clip=float(l2_norm_clip), noise_multiplier=float(noise_multiplier),
                  num_microbatches=batch_size, learning_rate=learning_rate)
        model = tf.keras.Sequential(layers)
        model.compile(opt, loss_for(num_outputs, reduction="none"))  # DP optimizers need per-example losses
    return model


def train_mlp(X: Any, y: Any, num_outputs: int, epochs: int, batch_size: int, hidden: Sequence[int] = (64,),
              noise_multiplier: float | None = None, l2_norm_clip: float = 1.0, learning_rate: float = 0.5,
              seed: int = 0):
    """Train an MLP on ``(X, y)``; DP-SGD (fast clipping) when ``noise_multiplier`` is given.

    ``batch_size`` must divide ``len(X)``. Seeds fix the initial weights, the batch
    order and the DP noise, so the same call gives the same model.
    """
    import tensorflow as tf

    X, y, batch_size, epochs = _check_fit_args(X, y, batch_size, epochs)
    seed = validation.positive_int("seed", seed, minimum=0)
    tf.keras.utils.set_random_seed(seed)
    model = build_model(X.shape[1], num_outputs, hidden, seed, noise_multiplier, l2_norm_clip, learning_rate)
    labels = y.reshape(-1, 1).astype(np.float32 if num_outputs == 1 else np.int64)
    model.fit(X, labels, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0)
    return model


def time_epochs(X: Any, y: Any, num_outputs: int, batch_size: int, hidden: Sequence[int] = (64,),
                epochs: int = 1, variants: Sequence[str] = VARIANTS, noise_multiplier: float = 1.0) -> dict[str, float]:
    """Seconds per epoch of each variant, after one warm-up epoch (which traces the graph)."""
    import tensorflow as tf

    X, y, batch_size, epochs = _check_fit_args(X, y, batch_size, epochs)
    labels = y.reshape(-1, 1).astype(np.float32 if num_outputs == 1 else np.int64)
    out = {}
    for variant in variants:
        tf.keras.utils.set_random_seed(0)
        nm = None if variant == "non-private" else noise_multiplier
        model = build_model(X.shape[1], num_outputs, hidden, 0, nm, variant=variant, batch_size=batch_size)
        model.fit(X, labels, epochs=1, batch_size=batch_size, verbose=0)
        start = time.perf_counter()
        model.fit(X, labels, epochs=epochs, batch_size=batch_size, verbose=0)
        out[variant] = (time.perf_counter() - start) / epochs
    return out
