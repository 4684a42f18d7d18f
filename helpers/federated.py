"""Federated learning across simulated hospitals: client splits, FedAvg, and secure aggregation
with additive secret sharing over a finite field.

What each part does
-------------------
* :func:`dirichlet_split` cuts a labelled data set into ``n_clients`` disjoint parts with
  different case mixes (label skew drawn from a Dirichlet distribution, Hsu et al. 2019).
* :func:`fedavg` is McMahan et al.'s (2017) aggregation: the average of the clients' weights,
  weighted by their numbers of examples. :func:`run_fedavg` runs rounds of local training and
  aggregation; :func:`keras_sgd_trainer` (plain SGD) and :class:`DPSGDTrainer` (the course's
  Poisson DP-SGD, :mod:`helpers.dp_training`, run locally in every hospital) are the local steps.
* Secure aggregation: floats are encoded in fixed point as integers modulo the prime
  :data:`PRIME` (:func:`encode`, :func:`decode`). :func:`pairwise_masks` and
  :func:`mask_update` are the *idea* only (each pair of clients ``i < j`` shares a mask that
  ``i`` adds and ``j`` subtracts; masks from a public seed, for teaching and for showing what
  goes wrong). :func:`secure_sum` and :class:`SecureAggregator` run the protocol in outline
  (Bonawitz et al. 2017, :mod:`helpers.secagg`): fresh X25519 keys every round, ChaCha20
  masks, double masking and t-of-n Shamir shares, for an honest-but-curious server.
  :func:`additive_shares` is plain additive secret sharing (a value split into uniform shares).

Privacy accounting for DP-FedAvg with local DP-SGD: :func:`dp_fedavg_epsilons` (per hospital,
per patient; the hospitals are disjoint, so by parallel composition the guarantee for any
patient is the largest of them).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from helpers import validation

#: The Mersenne prime 2^61 - 1: residues fit in int64 and a sum of two fits without overflow.
PRIME = 2 ** 61 - 1
#: Bytes to send one residue modulo :data:`PRIME` (61 bits, sent as 8 bytes).
RESIDUE_BYTES = 8
#: Bytes of one float32 (a plaintext update coordinate).
FLOAT_BYTES = 4

Weights = list  # list of numpy arrays, as Keras' get_weights() returns


# ----------------------------------------------------------------------------- client split

def dirichlet_split(y: Any, n_clients: int, alpha: float = 0.5, seed: int = 0,
                    min_per_class: int = 2, max_tries: int = 1000) -> list[np.ndarray]:
    """Disjoint index arrays, one per client, covering every example once, with a label skew.

    For each class the examples are shuffled and cut according to proportions drawn from
    ``Dirichlet(alpha, ..., alpha)``: a small ``alpha`` gives very different case mixes, a
    large one nearly identical mixes. Draws are repeated (seeded) until every client holds at
    least ``min_per_class`` examples of every class (a hospital sees both outcomes).
    """
    y = np.asarray(y).reshape(-1)
    n_clients = validation.positive_int("n_clients", n_clients, minimum=2)
    alpha = validation.positive("alpha", alpha)
    min_per_class = validation.positive_int("min_per_class", min_per_class, minimum=0)
    classes = np.unique(y)
    if len(y) < n_clients * min_per_class * len(classes):
        raise ValueError(f"n_clients must be at most {len(y) // max(1, min_per_class * len(classes))} for "
                         f"{len(y)} examples and min_per_class={min_per_class}, got {n_clients}")
    rng = validation.rng_from(seed)
    for _ in range(max_tries):
        parts: list[list[int]] = [[] for _ in range(n_clients)]
        ok = True
        for c in classes:
            idx = rng.permutation(np.flatnonzero(y == c))
            cuts = (np.cumsum(rng.dirichlet(np.full(n_clients, alpha)))[:-1] * len(idx)).astype(int)
            pieces = np.split(idx, cuts)
            ok &= all(len(p) >= min_per_class for p in pieces)
            for k, piece in enumerate(pieces):
                parts[k].extend(piece.tolist())
        if ok:
            return [np.sort(np.array(p, dtype=np.int64)) for p in parts]
    raise ValueError(f"min_per_class={min_per_class} was not reached in {max_tries} draws; raise alpha")


# ----------------------------------------------------------------------------- FedAvg

def _check_weight_lists(weight_lists: Sequence[Weights]) -> None:
    if len(weight_lists) < 1:
        raise ValueError("weight_lists must hold at least one client's weights")
    shapes = [tuple(np.shape(w) for w in ws) for ws in weight_lists]
    if any(s != shapes[0] for s in shapes):
        raise ValueError(f"weight_lists must all have the same shapes, got {sorted(set(shapes))}")


def fedavg(weight_lists: Sequence[Weights], sizes: Sequence[int]) -> Weights:
    """McMahan et al.'s FedAvg step: ``sum_k n_k w_k / sum_k n_k`` for every weight array."""
    _check_weight_lists(weight_lists)
    if len(sizes) != len(weight_lists):
        raise ValueError(f"sizes must have one entry per client ({len(weight_lists)}), got {len(sizes)}")
    sizes = np.array([validation.positive_int("sizes", int(s)) for s in sizes], dtype=np.float64)
    share = sizes / sizes.sum()
    return [sum(s * np.asarray(ws[i], np.float64) for s, ws in zip(share, weight_lists)).astype(np.float32)
            for i in range(len(weight_lists[0]))]


def flatten(weights: Weights) -> np.ndarray:
    """One float64 vector of all weight arrays (see :func:`unflatten`)."""
    return np.concatenate([np.asarray(w, np.float64).ravel() for w in weights])


def unflatten(vector: np.ndarray, like: Weights) -> Weights:
    """Cut ``vector`` back into arrays shaped like ``like`` (float32)."""
    sizes = [int(np.size(w)) for w in like]
    if len(vector) != sum(sizes):
        raise ValueError(f"vector must have {sum(sizes)} entries, got {len(vector)}")
    out, start = [], 0
    for w, size in zip(like, sizes):
        out.append(np.asarray(vector[start:start + size], np.float32).reshape(np.shape(w)))
        start += size
    return out


@dataclass
class FedAvgHistory:
    """What :func:`run_fedavg` measured, one entry per round."""

    metric: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    aggregation_seconds: list[float] = field(default_factory=list)
    bytes_per_client: list[int] = field(default_factory=list)


def run_fedavg(initial_weights: Weights, clients: Sequence[tuple[np.ndarray, np.ndarray]], rounds: int,
               local_train: Callable[[Weights, int, int], Weights],
               aggregate: Callable[[Sequence[Weights], Sequence[int]], Weights] | None = None,
               evaluate: Callable[[Weights], float] | None = None) -> tuple[Weights, FedAvgHistory]:
    """Federated averaging: every round, each client trains from the global weights on its own
    data (``local_train(weights, client_index, round)`` returns its new weights), then the
    server combines them with ``aggregate`` (default :func:`fedavg`; a
    :class:`SecureAggregator` sees only the sum). ``evaluate(weights)`` is recorded per round.
    """
    clients = list(clients)
    validation.positive_int("n_clients", len(clients), minimum=2)
    rounds = validation.positive_int("rounds", rounds)
    aggregate = aggregate or fedavg
    sizes = [len(y) for _, y in clients]
    weights = [np.asarray(w, np.float32) for w in initial_weights]
    history = FedAvgHistory()
    for r in range(rounds):
        start = time.perf_counter()
        local = [local_train(weights, k, r) for k in range(len(clients))]
        agg_start = time.perf_counter()
        weights = aggregate(local, sizes)
        history.aggregation_seconds.append(time.perf_counter() - agg_start)
        history.seconds.append(time.perf_counter() - start)
        history.bytes_per_client.append(int(getattr(aggregate, "last_bytes_per_client",
                                                    FLOAT_BYTES * flatten(weights).size)))
        if evaluate is not None:
            history.metric.append(float(evaluate(weights)))
    return weights, history


def keras_sgd_trainer(model: Any, clients: Sequence[tuple[np.ndarray, np.ndarray]], epochs: int,
                      batch_size: int) -> Callable[[Weights, int, int], Weights]:
    """Local training for :func:`run_fedavg`: ``epochs`` of the compiled Keras ``model``'s
    ``fit`` (shuffled batches of ``batch_size``) on client ``k``'s data, from the global weights.
    One model object serves every client (its weights are overwritten each time)."""
    from helpers import dp_training

    epochs = validation.positive_int("epochs", epochs)
    batch_size = validation.positive_int("batch_size", batch_size)
    data = [validation.training_data(X, y) for X, y in clients]
    labels = [dp_training._labels(y, int(model.output_shape[-1])) for _, y in data]

    def train(weights: Weights, k: int, r: int) -> Weights:
        X = data[k][0]
        model.set_weights(weights)
        model.fit(X, labels[k], epochs=epochs, batch_size=min(batch_size, len(X)), shuffle=True, verbose=0)
        return model.get_weights()

    return train


class DPSGDTrainer:
    """Local Poisson DP-SGD (the course's algorithm, :func:`helpers.dp_training.dp_sgd_fit`)
    in every hospital, for :func:`run_fedavg`.

    Each round client ``k`` runs ``num_steps(n_k, batch_size, epochs)`` steps from the global
    weights: Poisson samples with rate ``batch_size / n_k``, per-patient clipping to
    ``l2_norm_clip``, Gaussian noise ``noise_multiplier * l2_norm_clip`` on each step's sum,
    division by the expected batch size. ``steps[k]`` counts the steps client ``k`` has run,
    which is what :func:`dp_fedavg_epsilons` accounts for. One traced step serves every client
    (batches padded with zero-weight rows to the largest client); client ``k``'s noise comes
    from the stateless generator keyed by ``(seed, k * 10^6 + its step)``, so clients' noises
    are independent, and its masks from ``numpy.random.default_rng([seed, k])``.
    """

    def __init__(self, model_fn: Callable[[], Any], clients: Sequence[tuple[np.ndarray, np.ndarray]], *,
                 epochs: float, batch_size: int, noise_multiplier: float, l2_norm_clip: float = 1.0,
                 learning_rate: float = 0.5, seed: int = 0) -> None:
        from helpers import dp_training

        self.data = [validation.training_data(X, y) for X, y in clients]
        self.epochs = validation.positive("epochs", epochs)
        self.batch_size = validation.positive_int("batch_size", batch_size)
        if self.batch_size > min(len(y) for _, y in self.data):
            raise ValueError(f"batch_size must be <= the smallest client's size "
                             f"({min(len(y) for _, y in self.data)}), got {batch_size}")
        self.noise_multiplier = validation.non_negative("noise_multiplier", noise_multiplier)
        self.l2_norm_clip = validation.positive("l2_norm_clip", l2_norm_clip)
        seed = validation.positive_int("seed", seed, minimum=0)
        self.model = model_fn()
        self.trainer = dp_training._FastClippingDPSGD(self.model, self.noise_multiplier, self.l2_norm_clip,
                                                      self.batch_size, learning_rate, seed)
        self.rngs = [np.random.default_rng([seed, k]) for k in range(len(self.data))]
        self.steps = [0] * len(self.data)
        self.pad = max(len(y) for _, y in self.data)
        self._labels = [dp_training._labels(y, int(self.model.output_shape[-1])) for _, y in self.data]

    def __call__(self, weights: Weights, k: int, r: int) -> Weights:
        from helpers import dp_training

        X, _ = self.data[k]
        self.model.set_weights(weights)
        masks = dp_training.poisson_masks(len(X), self.batch_size, self.epochs, self.rngs[k])
        self.trainer.run(X, self._labels[k], masks, self.pad, first_step=k * 10 ** 6 + self.steps[k])
        self.steps[k] += len(masks)
        return self.model.get_weights()


def dp_fedavg_epsilons(sizes: Sequence[int], batch_size: int, steps: Sequence[int], noise_multiplier: float,
                       delta: float, accountant: str = "rdp") -> list[float]:
    """ε of each hospital's local Poisson DP-SGD over the whole federated run, per patient.

    Client ``k`` ran ``steps[k]`` Poisson-subsampled Gaussian steps with rate
    ``batch_size / sizes[k]`` (add/remove-one-patient neighbours). Everything it ever sent is a
    function of those steps and of the other hospitals' messages, which do not contain its
    patients, so by adaptive composition this ε covers every update it sent (to the server, the
    other hospitals and the public). The hospitals' data are disjoint: by parallel composition
    a patient's guarantee is their own hospital's ε, at most ``max`` of the list.
    Same accountant as :func:`helpers.dp.dp_sgd_epsilon` (which it equals for one client).
    """
    from helpers import dp

    if len(steps) != len(sizes):
        raise ValueError(f"steps must have one entry per client ({len(sizes)}), got {len(steps)}")
    out = []
    for n, t in zip(sizes, steps):
        n = validation.positive_int("sizes", int(n))
        t = validation.positive_int("steps", int(t))
        if batch_size > n:
            raise ValueError(f"batch_size must be <= every client's size ({n}), got {batch_size}")
        out.append(dp.poisson_gaussian_epsilon(batch_size / n, t, noise_multiplier, delta, accountant))
    return out


# ----------------------------------------------------------------------------- reconstruction attack

def reconstruct_from_linear_gradient(grad_kernel: Any, grad_bias: Any, tol: float = 1e-12) -> np.ndarray:
    """The input of a one-example gradient of a dense layer with a bias: exact.

    For ``z = x·W + b`` and any loss, ``dL/dW = x ⊗ dL/dz`` and ``dL/db = dL/dz``, so
    ``x = dL/dW[:, j] / dL/db[j]`` for any output ``j`` with ``dL/db[j] != 0`` (the largest is
    used). An SGD update ``-lr · gradient`` gives the same ratio.
    """
    gk = validation.finite_array("grad_kernel", grad_kernel)
    gb = validation.finite_array("grad_bias", grad_bias).reshape(-1)
    if gk.ndim == 1:
        gk = gk[:, None]
    if gk.ndim != 2 or gk.shape[1] != len(gb):
        raise ValueError(f"grad_kernel must have shape (features, {len(gb)}) to match grad_bias, got {gk.shape}")
    j = int(np.argmax(np.abs(gb)))
    if abs(gb[j]) <= tol:
        raise ValueError("grad_bias must not be zero: a zero gradient carries no information")
    return gk[:, j] / gb[j]


# ----------------------------------------------------------------------------- fixed point and sharing

def _modulus(modulus: Any) -> int:
    modulus = validation.positive_int("modulus", modulus, minimum=3)
    if modulus > PRIME:
        raise ValueError(f"modulus must be at most 2^61 - 1 (int64 arithmetic), got {modulus}")
    return modulus


def _frac_bits(frac_bits: Any) -> int:
    frac_bits = validation.positive_int("frac_bits", frac_bits, minimum=0)
    if frac_bits > 40:
        raise ValueError(f"frac_bits must be an integer in [0, 40], got {frac_bits}")
    return frac_bits


def min_modulus(n_clients: int, bound: float, frac_bits: int) -> int:
    """The smallest modulus that decodes a sum of ``n_clients`` values in ``[-bound, bound]``
    encoded with ``frac_bits`` fractional bits: ``2 * n_clients * ceil(bound * 2^frac_bits) + 1``
    (the sum lies in ``[-n B, n B]`` with ``B = ceil(bound * 2^frac_bits)``: ``2 n B + 1`` residues)."""
    n_clients = validation.positive_int("n_clients", n_clients)
    bound = validation.positive("bound", bound)
    return 2 * n_clients * math.ceil(bound * 2 ** _frac_bits(frac_bits)) + 1


def check_modulus(n_clients: int, bound: float, frac_bits: int, modulus: int = PRIME) -> None:
    """Raise ``ValueError`` when ``modulus`` is too small for the encoded sum (see :func:`min_modulus`)."""
    need = min_modulus(n_clients, bound, frac_bits)
    if _modulus(modulus) < need:
        raise ValueError(f"modulus must be >= {need} for {n_clients} clients, bound {bound} and "
                         f"frac_bits {frac_bits} (the encoded sum would wrap around), got {modulus}")


def encode(values: Any, frac_bits: int = 24, modulus: int = PRIME, bound: float | None = None,
           saturate: bool = False) -> np.ndarray:
    """Fixed point: ``round(values * 2^frac_bits) mod modulus`` as int64 residues.

    Negative numbers wrap to the top of the field (``-1`` becomes ``modulus - 1``). With
    ``bound``, values outside ``[-bound, bound]`` raise ``ValueError`` (clip them first), or,
    with ``saturate=True``, are clipped to the bound: inside a DP computation an error that
    depends on the data would itself leak, so the DP path saturates.
    """
    values = validation.finite_array("values", values)
    frac_bits, modulus = _frac_bits(frac_bits), _modulus(modulus)
    if saturate:
        if bound is None:
            raise ValueError("bound must be given when saturate=True (the value to clip to)")
        values = np.clip(values, -validation.positive("bound", bound), bound)
    if bound is not None and np.max(np.abs(values)) > bound:
        raise ValueError(f"values must lie in [-bound, bound] = [-{bound}, {bound}], got max |value| "
                         f"{np.max(np.abs(values)):.6g}; clip them first")
    scaled = np.rint(values * 2.0 ** frac_bits)
    if np.max(np.abs(scaled)) >= modulus // 2:
        raise ValueError(f"values must satisfy |value| * 2^frac_bits < modulus / 2, got max |value| "
                         f"{np.max(np.abs(values)):.6g}")
    return np.mod(scaled.astype(np.int64), modulus)


def decode(residues: Any, frac_bits: int = 24, modulus: int = PRIME) -> np.ndarray:
    """Inverse of :func:`encode`: residues above ``modulus // 2`` are negative numbers."""
    frac_bits, modulus = _frac_bits(frac_bits), _modulus(modulus)
    r = np.asarray(residues, dtype=np.int64)
    if np.any(r < 0) or np.any(r >= modulus):
        raise ValueError(f"residues must be integers in [0, {modulus}), got values outside")
    signed = np.where(r > modulus // 2, r - modulus, r)
    return signed.astype(np.float64) / 2.0 ** frac_bits


def _add(a: np.ndarray, b: np.ndarray, modulus: int) -> np.ndarray:
    return np.mod(a + b, modulus)  # a, b < 2^61: the sum < 2^62 fits in int64


def additive_shares(residues: Any, n_shares: int, modulus: int = PRIME, rng: Any = None) -> np.ndarray:
    """Split ``residues`` into ``n_shares`` additive shares modulo ``modulus``: an array
    ``(n_shares, ...)``. The first ``n_shares - 1`` are uniform and independent; the last makes
    them sum to the secret. Any ``n_shares - 1`` shares are uniformly random whatever the secret."""
    n_shares = validation.positive_int("n_shares", n_shares, minimum=2)
    modulus = _modulus(modulus)
    r = np.asarray(residues, dtype=np.int64)
    rng = validation.rng_from(rng)
    shares = rng.integers(0, modulus, size=(n_shares - 1, *r.shape), dtype=np.int64)
    last = r.copy()
    for s in shares:
        last = np.mod(last - s, modulus)
    return np.concatenate([shares, last[None]], axis=0)


def reconstruct(shares: Any, modulus: int = PRIME) -> np.ndarray:
    """Sum of shares modulo ``modulus`` (the secret of :func:`additive_shares`)."""
    modulus = _modulus(modulus)
    shares = np.asarray(shares, dtype=np.int64)
    total = np.zeros(shares.shape[1:], dtype=np.int64)
    for s in shares:
        total = _add(total, s, modulus)
    return total


def pairwise_masks(n_clients: int, dim: int, modulus: int = PRIME, *, seed: int) -> dict[tuple[int, int], np.ndarray]:
    """One uniformly random mask in ``Z_modulus^dim`` per pair ``i < j``: the idea of secure
    aggregation, for teaching only.

    Each pair's generator is seeded by ``(seed, i, j)``: anyone who knows ``seed`` knows every
    mask, and the same ``seed`` gives the same masks (two rounds masked alike are a two-time pad:
    their difference is the difference of the updates). The protocol (:mod:`helpers.secagg`)
    derives each mask from a fresh X25519 key agreement instead.
    """
    n_clients = validation.positive_int("n_clients", n_clients, minimum=2)
    dim = validation.positive_int("dim", dim)
    modulus = _modulus(modulus)
    return {(i, j): np.random.default_rng([seed, i, j]).integers(0, modulus, size=dim, dtype=np.int64)
            for i in range(n_clients) for j in range(i + 1, n_clients)}


def mask_update(residues: Any, client: int, masks: dict[tuple[int, int], np.ndarray],
                modulus: int = PRIME) -> np.ndarray:
    """What client ``client`` sends: ``x + sum_{j > i} m_ij - sum_{j < i} m_ji  (mod p)``."""
    modulus = _modulus(modulus)
    y = np.asarray(residues, dtype=np.int64)
    for (i, j), m in masks.items():
        if m.shape != y.shape:
            raise ValueError(f"residues must have shape {m.shape} like the masks, got {y.shape}")
        if i == client:
            y = _add(y, m, modulus)
        elif j == client:
            y = np.mod(y - m, modulus)
    return y


@dataclass
class SecureSum:
    """The result of :func:`secure_sum` and what it cost."""

    total: np.ndarray            #: the decoded sum over the clients that did not drop out
    masked: np.ndarray           #: the server's view: one masked vector per surviving client
    survivors: list[int]
    bytes_per_client: int        #: bytes each surviving client sent in the round (all four steps)
    seconds: float               #: keys, shares, encoding, masking and unmasking (all clients, serially)
    bytes_by_step: dict = field(default_factory=dict)   #: the same bytes, per protocol step
    server_prg_expansions: int = 0                      #: masks the server recomputed for dropped clients


def secure_sum(updates: Any, bound: float, frac_bits: int = 24, modulus: int = PRIME,
               dropped: Sequence[int] = (), threshold: int | None = None, saturate: bool = False) -> SecureSum:
    """Sum of the rows of ``updates`` (one per client) computed by secure aggregation: one fresh
    round of :class:`helpers.secagg.SecAggRound` (X25519 key agreement, ChaCha20 masks, a self-mask,
    t-of-n Shamir shares of both secrets; new keys on every call, so no mask is ever reused).

    Each client encodes its row in fixed point (:func:`encode` with ``bound``; ``saturate=True``
    clips values to ``[-bound, bound]`` instead of raising, for use inside a DP computation) and
    sends its masked vector; clients in ``dropped`` send nothing and the survivors' shares of
    their keys remove their pairwise masks. The sum is exact up to ``2^-frac_bits / 2`` per
    client and coordinate. Raises ``ValueError`` when fewer than 2 clients, when the modulus is
    too small for the encoded sum (:func:`check_modulus`), when a value is outside
    ``[-bound, bound]`` (unless ``saturate``), or when fewer than ``threshold`` clients survive.
    """
    from helpers import secagg

    updates = validation.finite_array("updates", updates, ndim=2)
    n, dim = updates.shape
    validation.positive_int("n_clients", n, minimum=2)
    check_modulus(n, bound, frac_bits, modulus)
    dropped = sorted({int(d) for d in dropped})
    if any(not 0 <= d < n for d in dropped):
        raise ValueError(f"dropped must list client indices in [0, {n}), got {dropped}")
    survivors = [k for k in range(n) if k not in dropped]
    t = n // 2 + 1 if threshold is None else threshold
    if len(survivors) < max(2, t):
        raise ValueError(f"dropped must leave at least max(2, threshold={t}) clients, got {dropped}")
    residues = np.stack([encode(row, frac_bits, modulus, bound, saturate=saturate) for row in updates])
    total, received, rnd, seconds = secagg.secure_sum_residues(residues, modulus, dropped, t)
    by_step = rnd.bytes_per_hospital(RESIDUE_BYTES)
    return SecureSum(decode(total, frac_bits, modulus), np.stack([received[k] for k in survivors]), survivors,
                     int(sum(by_step.values())), seconds, by_step, rnd.prg_expansions)


class SecureAggregator:
    """A FedAvg aggregator for :func:`run_fedavg` in which the server sees only sums.

    Each client sends ``[n_k * w_k, n_k]`` (its example count appended, so even the counts are
    only learned in total) through :func:`secure_sum`; the server divides. ``bound`` must cover
    every ``|n_k * w_k|`` (``ValueError`` otherwise; ``saturate=True`` clips instead, so that no
    abort depends on the data inside a DP computation). Every round is a fresh protocol run (new
    keys and masks). ``last_bytes_per_client`` and ``last_seconds`` describe the last round.

    ``weighted=False`` sends ``[w_k, 1]`` instead: every client counts equally and no example
    count leaves a hospital (with DP, a count is not protected: one patient changes it).
    """

    def __init__(self, bound: float, frac_bits: int = 24, modulus: int = PRIME, weighted: bool = True,
                 saturate: bool = False) -> None:
        self.weighted = bool(weighted)
        self.saturate = bool(saturate)
        self.bound = validation.positive("bound", bound)
        self.frac_bits, self.modulus = _frac_bits(frac_bits), _modulus(modulus)
        self.rounds = 0
        self.last_bytes_per_client = 0
        self.last_seconds = 0.0

    def __call__(self, weight_lists: Sequence[Weights], sizes: Sequence[int]) -> Weights:
        _check_weight_lists(weight_lists)
        counts = sizes if self.weighted else [1] * len(weight_lists)
        rows = np.stack([np.append(n * flatten(ws), n) for ws, n in zip(weight_lists, counts)])
        result = secure_sum(rows, self.bound, self.frac_bits, self.modulus, saturate=self.saturate)
        self.rounds += 1
        self.last_bytes_per_client, self.last_seconds = result.bytes_per_client, result.seconds
        return unflatten(result.total[:-1] / result.total[-1], weight_lists[0])


# ----------------------------------------------------------------------------- Byzantine hospitals

def poisoned(local_train: Callable[[Weights, int, int], Weights], attacker: int, scale: float
             ) -> Callable[[Weights, int, int], Weights]:
    """A local trainer in which client ``attacker`` is Byzantine: it trains honestly, then sends
    ``global + scale * (its weights - global)`` (``scale = -10``: its update reversed and boosted
    tenfold, a simple model-poisoning attack). Every other client is unchanged."""
    scale = float(validation.finite_array("scale", [scale])[0])

    def train(weights: Weights, k: int, r: int) -> Weights:
        local = local_train(weights, k, r)
        if k != attacker:
            return local
        return [np.asarray(g + scale * (w - g), np.float32) for g, w in zip(weights, local)]

    return train


def coordinate_median(weight_lists: Sequence[Weights], sizes: Sequence[int]) -> Weights:
    """Coordinate-wise median of the clients' weights (Yin et al., 2018), unweighted: with ``n``
    clients, fewer than ``n / 2`` Byzantine ones cannot move any coordinate outside the range
    of the honest values. ``sizes`` is ignored (a Byzantine client could lie about it)."""
    _check_weight_lists(weight_lists)
    return [np.median(np.stack([np.asarray(ws[i], np.float64) for ws in weight_lists]), axis=0).astype(np.float32)
            for i in range(len(weight_lists[0]))]


class NormBoundedMean:
    """FedAvg of updates whose L2 norm is clipped to ``max_norm`` (Sun et al., 2019): client
    ``k``'s update ``w_k - global`` is scaled down to norm ``max_norm`` if longer, then the
    clipped updates are averaged with the size weights and added to the global weights. It
    keeps the global weights of the last round (``initial_weights`` first)."""

    def __init__(self, initial_weights: Weights, max_norm: float) -> None:
        self.current = [np.asarray(w, np.float64) for w in initial_weights]
        self.max_norm = validation.positive("max_norm", max_norm)
        self.last_norms: list[float] = []

    def __call__(self, weight_lists: Sequence[Weights], sizes: Sequence[int]) -> Weights:
        _check_weight_lists(weight_lists)
        center = flatten(self.current)
        updates = [flatten(ws) - center for ws in weight_lists]
        self.last_norms = [float(np.linalg.norm(u)) for u in updates]
        clipped = [u * min(1.0, self.max_norm / max(n, 1e-12)) for u, n in zip(updates, self.last_norms)]
        share = np.asarray(sizes, np.float64) / np.sum(sizes)
        new = unflatten(center + sum(s * u for s, u in zip(share, clipped)), weight_lists[0])
        self.current = [np.asarray(w, np.float64) for w in new]
        return new


def numpy_logreg_trainer(clients: Sequence[tuple[np.ndarray, np.ndarray]], epochs: int, batch_size: int,
                         learning_rate: float, seed: int) -> Callable[[Weights, int, int], Weights]:
    """Local training for :func:`run_fedavg` of a logistic regression (weights ``[(d, 1), (1,)]``,
    as ``models.mlp(d, 1, hidden=())``) in numpy: ``epochs`` of mini-batch SGD on the mean
    cross-entropy, shuffled by ``numpy.random.default_rng([seed, k, r])``. The same step as
    :func:`keras_sgd_trainer`, a hundred times faster, for sections that train many federations."""
    data = [validation.training_data(X, y) for X, y in clients]
    epochs = validation.positive_int("epochs", epochs)
    batch_size = validation.positive_int("batch_size", batch_size)
    learning_rate = validation.positive("learning_rate", learning_rate)
    seed = validation.positive_int("seed", seed, minimum=0)

    def train(weights: Weights, k: int, r: int) -> Weights:
        X, y = data[k]
        w, b = np.asarray(weights[0], np.float64).reshape(-1), float(np.asarray(weights[1]).reshape(-1)[0])
        rng = np.random.default_rng([seed, k, r])
        for _ in range(epochs):
            order = rng.permutation(len(y))
            for start in range(0, len(y), batch_size):
                idx = order[start:start + batch_size]
                err = 1 / (1 + np.exp(-(X[idx] @ w + b))) - y[idx]
                w, b = w - learning_rate * X[idx].T @ err / len(idx), b - learning_rate * err.mean()
        return [w.reshape(-1, 1).astype(np.float32), np.array([b], np.float32)]

    return train


# ----------------------------------------------------------------------------- distributed DP

@dataclass
class DistributedDPRun:
    """What :func:`distributed_dp_sgd` ran: the final weights and the numbers the accountant needs."""

    weights: Weights
    steps: int                 #: DP-SGD steps (one secure-aggregation round each)
    sampling_rate: float       #: q = expected_batch / total patients (the total is public)
    noise_std_per_hospital: float   #: each hospital's noise share: sigma * clip / sqrt(n_hospitals)
    bytes_per_hospital: int    #: over the whole run (every step is a protocol round)


def distributed_dp_sgd(initial_weights: Weights, clients: Sequence[tuple[np.ndarray, np.ndarray]], epochs: int,
                       expected_batch: int, noise_multiplier: float, l2_norm_clip: float, learning_rate: float,
                       seed: int, bound: float = 1e4) -> DistributedDPRun:
    """DP-SGD of a logistic regression over all hospitals' patients with the noise *distributed*.

    Every step, each patient of every hospital joins with probability ``q = expected_batch / N``
    (``N`` = all patients, public); each hospital clips its sampled patients' gradients to
    ``l2_norm_clip``, sums them and adds its noise share ``N(0, (sigma C)^2 / n_hospitals)``;
    secure aggregation (:func:`secure_sum`, ``saturate=True``) gives the server only the total,
    whose noise ``N(0, (sigma C)^2)`` is exactly central DP-SGD's. So the ε is central DP-SGD's
    (``dp.poisson_gaussian_epsilon(q, steps, sigma, delta)``) against a server that colludes with
    no hospital; colluding hospitals subtract their shares (see the notebook). Noise shares come
    from ``numpy.random.default_rng([seed, k, step])``: a deployment needs secret randomness.
    """
    data = [validation.training_data(X, y) for X, y in clients]
    n_h = validation.positive_int("n_clients", len(data), minimum=2)
    total = sum(len(y) for _, y in data)
    expected_batch = validation.positive_int("expected_batch", expected_batch)
    if expected_batch > total:
        raise ValueError(f"expected_batch must be <= the number of patients ({total}), got {expected_batch}")
    sigma = validation.non_negative("noise_multiplier", noise_multiplier)
    clip = validation.positive("l2_norm_clip", l2_norm_clip)
    lr = validation.positive("learning_rate", learning_rate)
    seed = validation.positive_int("seed", seed, minimum=0)
    q = expected_batch / total
    steps = max(1, round(validation.positive_int("epochs", epochs) / q))
    w = flatten(initial_weights)
    share_std = sigma * clip / math.sqrt(n_h)
    sent = 0
    for t in range(steps):
        rows = []
        for k, (X, y) in enumerate(data):
            rng = np.random.default_rng([seed, k, t])
            idx = np.flatnonzero(rng.random(len(y)) < q)
            Xb = np.column_stack([X[idx], np.ones(len(idx))])
            err = 1 / (1 + np.exp(-(Xb @ w))) - y[idx]
            grads = Xb * err[:, None]
            grads *= np.minimum(1.0, clip / np.maximum(np.linalg.norm(grads, axis=1), 1e-12))[:, None]
            rows.append(grads.sum(axis=0) + rng.normal(0, share_std, size=w.size))
        result = secure_sum(np.stack(rows), bound, saturate=True)
        sent += result.bytes_per_client
        w = w - lr * result.total / expected_batch
    return DistributedDPRun(unflatten(w, initial_weights), steps, q, share_std, sent)
