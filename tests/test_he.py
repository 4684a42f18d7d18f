"""helpers.he: CKKS encrypted linear inference with TenSEAL (skipped where TenSEAL is missing)."""
import numpy as np
import pytest

from helpers import he

needs_tenseal = pytest.mark.skipif(not he.available(), reason="TenSEAL is not installed (macOS: not in the lock)")


@pytest.fixture(scope="module")
def context():
    return he.make_context()


@pytest.fixture(scope="module")
def cloud(context):
    return he.public_copy(context)


@needs_tenseal
def test_encrypted_logit_matches_plaintext_within_ckks_error(context, cloud):
    """Statistical: over 20 random patients and models (30 features, |x|, |w| ~ N(0, 1)), the
    CKKS error stays below 1e-4 (typical errors are about 1e-6 at scale 2^40)."""
    rng = np.random.default_rng(0)
    errors = []
    for _ in range(20):
        x, w, b = rng.normal(size=30), rng.normal(size=30), rng.normal()
        enc = he.encrypted_logit(he.deserialize(cloud, he.encrypt(context, x).serialize()), w, b)
        errors.append(abs(he.decrypt_scalar(he.deserialize(context, enc.serialize())) - (x @ w + b)))
    assert max(errors) < 1e-4 and np.median(errors) > 0  # approximate, never exactly equal


@needs_tenseal
def test_public_context_cannot_decrypt(context, cloud):
    assert not context.has_galois_keys() and cloud.has_galois_keys() and not cloud.has_secret_key()
    enc = he.encrypted_logit(he.deserialize(cloud, he.encrypt(context, np.ones(4)).serialize()), np.ones(4), 0.0)
    with pytest.raises(ValueError, match="secret"):
        enc.decrypt()
    assert abs(he.decrypt_scalar(he.deserialize(context, enc.serialize())) - 4.0) < 1e-4


@needs_tenseal
def test_inference_report(context, cloud):
    rng = np.random.default_rng(1)
    X, w = rng.normal(size=(5, 30)), rng.normal(size=30)
    rep = he.inference_report(context, X, w, 0.3, cloud=cloud)
    assert rep.max_abs_error < 1e-4 and rep.same_decisions == 1.0
    assert rep.ciphertext_bytes > 100 * rep.plaintext_bytes and rep.public_context_bytes > rep.ciphertext_bytes
    assert np.allclose(rep.plain_logits, X @ w + 0.3)


@needs_tenseal
def test_bad_input_raises(context):
    with pytest.raises(ValueError, match="weights"):
        he.encrypted_logit(he.encrypt(context, np.ones(4)), np.ones(5), 0.0)
    with pytest.raises(ValueError, match="cloud"):
        he.inference_report(context, np.ones((2, 4)), np.ones(4), 0.0, cloud=context)
    with pytest.raises(ValueError, match="weights"):
        he.inference_report(context, np.ones((2, 4)), np.ones(3), 0.0)
    with pytest.raises(ValueError, match="poly_modulus_degree"):
        he.make_context(poly_modulus_degree=3000)
    with pytest.raises(ValueError, match="scale_bits"):
        he.make_context(scale_bits=50)
    with pytest.raises(ValueError, match="x"):
        he.encrypt(context, np.ones((2, 2)))


def test_available_says_whether_tenseal_imports(monkeypatch):
    import importlib.util

    assert he.available() == (importlib.util.find_spec("tenseal") is not None)
    monkeypatch.setitem(__import__("sys").modules, "tenseal", None)  # import tenseal now raises ImportError
    assert he.available() is False
    assert "pip install tenseal==0.3.18" in he.INSTALL_HINT and "Binder" in he.INSTALL_HINT
