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
3. tensorflow-privacy's DP optimizer (``num_microbatches=None``: one microbatch per
   example) clips the gradient of each per-example loss to ``C``, sums, adds noise.

Adding or removing patient ``i`` therefore changes exactly one clipped term, as in
plain DP-SGD, and the same accountant (:func:`helpers.dp.dp_sgd_epsilon`) applies. What
would break it: crafting adversarial examples from *other* patients' data (e.g. a
universal perturbation fitted on the batch), batch normalisation in the model, or
clipping the clean gradient but not the adversarial one.

Sampling caveat (shared with tensorflow-privacy's tutorials): batches are fixed-size
slices of a fresh shuffle each epoch, while the RDP accountant assumes Poisson
subsampling with rate ``batch_size / n``; the remainder of each epoch is dropped.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from helpers import validation


def _check_no_batch_mixing(model: Any) -> None:
    for layer in getattr(model, "layers", []):
        if "BatchNormalization" in type(layer).__name__:
            raise ValueError("model must not contain BatchNormalization layers: they mix examples of a batch, "
                             "so per-example clipping would no longer bound one patient's influence")


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
                       l2_norm_clip: float = 1.0, num_epochs: int = 20, batch_size: int = 32,
                       learning_rate: float = 0.5, nb_iter: int = 5, adv_weight: float = 0.5,
                       delta: float | None = None, seed: int = 0) -> dict[str, Any]:
    """Train ``model`` (in place) with DP-SGD on per-example adversarial losses.

    Parameters
    ----------
    model:
        An uncompiled logit-output Keras model (e.g. :func:`helpers.models.mlp`), no batch norm.
    X, y:
        Training inputs (standardized) and 0/1 or class labels.
    eps:
        L∞ radius of the PGD examples in input units (``0`` gives plain DP-SGD).
    noise_multiplier, l2_norm_clip:
        DP-SGD's noise (standard deviation ``noise_multiplier * l2_norm_clip``) and
        per-example clipping norm.
    num_epochs, batch_size, learning_rate:
        Passes over the data, examples per step (``<= len(X)``), SGD step size.
    nb_iter, adv_weight:
        PGD steps (step size ``2.5 * eps / nb_iter``) and weight of the adversarial loss.
    delta:
        If given, the result includes the accountant's ``epsilon`` at this ``delta``
        (add/remove-one-patient neighbours).
    seed:
        Seeds the shuffles and the PGD random starts.

    Returns
    -------
    ``{"loss": per-epoch mean loss, "seconds": training time, "steps": optimizer steps,
    "epsilon": ε (only with delta)}``.
    """
    import tensorflow as tf
    from tensorflow_privacy.privacy.optimizers.dp_optimizer_keras import DPKerasSGDOptimizer

    from helpers.models import loss_for

    X, y = validation.training_data(X, y)
    eps = validation.non_negative("eps", eps)
    noise_multiplier = validation.non_negative("noise_multiplier", noise_multiplier)
    l2_norm_clip = validation.positive("l2_norm_clip", l2_norm_clip)
    num_epochs = validation.positive_int("num_epochs", num_epochs)
    batch_size = validation.positive_int("batch_size", batch_size)
    if batch_size > len(X):
        raise ValueError(f"batch_size must be <= the number of examples ({len(X)}), got {batch_size}")
    learning_rate = validation.positive("learning_rate", learning_rate)
    nb_iter = validation.positive_int("nb_iter", nb_iter)
    adv_weight = validation.non_negative("adv_weight", adv_weight)
    if adv_weight > 1:
        raise ValueError(f"adv_weight must be in [0, 1], got {adv_weight}")
    seed = validation.positive_int("seed", seed, minimum=0)
    _check_no_batch_mixing(model)
    tf.keras.utils.set_random_seed(seed)  # the DP noise and the PGD starts depend only on seed
    k = int(model.output_shape[-1])
    labels = y.reshape(-1, 1).astype(np.float32) if k == 1 else y.astype(np.int64)
    loss_fn = loss_for(k, reduction="none")
    optimizer = DPKerasSGDOptimizer(l2_norm_clip=l2_norm_clip, noise_multiplier=noise_multiplier,
                                    num_microbatches=None, learning_rate=learning_rate)
    eps_iter = 2.5 * eps / nb_iter
    use_adv = eps > 0 and adv_weight > 0

    @tf.function
    def train_step(xb, yb, step_seed):
        x_pert = pgd_linf(model, xb, yb, eps, nb_iter, eps_iter, step_seed) if use_adv else xb
        with tf.GradientTape() as tape:
            loss = loss_fn(yb, model(x_pert, training=True))  # one loss per example
            if use_adv and adv_weight < 1:
                loss = adv_weight * loss + (1 - adv_weight) * loss_fn(yb, model(xb, training=True))
        optimizer.minimize(loss, model.trainable_variables, tape=tape)  # per-example clip + noise
        return tf.reduce_mean(loss)

    rng = np.random.default_rng(seed)
    history, steps = [], 0
    start = time.perf_counter()
    for _ in range(num_epochs):
        order = rng.permutation(len(X))
        losses = []
        for i in range(len(X) // batch_size):
            idx = order[i * batch_size:(i + 1) * batch_size]
            step_seed = tf.constant([seed, steps], tf.int64)
            losses.append(float(train_step(tf.constant(X[idx]), tf.constant(labels[idx]), step_seed)))
            steps += 1
        history.append(float(np.mean(losses)))
    result: dict[str, Any] = {"loss": history, "seconds": time.perf_counter() - start, "steps": steps}
    if delta is not None:
        from helpers.dp import dp_sgd_epsilon

        result["epsilon"] = (float("inf") if noise_multiplier == 0
                             else dp_sgd_epsilon(len(X), batch_size, num_epochs, noise_multiplier, delta))
    return result
