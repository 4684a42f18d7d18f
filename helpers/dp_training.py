"""DP-SGD with Poisson subsampling for small Keras MLPs, and tensorflow-privacy's variants timed.

What the private training runs
------------------------------
:func:`dp_sgd_fit` (and :func:`train_mlp` with a ``noise_multiplier``) runs DP-SGD with
**Poisson subsampling**, the algorithm that :func:`helpers.dp.dp_sgd_epsilon` accounts for:

* ``steps = ceil(epochs * n / batch_size)`` steps (see :func:`num_steps`); at each step every
  example joins the batch **independently with probability** ``q = batch_size / n``
  (:func:`poisson_masks`), so ``batch_size`` is the *expected* batch size and the realised
  batch size varies from step to step (it may even be 0);
* each included example's gradient is **clipped on its own** to L2 norm ``l2_norm_clip = C``
  (no microbatches), the clipped gradients are summed, Gaussian noise of standard deviation
  ``noise_multiplier * C`` is added **to the sum**, and the result is divided by the
  **expected** batch size ``q * n`` (a constant: dividing by the realised batch size would
  reveal how many examples were drawn, hence whether one example was there);
* plain SGD applies it: ``w -= learning_rate * (sum of clipped + noise) / (q * n)``.

Each step is a Poisson-subsampled Gaussian mechanism with sensitivity ``C`` under the
**add-or-remove-one-example** neighbouring relation, so ``dp.dp_sgd_epsilon(n, batch_size,
epochs, noise_multiplier, delta)`` is the ε of exactly this algorithm. ``noise_multiplier=0``
runs the same sampling and clipping without noise (a matched control, no privacy).

Per-example gradient norms come from tensorflow-privacy's fast ("ghost") clipping
(``fast_gradient_clipping.clip_grads.compute_gradient_norms``: Dense layers' per-example
norms from one backward pass, and Conv2D layers' from :func:`conv2d_layer_computation`)
when every trainable layer is in the registry; for other layers from the per-example Jacobian of the loss
(:func:`clipped_sums`), which clips and sums the same terms. On the fast path, a second backward pass of the loss reweighted by
``mask_i * min(1, C / norm_i)`` gives the sum of the clipped gradients of the included
examples. Each step gathers the included examples and pads them with zero-weight rows to
one fixed size (the largest realised batch of the run), so the step is traced once.

Why not ``DPSequential`` with sample weights? Reading tensorflow-privacy 0.9.0's
``DPSequential`` and ``clip_grads``: the sample weight multiplies each example's loss
*before* its gradient norm is measured, so a 0/1 weight gives exactly "clip, then include
or not"; the noise has standard deviation ``noise_multiplier * C`` relative to the sum;
but the sum is divided by the number of rows of the batch tensor. Fed the gathered
Poisson batch, that divisor is the realised batch size (which leaks); fed fixed-size
padded batches, it is correct up to a rescaled learning rate. The helpers do the
division themselves (``tests/test_dp_training.py`` checks both facts numerically).

Randomness: the masks come from ``numpy.random.default_rng(seed)``, the noise of step ``t``
from TensorFlow's stateless generator keyed by ``(seed, t)``; the same call gives the same
model, bit for bit on the same machine. So **whoever knows the seed can regenerate every
batch and all the noise**, and subtract it: a seeded run is reproducible teaching, not a
private release. ``seed=None`` runs unseeded: the masks and the noise key are drawn from
the operating system's entropy (``secrets``), never stored or returned, and two runs
differ; a deployment must train that way. (The noise itself is still a floating-point
sampler, Philox and Box-Muller in TensorFlow, not an exact one.)

Non-private training (``noise_multiplier=None``) keeps Keras' ``fit`` with shuffled
fixed-size batches.

:func:`time_epochs` times tensorflow-privacy's own variants (optimizers with microbatches,
vectorized, ``DPSequential`` fast clipping; they use Keras' shuffled fixed-size batches and
are only timed, never used for the course's ε) next to this module's Poisson DP-SGD.
"""
from __future__ import annotations

import math
import time
from typing import Any, Sequence

import numpy as np

from helpers import validation

VARIANTS = ("non-private", "DPKerasSGDOptimizer (microbatches)", "VectorizedDPKerasSGDOptimizer",
            "DPSequential fast clipping")
POISSON_VARIANT = "Poisson DP-SGD (helpers, fast clipping)"


# ----------------------------------------------------------------------------- sampling

def num_steps(n: int, batch_size: int, epochs: float) -> int:
    """Steps of DP-SGD, ``ceil(epochs * n / batch_size)`` in exact arithmetic: the count
    :func:`helpers.dp.dp_sgd_epsilon` accounts for (:func:`helpers.dp.dp_sgd_steps`)."""
    from helpers import dp

    return dp.dp_sgd_steps(n, batch_size, epochs)


def poisson_masks(n: int, batch_size: int, epochs: float, rng: Any = None) -> np.ndarray:
    """Inclusion masks of Poisson subsampling: a boolean array ``(steps, n)``.

    Entry ``[t, i]`` is ``True`` when example ``i`` is in the batch of step ``t``; all
    entries are independent Bernoulli(``batch_size / n``). ``steps`` is :func:`num_steps`;
    ``rng`` is a seed, a ``numpy.random.Generator`` or ``None``.
    """
    steps = num_steps(n, batch_size, epochs)
    if batch_size > n:
        raise ValueError(f"batch_size must be <= the number of examples ({n}), got {batch_size}")
    rng = validation.rng_from(rng)
    return rng.random((steps, n)) < batch_size / n


def padded_batch(mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the examples in ``mask`` padded to ``size`` rows, and 0/1 weights.

    Padding rows point at example 0 with weight 0: they change neither the sum of clipped
    gradients nor the divisor.
    """
    idx = np.flatnonzero(mask)
    if len(idx) > size:
        raise ValueError(f"size must be >= the number of included examples ({len(idx)}), got {size}")
    index = np.zeros(size, np.int64)
    index[:len(idx)] = idx
    weights = np.zeros(size, np.float32)
    weights[:len(idx)] = 1.0
    return index, weights


# ----------------------------------------------------------------------------- the private step

def step_seeds(seed: int, step: Any, num: int) -> Any:
    """``num`` independent stateless seeds (an int64 tensor ``(num, 2)``) for step ``step``."""
    import tensorflow as tf

    key = tf.stack([tf.constant(seed, tf.int64), tf.cast(step, tf.int64)])
    return tf.random.experimental.stateless_split(key, num)


def noisy_average(clipped_sums: Sequence[Any], noise_multiplier: float, l2_norm_clip: float,
                  expected_batch_size: float, seeds: Any) -> list:
    """``(sum + N(0, (noise_multiplier * l2_norm_clip)^2)) / expected_batch_size`` per variable.

    ``seeds`` holds one stateless seed per variable (see :func:`step_seeds`). The divisor is
    the *expected* batch size ``q * n``, a constant, never the realised batch size.
    """
    import tensorflow as tf

    out = []
    for g, s in zip(clipped_sums, tf.unstack(seeds)[:len(clipped_sums)]):
        if noise_multiplier > 0:
            g = g + tf.random.stateless_normal(tf.shape(g), s, stddev=noise_multiplier * l2_norm_clip,
                                               dtype=g.dtype)
        out.append(g / expected_batch_size)
    return out


def _check_dp_args(n: int, batch_size: Any, noise_multiplier: Any, l2_norm_clip: Any, learning_rate: Any,
                   seed: Any) -> tuple[int, float, float, float, int | None]:
    batch_size = validation.positive_int("batch_size", batch_size)
    if batch_size > n:
        raise ValueError(f"batch_size must be <= the number of examples ({n}), got {batch_size}")
    noise_multiplier = validation.non_negative("noise_multiplier", noise_multiplier)
    l2_norm_clip = validation.positive("l2_norm_clip", l2_norm_clip)
    learning_rate = validation.positive("learning_rate", learning_rate)
    seed = None if seed is None else validation.positive_int("seed", seed, minimum=0)
    return batch_size, noise_multiplier, l2_norm_clip, learning_rate, seed


def _secret_seed() -> int:
    """A 63-bit seed from the operating system's entropy (``secrets``), for unseeded runs."""
    import secrets

    return secrets.randbits(63)


def _clamp_inputs(X: Any, input_bounds: Any) -> Any:
    """``X`` clamped into public ``input_bounds = (lower, upper)``: ``NaN`` becomes the
    midpoint, ``±inf`` and huge values the nearer bound; never raises on the values."""
    if not (isinstance(input_bounds, (tuple, list)) and len(input_bounds) == 2):
        raise ValueError(f"input_bounds must be a pair (lower, upper) with lower < upper, got {input_bounds!r}")
    lower, upper = validation.bounds("input_bounds[0]", input_bounds[0], "input_bounds[1]", input_bounds[1])
    try:
        array = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("X must be an array of numbers") from None
    return np.clip(np.where(np.isnan(array), (lower + upper) / 2, array), lower, upper).astype(np.float32)


def _labels(y: np.ndarray, num_outputs: int) -> np.ndarray:
    """Labels shaped as :func:`helpers.models.loss_for` expects."""
    return y.reshape(-1, 1).astype(np.float32) if num_outputs == 1 else y.astype(np.int64)


def conv2d_layer_computation(layer_instance: Any, input_args: Sequence[Any], input_kwargs: Any, tape: Any,
                             num_microbatches: Any = None) -> tuple[Any, Any, Any]:
    """Fast-clipping registry function for ``tf.keras.layers.Conv2D`` (tensorflow-privacy's
    registry interface, like its ``dense_layer_computation``).

    The gradient of one example's loss with respect to the kernel is
    ``sum_p patch_p ⊗ g_p`` over the output positions ``p``, where ``patch_p`` is the input
    patch under the kernel at ``p`` (``tf.image.extract_patches``, with the layer's padding,
    strides and dilation) and ``g_p`` the gradient of the summed loss with respect to the
    layer's pre-activation output there; the bias gradient is ``sum_p g_p``. Their squared
    norms, per example, are what fast clipping needs. Exact, not an approximation
    (``tests/test_dp_training.py`` compares it with per-example Jacobians).
    """
    import tensorflow as tf

    if input_kwargs:
        raise ValueError("Conv2D layer calls should not receive kwargs")
    if len(input_args) != 1:
        raise ValueError("only layer inputs of length 1 are permitted")
    if num_microbatches is not None:
        raise ValueError("num_microbatches must be None: the course clips per example")
    if layer_instance.data_format != "channels_last" or layer_instance.groups != 1:
        raise ValueError("Conv2D must use channels_last data and groups=1 for fast clipping")
    x = input_args[0]
    activation = layer_instance.activation
    layer_instance.activation = None
    base_vars = layer_instance(x)  # pre-activation output (batch, height, width, filters)
    tape.watch(base_vars)
    layer_instance.activation = activation
    outputs = activation(base_vars) if activation else base_vars
    kh, kw = layer_instance.kernel_size

    def sqr_norm_fn(grads):
        patches = tf.image.extract_patches(x, sizes=[1, kh, kw, 1], strides=[1, *layer_instance.strides, 1],
                                           rates=[1, *layer_instance.dilation_rate, 1],
                                           padding=layer_instance.padding.upper())
        rows = tf.shape(grads)[0]
        g = tf.reshape(grads, [rows, -1, grads.shape[-1]])
        per_example = tf.einsum("bpk,bpo->bko", tf.reshape(patches, [rows, -1, patches.shape[-1]]), g)
        sqr = tf.reduce_sum(tf.square(per_example), axis=[1, 2])
        if layer_instance.use_bias:
            sqr += tf.reduce_sum(tf.square(tf.reduce_sum(g, axis=1)), axis=1)
        return sqr

    return base_vars, outputs, sqr_norm_fn


def layer_registry() -> Any:
    """tensorflow-privacy's default fast-clipping registry (Dense, Embedding, ...) plus
    :func:`conv2d_layer_computation` for ``Conv2D``."""
    import tensorflow as tf
    from tensorflow_privacy.privacy.fast_gradient_clipping import layer_registry as tfp_registry

    registry = tfp_registry.make_default_layer_registry()
    registry.insert(tf.keras.layers.Conv2D, conv2d_layer_computation)
    return registry


def check_no_batch_mixing(model: Any) -> None:
    """Raise ``ValueError`` if ``model`` has a layer that mixes the examples of a batch
    (batch normalisation): per-example clipping would no longer bound one example's influence."""
    for layer in getattr(model, "layers", []):
        if "BatchNormalization" in type(layer).__name__:
            raise ValueError("model must not contain BatchNormalization layers: they mix examples of a batch, "
                             "so per-example clipping would no longer bound one patient's influence")


def clipped_sums(jacobian: Sequence[Any], weights: Any, l2_norm_clip: float) -> list:
    """Sum over a batch of per-example gradients, each clipped to L2 norm ``l2_norm_clip``.

    ``jacobian[v]`` holds the per-example gradients of variable ``v`` (first axis: the batch,
    as from ``tape.jacobian(per_example_losses, variables)``); the norm of example ``i`` is
    taken over all variables together; ``weights[i]`` (0 or 1) includes it or not *after*
    clipping. Returns one tensor per variable.
    """
    import tensorflow as tf

    rows = tf.shape(weights)[0]
    norms = tf.sqrt(tf.add_n([tf.reduce_sum(tf.reshape(tf.square(j), [rows, -1]), axis=1) for j in jacobian]))
    return [tf.tensordot(clip_factors(norms, weights, l2_norm_clip), j, axes=1) for j in jacobian]


def clip_factors(norms: Any, weights: Any, l2_norm_clip: float) -> Any:
    """Per-example factors ``weights_i * min(1, C / norm_i)``: clip each gradient to ``C``, then
    include it (weight 1) or not (weight 0)."""
    import tensorflow as tf

    return weights * l2_norm_clip / tf.maximum(l2_norm_clip, norms)


class _FastClippingDPSGD:
    """One traced Poisson DP-SGD step for any Keras model without batch-mixing layers.

    Per-example gradient norms come from tensorflow-privacy's fast ("ghost") clipping when
    every trainable layer is in :func:`layer_registry` (Dense, Embedding, Conv2D, ...);
    otherwise from the per-example Jacobian of the loss (:func:`clipped_sums`), slower
    but exact for any layer. Both compute the same clipped sum; ``jacobian=True`` forces the
    Jacobian path, ``None`` chooses.
    """

    def __init__(self, model: Any, noise_multiplier: float, l2_norm_clip: float, expected_batch_size: float,
                 learning_rate: float, seed: int, jacobian: bool | None = None) -> None:
        import tensorflow as tf
        from tensorflow_privacy.privacy.fast_gradient_clipping import clip_grads, gradient_clipping_utils

        from helpers.models import loss_for

        check_no_batch_mixing(model)
        registry = layer_registry()
        if not gradient_clipping_utils.has_internal_compute_graph(model):
            raise ValueError("model must be a Keras Sequential or functional model")
        registered = gradient_clipping_utils.all_trainable_layers_are_registered(model, registry)
        if jacobian is False and not registered:
            raise ValueError("jacobian=False needs every trainable layer in tensorflow-privacy's fast-clipping "
                             "registry (Dense, Embedding, ...)")
        self.fast = registered if jacobian is None else not jacobian
        self.model = model
        self.optimizer = tf.keras.optimizers.SGD(learning_rate)
        loss_fn = loss_for(int(model.output_shape[-1]), reduction="none")
        variables = model.trainable_variables

        def sums_fast(xb, yb, wb):
            norms = clip_grads.compute_gradient_norms(model, registry, xb, yb, per_example_loss_fn=loss_fn,
                                                      trainable_vars=variables)
            factor = clip_factors(norms, wb, l2_norm_clip)
            with tf.GradientTape() as tape:
                losses = loss_fn(yb, model(xb, training=True))
                clipped_loss = tf.reduce_sum(tf.stop_gradient(factor) * losses)
            return tape.gradient(clipped_loss, variables), losses

        def sums_jacobian(xb, yb, wb):
            with tf.GradientTape() as tape:
                losses = loss_fn(yb, model(xb, training=True))
            return clipped_sums(tape.jacobian(losses, variables), wb, l2_norm_clip), losses

        sums = sums_fast if self.fast else sums_jacobian

        @tf.function
        def step(xb, yb, wb, t):
            sums_t, losses = sums(xb, yb, wb)
            grads = noisy_average(sums_t, noise_multiplier, l2_norm_clip, expected_batch_size,
                                  step_seeds(seed, t, len(variables)))
            self.optimizer.apply_gradients(zip(grads, variables))
            return tf.reduce_sum(wb * losses)

        self._step = step

    def run(self, X: np.ndarray, labels: np.ndarray, masks: np.ndarray, size: int, first_step: int = 0) -> np.ndarray:
        """Run one step per row of ``masks``; return the summed loss of the included examples per step."""
        import tensorflow as tf

        out = np.zeros(len(masks))
        for t, mask in enumerate(masks):
            index, weights = padded_batch(mask, size)
            out[t] = float(self._step(tf.constant(X[index]), tf.constant(labels[index]), tf.constant(weights),
                                      tf.constant(first_step + t, tf.int64)))
        return out


def per_epoch_mean_loss(loss_sums: np.ndarray, masks: np.ndarray, epochs: int) -> list[float]:
    """Mean loss of the included examples per epoch; the steps are split evenly into ``epochs``.

    ``loss_sums[t]`` is the summed loss of step ``t``'s batch; an epoch without any included
    example gets ``nan``.
    """
    steps = len(masks)
    epoch_of = np.minimum(np.arange(steps) * epochs // max(steps, 1), epochs - 1)
    counts = masks.sum(axis=1)
    history = []
    for e in range(epochs):
        total = counts[epoch_of == e].sum()
        history.append(float(loss_sums[epoch_of == e].sum() / total) if total else float("nan"))
    return history


def dp_sgd_fit(model: Any, X: Any, y: Any, *, epochs: float, batch_size: int, noise_multiplier: float,
               l2_norm_clip: float = 1.0, learning_rate: float = 0.5, seed: int | None = 0,
               input_bounds: tuple[float, float] | None = None) -> dict[str, Any]:
    """Train ``model`` (in place) with Poisson-subsampled DP-SGD (see the module docstring).

    Parameters
    ----------
    model:
        A logit-output Keras ``Sequential`` or functional model without batch normalisation.
        Dense and Conv2D layers (e.g. :func:`helpers.models.mlp`) use fast clipping
        (:func:`layer_registry`); other trainable layers per-example Jacobians, the same
        algorithm, slower.
    X, y:
        Training inputs and labels (0/1 for a single logit, class indices otherwise).
    epochs:
        Expected passes over the data (may be fractional): ``ceil(epochs * n / batch_size)`` steps.
    batch_size:
        *Expected* batch size, ``1 <= batch_size <= n``; the sampling rate is ``q = batch_size / n``.
    noise_multiplier, l2_norm_clip:
        Noise standard deviation ``noise_multiplier * l2_norm_clip`` added to each step's sum of
        per-example gradients clipped to ``l2_norm_clip``. ``0`` clips without noise.
    learning_rate:
        SGD step size, applied to ``(sum + noise) / (q * n)``.
    seed:
        Seeds the masks and the noise (reproducible teaching: whoever knows the seed
        regenerates both). ``None``: unseeded, from the operating system's entropy; what a
        deployment must use.
    input_bounds:
        Public ``(lower, upper)`` for every input value. Given, ``X`` is clamped into them
        (``NaN`` becomes the midpoint, ``±inf`` and huge values the nearer bound), so no
        private value can raise an exception or overflow the loss. Not given (default), ``X``
        must be finite (``ValueError`` otherwise): the caller has clamped it.

    Returns
    -------
    ``{"masks": (steps, n) bool array, "batch_sizes": realised batch size per step,
    "loss": mean loss of the included examples per epoch (``ceil(epochs)`` values),
    "steps": number of steps, "seconds": training time}``. The ε is
    ``helpers.dp.dp_sgd_epsilon(n, batch_size, epochs, noise_multiplier, delta)``.
    """
    if input_bounds is not None:
        X = _clamp_inputs(X, input_bounds)
    X, y = validation.training_data(X, y, ndim=None)
    epochs = validation.positive("epochs", epochs)
    batch_size, noise_multiplier, l2_norm_clip, learning_rate, seed = _check_dp_args(
        len(X), batch_size, noise_multiplier, l2_norm_clip, learning_rate, seed)
    mask_seed, noise_seed = (seed, seed) if seed is not None else (_secret_seed(), _secret_seed())
    trainer = _FastClippingDPSGD(model, noise_multiplier, l2_norm_clip, batch_size, learning_rate, noise_seed)
    masks = poisson_masks(len(X), batch_size, epochs, np.random.default_rng(mask_seed))
    del mask_seed, noise_seed
    sizes = masks.sum(axis=1)
    start = time.perf_counter()
    loss_sums = trainer.run(X, _labels(y, int(model.output_shape[-1])), masks, max(1, int(sizes.max())))
    seconds = time.perf_counter() - start
    return {"masks": masks, "batch_sizes": sizes, "loss": per_epoch_mean_loss(loss_sums, masks, math.ceil(epochs)),
            "steps": len(masks), "seconds": seconds}


# ----------------------------------------------------------------------------- models

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


def build_model(input_dim: int, num_outputs: int, hidden: Sequence[int] = (64,), seed: int = 0,
                noise_multiplier: float | None = None, l2_norm_clip: float = 1.0,
                learning_rate: float = 0.5, variant: str | None = None, batch_size: int | None = None):
    """A compiled MLP that outputs logits, trained by Keras' ``fit``: plain SGD
    (``noise_multiplier=None``) or one of tensorflow-privacy's DP-SGD variants.

    Used by :func:`time_epochs` (and by :func:`train_mlp` for non-private training).
    ``fit`` cuts shuffled fixed-size batches, so the DP variants here are *not* the
    Poisson-sampled algorithm that :func:`helpers.dp.dp_sgd_epsilon` accounts for; train
    private models with :func:`train_mlp` or :func:`dp_sgd_fit`. ``variant`` is one of
    :data:`VARIANTS` (default ``"DPSequential fast clipping"``); the optimizer variants need
    ``batch_size`` (one microbatch per example).
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
              seed: int | None = 0, record_masks: bool = False):
    """Train an MLP on ``(X, y)``: non-private SGD, or Poisson DP-SGD when ``noise_multiplier`` is given.

    * ``noise_multiplier=None``: plain SGD with Keras' ``fit`` (shuffled batches of
      ``batch_size``; the last batch of an epoch may be smaller).
    * ``noise_multiplier >= 0``: :func:`dp_sgd_fit`, i.e. Poisson sampling with rate
      ``batch_size / n`` (``batch_size`` is the *expected* batch size, ``<= n``), per-example
      clipping to ``l2_norm_clip``, noise ``noise_multiplier * l2_norm_clip`` on the sum,
      division by ``batch_size``. Its ε is ``dp.dp_sgd_epsilon(n, batch_size, epochs,
      noise_multiplier, delta)``. ``noise_multiplier=0.0`` is the same sampling and
      clipping without noise (a control; no privacy).

    Seeds fix the initial weights, the batches and the noise, so the same call gives the
    same model (and whoever knows the seed regenerates the noise). ``seed=None`` trains
    unseeded: initial weights, batches and noise from the operating system's entropy (see
    :func:`dp_sgd_fit`); what a deployment must do. Returns the model (compiled with SGD and the matching loss); with
    ``record_masks=True`` (private training only) returns ``(model, masks)``, ``masks`` the
    ``(steps, n)`` boolean inclusion masks of :func:`dp_sgd_fit`.
    """
    import tensorflow as tf

    from helpers.models import loss_for

    X, y = validation.training_data(X, y)
    num_outputs = validation.positive_int("num_outputs", num_outputs)
    epochs = validation.positive_int("epochs", epochs)
    batch_size = validation.positive_int("batch_size", batch_size)
    if batch_size > len(X):
        raise ValueError(f"batch_size must be <= the number of examples ({len(X)}), got {batch_size}")
    seed = None if seed is None else validation.positive_int("seed", seed, minimum=0)
    if record_masks and noise_multiplier is None:
        raise ValueError("record_masks needs private training: pass a noise_multiplier (0.0 for clipping only)")
    init_seed = _secret_seed() % 2 ** 31 if seed is None else seed   # the weights' seed (data-independent)
    if seed is not None:
        tf.keras.utils.set_random_seed(seed)
    if noise_multiplier is None:
        model = build_model(X.shape[1], num_outputs, hidden, init_seed, None, l2_norm_clip, learning_rate)
        labels = y.reshape(-1, 1).astype(np.float32 if num_outputs == 1 else np.int64)
        model.fit(X, labels, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0)
        return model
    model = tf.keras.Sequential(_layers(X.shape[1], num_outputs, hidden, init_seed))
    info = dp_sgd_fit(model, X, y, epochs=epochs, batch_size=batch_size, noise_multiplier=noise_multiplier,
                      l2_norm_clip=l2_norm_clip, learning_rate=learning_rate, seed=seed)
    model.compile(tf.keras.optimizers.SGD(learning_rate), loss_for(num_outputs))
    return (model, info["masks"]) if record_masks else model


# ----------------------------------------------------------------------------- timing

def time_epochs(X: Any, y: Any, num_outputs: int, batch_size: int, hidden: Sequence[int] = (64,),
                epochs: int = 1, variants: Sequence[str] = (*VARIANTS, POISSON_VARIANT),
                noise_multiplier: float = 1.0, repeats: int = 1) -> dict[str, float]:
    """Seconds per epoch of each variant, after one warm-up epoch (which traces the graph).

    Each variant is timed ``repeats`` times (``epochs`` epochs each, on the same model) and
    the fastest is kept: other programs on the machine can only slow a run down, so the
    minimum is the least disturbed estimate.

    :data:`VARIANTS` are tensorflow-privacy's implementations run by Keras' ``fit`` on
    shuffled fixed-size batches (``batch_size`` must divide ``len(X)``); they are timed
    only. :data:`POISSON_VARIANT` is :func:`dp_sgd_fit`'s step, the one the course trains with.
    """
    import tensorflow as tf

    X, y = validation.training_data(X, y)
    batch_size = validation.positive_int("batch_size", batch_size)
    if len(X) % batch_size:
        raise ValueError(f"batch_size must divide the number of examples ({len(X)}) "
                         f"so every step of the timed variants has the same batch size, got {batch_size}")
    epochs = validation.positive_int("epochs", epochs)
    repeats = validation.positive_int("repeats", repeats)
    for variant in variants:
        if variant not in (*VARIANTS, POISSON_VARIANT):
            raise ValueError(f"variants must be among {(*VARIANTS, POISSON_VARIANT)}, got {variant!r}")
    labels = y.reshape(-1, 1).astype(np.float32 if num_outputs == 1 else np.int64)
    out = {}
    for variant in variants:
        tf.keras.utils.set_random_seed(0)
        if variant == POISSON_VARIANT:
            model = tf.keras.Sequential(_layers(X.shape[1], num_outputs, hidden, 0))
            trainer = _FastClippingDPSGD(model, noise_multiplier, 1.0, batch_size, 0.5, 0)
            masks = poisson_masks(len(X), batch_size, 1 + epochs * repeats, np.random.default_rng(0))
            size, warm = int(masks.sum(axis=1).max()), num_steps(len(X), batch_size, 1)
            per = num_steps(len(X), batch_size, epochs)
            trainer.run(X, _labels(y, num_outputs), masks[:warm], size)
            times = []
            for r in range(repeats):
                first = warm + r * per
                start = time.perf_counter()
                trainer.run(X, _labels(y, num_outputs), masks[first:first + per], size, first_step=first)
                times.append(time.perf_counter() - start)
        else:
            nm = None if variant == "non-private" else noise_multiplier
            model = build_model(X.shape[1], num_outputs, hidden, 0, nm, variant=variant, batch_size=batch_size)
            model.fit(X, labels, epochs=1, batch_size=batch_size, verbose=0)
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                model.fit(X, labels, epochs=epochs, batch_size=batch_size, verbose=0)
                times.append(time.perf_counter() - start)
        out[variant] = min(times) / epochs
    return out
