"""Attacks on training data: label flipping, backdoor triggers, their detection, and DP's bound.

* :func:`fit_logistic`: a fast logistic regression, the victim of the label-flipping attacks.
* :func:`flip_labels` flips a fraction of the training labels, at random or only those of
  one class (the attacker who wants cancers missed flips malignant to benign).
* :func:`stamp_trigger` and :func:`backdoor` plant a BadNets-style backdoor (Gu et al., 2017):
  a small checkerboard patch on a few images of the source class, relabelled as the target class.
* :func:`penultimate`, :func:`feature_maps`, :func:`spectral_scores` and :func:`activation_clusters` look for the
  poisoned images in the model's internal activations: spectral signatures (Tran et al.,
  2018) and activation clustering (Chen et al., 2018).
* :func:`group_privacy_bound`: what (ε, δ)-DP training guarantees against ``k`` poisoned records.

NumPy and scikit-learn only, except :func:`penultimate` (which calls a Keras model).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from helpers import validation


def _labels(y: Any) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or len(y) == 0:
        raise ValueError(f"y must be a non-empty 1-d array of class labels, got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y must hold integer class labels, got dtype {y.dtype}")
    return y


def _rate(rate: Any) -> float:
    rate = validation._number("rate", rate)
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must be in [0, 1] (the fraction of training records poisoned), got {rate!r}")
    return rate


def _count(rate: float, n: int, available: int, what: str) -> int:
    count = int(round(rate * n))
    if count > available:
        raise ValueError(f"rate must be at most {available / n:.3f} here: {count} records to poison but only "
                         f"{available} {what}")
    return count


def flip_labels(y: Any, rate: float, rng: Any = None, source_class: int | None = None,
                target_class: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Flip ``round(rate * len(y))`` labels; returns ``(poisoned labels, indices flipped)``.

    Without ``source_class`` the records are drawn uniformly from all of ``y`` (random label
    noise); with it, only from records of that class (a *targeted* flip, e.g. malignant to
    benign). A flipped label becomes ``target_class``, or for two classes the other class
    (``1 - y``). ``rate`` is always a fraction of *all* records, so random and targeted
    flipping at one rate poison the same number of records.
    """
    y = _labels(y)
    rate = _rate(rate)
    rng = validation.rng_from(rng)
    pool = np.arange(len(y)) if source_class is None else np.flatnonzero(y == source_class)
    what = "records" if source_class is None else f"records of class {source_class}"
    chosen = np.sort(rng.choice(pool, _count(rate, len(y), len(pool), what), replace=False))
    flipped = y.copy()
    if target_class is None:
        if set(np.unique(y)) - {0, 1}:
            raise ValueError("target_class must be given when y has more than the classes 0 and 1")
        flipped[chosen] = 1 - y[chosen]
    else:
        flipped[chosen] = target_class
    return flipped, chosen


def fit_logistic(X: Any, y: Any, l2: float = 1.0, max_iter: int = 100, tol: float = 1e-8,
                 init: tuple[Any, float] | None = None) -> tuple[np.ndarray, float]:
    """L2-regularised logistic regression by Newton's method: ``(w, b)`` minimising
    ``sum_i log-loss_i + l2 / 2 * |w|²`` (the intercept is not penalised; scikit-learn's
    ``LogisticRegression(C=1 / l2)`` fits the same model). Milliseconds on WDBC, so an attack
    can retrain the victim hundreds of times. ``init=(w, b)`` starts from a previous solution
    (same optimum, fewer steps)."""
    X, y = validation.training_data(X, y)
    X = X.astype(np.float64)
    y = _labels(y).astype(np.float64)
    if set(np.unique(y)) - {0.0, 1.0}:
        raise ValueError("y must hold the binary labels 0 and 1")
    l2 = validation.positive("l2", l2)
    max_iter = validation.positive_int("max_iter", max_iter)
    A = np.column_stack([X, np.ones(len(X))])
    penalty = np.full(A.shape[1], l2)
    penalty[-1] = 0.0
    theta = np.zeros(A.shape[1])
    if init is not None:
        theta = np.append(validation.finite_array("init weights", init[0], ndim=1), float(init[1]))
        if len(theta) != A.shape[1]:
            raise ValueError(f"init must hold {A.shape[1] - 1} weights and an intercept, got {len(theta) - 1} weights")
    from scipy.special import expit
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):   # tiny matrices: threads only add overhead (and contention)
        theta = _newton(A, y, penalty, theta, max_iter, tol, expit)
    return theta[:-1], float(theta[-1])


def _newton(A: np.ndarray, y: np.ndarray, penalty: np.ndarray, theta: np.ndarray, max_iter: int, tol: float,
            expit: Any) -> np.ndarray:
    for _ in range(max_iter):
        p = expit(A @ theta)
        grad = A.T @ (p - y) + penalty * theta
        hessian = (A * (p * (1 - p))[:, None]).T @ A + np.diag(penalty) + 1e-10 * np.eye(A.shape[1])
        step = np.linalg.solve(hessian, grad)
        theta -= step
        if np.max(np.abs(step)) < tol:
            break
    return theta


def logistic_proba(X: Any, w: Any, b: float) -> np.ndarray:
    """``P(y=1|x) = sigmoid(w·x + b)`` for each row of ``X``."""
    X = validation.finite_array("X", X, ndim=2)
    w = validation.finite_array("w", w, ndim=1)
    if X.shape[1] != len(w):
        raise ValueError(f"X must have {len(w)} columns, got {X.shape[1]}")
    from scipy.special import expit

    return expit(X @ w + float(b))


def checkerboard(size: int) -> np.ndarray:
    """A ``size x size`` checkerboard of 0 (black) and 1 (white) pixels: the trigger pattern."""
    size = validation.positive_int("size", size)
    return (np.indices((size, size)).sum(axis=0) % 2).astype(np.float32)


def stamp_trigger(X: Any, size: int = 4, position: tuple[int, int] | None = None) -> np.ndarray:
    """A copy of the images ``X`` (``(n, h, w, c)``) with a checkerboard trigger stamped on.

    ``position`` is the trigger's top-left pixel ``(row, column)``; by default one pixel in from
    the bottom-right corner. The trigger must lie inside the image (``ValueError`` otherwise).
    """
    X = np.asarray(X)
    if X.ndim != 4:
        raise ValueError(f"X must be images of shape (n, height, width, channels), got shape {X.shape}")
    size = validation.positive_int("size", size)
    h, w = X.shape[1:3]
    if position is None:
        position = (h - size - 1, w - size - 1)
    try:
        row, col = (int(p) for p in position)
    except (TypeError, ValueError):
        raise ValueError(f"position must be a pair (row, column), got {position!r}") from None
    if row < 0 or col < 0 or row + size > h or col + size > w:
        raise ValueError(f"the trigger must lie inside the {h}x{w} image: a {size}x{size} trigger at "
                         f"(row, column) = {(row, col)} does not (position must be in 0..{h - size} x 0..{w - size})")
    out = np.array(X, copy=True)
    out[:, row:row + size, col:col + size, :] = checkerboard(size)[:, :, None]
    return out


def backdoor(X: Any, y: Any, rate: float, rng: Any = None, source_class: int = 1, target_class: int = 0,
             size: int = 4, position: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Poison ``round(rate * len(y))`` images of ``source_class``: trigger stamped, label set to ``target_class``.

    Returns ``(X_poisoned, y_poisoned, poisoned indices)``; the other records are unchanged.
    """
    X = np.asarray(X)
    y = _labels(y)
    if len(X) != len(y):
        raise ValueError(f"y must have one label per image of X ({len(X)}), got {len(y)}")
    y_poisoned, chosen = flip_labels(y, rate, rng, source_class=source_class, target_class=target_class)
    X_poisoned = np.array(X, copy=True)
    if len(chosen):
        X_poisoned[chosen] = stamp_trigger(X[chosen], size, position)
    return X_poisoned, y_poisoned, chosen


def penultimate(model: Any, X: Any, batch_size: int = 512) -> np.ndarray:
    """The inputs of the model's last layer (for :func:`helpers.models.cnn`: the pooled features)."""
    import tensorflow as tf

    from helpers.models import logits

    return logits(tf.keras.Model(model.inputs, model.layers[-1].input), X, batch_size)


def feature_maps(model: Any, X: Any, batch_size: int = 512) -> np.ndarray:
    """The outputs of the model's last ``Conv2D`` layer, one flattened row per image (before any
    pooling: for :func:`helpers.models.cnn` 8 x 8 positions x 16 channels). A small trigger
    lights up a few positions; global average pooling dilutes it among all of them."""
    import tensorflow as tf

    from helpers.models import logits

    convs = [layer for layer in model.layers if isinstance(layer, tf.keras.layers.Conv2D)]
    if not convs:
        raise ValueError("model must contain a Conv2D layer (feature maps are a CNN's)")
    maps = logits(tf.keras.Model(model.inputs, convs[-1].output), X, batch_size)   # batched forward pass, float64
    return maps.reshape(len(maps), -1)


def _activations(activations: Any) -> np.ndarray:
    a = validation.finite_array("activations", activations, ndim=2)
    if len(a) < 2:
        raise ValueError(f"activations must have at least 2 rows, got {len(a)}")
    return a


def spectral_scores(activations: Any) -> np.ndarray:
    """Spectral-signature outlier scores (Tran et al., 2018): the squared projection of each
    centred row on the top singular vector of the centred matrix. Run it on the examples of
    one label; poisoned examples, if they are a separable minority, score highest."""
    a = _activations(activations)
    centred = a - a.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return (centred @ vt[0]) ** 2


def activation_clusters(activations: Any, seed: int = 0, n_components: int = 2) -> np.ndarray:
    """Activation clustering (Chen et al., 2018): a boolean mask of the *smaller* of two k-means
    clusters of the activations reduced to ``n_components`` principal components. Run it on the
    examples of one label: a cluster far smaller than the rest is suspected of being poison."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    a = _activations(activations)
    seed = validation.positive_int("seed", seed, minimum=0)
    n_components = validation.positive_int("n_components", n_components)
    if n_components > min(a.shape):
        raise ValueError(f"n_components must be at most {min(a.shape)} here, got {n_components}")
    reduced = PCA(n_components, random_state=seed).fit_transform(a - a.mean(axis=0))
    clusters = KMeans(2, n_init=10, random_state=seed).fit_predict(reduced)
    smaller = int(np.argmin(np.bincount(clusters, minlength=2)))
    return clusters == smaller


def top_k_mask(scores: Any, k: int) -> np.ndarray:
    """Boolean mask of the ``k`` highest scores (ties broken by position)."""
    s = validation.finite_array("scores", scores, ndim=1)
    k = validation.positive_int("k", k, minimum=0)
    if k > len(s):
        raise ValueError(f"k must be at most the number of scores ({len(s)}), got {k}")
    mask = np.zeros(len(s), dtype=bool)
    mask[np.argsort(-s, kind="stable")[:k]] = True
    return mask


def group_privacy_bound(p0: Any, k: int, epsilon: float, delta: float = 0.0) -> np.ndarray | float:
    """Upper bound on the probability of an outcome when ``k`` records are poisoned, given its
    probability ``p0`` without them, for an (ε, δ)-DP training algorithm.

    Group privacy: datasets differing in ``k`` records are ``(kε, k e^{(k-1)ε} δ)``-indistinguishable,
    so ``P_k <= min(1, e^{kε} p0 + k e^{(k-1)ε} δ)``. ``k = 0`` gives ``p0``.
    """
    p0_array = np.asarray(p0, dtype=float)
    if not np.all(np.isfinite(p0_array)) or np.any((p0_array < 0) | (p0_array > 1)):
        raise ValueError(f"p0 must be a probability in [0, 1], got {p0!r}")
    k = validation.positive_int("k", k, minimum=0)
    epsilon = validation.non_negative("epsilon", epsilon)
    delta = validation.non_negative("delta", delta)
    if delta >= 1:
        raise ValueError(f"delta must be in [0, 1), got {delta!r}")
    if k == 0:
        bound = p0_array
    else:
        log_growth = k * epsilon
        delta_term = k * math.exp(min((k - 1) * epsilon, 700.0)) * delta
        bound = np.minimum(1.0, np.exp(min(log_growth, 700.0)) * p0_array + delta_term)
    return float(bound) if np.ndim(bound) == 0 else bound


def useful_group_size(p0: float, epsilon: float, delta: float = 0.0, level: float = 1.0) -> int:
    """The largest ``k`` whose :func:`group_privacy_bound` stays below ``level`` (0 if none does;
    ``level=1`` asks where the bound stops saying anything at all)."""
    p0 = validation.non_negative("p0", p0)
    level = validation.positive("level", level)
    if level > 1 or p0 >= level:
        raise ValueError(f"level must be in (p0, 1] = ({p0}, 1], got {level!r}")
    epsilon = validation.non_negative("epsilon", epsilon)
    if epsilon == 0 and delta == 0:
        raise ValueError("epsilon must be > 0 when delta is 0 (the bound never grows)")
    k = 0
    while k < 10_000 and group_privacy_bound(p0, k + 1, epsilon, delta) < level:
        k += 1
    return k
