"""Adversarial examples and adversarial training, on top of ``cleverhans.tf2``.

Attacks (white-box, untargeted, with the *true* labels):

* :func:`fgsm`  one signed-gradient step (Goodfellow et al., 2015);
* :func:`pgd`   projected gradient descent with a random start (Madry et al., 2018);
* :func:`square_attack`  a black-box, gradient-free attack: random square changes kept
  when they lower the logit margin (Andriushchenko et al., 2020);
* :func:`pgd_loss_curve`  the attack loss of every example after every PGD step (does
  the attack converge, or is it stuck?);
* :func:`robust_accuracy`  accuracy under attack for several budgets ``eps``, the worst
  case over attack losses and random restarts (an example counts as robust only if it
  survives all of them);
* :func:`adversarial_fit`  adversarial training (PGD or FGSM), or noise augmentation,
  in a custom training step.

**Losses** (:data:`LOSSES`, passed to cleverhans as its ``loss_fn``):

* ``"ce"``  the softmax cross-entropy of the logits, cleverhans' default
  (:func:`cross_entropy_loss`). Its gradient with respect to the logits is
  ``softmax - one_hot``: for the true class that difference is exactly 0 in float32 once
  the model is confident (softmax rounds to 1 when the true logit leads by about 17),
  and the rest of the gradient comes from the other classes' tiny softmax values, which
  underflow when the lead passes about 87. A very confident model (e.g. defensive
  distillation, logits scaled by a temperature) is then *not attacked at all*, silently.
* ``"margin"``  the logit margin ``max_{j != y} z_j - z_y`` (:func:`margin_loss`, the
  loss of Carlini & Wagner, 2017, without the confidence clamp): its gradient is a
  difference of two logit gradients, whatever the confidence, so it never saturates.

:func:`robust_accuracy` runs every loss in ``losses`` (default both) from every random
start and counts an example as broken if any of them breaks it.

All of them work for multi-class **logits** models and for **single-logit** binary
models. cleverhans alone silently leaves a single-logit model unattacked: its loss is a
softmax cross-entropy over the model's outputs, and with one output the softmax is the
constant 1 (zero gradient), while its default label, the argmax over one logit, is
always 0. Here a single logit ``z`` is presented to cleverhans as the two logits
``[-z/2, z/2]``, whose softmax is ``[1 - sigmoid(z), sigmoid(z)]``: the softmax
cross-entropy becomes exactly the binary cross-entropy, the argmax is the predicted
class, the margin is ``-z`` for class 1 and ``z`` for class 0, and the true labels are
always passed. (The symmetric pair matters: with ``[0, z]`` the cross-entropy gradient of
a confident malignant prediction, ``sigmoid(z) - 1``, is exactly 0 in float32 once
``z > 16.6``; with ``[-z/2, z/2]`` it also flows through the other logit, as
``-exp(-z)/2``, nonzero up to ``z`` of about 85.)

A model that ends in a softmax (probabilities instead of logits) is attacked through a
softmax of a softmax, a squashed loss whose values and margins mean nothing (sign-based
attacks may still work, by luck, so nothing looks wrong): when it can be detected (a softmax/sigmoid last layer, or
outputs that are non-negative rows summing to 1) the functions raise ``ValueError``.
"""
from __future__ import annotations

import time
import weakref
from typing import Any, Callable, Sequence

import numpy as np

from helpers import validation

#: Attacks accepted by :func:`robust_accuracy` and :func:`adversarial_fit`.
ATTACKS = ("pgd", "fgsm")
#: Attack losses: softmax cross-entropy (cleverhans' default) and the logit margin.
LOSSES = ("ce", "margin")
TRAINING_MODES = ("pgd", "fgsm", "noise", "gaussian", "none")

_LOGITS_FNS: "weakref.WeakKeyDictionary[Any, Callable]" = weakref.WeakKeyDictionary()


# --------------------------------------------------------------------------- validation

def _norm(norm: Any, allowed: Sequence[float]) -> float:
    try:
        value = float(norm)
    except (TypeError, ValueError):
        value = None
    if value not in allowed:
        names = ", ".join("np.inf" if a == np.inf else str(int(a)) for a in allowed)
        raise ValueError(f"norm must be one of {names}, got {norm!r}")
    return value


def _inputs(x: Any) -> np.ndarray:
    x = validation.finite_array("x", x)
    if x.ndim < 2:
        raise ValueError(f"x must be a batch of examples with shape (n, ...), got shape {x.shape}")
    return x.astype(np.float32)


def _labels(y: Any, n: int) -> np.ndarray | None:
    if y is None:
        return None
    y = np.asarray(y)
    if y.dtype == bool or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y must hold integer class labels (dtype int), got dtype {y.dtype}; "
                         f"for one-hot labels pass y.argmax(axis=1)")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"y must have shape (n,) or (n, 1) with one class label per example, got shape {y.shape}")
    if len(y) != n:
        raise ValueError(f"y must have one label per row of x ({n}), got {len(y)}")
    if y.min() < 0:
        raise ValueError(f"y must hold class labels >= 0, got {y.min()}")
    return y.astype(np.int64)


def _clip_range(clip_min: Any, clip_max: Any, x: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Clip bounds as float32 arrays broadcastable to one example (``None`` if unbounded)."""
    if clip_min is None and clip_max is None:
        return None, None
    lo = np.full(x.shape[1:], -np.inf) if clip_min is None else np.asarray(clip_min, dtype=float)
    hi = np.full(x.shape[1:], np.inf) if clip_max is None else np.asarray(clip_max, dtype=float)
    for name, value in (("clip_min", lo), ("clip_max", hi)):
        if np.isnan(value).any():
            raise ValueError(f"{name} must be a number or an array of numbers, got NaN")
        try:
            np.broadcast_to(value, x.shape[1:])
        except ValueError:
            raise ValueError(f"{name} must be a number or broadcast to one example of shape {x.shape[1:]}, "
                             f"got shape {value.shape}") from None
    if not np.all(lo < hi):
        raise ValueError(f"clip_min must be < clip_max, got clip_min={clip_min!r}, clip_max={clip_max!r}")
    tol = 1e-5
    if np.any(x < lo - tol) or np.any(x > hi + tol):
        raise ValueError(f"x must lie inside [clip_min, clip_max] before the attack, got values in "
                         f"[{x.min():.4g}, {x.max():.4g}]")
    return lo.astype(np.float32), hi.astype(np.float32)


def _is_keras(model: Any) -> bool:
    import tensorflow as tf
    return isinstance(model, tf.keras.Model)


def _last_activation(model: Any) -> str | None:
    """Name of the activation a Keras model applies last (``None`` if unknown or linear)."""
    if not _is_keras(model) or not getattr(model, "layers", None):
        return None
    layer = model.layers[-1]
    if type(layer).__name__ == "Softmax":
        return "softmax"
    activation = getattr(layer, "activation", None)
    name = getattr(activation, "__name__", None)
    return name if name in ("softmax", "sigmoid") else None


def check_model(model: Any, x: np.ndarray) -> int:
    """Check that ``model`` returns logits ``(n, k)`` on ``x``; return ``k``.

    Raises ``ValueError`` naming ``model`` when the model returns probabilities: a
    softmax/sigmoid last layer, or ``k >= 2`` outputs that are non-negative and sum to 1
    in every row (as a softmax does, and logits practically never do).
    """
    if not callable(model):
        raise ValueError(f"model must be a callable that returns logits, got {type(model).__name__}")
    activation = _last_activation(model)
    if activation is not None:
        raise ValueError(f"model must return logits, but its last layer applies {activation}: remove the "
                         f"activation (the attack needs the raw scores; use from_logits=True in the loss)")
    sample = np.asarray(_call(model, np.asarray(x[:256], dtype=np.float32)))
    if sample.ndim != 2:
        raise ValueError(f"model must return logits of shape (n, num_outputs), got shape {sample.shape}")
    if sample.shape[1] >= 2 and np.all(sample >= 0) and np.allclose(sample.sum(axis=1), 1.0, atol=1e-4):
        raise ValueError("model must return logits, but its outputs are non-negative and every row sums to 1 "
                         "(probabilities, e.g. a softmax layer): the attack's softmax cross-entropy would "
                         "apply a second softmax, a squashed loss whose values and margins mean nothing. "
                         "Remove the softmax.")
    return int(sample.shape[1])


def _call(model: Any, x):
    return model(x, training=False) if _is_keras(model) else model(x)


def logits_fn(model: Any) -> Callable:
    """The function cleverhans attacks: ``x -> logits`` with at least two columns.

    A single-logit binary model ``z`` becomes ``[-z/2, z/2]``: its softmax is
    ``[1 - sigmoid(z), sigmoid(z)]``, so softmax cross-entropy equals binary cross-entropy,
    the argmax is the predicted class (class 0 at ``z = 0``, as for ``z > 0`` being
    class 1), and the cross-entropy gradient does not vanish for confident predictions
    (see the module docstring). The same function object is returned for the same model,
    so TensorFlow traces the gradient computation only once per model.
    """
    try:
        return _LOGITS_FNS[model]
    except (KeyError, TypeError):
        pass
    import tensorflow as tf

    # The cache's value must not hold the model strongly: a WeakKeyDictionary entry whose value
    # refers to its key keeps the key alive forever (every attacked model would stay in memory).
    try:
        target: Callable[[], Any] = weakref.ref(model)
    except TypeError:
        target = lambda: model  # noqa: E731 (not cached below either)

    def fn(x):
        z = _call(target(), x)
        if z.shape[-1] == 1:
            z = tf.concat([-0.5 * z, 0.5 * z], axis=-1)
        return z

    try:
        _LOGITS_FNS[model] = fn
    except TypeError:  # not weak-referenceable: no cache
        pass
    return fn


# --------------------------------------------------------------------------- losses

def cross_entropy_loss(labels, logits):
    """Per-example softmax cross-entropy of integer ``labels`` under ``logits``:
    cleverhans' default ``loss_fn`` (``tf.nn.sparse_softmax_cross_entropy_with_logits``).
    Its gradient saturates (becomes exactly 0) for confident predictions."""
    import tensorflow as tf
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)


def margin_loss(labels, logits):
    """Per-example logit margin ``max_{j != y} z_j - z_y``: positive exactly when the
    example is misclassified, and its gradient never saturates, however confident the
    model. A ``loss_fn`` for cleverhans (called as ``loss_fn(labels=..., logits=...)``)."""
    import tensorflow as tf
    logits = tf.convert_to_tensor(logits)
    is_true = tf.one_hot(tf.cast(labels, tf.int32), tf.shape(logits)[-1], on_value=True, off_value=False)
    true_logit = tf.reduce_sum(tf.where(is_true, logits, tf.zeros_like(logits)), axis=-1)
    best_other = tf.reduce_max(tf.where(is_true, tf.fill(tf.shape(logits), logits.dtype.min), logits), axis=-1)
    return best_other - true_logit


_LOSS_FNS = {"ce": cross_entropy_loss, "margin": margin_loss}


def _loss(loss: Any) -> Callable:
    if not isinstance(loss, str) or loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    return _LOSS_FNS[loss]


def _losses(losses: Any) -> tuple[str, ...]:
    try:
        names = (losses,) if isinstance(losses, str) else tuple(losses)
    except TypeError:
        raise ValueError(f"losses must be a name or a sequence of names from {LOSSES}, got {losses!r}") from None
    if not names:
        raise ValueError(f"losses must name at least one of {LOSSES}, got {losses!r}")
    for name in names:
        if not isinstance(name, str) or name not in LOSSES:
            raise ValueError(f"losses must be a subset of {LOSSES}, got {losses!r}")
    return tuple(dict.fromkeys(names))


# --------------------------------------------------------------------------- attacks

def _clip(adv, lo, hi):
    import tensorflow as tf
    return adv if lo is None else tf.clip_by_value(adv, lo, hi)


def _random_start(shape: tuple[int, ...], eps: float, norm: float, rng: np.random.Generator) -> np.ndarray:
    """A uniform random point of the ``norm`` ball of radius ``eps`` (one per example)."""
    if norm == np.inf:
        return rng.uniform(-eps, eps, size=shape).astype(np.float32)
    d = int(np.prod(shape[1:]))
    direction = rng.normal(size=(shape[0], d))
    direction /= np.maximum(np.linalg.norm(direction, axis=1, keepdims=True), 1e-12)
    radius = eps * rng.uniform(size=(shape[0], 1)) ** (1.0 / d)
    return (direction * radius).reshape(shape).astype(np.float32)


def _gaussian_noise(shape: tuple[int, ...], sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise of standard deviation ``sigma`` on every feature, not clipped."""
    return rng.normal(0.0, sigma, size=shape).astype(np.float32)


def _fgsm_tensor(fn, x, y, eps, norm, lo, hi, loss_fn=cross_entropy_loss):
    from cleverhans.tf2.attacks.fast_gradient_method import fast_gradient_method
    return fast_gradient_method(fn, x, eps, norm, loss_fn=loss_fn, clip_min=lo, clip_max=hi, y=y)


def _pgd_tensor(fn, x, y, eps, eps_iter, nb_iter, norm, lo, hi, rand_init, rng, loss_fn=cross_entropy_loss):
    """The PGD loop of ``cleverhans.tf2.attacks.projected_gradient_descent``, with a
    seeded random start: FGM steps of size ``eps_iter`` on ``loss_fn``, each projected
    back onto the ``eps`` ball around ``x`` and into the clip range."""
    import tensorflow as tf

    adv = x
    for adv in _pgd_iterates(fn, x, y, eps, eps_iter, nb_iter, norm, lo, hi, rand_init, rng, loss_fn):
        pass
    return tf.convert_to_tensor(adv)


def _pgd_iterates(fn, x, y, eps, eps_iter, nb_iter, norm, lo, hi, rand_init, rng, loss_fn=cross_entropy_loss):
    """Yield PGD's start point, then its point after each of the ``nb_iter`` steps."""
    from cleverhans.tf2.attacks.fast_gradient_method import fast_gradient_method
    from cleverhans.tf2.utils import clip_eta

    adv = x
    if rand_init:
        adv = _clip(x + _random_start(tuple(x.shape), eps, norm, rng), lo, hi)
    yield adv
    for _ in range(nb_iter):
        adv = fast_gradient_method(fn, adv, eps_iter, norm, loss_fn=loss_fn, clip_min=lo, clip_max=hi, y=y)
        adv = _clip(x + clip_eta(adv - x, norm, eps), lo, hi)
        yield adv


def _prepare(model, x, y, eps, norm, clip_min, clip_max, allowed_norms):
    import tensorflow as tf

    x = _inputs(x)
    eps = validation.non_negative("eps", eps)
    norm = _norm(norm, allowed_norms)
    y = _labels(y, len(x))
    lo, hi = _clip_range(clip_min, clip_max, x)
    k = check_model(model, x)
    if y is not None and y.max() >= max(k, 2):
        raise ValueError(f"y must hold class labels < {max(k, 2)} (the model has {k} output(s)), got {y.max()}")
    fn = logits_fn(model)
    x_t = tf.constant(x)
    y_t = tf.argmax(fn(x_t), axis=1) if y is None else tf.constant(y)
    return fn, x, x_t, y_t, eps, norm, lo, hi


def fgsm(model: Any, x: Any, y: Any, eps: float, norm: float = np.inf,
         clip_min: Any = None, clip_max: Any = None, loss: str = "ce") -> np.ndarray:
    """Fast gradient (sign) method: one step of size ``eps`` that increases the loss.

    Parameters
    ----------
    model:
        A Keras model or callable returning logits ``(n, k)``; ``k = 1`` is a single-logit
        binary model (attacked through the logits ``[-z/2, z/2]``).
    x:
        Inputs ``(n, ...)``, inside ``[clip_min, clip_max]``.
    y:
        True integer labels ``(n,)`` or ``(n, 1)``; ``None`` uses the model's predictions.
    eps:
        Budget ``>= 0``: the perturbation's ``norm`` is at most ``eps``.
    norm:
        ``np.inf`` (sign of the gradient), ``1`` or ``2``.
    clip_min, clip_max:
        Valid input range (numbers, or arrays broadcastable to one example).
    loss:
        ``"ce"`` (softmax cross-entropy, Goodfellow et al.'s FGSM and cleverhans' default;
        saturates for confident predictions) or ``"margin"`` (the logit margin, never
        saturates). See :data:`LOSSES`.

    Returns the adversarial inputs as a float32 array shaped like ``x``.
    """
    loss_fn = _loss(loss)
    fn, x, x_t, y_t, eps, norm, lo, hi = _prepare(model, x, y, eps, norm, clip_min, clip_max, (np.inf, 1.0, 2.0))
    if eps == 0:
        return x.copy()
    return np.asarray(_fgsm_tensor(fn, x_t, y_t, eps, norm, lo, hi, loss_fn))


def default_step_size(eps: float, nb_iter: int) -> float:
    """The step-size rule of thumb ``2.5 * eps / nb_iter`` (at most ``eps``), common in
    adversarial-training code: the steps together cover 2.5 eps, enough to cross the whole
    ball (diameter 2 eps) from the random start and still refine. It is a convention, not
    Madry et al.'s (2018) own setting: their MNIST and CIFAR attacks cover 1.33 and 1.75 eps."""
    return min(float(eps), 2.5 * float(eps) / int(nb_iter))


def pgd(model: Any, x: Any, y: Any, eps: float, eps_iter: float | None = None, nb_iter: int = 40,
        norm: float = np.inf, clip_min: Any = None, clip_max: Any = None, rand_init: bool = True,
        seed: Any = None, loss: str = "ce", ever_fooled: bool = False) -> np.ndarray:
    """Projected gradient descent (Madry et al., 2018), on cleverhans' FGM steps.

    Starts from a uniform random point of the ``eps`` ball (``rand_init``), then takes
    ``nb_iter`` steps of size ``eps_iter`` (default :func:`default_step_size`), projecting
    back onto the ball and the clip range after each step. ``norm`` is ``np.inf`` or ``2``;
    ``seed`` (an int or a numpy Generator) fixes the random start; ``loss`` is ``"ce"``
    (cleverhans' default) or ``"margin"`` (for very confident models, see :data:`LOSSES`).
    Other arguments as in :func:`fgsm`. Returns float32 adversarial inputs shaped like ``x``.

    ``ever_fooled`` (default False, the last iterate for every example, as cleverhans):
    return, for each example, the first iterate (random start included) that the model
    misclassifies, and the last iterate only for the examples no iterate fooled. PGD's
    loss is not monotone along its path, so an example fooled at step 5 can be classified
    correctly again at the last step; with ``ever_fooled=True`` it counts as fooled, which
    can only lower :func:`robust_accuracy`. It costs one extra forward pass per step.
    """
    loss_fn = _loss(loss)
    fn, x, x_t, y_t, eps, norm, lo, hi = _prepare(model, x, y, eps, norm, clip_min, clip_max, (np.inf, 2.0))
    nb_iter, eps_iter = _pgd_arguments(eps, eps_iter, nb_iter)
    rng = validation.rng_from(seed)
    if eps == 0:
        return x.copy()
    if not ever_fooled:
        return np.asarray(_pgd_tensor(fn, x_t, y_t, eps, eps_iter, nb_iter, norm, lo, hi, bool(rand_init), rng,
                                      loss_fn))
    labels = np.asarray(y_t)
    best: np.ndarray | None = None
    fooled = np.zeros(len(x), dtype=bool)
    for adv in _pgd_iterates(fn, x_t, y_t, eps, eps_iter, nb_iter, norm, lo, hi, bool(rand_init), rng, loss_fn):
        adv = np.asarray(adv, dtype=np.float32)
        if best is None:
            best = adv.copy()
        else:
            best[~fooled] = adv[~fooled]  # frozen once fooled: the first fooling iterate
        fooled |= np.argmax(np.asarray(fn(adv)), axis=1) != labels
    return best


def _pgd_arguments(eps: float, eps_iter: float | None, nb_iter: Any) -> tuple[int, float]:
    nb_iter = validation.positive_int("nb_iter", nb_iter)
    if eps_iter is None:
        return nb_iter, default_step_size(eps, nb_iter)
    eps_iter = validation.non_negative("eps_iter", eps_iter)
    if eps_iter > eps:
        raise ValueError(f"eps_iter must be <= eps ({eps}), got {eps_iter}")
    if eps > 0 and eps_iter == 0:
        raise ValueError(f"eps_iter must be > 0 when eps > 0, got {eps_iter}")
    return nb_iter, eps_iter


def pgd_loss_curve(model: Any, x: Any, y: Any, eps: float, eps_iter: float | None = None, nb_iter: int = 40,
                   norm: float = np.inf, clip_min: Any = None, clip_max: Any = None, seed: Any = None,
                   loss: str = "ce", measure: str | None = None) -> np.ndarray:
    """Per-example attack loss along one PGD run: a diagnostic for gradient masking.

    Runs :func:`pgd` (same arguments, ascending the ``loss``) and records the ``measure``
    loss (default: the same as ``loss``; e.g. ascend ``"ce"`` and watch the ``"margin"``)
    of every example at the random start and after each step. Returns a float array of
    shape ``(nb_iter + 1, n)``. An honest attack shows losses that rise and then level
    off; a curve that stays flat from the start, or keeps rising at the last step, means
    the attack is stuck or unfinished, and its robust accuracy is an overestimate.
    """
    loss_fn = _loss(loss)
    measure_fn = loss_fn if measure is None else _loss(measure)
    fn, x, x_t, y_t, eps, norm, lo, hi = _prepare(model, x, y, eps, norm, clip_min, clip_max, (np.inf, 2.0))
    nb_iter, eps_iter = _pgd_arguments(eps, eps_iter, nb_iter)
    rng = validation.rng_from(seed)
    if eps == 0:
        return np.tile(np.asarray(measure_fn(y_t, fn(x_t)), dtype=float), (nb_iter + 1, 1))
    return np.stack([np.asarray(measure_fn(y_t, fn(adv)), dtype=float)
                     for adv in _pgd_iterates(fn, x_t, y_t, eps, eps_iter, nb_iter, norm, lo, hi, True, rng,
                                              loss_fn)])


# --------------------------------------------------------------------------- Square attack

def _square_fraction(p_init: float, query: int, n_queries: int) -> float:
    """Andriushchenko et al.'s schedule: the fraction of pixels changed per query is halved
    at queries 10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000 of a 10 000-query budget
    (rescaled to ``n_queries``)."""
    it = int(query / n_queries * 10000)
    halvings = sum(it > t for t in (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000))
    return p_init / 2 ** halvings


def _square_mask(shape: tuple[int, ...], p: float, rng: np.random.Generator) -> np.ndarray:
    """One random window per example: a square of side ``round(sqrt(p * h * w))`` on images
    ``(n, h, w, c)`` (all channels), a random set of ``round(p * d)`` features otherwise."""
    n = shape[0]
    if len(shape) == 4:
        h, w = shape[1], shape[2]
        side = int(min(max(round(np.sqrt(p * h * w)), 1), h, w))
        top = rng.integers(0, h - side + 1, size=n)
        left = rng.integers(0, w - side + 1, size=n)
        rows, cols = np.arange(h), np.arange(w)
        in_rows = (rows >= top[:, None]) & (rows < top[:, None] + side)
        in_cols = (cols >= left[:, None]) & (cols < left[:, None] + side)
        return (in_rows[:, :, None] & in_cols[:, None, :])[..., None]  # (n, h, w, 1)
    d = int(np.prod(shape[1:]))
    size = int(min(max(round(p * d), 1), d))
    keys = rng.random((n, d))
    chosen = keys <= np.sort(keys, axis=1)[:, size - 1:size]
    return chosen.reshape(shape)


def _square_signs(shape: tuple[int, ...], rng: np.random.Generator, stripes: bool) -> np.ndarray:
    """Random ±1: per channel (constant over the window) on images, per feature otherwise;
    ``stripes``: the initial vertical stripes (one sign per column and channel)."""
    if len(shape) == 4:
        size = (shape[0], 1, shape[2], shape[3]) if stripes else (shape[0], 1, 1, shape[3])
    else:
        size = shape
    return rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=size)


#: How many times :func:`square_attack` re-draws a proposal that would leave an image unchanged.
_SQUARE_REDRAWS = 20


def square_attack(model: Any, x: Any, y: Any, eps: float, n_queries: int = 1000, p_init: float = 0.3,
                  clip_min: Any = None, clip_max: Any = None, seed: Any = None, loss: str = "margin") -> np.ndarray:
    """The L∞ Square attack (Andriushchenko, Croce, Flammarion & Hein, 2020): a black-box
    attack that uses only the model's outputs (logits), never its gradients.

    It starts from vertical stripes of ``±eps`` and then, for at most ``n_queries - 1``
    rounds, proposes to set one random square window of each image (side
    ``sqrt(p * h * w)`` pixels, ``p`` shrinking from ``p_init`` on Andriushchenko et
    al.'s schedule; on non-image inputs a random set of ``p * d`` features) to
    ``x ± eps`` (one random sign per channel), and keeps the proposal only if it lowers
    the ``loss``: ``"margin"`` (the default, the paper's: the true logit minus the best
    other one) or ``"ce"`` (the negative cross-entropy). As in the paper, a proposal that
    would change nothing (the window already holds those values, common on images whose
    pixels sit at the clip bounds) is re-drawn, up to 20 times, so that queries are not
    wasted on no-ops. An example that is already
    misclassified is not changed any more. Every round queries the model once on the whole
    batch, so each example costs at most ``n_queries`` queries. Inputs of shape
    ``(n, h, w, c)`` are treated as images; anything else as flat feature vectors.

    Parameters are as in :func:`pgd` (L∞ only); ``seed`` fixes the random proposals.
    Returns float32 adversarial inputs shaped like ``x``, within ``eps`` of ``x`` in L∞
    and inside ``[clip_min, clip_max]``.
    """
    import tensorflow as tf

    _loss(loss)
    fn, x, x_t, y_t, eps, _, lo, hi = _prepare(model, x, y, eps, np.inf, clip_min, clip_max, (np.inf,))
    n_queries = validation.positive_int("n_queries", n_queries)
    p_init = validation.positive("p_init", p_init)
    if p_init > 1:
        raise ValueError(f"p_init must be in (0, 1] (the fraction of pixels changed per query), got {p_init}")
    rng = validation.rng_from(seed)
    if eps == 0:
        return x.copy()
    lo = np.full(x.shape[1:], -np.inf, np.float32) if lo is None else lo
    hi = np.full(x.shape[1:], np.inf, np.float32) if hi is None else hi
    labels = np.asarray(y_t)

    rows = np.arange(len(x))

    def evaluate(candidate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # One query: the logits only. The losses in NumPy (same values as margin_loss and
        # cross_entropy_loss), which is several times faster than eager TensorFlow here.
        z = np.asarray(fn(tf.constant(candidate)), dtype=np.float64)
        true = z[rows, labels]
        others = z.copy()
        others[rows, labels] = -np.inf
        if loss == "margin":
            objective = true - others.max(axis=1)
        else:
            top = z.max(axis=1)
            objective = true - top - np.log(np.exp(z - top[:, None]).sum(axis=1))  # = -cross-entropy
        return objective, z.argmax(axis=1) != labels

    adv = np.clip(x + eps * _square_signs(x.shape, rng, stripes=True), lo, hi).astype(np.float32)
    best, fooled = evaluate(adv)
    for query in range(1, n_queries):
        if fooled.all():
            break
        p = _square_fraction(p_init, query, n_queries)
        candidate = adv.copy()
        todo = np.flatnonzero(~fooled)
        for _ in range(_SQUARE_REDRAWS):  # as in the paper: re-draw proposals that change nothing
            shape = (len(todo),) + x.shape[1:]
            mask = _square_mask(shape, p, rng)
            window = np.clip(x[todo] + eps * _square_signs(shape, rng, stripes=False), lo, hi)
            candidate[todo] = np.where(mask, window, adv[todo])
            todo = todo[np.all((candidate[todo] == adv[todo]).reshape(len(todo), -1), axis=1)]
            if not len(todo):
                break
        objective, now_fooled = evaluate(candidate)
        better = (objective < best) & ~fooled
        adv[better] = candidate[better]
        best[better] = objective[better]
        fooled |= better & now_fooled
    return adv


def _predict(fn, x, batch_size: int = 2048) -> np.ndarray:
    return np.concatenate([np.argmax(np.asarray(fn(x[i:i + batch_size])), axis=1)
                           for i in range(0, len(x), batch_size)])


def robust_accuracy(model: Any, x: Any, y: Any, eps_values: Any, attack: str | Callable = "pgd", *,
                    losses: str | Sequence[str] | None = None, **kwargs: Any) -> np.ndarray:
    """Accuracy under ``attack`` for each budget in ``eps_values`` (a float array): the
    worst case over the attack ``losses`` and ``restarts``. The mean over examples of
    :func:`robust_examples` (same arguments, same draws).
    """
    return robust_examples(model, x, y, eps_values, attack, losses=losses, **kwargs).mean(axis=1)


def robust_examples(model: Any, x: Any, y: Any, eps_values: Any, attack: str | Callable = "pgd", *,
                    losses: str | Sequence[str] | None = None, **kwargs: Any) -> np.ndarray:
    """Which examples stay correct under ``attack``: a boolean array of shape
    ``(len(eps_values), len(x))``, one row per budget, for paired comparisons of two models
    on the same examples (e.g. :func:`helpers.metrics.mcnemar_exact`).

    ``attack`` is ``"pgd"``, ``"fgsm"`` or a callable ``attack(model, x, y, eps, **kwargs)``
    returning adversarial inputs. ``losses`` (default ``("ce", "margin")`` for the built-in
    attacks) names the losses to attack with (:data:`LOSSES`; a single name, e.g.
    ``losses="ce"``, runs only that one); a callable receives ``loss=`` only when
    ``losses`` is given. ``kwargs`` go to the attack (``nb_iter``, ``norm``,
    ``clip_min``, ``clip_max``, ``seed``, ...), except ``restarts`` (default 1): every loss
    is run that many times (PGD from different random starts, seeded from ``seed``). An
    example counts as robust only if it is classified correctly on the clean input *and*
    after every attempt (every loss, every restart), so ``eps = 0`` gives the clean
    accuracy and more losses or restarts can only lower the result.

    Why two losses: the cross-entropy's gradient is exactly 0 in float32 for confident
    predictions, so a cross-entropy attack alone reports very confident models (large
    logits, e.g. defensive distillation) as robust; the logit margin never saturates.
    """
    x = _inputs(x)
    y = _labels(y, len(x))
    if y is None:
        raise ValueError("y must hold the true labels (robust accuracy compares predictions with them)")
    eps_values = validation.finite_array("eps_values", eps_values)
    if eps_values.ndim > 1:
        raise ValueError(f"eps_values must be a number or a 1-D array of budgets, got shape {eps_values.shape}")
    eps_values = np.atleast_1d(eps_values)
    if np.any(eps_values < 0):
        raise ValueError(f"eps_values must all be >= 0, got {eps_values.min()}")
    restarts = validation.positive_int("restarts", kwargs.pop("restarts", 1))
    if "loss" in kwargs:
        raise ValueError(f"robust_accuracy takes losses=(...) (a subset of {LOSSES}), not loss=; "
                         f"got loss={kwargs['loss']!r}")
    if isinstance(attack, str):
        if attack not in ATTACKS:
            raise ValueError(f"attack must be one of {ATTACKS} or a callable, got {attack!r}")
        attack_fn = {"pgd": pgd, "fgsm": fgsm}[attack]
        loss_names: tuple[str | None, ...] = LOSSES if losses is None else _losses(losses)
    elif callable(attack):
        attack_fn = attack
        loss_names = (None,) if losses is None else _losses(losses)
    else:
        raise ValueError(f"attack must be one of {ATTACKS} or a callable, got {attack!r}")
    seeded = attack_fn is pgd or "seed" in kwargs
    rng = validation.rng_from(kwargs.pop("seed", None))
    check_model(model, x)
    fn = logits_fn(model)
    clean_ok = _predict(fn, x) == y
    result = []
    for eps in eps_values:
        ok = clean_ok.copy()
        if eps > 0:
            for _ in range(restarts):
                for loss in loss_names:
                    if not ok.any():
                        break
                    # The whole batch every time: a fixed shape keeps TensorFlow from re-tracing.
                    extra: dict[str, Any] = {"seed": rng} if seeded else {}
                    if loss is not None:
                        extra["loss"] = loss
                    adv = attack_fn(model, x, y, float(eps), **kwargs, **extra)
                    ok &= _predict(fn, np.asarray(adv, dtype=np.float32)) == y
        result.append(ok)
    return np.stack(result)


# --------------------------------------------------------------------------- training

def adversarial_fit(model: Any, X: Any, y: Any, eps: float, *, attack: str = "pgd", num_epochs: int = 10,
                    batch_size: int = 64, nb_iter: int = 7, eps_iter: float | None = None,
                    norm: float = np.inf, clip_min: Any = None, clip_max: Any = None,
                    adv_weight: float = 1.0, learning_rate: float = 1e-3, seed: Any = 0) -> dict[str, Any]:
    """Train ``model`` (in place) on adversarial examples crafted against its current weights.

    Each step replaces the batch by its attacked version (``attack="pgd"``: Madry et al.;
    ``"fgsm"``: Goodfellow et al.), by uniform noise in the ``eps`` ball (``"noise"``: data
    augmentation, no gradient), by Gaussian noise of standard deviation ``eps`` on every
    feature, not clipped (``"gaussian"``: the augmentation randomized smoothing needs, Cohen
    et al., 2019), or keeps it (``"none"``: standard training), and minimises
    ``(1 - adv_weight) * loss(clean) + adv_weight * loss(perturbed)`` with Adam.
    The loss is the from-logits cross-entropy matching the model's outputs (single-logit
    binary or multi-class). Returns ``{"loss": [per-epoch mean loss], "seconds": float}``.
    """
    import tensorflow as tf

    from helpers.models import loss_for

    if attack not in TRAINING_MODES:
        raise ValueError(f"attack must be one of {TRAINING_MODES}, got {attack!r}")
    X = _inputs(X)
    y = _labels(y, len(X))
    if y is None:
        raise ValueError("y must hold the training labels")
    eps = validation.non_negative("eps", eps)
    num_epochs = validation.positive_int("num_epochs", num_epochs)
    batch_size = validation.positive_int("batch_size", batch_size)
    nb_iter = validation.positive_int("nb_iter", nb_iter)
    norm = _norm(norm, (np.inf, 2.0))
    adv_weight = validation.non_negative("adv_weight", adv_weight)
    if adv_weight > 1:
        raise ValueError(f"adv_weight must be in [0, 1], got {adv_weight}")
    learning_rate = validation.positive("learning_rate", learning_rate)
    if eps_iter is None:
        eps_iter = default_step_size(eps, nb_iter)
    elif not 0 < validation.positive("eps_iter", eps_iter) <= max(eps, 1e-12):
        raise ValueError(f"eps_iter must be in (0, eps={eps}], got {eps_iter}")
    lo, hi = _clip_range(clip_min, clip_max, X)
    k = check_model(model, X)
    if y.max() >= max(k, 2):
        raise ValueError(f"y must hold class labels < {max(k, 2)} (the model has {k} output(s)), got {y.max()}")
    rng = validation.rng_from(seed)
    fn = logits_fn(model)
    loss_fn = loss_for(k)
    optimizer = tf.keras.optimizers.Adam(learning_rate)
    label_shape = (None, 1) if k == 1 else (None,)
    spec = [tf.TensorSpec((None,) + X.shape[1:], tf.float32), tf.TensorSpec((None,) + X.shape[1:], tf.float32),
            tf.TensorSpec(label_shape, tf.float32 if k == 1 else tf.int64)]

    @tf.function(input_signature=spec)
    def train_step(x_clean, x_pert, labels):
        with tf.GradientTape() as tape:
            loss = adv_weight * loss_fn(labels, model(x_pert, training=True))
            if adv_weight < 1:
                loss += (1 - adv_weight) * loss_fn(labels, model(x_clean, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    history: list[float] = []
    start = time.perf_counter()
    for _ in range(num_epochs):
        order = rng.permutation(len(X))
        losses = []
        for i in range(0, len(X), batch_size):
            idx = order[i:i + batch_size]
            xb = tf.constant(X[idx])
            yb = tf.constant(y[idx])
            if attack == "none" or eps == 0:
                xp = xb
            elif attack == "noise":
                xp = _clip(xb + _random_start(tuple(xb.shape), eps, norm, rng), lo, hi)
            elif attack == "gaussian":
                xp = xb + _gaussian_noise(tuple(xb.shape), eps, rng)
            elif attack == "fgsm":
                xp = _fgsm_tensor(fn, xb, yb, eps, norm, lo, hi)
            else:
                xp = _pgd_tensor(fn, xb, yb, eps, eps_iter, nb_iter, norm, lo, hi, True, rng)
            labels = tf.cast(tf.reshape(yb, (-1, 1)), tf.float32) if k == 1 else yb
            losses.append(float(train_step(xb, tf.cast(xp, tf.float32), labels)))
        history.append(float(np.mean(losses)))
    return {"loss": history, "seconds": time.perf_counter() - start}
