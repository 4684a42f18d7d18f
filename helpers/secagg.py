"""Secure aggregation in outline, as Bonawitz et al. (2017) specify it, for an honest-but-curious server.

One :class:`SecAggRound` is one aggregation among ``n`` hospitals, with fresh secrets:

0. **Advertise keys.** Every hospital ``u`` draws an X25519 key pair ``(s_u, S_u)`` from the
   operating system's randomness and publishes ``S_u`` through the server.
1. **Share keys.** It draws a self-mask seed ``b_u`` (32 random bytes) and sends every other
   hospital one *t-of-n Shamir share* (:func:`shamir_share`) of ``s_u`` and one of ``b_u``
   (encrypted and relayed by the server in the real protocol).
2. **Masked input.** Every pair ``u, v`` derives the same key from ``X25519(s_u, S_v)`` with
   HKDF-SHA256 (bound to the round and the pair) and expands it with ChaCha20
   (:func:`prg_residues`) into a mask ``m_uv`` over the fixed-point ring; ``u`` sends
   ``y_u = x_u + PRG(b_u) + sum_{v > u} m_uv - sum_{v < u} m_uv  (mod p)``: **double masking**.
3. **Unmasking.** The server names the hospitals whose ``y_u`` arrived (the survivors) and the
   others (dropped). Each survivor returns, for every other hospital, *either* its share of
   ``b_u`` (``u`` survived: the server removes ``PRG(b_u)``) *or* its share of ``s_u`` (``u``
   dropped: the server recomputes and removes ``u``'s pairwise masks), **never both** for the
   same ``u`` (:meth:`Hospital.reveal` refuses). With ``t`` shares the server reconstructs
   the secret; the pairwise masks of survivors cancel in the sum.

Why the rule matters: a hospital that is only *late* (its ``y_u`` arrives after it was declared
dropped) has had its pairwise masks removed, but its self-mask still hides its update; to remove
it the server would need ``b_u``, which honest hospitals refuse to reveal once they revealed ``s_u``.

What is simulated: the channels (shares are handed over directly; their bytes are counted as if
encrypted with a 12-byte nonce and a 16-byte tag), the signatures of the malicious-server version,
and the server's consistency checks. The security argument holds against an honest-but-curious
server colluding with fewer than ``t`` hospitals, and needs ``t > n / 2`` so that the server cannot
obtain both secrets of one hospital by asking two disjoint sets of hospitals.
"""
from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from helpers import validation

#: The Mersenne prime 2^521 - 1: larger than every 256-bit secret that is shared.
SHAMIR_PRIME = 2 ** 521 - 1
#: Bytes of one Shamir share's value modulo :data:`SHAMIR_PRIME` (the x-coordinate is the recipient's index).
SHARE_BYTES = 66
#: Bytes of an X25519 public key.
PUBLIC_KEY_BYTES = 32
#: Bytes an authenticated encryption adds to one message (12-byte nonce, 16-byte tag).
ENCRYPTION_OVERHEAD = 28


# ----------------------------------------------------------------------------- Shamir secret sharing

def shamir_share(secret: int, n_shares: int, threshold: int, prime: int = SHAMIR_PRIME) -> list[tuple[int, int]]:
    """``n_shares`` points ``(i, f(i))``, ``i = 1..n_shares``, of a random polynomial ``f`` of degree
    ``threshold - 1`` over the field of ``prime`` elements with ``f(0) = secret``.

    Any ``threshold`` shares give the secret back (:func:`shamir_reconstruct`); any
    ``threshold - 1`` are uniformly random whatever the secret (Shamir, 1979). The coefficients
    come from the operating system's randomness (:mod:`secrets`)."""
    n_shares = validation.positive_int("n_shares", n_shares, minimum=1)
    threshold = validation.positive_int("threshold", threshold, minimum=1)
    if threshold > n_shares:
        raise ValueError(f"threshold must be in [1, n_shares={n_shares}], got {threshold}")
    prime = validation.positive_int("prime", prime, minimum=3)
    if n_shares >= prime:
        raise ValueError(f"n_shares must be < prime ({prime}): each share needs its own nonzero point")
    if isinstance(secret, bool) or not isinstance(secret, (int, np.integer)) or not 0 <= secret < prime:
        raise ValueError(f"secret must be an integer in [0, prime) = [0, {prime}), got {secret!r}")
    coefficients = [int(secret)] + [secrets.randbelow(prime) for _ in range(threshold - 1)]
    shares = []
    for i in range(1, n_shares + 1):
        value = 0
        for c in reversed(coefficients):  # Horner's rule
            value = (value * i + c) % prime
        shares.append((i, value))
    return shares


def shamir_reconstruct(shares: Sequence[tuple[int, int]], threshold: int, prime: int = SHAMIR_PRIME) -> int:
    """``f(0)`` by Lagrange interpolation from ``threshold`` shares with distinct points (the first
    ``threshold`` given are used). Fewer shares raise ``ValueError``: they determine nothing."""
    threshold = validation.positive_int("threshold", threshold, minimum=1)
    prime = validation.positive_int("prime", prime, minimum=3)
    points = {}
    for i, y in shares:
        points.setdefault(int(i) % prime, int(y) % prime)
    if len(points) < threshold:
        raise ValueError(f"shares must hold at least threshold={threshold} distinct points, got {len(points)}")
    if 0 in points:
        raise ValueError("shares must not include the point 0 (it is the secret itself)")
    xs = list(points)[:threshold]
    secret = 0
    for i in xs:
        num, den = 1, 1
        for j in xs:
            if j != i:
                num, den = num * (-j) % prime, den * (i - j) % prime
        secret = (secret + points[i] * num * pow(den, -1, prime)) % prime
    return secret


# ----------------------------------------------------------------------------- key agreement and PRG

def _private_key() -> Any:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    return X25519PrivateKey.generate()


def _raw_private(key: Any) -> int:
    from cryptography.hazmat.primitives import serialization

    raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                            serialization.NoEncryption())
    return int.from_bytes(raw, "big")


def _private_from_int(value: int) -> Any:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    return X25519PrivateKey.from_private_bytes(int(value).to_bytes(32, "big"))


def _public_bytes(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def pair_key(private: Any, peer_public: bytes, context: bytes) -> bytes:
    """The 32-byte key hospitals ``u`` and ``v`` both derive: HKDF-SHA256 of the X25519 shared
    secret of ``u``'s private key and ``v``'s public key, bound to ``context`` (round and pair)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    shared = private.exchange(X25519PublicKey.from_public_bytes(peer_public))
    return HKDF(hashes.SHA256(), 32, salt=None, info=b"secagg mask " + context).derive(shared)


def prg_residues(key: bytes, dim: int, modulus: int) -> np.ndarray:
    """``dim`` residues uniform in ``[0, modulus)`` expanded from a 32-byte ``key`` with ChaCha20.

    The keystream is read as 64-bit words; words at or above the largest multiple of ``modulus``
    below 2^64 are rejected, so the residues are exactly uniform if the keystream is. The nonce
    is fixed (zero): every key is used for one mask only."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

    if not isinstance(key, (bytes, bytearray)) or len(key) != 32:
        raise ValueError(f"key must be 32 bytes, got {type(key).__name__} of length {len(key) if hasattr(key, '__len__') else '?'}")
    dim = validation.positive_int("dim", dim)
    modulus = validation.positive_int("modulus", modulus, minimum=2)
    if modulus > 2 ** 62:
        raise ValueError(f"modulus must be at most 2^62, got {modulus}")
    limit = (2 ** 64 // modulus) * modulus
    stream = Cipher(algorithms.ChaCha20(bytes(key), b"\0" * 16), mode=None).encryptor()
    out = np.empty(0, dtype=np.uint64)
    while out.size < dim:
        words = np.frombuffer(stream.update(b"\0" * 8 * (dim - out.size + 8)), dtype="<u8")
        out = np.concatenate([out, words[words < np.uint64(limit)] if limit < 2 ** 64 else words])
    return (out[:dim] % np.uint64(modulus)).astype(np.int64)


# ----------------------------------------------------------------------------- the round

class Hospital:
    """One client of a :class:`SecAggRound`: its secrets for this round and the shares it holds."""

    def __init__(self, index: int, n: int, threshold: int, round_id: bytes) -> None:
        self.index, self.n, self.threshold, self.round_id = index, n, threshold, round_id
        self._key = _private_key()                        # s_u: pairwise masks
        self._self_seed = os.urandom(32)                  # b_u: the self-mask
        self.public_key = _public_bytes(self._key)        # S_u, published
        self.held: dict[int, dict[str, tuple[int, int]]] = {}   # shares of the others' secrets
        self.revealed: dict[int, str] = {}                # which secret of u this hospital revealed

    def shares_out(self) -> dict[int, dict[str, tuple[int, int]]]:
        """Step 1: one Shamir share of ``s_u`` and one of ``b_u`` for every hospital (itself included)."""
        key = shamir_share(_raw_private(self._key), self.n, self.threshold)
        seed = shamir_share(int.from_bytes(self._self_seed, "big"), self.n, self.threshold)
        return {v: {"key": key[v], "self": seed[v]} for v in range(self.n)}

    def masked_input(self, residues: np.ndarray, publics: Sequence[bytes], modulus: int) -> np.ndarray:
        """Step 2: ``y_u = x_u + PRG(b_u) + sum_{v>u} m_uv - sum_{v<u} m_uv (mod modulus)``."""
        y = np.mod(residues + prg_residues(self._self_seed, residues.size, modulus), modulus)
        for v, public in enumerate(publics):
            if v == self.index:
                continue
            lo, hi = min(self.index, v), max(self.index, v)
            m = prg_residues(pair_key(self._key, public, self.round_id + bytes([lo, hi])), residues.size, modulus)
            y = np.mod(y + m, modulus) if self.index < v else np.mod(y - m, modulus)
        return y

    def reveal(self, of: int, which: str) -> tuple[int, int]:
        """Step 3: this hospital's share of hospital ``of``'s self-mask seed (``which="self"``) or key
        (``which="key"``). Refuses (``ValueError``) to reveal the second secret of the same hospital:
        the "never both" rule that keeps a late hospital masked."""
        if which not in ("self", "key"):
            raise ValueError(f"which must be 'self' or 'key', got {which!r}")
        done = self.revealed.get(of)
        if done is not None and done != which:
            raise ValueError(f"hospital {self.index} refuses: it already revealed its share of hospital {of}'s "
                             f"{'self-mask seed' if done == 'self' else 'key'}; never both")
        self.revealed[of] = which
        return self.held[of][which]


@dataclass
class Unmasked:
    """What the server obtains at the end of a round."""

    total: np.ndarray              #: the sum of the survivors' residues (mod the modulus)
    survivors: list[int]
    dropped: list[int]
    keys: dict[int, int]           #: reconstructed private keys of the dropped hospitals
    self_masks: dict[int, np.ndarray]   #: ``PRG(b_u)`` of every survivor, reconstructed and removed

    def view(self, received: dict[int, np.ndarray], modulus: int) -> np.ndarray:
        """The server's whole view of the survivors' inputs, with the self-masks it learned
        removed: ``y_u - PRG(b_u)``, one row per survivor. These rows are still hidden by the
        pairwise masks; a correct protocol makes them uniform given their sum."""
        return np.stack([np.mod(np.asarray(received[u], np.int64) - self.self_masks[u], modulus)
                         for u in self.survivors])


class SecAggRound:
    """One round of secure aggregation among ``n`` hospitals with threshold ``threshold``
    (default ``n // 2 + 1``): fresh keys and seeds (steps 0 and 1 run in the constructor), then
    :meth:`masked_input` per hospital (step 2) and :meth:`unmask` at the server (step 3).

    ``bytes_sent`` counts what one hospital sends in each step (see :meth:`bytes_per_hospital`);
    ``prg_expansions`` counts the masks the server had to recompute for dropped hospitals."""

    def __init__(self, n: int, dim: int, threshold: int | None = None, modulus: int = 2 ** 61 - 1) -> None:
        self.n = validation.positive_int("n", n, minimum=2)
        self.dim = validation.positive_int("dim", dim)
        threshold = self.n // 2 + 1 if threshold is None else threshold
        self.threshold = validation.positive_int("threshold", threshold, minimum=1)
        if not self.n / 2 < self.threshold <= self.n:
            raise ValueError(f"threshold must be in ({self.n / 2:g}, {self.n}] (more than half the hospitals, so "
                             f"no two disjoint groups can each reconstruct a secret), got {threshold}")
        self.modulus = validation.positive_int("modulus", modulus, minimum=2)
        self.round_id = os.urandom(16)                    # fresh per round: no mask is ever reused
        self.hospitals = [Hospital(u, self.n, self.threshold, self.round_id) for u in range(self.n)]
        self.publics = [h.public_key for h in self.hospitals]
        for h in self.hospitals:
            for v, pair in h.shares_out().items():
                self.hospitals[v].held[h.index] = pair
        self.prg_expansions = 0

    def masked_input(self, k: int, residues: Any) -> np.ndarray:
        """Hospital ``k``'s masked vector for its encoded update ``residues`` (integers in [0, modulus))."""
        if not 0 <= k < self.n:
            raise ValueError(f"k must be a hospital index in [0, {self.n}), got {k}")
        r = np.asarray(residues, dtype=np.int64).reshape(-1)
        if r.size != self.dim or np.any(r < 0) or np.any(r >= self.modulus):
            raise ValueError(f"residues must be {self.dim} integers in [0, {self.modulus}), got shape {r.shape}")
        return self.hospitals[k].masked_input(r, self.publics, self.modulus)

    def _reconstruct(self, of: int, which: str, helpers_: Sequence[int]) -> int:
        shares = [self.hospitals[v].reveal(of, which) for v in helpers_]
        return shamir_reconstruct(shares, self.threshold)

    def unmask(self, received: dict[int, np.ndarray]) -> Unmasked:
        """Step 3 at the server: the hospitals in ``received`` survived, the others dropped. Raises
        ``ValueError`` if fewer than ``threshold`` survived (no secret can be reconstructed)."""
        survivors = sorted(int(k) for k in received)
        dropped = [k for k in range(self.n) if k not in survivors]
        if len(survivors) < self.threshold:
            raise ValueError(f"received must hold at least threshold={self.threshold} hospitals' inputs, "
                             f"got {len(survivors)}")
        total = np.zeros(self.dim, dtype=np.int64)
        for k in survivors:
            total = np.mod(total + np.asarray(received[k], dtype=np.int64), self.modulus)
        self_masks = {}
        for u in survivors:                        # remove each survivor's self-mask
            seed = self._reconstruct(u, "self", survivors).to_bytes(32, "big")
            self_masks[u] = prg_residues(seed, self.dim, self.modulus)
            total = np.mod(total - self_masks[u], self.modulus)
        keys = {}
        for u in dropped:                          # remove the masks survivors shared with dropped u
            keys[u] = self._reconstruct(u, "key", survivors)
            total = np.mod(total + self.pairwise_part(u, keys[u], survivors), self.modulus)  # survivors hold the opposite
        return Unmasked(total, survivors, dropped, keys, self_masks)

    def pairwise_part(self, u: int, private_key: int, others: Sequence[int]) -> np.ndarray:
        """``sum_{v>u} m_uv - sum_{v<u} m_uv`` over ``others``, computed by whoever holds ``u``'s private
        key (the server, after reconstructing a dropped hospital's key)."""
        key = _private_from_int(private_key)
        part = np.zeros(self.dim, dtype=np.int64)
        for v in others:
            if v == u:
                continue
            lo, hi = min(u, v), max(u, v)
            m = prg_residues(pair_key(key, self.publics[v], self.round_id + bytes([lo, hi])), self.dim, self.modulus)
            self.prg_expansions += 1
            part = np.mod(part + m, self.modulus) if u < v else np.mod(part - m, self.modulus)
        return part

    def bytes_per_hospital(self, residue_bytes: int = 8) -> dict[str, int]:
        """Bytes one surviving hospital sends per step: its public key, two encrypted shares for
        each other hospital, its masked vector, and one share per other hospital at unmasking (the
        same with or without dropouts: a dropout changes *which* share is sent)."""
        others = self.n - 1
        return {"advertise keys": PUBLIC_KEY_BYTES,
                "share keys": others * (2 * SHARE_BYTES + ENCRYPTION_OVERHEAD),
                "masked input": residue_bytes * self.dim,
                "unmasking": others * SHARE_BYTES}


def simulate_view(total: Any, n: int, modulus: int, draws: int, rng: Any = None) -> np.ndarray:
    """What the server's view of one coordinate *should* look like given only the sum: ``draws``
    tuples ``(y_0, ..., y_{n-1})`` with the first ``n - 1`` uniform and the last making the sum
    ``total`` (the simulator of the security proof). Shape ``(draws, n)``."""
    n = validation.positive_int("n", n, minimum=2)
    draws = validation.positive_int("draws", draws)
    rng = validation.rng_from(rng)
    head = rng.integers(0, modulus, size=(draws, n - 1), dtype=np.int64)
    last = np.mod(int(total) - head.sum(axis=1), modulus)
    return np.column_stack([head, last])


def joint_view_pvalue(real: Any, simulated: Any, modulus: int) -> float:
    """Chi-square test (contingency table, real against simulated) of the *joint* distribution
    of the server's view tuples ``(y_0, ..., y_{n-1})`` of one coordinate. A small p-value says
    the real view is not what the sum alone would give: something leaked."""
    from scipy import stats

    real, simulated = np.asarray(real, np.int64), np.asarray(simulated, np.int64)
    if real.ndim != 2 or real.shape[1] != simulated.shape[1]:
        raise ValueError(f"real and simulated must be (draws, n) arrays with the same n, got {real.shape} "
                         f"and {simulated.shape}")
    weights = modulus ** np.arange(real.shape[1], dtype=np.int64)
    codes_r, codes_s = real @ weights, simulated @ weights
    cells = np.union1d(codes_r, codes_s)
    table = np.stack([np.searchsorted(cells, c)[:, None] == np.arange(cells.size) for c in (codes_r, codes_s)])
    return float(stats.chi2_contingency(table.sum(axis=1)).pvalue)


def secure_sum_residues(residues: Any, modulus: int, dropped: Sequence[int] = (), threshold: int | None = None
                        ) -> tuple[np.ndarray, dict[int, np.ndarray], SecAggRound, float]:
    """Run one fresh :class:`SecAggRound` on the rows of ``residues`` (one per hospital); hospitals
    in ``dropped`` send nothing. Returns the unmasked sum, the masked vectors the server received,
    the round and the seconds it took (all hospitals simulated serially)."""
    r = np.asarray(residues, dtype=np.int64)
    start = time.perf_counter()
    rnd = SecAggRound(r.shape[0], r.shape[1], threshold, modulus)
    received = {k: rnd.masked_input(k, r[k]) for k in range(r.shape[0]) if k not in set(dropped)}
    out = rnd.unmask(received)
    return out.total, received, rnd, time.perf_counter() - start
