"""Exact robustness verification of small ReLU networks by mixed-integer linear programming.

An attack (FGSM, PGD, Square) can only show that a model is *not* robust at an input: its
robust accuracy is an upper bound. A **verifier** answers the question exactly: is there
any input within ``eps`` (L∞, inside the valid range) that the model misclassifies? For a
network of Dense layers with ReLU activations, the answer is the optimum of a mixed-integer
linear program (Tjeng, Xiao & Tedrake, 2019):

* **Interval bounds.** Propagate the input box ``[max(x - eps, clip_min), min(x + eps,
  clip_max)]`` through the layers with interval arithmetic (:func:`interval_bounds`): every
  hidden pre-activation ``z`` gets bounds ``l <= z <= u``. A neuron with ``l >= 0`` is
  always active (``relu(z) = z``), one with ``u <= 0`` always inactive (``relu(z) = 0``):
  both are linear.
* **Big-M encoding** of each *unstable* neuron (``l < 0 < u``): a binary ``d`` (is it
  active?) and four linear constraints ``a >= 0``, ``a >= z``, ``a <= u * d``,
  ``a <= z - l * (1 - d)``. With ``d = 1`` they force ``a = z >= 0``, with ``d = 0``
  ``a = 0 >= z``: exactly ``a = relu(z)``, with the interval bounds as the "big M".
* **Objective.** For each wrong class ``j``, maximise the logit margin ``z_j - z_y`` over
  that set. If every maximum is below 0, no input in the ball is misclassified: the image
  is **verified** robust. If one is above 0, its maximiser is a counterexample (an
  adversarial example that the solver found, checked again on the Keras model).

The solver is HiGHS through :func:`scipy.optimize.milp`. The answer is exact up to the
solver's floating-point tolerances (about ``1e-6`` on the margin); the price is time,
exponential in the number of unstable neurons in the worst case, so this is for small
networks and small ``eps``.

* :func:`interval_bounds`  pre-activation bounds of every layer over an L∞ box;
* :func:`max_margin`  the exact largest margin ``z_j - z_y`` over the box (one MILP);
* :func:`verify`  verified / not robust for every example of a batch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from helpers import validation

#: Outcomes of :func:`verify`, one per example.
VERIFIED, NOT_ROBUST, MISCLASSIFIED, UNKNOWN = "verified", "not robust", "misclassified", "unknown"


@dataclass(frozen=True)
class Verification:
    """Output of :func:`verify`, one entry per example.

    ``status``: :data:`VERIFIED` (no input of the ball is misclassified), :data:`NOT_ROBUST`
    (a counterexample exists: ``counterexample`` holds it), :data:`MISCLASSIFIED` (wrong on the
    clean input already) or :data:`UNKNOWN` (the solver hit ``time_limit``); ``margin``: an
    upper bound on the largest logit margin ``max_j z_j - z_y`` over the ball (``< 0``:
    verified), exact for the classes that needed a MILP;
    ``unstable``: how many hidden neurons needed a binary variable; ``milps``: how many MILPs
    were solved (the other classes were ruled out by a bound); ``seconds``:
    solver time per example.
    """

    status: np.ndarray
    margin: np.ndarray
    unstable: np.ndarray
    milps: np.ndarray
    seconds: np.ndarray
    counterexample: np.ndarray

    @property
    def verified(self) -> np.ndarray:
        """Boolean mask of the examples verified robust."""
        return self.status == VERIFIED


def dense_relu_layers(model: Any) -> list[tuple[np.ndarray, np.ndarray]]:
    """The ``(W, b)`` of every Dense layer of a Keras ``model`` made of ``Flatten`` and
    ``Dense`` layers, ReLU on every layer but the last (linear), as :func:`helpers.models.mlp`
    builds; ``W`` has shape ``(inputs, outputs)``. Raises ``ValueError`` for any other model."""
    import tensorflow as tf

    if not isinstance(model, tf.keras.Model):
        raise ValueError(f"model must be a Keras model of Dense ReLU layers, got {type(model).__name__}")
    dense = []
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.Flatten):
            continue
        if not isinstance(layer, tf.keras.layers.Dense):
            raise ValueError(f"model must contain only Flatten and Dense layers, got {type(layer).__name__} "
                             f"({layer.name!r})")
        dense.append(layer)
    if not dense:
        raise ValueError("model must contain at least one Dense layer")
    for layer in dense[:-1]:
        if layer.activation is not tf.keras.activations.relu:
            raise ValueError(f"model's hidden Dense layers must use ReLU, got {layer.activation.__name__} "
                             f"in {layer.name!r}")
    if dense[-1].activation is not tf.keras.activations.linear:
        raise ValueError(f"model's last Dense layer must be linear (logits), got "
                         f"{dense[-1].activation.__name__}")
    return [(np.asarray(layer.kernel, dtype=np.float64), np.asarray(layer.bias, dtype=np.float64))
            for layer in dense]


def interval_bounds(layers: list[tuple[np.ndarray, np.ndarray]], lower: np.ndarray,
                    upper: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Interval bound propagation: ``(l, u)`` of the pre-activations of every layer when the
    flat input lies in the box ``[lower, upper]`` (ReLU between layers). Sound: every input
    of the box gives pre-activations inside the bounds; exact for the first layer."""
    lower, upper = np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64)
    if lower.shape != upper.shape or np.any(lower > upper):
        raise ValueError("lower and upper must have the same shape with lower <= upper")
    bounds = []
    lo, hi = lower, upper
    for k, (W, b) in enumerate(layers):
        W_pos, W_neg = np.maximum(W, 0), np.minimum(W, 0)
        l, u = lo @ W_pos + hi @ W_neg + b, hi @ W_pos + lo @ W_neg + b
        bounds.append((l, u))
        lo, hi = np.maximum(l, 0), np.maximum(u, 0)
    return bounds


def linear_bounds(layers: list[tuple[np.ndarray, np.ndarray]], lower: np.ndarray, upper: np.ndarray,
                  label: int) -> np.ndarray:
    """Upper bounds on every margin ``z_j - z_label`` over the box, for a network with **one**
    hidden ReLU layer, by linear relaxation (as in CROWN, Zhang et al., 2018): each unstable
    ReLU is bounded above by the chord ``u (z - l) / (u - l)`` and below by ``z`` or ``0``
    (whichever is closer), the margin becomes linear in the input, and its maximum over the
    box is read off the signs of its coefficients. Sound (never below the true maximum),
    tighter than interval bounds, looser than the LP relaxation, and computed for all classes
    at once in microseconds. Returns an array with one bound per class (``-inf`` at ``label``)."""
    if len(layers) != 2:
        raise ValueError(f"layers must hold exactly one hidden layer and the output layer, got {len(layers)} layers")
    (W1, b1), (W2, b2) = layers
    lower, upper = np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64)
    l, u = interval_bounds(layers, lower, upper)[0]
    C = W2 - W2[:, [label]]                              # (hidden, classes): margin = C^T a + const
    const = b2 - b2[label]
    unstable = (l < 0) & (u > 0)
    slope = np.where(unstable, u / np.where(unstable, u - l, 1.0), (l >= 0).astype(float))  # chord / exact slope
    below = np.where(unstable, (u >= -l).astype(float), (l >= 0).astype(float))               # lower line: z or 0
    g = np.where(C >= 0, slope[:, None] * C, below[:, None] * C)                              # coefficient of z
    offset = np.where((C >= 0) & unstable[:, None], -slope[:, None] * l[:, None] * C, 0.0).sum(axis=0)
    w = W1 @ g                                           # (inputs, classes): coefficient of x
    bound = np.maximum(w * lower[:, None], w * upper[:, None]).sum(axis=0) + b1 @ g + offset + const
    bound[label] = -np.inf
    return bound


@dataclass(frozen=True)
class Encoding:
    """The big-M MILP of a network over one input box (see the module docstring): variables
    ``x`` (the flat input), then for each hidden layer its activations ``a`` and binaries ``d``;
    ``output``: the slice of the last hidden activations (the input if there is none)."""

    constraints: list
    lb: np.ndarray
    ub: np.ndarray
    integrality: np.ndarray
    output: slice
    n_inputs: int
    unstable: int


def encode(layers: list[tuple[np.ndarray, np.ndarray]], lower: np.ndarray, upper: np.ndarray) -> Encoding:
    """Big-M encoding of ``layers`` (ReLU between them) for flat inputs in ``[lower, upper]``,
    with the interval bounds of :func:`interval_bounds` as the big M of each unstable neuron;
    the always-active and always-inactive neurons get their binary fixed to 1 or 0."""
    from scipy.optimize import LinearConstraint
    from scipy.sparse import csr_matrix

    lower, upper = np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64)
    bounds = interval_bounds(layers, lower, upper)
    n_in = len(lower)
    sizes = [n_in] + [len(b) for _, b in layers[:-1] for _ in (0, 1)]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
    n_var = int(offsets[-1])
    lb, ub = np.empty(n_var), np.empty(n_var)
    integrality = np.zeros(n_var)
    lb[:n_in], ub[:n_in] = lower, upper
    blocks, row_lo, row_hi = [], [], []
    unstable = 0
    prev = slice(0, n_in)
    for k, (W, b) in enumerate(layers[:-1]):
        l, u = bounds[k]
        h = len(b)
        a = slice(offsets[1 + 2 * k], offsets[2 + 2 * k])
        d = slice(offsets[2 + 2 * k], offsets[3 + 2 * k])
        active, inactive = l >= 0, u <= 0
        unstable += int(np.sum(~active & ~inactive))
        lb[a], ub[a] = 0.0, np.maximum(u, 0.0)
        lb[d], ub[d] = np.where(active, 1.0, 0.0), np.where(inactive, 0.0, 1.0)  # stable: d fixed
        integrality[d] = 1
        l_m, u_p, eye = np.minimum(l, 0.0), np.maximum(u, 0.0), np.eye(h)
        for coef_prev, coef_d, low, high in (
                (-W.T, 0 * eye, b, np.full(h, np.inf)),                      # a - W x >= b  (a >= z)
                (0 * W.T, -np.diag(u_p), np.full(h, -np.inf), np.zeros(h)),  # a - u d <= 0  (a <= u d)
                (-W.T, -np.diag(l_m), np.full(h, -np.inf), b - l_m)):        # a <= z - l (1 - d)
            block = np.zeros((h, n_var))
            block[:, prev], block[:, a], block[:, d] = coef_prev, eye, coef_d
            blocks.append(block)
            row_lo.append(low)
            row_hi.append(high)
        prev = a
    constraints = ([LinearConstraint(csr_matrix(np.vstack(blocks)), np.concatenate(row_lo), np.concatenate(row_hi))]
                   if blocks else [])
    return Encoding(constraints, lb, ub, integrality, prev, n_in, unstable)


def max_margin(layers: list[tuple[np.ndarray, np.ndarray]], lower: np.ndarray, upper: np.ndarray,
               label: int, target: int, time_limit: float = 60.0, relax: bool = False,
               encoding: Encoding | None = None) -> tuple[float, np.ndarray, bool]:
    """The maximum of the logit margin ``z_target - z_label`` over flat inputs in ``[lower, upper]``.

    Solves the big-M MILP of :func:`encode` with HiGHS (:func:`scipy.optimize.milp`).
    ``relax=True`` solves its LP relaxation instead (binaries in [0, 1]: the "triangle"
    relaxation of each ReLU), a fast *upper bound* on the maximum. Returns
    ``(margin, x_best, optimal)``: the optimum (if the time limit stopped the solver,
    ``optimal`` is False and ``margin`` is the solver's upper bound), and the input attaining
    the best value found (the relaxation's maximiser when ``relax``)."""
    from scipy.optimize import Bounds, milp

    enc = encode(layers, lower, upper) if encoding is None else encoding
    W_out, b_out = layers[-1]
    c = np.zeros(len(enc.lb))
    c[enc.output] = -(W_out[:, target] - W_out[:, label])  # milp minimises
    constant = float(b_out[target] - b_out[label])
    result = milp(c, integrality=None if relax else enc.integrality, bounds=Bounds(enc.lb, enc.ub),
                  constraints=enc.constraints, options={"time_limit": float(time_limit), "disp": False})
    if result.x is None:
        raise RuntimeError(f"the MILP solver failed: {result.message}")
    optimal = result.status == 0
    # Stopped early: the solver's dual bound is an upper bound on the optimum.
    value = -result.fun + constant if optimal else -getattr(result, "mip_dual_bound", -np.inf) + constant
    return float(value), result.x[:enc.n_inputs].copy(), bool(optimal)


def verify(model: Any, x: Any, y: Any, eps: float, clip_min: float | None = 0.0, clip_max: float | None = 1.0,
           time_limit: float = 60.0) -> Verification:
    """Exact L∞ verification of every example of ``x`` (shape ``(n, ...)``) at radius ``eps``.

    ``model``: a Keras network of Dense ReLU layers returning logits (:func:`dense_relu_layers`);
    ``y``: true labels; ``clip_min``/``clip_max``: the valid input range (``None``: unbounded);
    ``time_limit``: seconds per MILP. For each correctly classified example and each wrong
    class, the largest margin is bounded first by interval arithmetic (no solver needed when
    the bound is already below 0), then computed exactly; the first class with a positive
    optimum gives a counterexample, checked on ``model``. Returns a :class:`Verification`.
    """
    import time

    layers = dense_relu_layers(model)
    x = validation.finite_array("x", x)
    if x.ndim < 2:
        raise ValueError(f"x must be a batch of examples with shape (n, ...), got shape {x.shape}")
    y = np.asarray(y).reshape(-1)
    if len(y) != len(x) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y must hold one integer label per example ({len(x)}), got shape {y.shape}, "
                         f"dtype {y.dtype}")
    eps = validation.non_negative("eps", eps)
    time_limit = validation.positive("time_limit", time_limit)
    k = layers[-1][0].shape[1]
    if k < 2:
        raise ValueError("model must have at least two logits (multi-class); single-logit models are not supported")
    if y.min() < 0 or y.max() >= k:
        raise ValueError(f"y must hold labels in [0, {k - 1}], got {y.min()} to {y.max()}")
    flat = x.reshape(len(x), -1).astype(np.float64)
    if flat.shape[1] != layers[0][0].shape[0]:
        raise ValueError(f"x must have {layers[0][0].shape[0]} features per example, got {flat.shape[1]}")
    lo_clip = -np.inf if clip_min is None else float(clip_min)
    hi_clip = np.inf if clip_max is None else float(clip_max)
    logits = np.asarray(model(x.astype(np.float32), training=False))
    n = len(x)
    status = np.empty(n, dtype=object)
    margin, unstable, seconds = np.full(n, np.nan), np.zeros(n, dtype=int), np.zeros(n)
    solved = np.zeros(n, dtype=int)
    counterexample = x.astype(np.float32).copy()
    for i in range(n):
        start = time.perf_counter()
        if logits[i].argmax() != y[i]:
            status[i], margin[i] = MISCLASSIFIED, float(np.max(np.delete(logits[i], y[i])) - logits[i, y[i]])
            continue
        lower, upper = np.maximum(flat[i] - eps, lo_clip), np.minimum(flat[i] + eps, hi_clip)
        l_out, u_out = interval_bounds(layers, lower, upper)[-1]
        enc = encode(layers, lower, upper)
        unstable[i] = enc.unstable
        crown = linear_bounds(layers, lower, upper, int(y[i])) if len(layers) == 2 else np.full(k, np.inf)
        status[i], worst, optimal_all = VERIFIED, -np.inf, True
        for j in np.argsort(-u_out):  # most dangerous class first
            if j == y[i]:
                continue
            bound = float(min(u_out[j] - l_out[y[i]], crown[j]))  # cheap sound bounds on the margin
            if bound >= 0:  # not enough: the LP relaxation's bound, tighter
                bound, _, _ = max_margin(layers, lower, upper, int(y[i]), int(j), time_limit, relax=True, encoding=enc)
            if bound < 0:  # a bound below 0 already proves this class safe
                worst = max(worst, bound)
                continue
            value, x_best, optimal = max_margin(layers, lower, upper, int(y[i]), int(j), time_limit, encoding=enc)
            solved[i] += 1
            worst = max(worst, value)
            optimal_all &= optimal
            if optimal and value > 0:
                candidate = x_best.reshape(x.shape[1:]).astype(np.float32)
                z = np.asarray(model(candidate[None], training=False))[0]
                if z.argmax() != y[i]:
                    status[i], counterexample[i] = NOT_ROBUST, candidate
                    break
        if status[i] == VERIFIED and (not optimal_all or worst >= 0):
            status[i] = UNKNOWN
        margin[i], seconds[i] = worst, time.perf_counter() - start
    return Verification(status=status.astype(str), margin=margin, unstable=unstable, milps=solved, seconds=seconds,
                        counterexample=counterexample)
