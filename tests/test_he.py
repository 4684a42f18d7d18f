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


@needs_tenseal
def test_one_raw_answer_leaks_every_weight_and_the_masked_answer_only_the_logit(context, cloud):
    """The rotate-and-add dot product leaves partial sums in the other slots: decoding every slot of
    one answer to x = 1 gives all weights; with only_logit (the default) the other slots are noise."""
    rng = np.random.default_rng(2)
    w, b = rng.normal(size=30), 0.3
    query = he.deserialize(cloud, he.encrypt(context, np.ones(30)).serialize())
    raw = he.deserialize(context, he.encrypted_logit(query, w, b, only_logit=False).serialize())
    slots = he.all_slots(context, raw)
    assert slots.size == he.POLY_MODULUS_DEGREE // 2
    stolen = slots[:30] - np.append(slots[1:30], b)   # w_j = s_j - s_{j+1}, and s_30 = b
    assert np.max(np.abs(stolen - w)) < 1e-4
    masked = he.encrypted_logit(query, w, b)
    slots = he.all_slots(context, he.deserialize(context, masked.serialize()))
    assert abs(slots[0] - (w.sum() + b)) < 1e-4 and np.max(np.abs(slots[1:])) < 1e-6
    assert len(masked.serialize()) < len(he.encrypted_logit(query, w, b, only_logit=False).serialize())


@needs_tenseal
def test_all_slots_needs_the_secret_key(context, cloud):
    enc = he.encrypt(context, np.ones(3))
    with pytest.raises(ValueError, match="secret key"):
        he.all_slots(cloud, he.deserialize(cloud, enc.serialize()))
    assert np.allclose(he.all_slots(context, enc)[:3], 1.0, atol=1e-4)


@needs_tenseal
def test_only_the_needed_rotations_make_much_smaller_galois_keys(context, cloud):
    assert he.rotation_steps(30) == [1, 2, 4, 8, 16] and he.rotation_steps(2) == [1] and he.rotation_steps(33) == [1, 2, 4, 8, 16, 32]
    five, every = he.galois_key_bytes(context, he.rotation_steps(30)), he.galois_key_bytes(context)
    assert 0 < five < every / 3
    with pytest.raises(ValueError, match="secret key"):
        he.galois_key_bytes(cloud)
    with pytest.raises(ValueError, match="n_features"):
        he.rotation_steps(1)
