"""Encrypted inference of a linear model with CKKS homomorphic encryption (TenSEAL).

A hospital (the key owner) encrypts a patient's features with its *secret* key and sends the
ciphertext, with a *public* evaluation context (no secret key), to a cloud that holds a
plaintext logistic-regression model. The cloud computes ``x · w + b`` on the ciphertext
(:func:`encrypted_logit`) and returns an encrypted logit that only the hospital can decrypt.

CKKS (Cheon, Kim, Kim & Song 2017) computes on approximate numbers: every result carries a
small error (of order 1e-6 at the default parameters), measured by :func:`inference_report`.

TenSEAL is optional: it has no usable wheel for macOS in the course's lock. :func:`available`
says whether it can be imported, and :data:`INSTALL_HINT` says how to add it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from helpers import validation

INSTALL_HINT = ("TenSEAL is not installed: the homomorphic-encryption cells are skipped. On Apple Silicon "
                "with macOS 14+ run `pip install tenseal==0.3.18` in the course's environment, or run this "
                "notebook on Binder.")
#: The course's CKKS parameters: ring degree 8192 (4096 slots), 200 bits of modulus, scale 2^40.
POLY_MODULUS_DEGREE = 8192
COEFF_MOD_BIT_SIZES = (60, 40, 40, 60)
SCALE_BITS = 40


def available() -> bool:
    """Whether TenSEAL can be imported."""
    try:
        import tenseal  # noqa: F401
    except ImportError:
        return False
    return True


def make_context(poly_modulus_degree: int = POLY_MODULUS_DEGREE,
                 coeff_mod_bit_sizes: Sequence[int] = COEFF_MOD_BIT_SIZES, scale_bits: int = SCALE_BITS,
                 n_threads: int = 1, galois_keys: bool = False) -> Any:
    """A private CKKS context (holds the secret key). ``scale_bits`` must be below every inner
    modulus size and at least 20.

    The key owner only encrypts and decrypts, so by default it holds no Galois keys (tens of MB);
    :func:`public_copy` generates them for the evaluator, which needs them to sum the slots of a
    dot product. ``galois_keys=True`` also lets this context compute dot products itself."""
    import tenseal as ts

    degree = validation.positive_int("poly_modulus_degree", poly_modulus_degree, minimum=1024)
    if degree & (degree - 1) or degree > 32768:
        raise ValueError(f"poly_modulus_degree must be a power of two in [1024, 32768], got {poly_modulus_degree}")
    sizes = [validation.positive_int("coeff_mod_bit_sizes", int(b), minimum=20) for b in coeff_mod_bit_sizes]
    if len(sizes) < 3 or any(b > 60 for b in sizes):
        raise ValueError(f"coeff_mod_bit_sizes must hold at least 3 sizes in [20, 60], got {list(coeff_mod_bit_sizes)}")
    scale_bits = validation.positive_int("scale_bits", scale_bits, minimum=20)
    if scale_bits > min(sizes[1:-1]):
        raise ValueError(f"scale_bits must be <= the inner modulus sizes ({min(sizes[1:-1])}), got {scale_bits}")
    ctx = ts.context(ts.SCHEME_TYPE.CKKS, poly_modulus_degree=degree, coeff_mod_bit_sizes=sizes,
                     n_threads=validation.positive_int("n_threads", n_threads))
    ctx.global_scale = 2.0 ** scale_bits
    if galois_keys:
        ctx.generate_galois_keys()
    return ctx


def public_copy(context: Any) -> Any:
    """A copy of ``context`` without the secret key, with the Galois keys (generated before the
    secret key is dropped, if ``context`` has none) and relinearization keys: what the hospital
    sends to the cloud. It can encrypt and compute, not decrypt."""
    public = context.copy()
    public.make_context_public(generate_galois_keys=not context.has_galois_keys(), generate_relin_keys=False)
    return public


def encrypt(context: Any, x: Any) -> Any:
    """Encrypt one feature vector (1-D) as a CKKS vector."""
    import tenseal as ts

    x = validation.finite_array("x", x, ndim=1)
    return ts.ckks_vector(context, x.tolist())


def encrypted_logit(enc_x: Any, weights: Any, bias: float, *, only_logit: bool = True) -> Any:
    """``x · weights + bias`` computed on the ciphertext ``enc_x``; the result stays encrypted.

    A CKKS ciphertext has 4,096 slots, and TenSEAL's dot product sums them by rotating and
    adding: slot j of the sum holds ``Σ_{i>=j} w_i x_i + b``, the partial sums, and TenSEAL's
    ``decrypt()`` shows only slot 0. Whoever holds the secret key can decode every slot
    (:func:`all_slots`): one answer to the query x = (1, ..., 1) gives every weight as the
    difference of two neighbouring slots. ``only_logit=True`` (the default) multiplies the
    result by the plaintext (1, 0, 0, ...) before it is returned, so the other slots hold only
    noise (about 1e-8); it also drops one modulus level, which makes the answer smaller.
    ``only_logit=False`` returns the raw dot product, to show the leak. (Hiding the model from
    the key holder completely also needs noise flooding of the result: circuit privacy.)
    """
    w = validation.finite_array("weights", weights).reshape(-1)
    if w.size != enc_x.size():
        raise ValueError(f"weights must have one entry per encrypted feature ({enc_x.size()}), got {w.size}")
    result = enc_x.dot(w.tolist()) + float(validation.finite_array("bias", [bias])[0])
    return result * [1.0] if only_logit else result


def all_slots(context: Any, enc: Any) -> np.ndarray:
    """Every slot of a CKKS ciphertext, decrypted and decoded with ``context``'s secret key
    (``decrypt()`` shows only the first ``enc.size()`` of them): what the key holder can read."""
    import tenseal.sealapi as sealapi

    if not context.has_secret_key():
        raise ValueError("context must hold the secret key to decrypt (the clinic's context, not the cloud's)")
    plain = sealapi.Plaintext()
    context.decryptor().data.decrypt(enc.ciphertext()[0], plain)
    return np.asarray(sealapi.CKKSEncoder(context.seal_context().data).decode_double(plain))


def rotation_steps(n_features: int) -> list[int]:
    """The slot rotations a rotate-and-add sum of ``n_features`` slots uses: 1, 2, 4, ... below
    ``n_features`` (5 for 30 features). TenSEAL's ``dot`` uses these; its public context
    nevertheless carries keys for every rotation."""
    n = validation.positive_int("n_features", n_features, minimum=2)
    return [2 ** i for i in range((n - 1).bit_length())]


def galois_key_bytes(context: Any, steps: Sequence[int] | None = None) -> int:
    """Serialized size (SEAL's compressed, seeded format) of the Galois keys for the rotations
    ``steps``, or for every rotation TenSEAL generates when ``steps`` is None. Needs the secret
    key (``ValueError`` otherwise): measured with SEAL's key generator, since TenSEAL's API
    generates all of them or none."""
    import os
    import tempfile

    import tenseal.sealapi as sealapi

    if not context.has_secret_key():
        raise ValueError("context must hold the secret key to generate Galois keys")
    seal = context.seal_context().data
    generator = sealapi.KeyGenerator(seal, context.secret_key().data)
    if steps is None:
        keys = generator.create_galois_keys()
    else:
        steps = [validation.positive_int("steps", int(s)) for s in steps]
        keys = generator.create_galois_keys(seal.key_context_data().galois_tool().get_elts_from_steps(steps))
    handle, path = tempfile.mkstemp()
    os.close(handle)
    try:
        keys.save(path)
        return os.path.getsize(path)
    finally:
        os.remove(path)


def decrypt_scalar(enc: Any) -> float:
    """Decrypt a one-slot result (needs the context with the secret key)."""
    return float(enc.decrypt()[0])


def deserialize(context: Any, data: bytes) -> Any:
    """A CKKS vector from bytes, bound to ``context`` (how a ciphertext crosses the network)."""
    import tenseal as ts

    return ts.ckks_vector_from(context, data)


@dataclass(frozen=True)
class InferenceReport:
    """Encrypted against plaintext inference of a linear model on some patients."""

    encrypted_logits: np.ndarray
    plain_logits: np.ndarray
    max_abs_error: float
    ciphertext_bytes: int          #: one encrypted patient (what the hospital sends)
    result_bytes: int              #: one encrypted logit (what the cloud returns)
    plaintext_bytes: int           #: the same patient as float32
    public_context_bytes: int      #: the evaluation keys sent once (public key, Galois and relinearization keys)
    encrypt_seconds: float         #: per patient
    compute_seconds: float         #: per patient, on the cloud
    decrypt_seconds: float         #: per patient
    plain_seconds: float           #: per patient, numpy

    @property
    def same_decisions(self) -> float:
        """Fraction of patients whose sign of the logit (the diagnosis) is unchanged."""
        return float(np.mean((self.encrypted_logits > 0) == (self.plain_logits > 0)))


def inference_report(context: Any, X: Any, weights: Any, bias: float, cloud: Any = None) -> InferenceReport:
    """Run the whole protocol for every row of ``X``: encrypt (hospital), serialize, compute on a
    public context (cloud: ``public_copy(context)`` unless given), serialize back, decrypt
    (hospital); compare with plaintext logits."""
    X = validation.finite_array("X", X, ndim=2)
    w = validation.finite_array("weights", weights).reshape(-1)
    if X.shape[1] != w.size:
        raise ValueError(f"weights must have one entry per column of X ({X.shape[1]}), got {w.size}")
    cloud = public_copy(context) if cloud is None else cloud
    if cloud.has_secret_key():
        raise ValueError("cloud must be a public context (no secret key): use public_copy(context)")
    public_bytes = len(cloud.serialize())
    enc_s = comp_s = dec_s = 0.0
    out = np.zeros(len(X))
    sent = returned = 0
    for i, x in enumerate(X):
        t0 = time.perf_counter()
        data = encrypt(context, x).serialize()
        t1 = time.perf_counter()
        result = encrypted_logit(deserialize(cloud, data), w, bias).serialize()
        t2 = time.perf_counter()
        out[i] = decrypt_scalar(deserialize(context, result))
        t3 = time.perf_counter()
        enc_s, comp_s, dec_s = enc_s + t1 - t0, comp_s + t2 - t1, dec_s + t3 - t2
        sent, returned = len(data), len(result)
    t0 = time.perf_counter()
    plain = X @ w + bias
    plain_s = (time.perf_counter() - t0) / len(X)
    return InferenceReport(out, plain, float(np.max(np.abs(out - plain))), sent, returned,
                           int(X.shape[1] * 4), public_bytes, enc_s / len(X), comp_s / len(X), dec_s / len(X),
                           plain_s)
