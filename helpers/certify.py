"""Certified robustness by randomized smoothing (Cohen, Rosenfeld & Kolter, 2019).

The *smoothed* classifier ``g`` of a base classifier ``f`` returns the class that ``f``
predicts most often on ``x + noise``, with Gaussian noise of standard deviation ``sigma``
on every input feature. If the most likely class ``A`` has probability at least ``p_A``
under that noise, then ``g(x + delta) = A`` for **every** perturbation with
``||delta||_2 < R = sigma * Phi^-1(p_A)`` (Cohen et al., Theorem 1, with the runner-up
bounded by ``1 - p_A``). No attack, however strong, can do better: a certificate, not a
measurement.

``p_A`` is unknown; it is estimated by Monte Carlo, so the certificate holds with a stated
confidence. :func:`certify` follows the paper's CERTIFY: guess the class ``A`` from
``n0`` noisy copies, count how often ``f`` returns ``A`` on ``n`` *fresh* copies, and take
the one-sided Clopper-Pearson lower confidence bound ``p_A_lower`` at level ``1 - alpha``
(:func:`clopper_pearson_lower`). If ``p_A_lower > 1/2`` it returns ``A`` and the radius
``sigma * Phi^-1(p_A_lower)``; otherwise it abstains (:data:`ABSTAIN`). With probability at
least ``1 - alpha`` over the noise, each returned certificate is correct.

* :func:`certify`  prediction and certified L2 radius per example;
* :func:`smoothed_predict`  the paper's PREDICT (majority vote with a binomial test);
* :func:`certified_accuracy`  the fraction of examples predicted correctly with a radius
  of at least ``r``, for each ``r`` (abstentions count as wrong);
* :func:`majority_vote`  the smoothed classifier's class without a test (the most frequent
  class of the base model on ``n`` noisy copies);
* :func:`smoothed_attack`  an L2 PGD attack on the smoothed classifier itself, not on the
  base model: SmoothAdv with expectation over transformation (Salman et al., 2019), the
  attack to compare a certificate with.

The base model is any Keras model or callable that returns logits (a single-logit binary
model too, as in :mod:`helpers.robustness`). Noise is added to the inputs without
clipping, as in the paper: the certificate is about the smoothed classifier, whatever the
valid input range.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from helpers import validation
from helpers.metrics import clopper_pearson_lower

#: The prediction returned when the smoothed classifier abstains.
ABSTAIN = -1


@dataclass(frozen=True)
class Certificate:
    """Output of :func:`certify`, one entry per example.

    ``prediction``: the certified class, or :data:`ABSTAIN`; ``radius``: the certified L2
    radius (0 when abstaining); ``p_lower``: the Clopper-Pearson lower bound on ``p_A``;
    ``count``: how many of the ``n`` noisy copies the base model gave class ``A``;
    ``n``, ``sigma``, ``alpha``: the settings (each certificate holds with probability at
    least ``1 - alpha``).
    """

    prediction: np.ndarray
    radius: np.ndarray
    p_lower: np.ndarray
    count: np.ndarray
    n: int
    sigma: float
    alpha: float


def _counts(model: Any, x: np.ndarray, sigma: float, num: int, rng: np.random.Generator,
            batch_size: int) -> np.ndarray:
    """``(len(x), k)`` counts of the base model's predicted classes on ``num`` noisy copies
    of each example."""
    import tensorflow as tf

    from helpers.robustness import logits_fn

    fn = logits_fn(model)
    k = int(fn(tf.constant(x[:1])).shape[-1])
    counts = np.zeros((len(x), k), dtype=np.int64)
    per_chunk = max(1, batch_size // num)
    for start in range(0, len(x), per_chunk):
        chunk = x[start:start + per_chunk]
        noisy = np.repeat(chunk, num, axis=0)
        noisy = noisy + rng.normal(0.0, sigma, size=noisy.shape).astype(np.float32)
        pred = np.asarray(tf.argmax(fn(tf.constant(noisy)), axis=1)).reshape(len(chunk), num)
        for c in range(k):
            counts[start:start + len(chunk), c] = (pred == c).sum(axis=1)
    return counts


def _inputs(model: Any, x: Any, sigma: Any, alpha: Any) -> tuple[np.ndarray, float, float]:
    from helpers.robustness import _inputs as as_batch
    from helpers.robustness import check_model

    x = as_batch(x)
    sigma = validation.positive("sigma", sigma)
    alpha = validation.in_open_interval("alpha", alpha, 0.0, 0.5)
    check_model(model, x)
    return x, sigma, alpha


def certify(model: Any, x: Any, sigma: float, n0: int = 100, n: int = 1000, alpha: float = 0.001,
            seed: Any = None, batch_size: int = 20000) -> Certificate:
    """Cohen et al.'s CERTIFY for every example of ``x`` (a batch ``(m, ...)``).

    ``sigma > 0``: the noise's standard deviation, in input units (it sets the scale of
    the radii: at most ``sigma * Phi^-1((alpha)^(1/n))``, about ``2.5 sigma`` for
    ``n = 1000, alpha = 0.001``); ``n0``: noisy copies to choose the class; ``n``: fresh
    copies to bound its probability; ``alpha`` in (0, 0.5): each certificate fails with
    probability at most ``alpha``; ``seed``: fixes the noise; ``batch_size``: noisy
    copies per model call. Returns a :class:`Certificate`.
    """
    from scipy.stats import norm

    x, sigma, alpha = _inputs(model, x, sigma, alpha)
    n0 = validation.positive_int("n0", n0)
    n = validation.positive_int("n", n)
    batch_size = validation.positive_int("batch_size", batch_size)
    rng = validation.rng_from(seed)
    guess = _counts(model, x, sigma, n0, rng, batch_size).argmax(axis=1)  # selection: separate samples
    counts = _counts(model, x, sigma, n, rng, batch_size)
    count = counts[np.arange(len(x)), guess]
    p_lower = np.atleast_1d(clopper_pearson_lower(count, n, alpha))
    certified = p_lower > 0.5
    radius = np.where(certified, sigma * norm.ppf(np.clip(p_lower, 0.5, 1.0)), 0.0)
    prediction = np.where(certified, guess, ABSTAIN)
    return Certificate(prediction=prediction.astype(np.int64), radius=radius.astype(np.float64),
                       p_lower=p_lower.astype(np.float64), count=count.astype(np.int64), n=n, sigma=sigma,
                       alpha=alpha)


def smoothed_predict(model: Any, x: Any, sigma: float, n: int = 100, alpha: float = 0.001, seed: Any = None,
                     batch_size: int = 20000) -> np.ndarray:
    """Cohen et al.'s PREDICT: the class the base model returns most often on ``n`` noisy
    copies, or :data:`ABSTAIN` unless a two-sided binomial test rejects a tie between the
    top two classes at level ``alpha`` (then the returned class is the smoothed
    classifier's, with probability at least ``1 - alpha``)."""
    from scipy.stats import binomtest

    x, sigma, alpha = _inputs(model, x, sigma, alpha)
    n = validation.positive_int("n", n)
    batch_size = validation.positive_int("batch_size", batch_size)
    rng = validation.rng_from(seed)
    counts = _counts(model, x, sigma, n, rng, batch_size)
    order = np.argsort(-counts, axis=1, kind="stable")  # at least two columns (logits_fn)
    top, second = order[:, 0], order[:, 1]
    rows = np.arange(len(x))
    n_a, n_b = counts[rows, top], counts[rows, second]
    result = np.full(len(x), ABSTAIN, dtype=np.int64)
    for i in rows:
        if binomtest(int(n_a[i]), int(n_a[i] + n_b[i]), 0.5).pvalue <= alpha:
            result[i] = top[i]
    return result


def certified_accuracy(certificate: Certificate, y: Any, radii: Any) -> np.ndarray:
    """For each ``r`` in ``radii``: the fraction of examples whose certified prediction is
    the true label ``y`` with a certified radius ``>= r``. A lower bound on the smoothed
    classifier's accuracy under every L2 attack of size below ``r`` (each certificate with
    probability at least ``1 - alpha``); abstentions count as errors."""
    y = np.asarray(y).reshape(-1)
    if len(y) != len(certificate.prediction):
        raise ValueError(f"y must have one label per certified example ({len(certificate.prediction)}), "
                         f"got {len(y)}")
    radii = validation.finite_array("radii", radii)
    if radii.ndim > 1 or np.any(radii < 0):
        raise ValueError(f"radii must be a number or a 1-D array of radii >= 0, got {radii!r}")
    correct = certificate.prediction == y
    return np.array([float(np.mean(correct & (certificate.radius >= r))) for r in np.atleast_1d(radii)])


def majority_vote(model: Any, x: Any, sigma: float, n: int = 1000, seed: Any = None,
                  batch_size: int = 20000) -> np.ndarray:
    """The smoothed classifier's prediction estimated without a test: the class the base
    model returns most often on ``n`` noisy copies of each example (Gaussian, standard
    deviation ``sigma``). Unlike :func:`smoothed_predict` it never abstains, so it can be
    compared with a certificate image by image."""
    x, sigma, _ = _inputs(model, x, sigma, 0.001)
    n = validation.positive_int("n", n)
    batch_size = validation.positive_int("batch_size", batch_size)
    return _counts(model, x, sigma, n, validation.rng_from(seed), batch_size).argmax(axis=1)


def smoothed_attack(model: Any, x: Any, y: Any, sigma: float, eps: float, nb_iter: int = 20,
                    num_noise: int = 16, eps_iter: float | None = None, clip_min: float | None = None,
                    clip_max: float | None = None, seed: Any = None) -> np.ndarray:
    """L2 PGD against the **smoothed** classifier ``g`` (SmoothAdv, Salman et al., 2019).

    ``g`` is a majority vote and has no useful gradient; SmoothAdv attacks its soft version
    instead, the average softmax of the base model over Gaussian noise, and estimates the
    gradient of ``-log(mean softmax_y)`` with ``num_noise`` fresh noise draws per step
    (expectation over transformation, Athalye et al., 2018). Each of the ``nb_iter`` steps
    moves by ``eps_iter`` (default ``2.5 * eps / nb_iter``) along the per-example normalised
    gradient, then projects onto the L2 ball of radius ``eps`` around ``x`` and into
    ``[clip_min, clip_max]``. Returns float32 adversarial inputs shaped like ``x``; judge
    them with :func:`majority_vote` (``g``), not with the base model.
    """
    import tensorflow as tf

    from helpers.robustness import _clip_range, _labels, logits_fn

    x, sigma, _ = _inputs(model, x, sigma, 0.001)
    y = _labels(y, len(x))
    if y is None:
        raise ValueError("y must hold the true labels")
    eps = validation.non_negative("eps", eps)
    nb_iter = validation.positive_int("nb_iter", nb_iter)
    num_noise = validation.positive_int("num_noise", num_noise)
    eps_iter = 2.5 * eps / nb_iter if eps_iter is None else validation.positive("eps_iter", eps_iter)
    lo, hi = _clip_range(clip_min, clip_max, x)
    rng = validation.rng_from(seed)
    if eps == 0:
        return x.copy()
    fn = logits_fn(model)
    n = len(x)
    axes = tuple(range(1, x.ndim))
    x_t, y_t = tf.constant(x), tf.constant(y)
    adv = x_t
    for _ in range(nb_iter):
        noise = tf.constant(rng.normal(0.0, sigma, size=(num_noise,) + x.shape).astype(np.float32))
        with tf.GradientTape() as tape:
            tape.watch(adv)
            noisy = tf.reshape(adv[None] + noise, (num_noise * n,) + x.shape[1:])
            probs = tf.reduce_mean(tf.reshape(tf.nn.softmax(fn(noisy)), (num_noise, n, -1)), axis=0)
            loss = -tf.math.log(tf.gather(probs, y_t, batch_dims=1) + 1e-12)
        grad = tape.gradient(loss, adv)
        norm = tf.sqrt(tf.reduce_sum(grad ** 2, axis=axes, keepdims=True))
        adv = adv + eps_iter * grad / tf.maximum(norm, 1e-12)
        delta = adv - x_t
        size = tf.sqrt(tf.reduce_sum(delta ** 2, axis=axes, keepdims=True))
        adv = x_t + delta * tf.minimum(1.0, eps / tf.maximum(size, 1e-12))
        if lo is not None:
            adv = tf.clip_by_value(adv, lo, hi)
    return adv.numpy().astype(np.float32)
