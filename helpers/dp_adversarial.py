"""Differentially private *and* adversarial training in one step (DP-SGD on PGD examples).

Why the combination keeps the DP guarantee
------------------------------------------
DP-SGD's guarantee rests on one fact: in every step, each training example changes the
sum of gradients by at most the clipping norm ``C``, and Gaussian noise of standard
deviation ``noise_multiplier * C`` hides that change. Adversarial training keeps this
fact when the adversarial example of patient ``i`` is computed **from patient i's own
record and the current weights only** (the weights are already the output of earlier
private steps, so using them costs no privacy):

1. ``x_adv_i = PGD(model, x_i, y_i)`` inside the step; the model has no layer that mixes
   examples (no batch normalisation), so the gradient of the summed loss with respect to
   ``x_i`` is the gradient of patient ``i``'s own loss;
2. the per-example loss ``(1 - w) * loss(x_i, y_i) + w * loss(x_adv_i, y_i)`` is a
   function of patient ``i`` alone;
3. the gradient of that mixed loss (clean and adversarial part together) is computed per
   patient (a Jacobian over the batch) and clipped to ``C``; the clipped gradients of the
   patients in the batch are summed and noise is added to the sum.

Adding or removing patient ``i`` therefore changes exactly one clipped term, as in
plain DP-SGD, and the same accountant (:func:`helpers.dp.dp_sgd_epsilon`) applies. What
would break it: crafting adversarial examples from *other* patients' data (e.g. a
universal perturbation fitted on the batch), batch normalisation in the model, or
clipping the clean gradient but not the adversarial one.

Sampling: the same Poisson DP-SGD as :func:`helpers.dp_training.dp_sgd_fit`. Each of the
``ceil(num_epochs * n / batch_size)`` steps includes every patient independently with
probability ``q = batch_size / n`` (the realised batch size varies); the noisy sum
(standard deviation ``noise_multiplier * C``) is divided by the expected batch size
``q * n``, never by the realised one. ``dp.dp_sgd_epsilon(n, batch_size, num_epochs,
noise_multiplier, delta)`` (add-or-remove-one-patient neighbours, per-patient clipping) is
therefore the ε of exactly the algorithm that runs.
"""
from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from helpers import validation


def pgd_linf(model: Any, x: Any, y: Any, eps: float, nb_iter: int, eps_iter: float, seed: Any) -> Any:
    """L∞ PGD with a uniform random start, written in TensorFlow ops (usable inside
    ``tf.function``). ``y`` are labels shaped as the model's loss expects ((n, 1) floats
    for a single logit, (n,) integers otherwise); ``seed`` is a stateless seed pair
    (shape ``(2,)`` int tensor). No clip range: standardized tabular features are
    unbounded. Returns the adversarial inputs (a tensor, gradients stopped).

    Not :func:`helpers.robustness.pgd`: that one runs eagerly through cleverhans with a
    NumPy random start, which ``tf.function`` would freeze into a constant; this loop
    runs inside the compiled private step with a fresh stateless start every step."""
    import tensorflow as tf

    from helpers.models import loss_for

    loss_fn = loss_for(int(model.output_shape[-1]), reduction="none")
    x = tf.convert_to_tensor(x, tf.float32)
    x_adv = x + tf.random.stateless_uniform(tf.shape(x), seed, -eps, eps)
    for _ in range(nb_iter):
        with tf.GradientTape() as tape:
            tape.watch(x_adv)
            loss = tf.reduce_sum(loss_fn(y, model(x_adv, training=False)))
        grad = tape.gradient(loss, x_adv)
        x_adv = tf.clip_by_value(x_adv + eps_iter * tf.sign(grad), x - eps, x + eps)
    return tf.stop_gradient(x_adv)


def dp_adversarial_fit(model: Any, X: Any, y: Any, *, eps: float, noise_multiplier: float,
                       l2_norm_clip: float = 1.0, num_epochs: float = 20, batch_size: int = 32,
                       learning_rate: float = 0.5, nb_iter: int = 5, adv_weight: float = 0.5,
                       delta: float | None = None, seed: int = 0) -> dict[str, Any]:
    """Train ``model`` (in place) with Poisson DP-SGD on per-example adversarial losses.

    Parameters
    ----------
    model:
        An uncompiled logit-output Keras model (e.g. :func:`helpers.models.mlp`), no batch norm.
    X, y:
        Training inputs (standardized) and 0/1 or class labels.
    eps:
        L∞ radius of the PGD examples in input units (``0`` gives plain DP-SGD).
    noise_multiplier, l2_norm_clip:
        DP-SGD's noise (standard deviation ``noise_multiplier * l2_norm_clip``, added to the
        sum) and per-example clipping norm. ``0`` clips without noise (no privacy).
    num_epochs, batch_size, learning_rate:
        Expected passes over the data (may be fractional; ``ceil(num_epochs * n / batch_size)``
        steps), *expected* examples per step (``<= len(X)``; sampling rate ``batch_size / n``),
        SGD step size (applied to the noisy sum divided by ``batch_size``).
    nb_iter, adv_weight:
        PGD steps (step size ``2.5 * eps / nb_iter``) and weight of the adversarial loss.
    delta:
        If given, the result includes the accountant's ``epsilon`` at this ``delta``
        (add/remove-one-patient neighbours, Poisson sampling).
    seed:
        Seeds the Poisson masks, the noise and the PGD random starts.

    Returns
    -------
    ``{"loss": per-epoch mean loss of the included patients (``ceil(num_epochs)`` values),
    "seconds": training time, "steps": optimizer steps, "masks": (steps, n) boolean inclusion masks,
    "batch_sizes": realised batch size per step, "epsilon": ε (only with delta)}``.
    """
    import tensorflow as tf

    from helpers.dp_training import (check_no_batch_mixing, clipped_sums, noisy_average, padded_batch,
                                     per_epoch_mean_loss, poisson_masks, step_seeds)
    from helpers.models import loss_for

    X, y = validation.training_data(X, y)
    eps = validation.non_negative("eps", eps)
    noise_multiplier = validation.non_negative("noise_multiplier", noise_multiplier)
    l2_norm_clip = validation.positive("l2_norm_clip", l2_norm_clip)
    num_epochs = validation.positive("num_epochs", num_epochs)
    batch_size = validation.positive_int("batch_size", batch_size)
    if batch_size > len(X):
        raise ValueError(f"batch_size must be <= the number of examples ({len(X)}), got {batch_size}")
    learning_rate = validation.positive("learning_rate", learning_rate)
    nb_iter = validation.positive_int("nb_iter", nb_iter)
    adv_weight = validation.non_negative("adv_weight", adv_weight)
    if adv_weight > 1:
        raise ValueError(f"adv_weight must be in [0, 1], got {adv_weight}")
    seed = validation.positive_int("seed", seed, minimum=0)
    check_no_batch_mixing(model)
    k = int(model.output_shape[-1])
    labels = y.reshape(-1, 1).astype(np.float32) if k == 1 else y.astype(np.int64)
    loss_fn = loss_for(k, reduction="none")
    optimizer = tf.keras.optimizers.SGD(learning_rate)
    variables = model.trainable_variables
    eps_iter = 2.5 * eps / nb_iter
    use_adv = eps > 0 and adv_weight > 0

    @tf.function
    def train_step(xb, yb, wb, t):
        seeds = step_seeds(seed, t, len(variables) + 1)  # one per variable for the noise, one for PGD
        x_pert = pgd_linf(model, xb, yb, eps, nb_iter, eps_iter, seeds[-1]) if use_adv else xb
        with tf.GradientTape() as tape:
            loss = loss_fn(yb, model(x_pert, training=True))  # one loss per example
            if use_adv and adv_weight < 1:
                loss = adv_weight * loss + (1 - adv_weight) * loss_fn(yb, model(xb, training=True))
        # per-example gradients of the mixed loss, each clipped, summed over the included patients
        sums = clipped_sums(tape.jacobian(loss, variables), wb, l2_norm_clip)
        grads = noisy_average(sums, noise_multiplier, l2_norm_clip, batch_size, seeds)
        optimizer.apply_gradients(zip(grads, variables))
        return tf.reduce_sum(wb * loss)

    masks = poisson_masks(len(X), batch_size, num_epochs, np.random.default_rng(seed))
    sizes = masks.sum(axis=1)
    size = max(1, int(sizes.max()))  # pad every batch to one size: one trace
    loss_sums = np.zeros(len(masks))
    start = time.perf_counter()
    for t, mask in enumerate(masks):
        index, weights = padded_batch(mask, size)
        loss_sums[t] = float(train_step(tf.constant(X[index]), tf.constant(labels[index]), tf.constant(weights),
                                        tf.constant(t, tf.int64)))
    result: dict[str, Any] = {"loss": per_epoch_mean_loss(loss_sums, masks, math.ceil(num_epochs)),
                              "seconds": time.perf_counter() - start, "steps": len(masks), "masks": masks,
                              "batch_sizes": sizes}
    if delta is not None:
        from helpers.dp import dp_sgd_epsilon

        result["epsilon"] = (float("inf") if noise_multiplier == 0
                             else dp_sgd_epsilon(len(X), batch_size, num_epochs, noise_multiplier, delta))
    return result
