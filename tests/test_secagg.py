"""helpers.secagg: Shamir sharing, key agreement and PRG masks, double masking, the "never both"
rule for a late hospital, the joint-view test, and fresh masks in every round."""
import itertools

import numpy as np
import pytest
from scipy import stats

from helpers import federated as fl
from helpers import secagg


# ----------------------------------------------------------------------------- Shamir

def test_shamir_any_threshold_shares_reconstruct_and_fewer_refuse():
    secret = 2 ** 255 + 12345
    shares = secagg.shamir_share(secret, n_shares=5, threshold=3)
    for subset in itertools.combinations(shares, 3):
        assert secagg.shamir_reconstruct(subset, 3) == secret
    with pytest.raises(ValueError, match="threshold=3"):
        secagg.shamir_reconstruct(shares[:2], 3)
    with pytest.raises(ValueError, match="threshold"):
        secagg.shamir_share(1, n_shares=3, threshold=4)
    with pytest.raises(ValueError, match="secret"):
        secagg.shamir_share(-1, 3, 2)


def test_shamir_fewer_than_threshold_shares_are_uniform_whatever_the_secret():
    """Statistical: with p = 11 and t = 3, the pair of shares (1, 2) over 6,050 sharings is uniform
    on the 121 pairs (chi-square p > 0.001) for the secrets 0 and 9, and the two secrets' pair
    distributions do not differ (contingency p > 0.001)."""
    p, counts = 11, {}
    for s in (0, 9):
        pairs = [secagg.shamir_share(s, 3, 3, prime=p)[:2] for _ in range(6050)]
        codes = np.array([a[1] * p + b[1] for a, b in pairs])
        counts[s] = np.bincount(codes, minlength=p * p)
        assert stats.chisquare(counts[s]).pvalue > 1e-3
    assert stats.chi2_contingency(np.stack([counts[0], counts[9]])).pvalue > 1e-3


# ----------------------------------------------------------------------------- key agreement and PRG

def test_both_ends_of_a_pair_derive_the_same_key_and_prg_is_uniform():
    """Statistical: 7,000 residues modulo 7 from one key are uniform (chi-square p > 0.001)."""
    a, b = secagg._private_key(), secagg._private_key()
    ka = secagg.pair_key(a, secagg._public_bytes(b), b"ctx")
    assert ka == secagg.pair_key(b, secagg._public_bytes(a), b"ctx")
    assert ka != secagg.pair_key(b, secagg._public_bytes(a), b"other round")
    r = secagg.prg_residues(ka, 7000, 7)
    assert np.array_equal(r, secagg.prg_residues(ka, 7000, 7))      # a function of the key
    assert stats.chisquare(np.bincount(r, minlength=7)).pvalue > 1e-3
    big = secagg.prg_residues(ka, 5000, fl.PRIME)
    assert big.min() >= 0 and big.max() < fl.PRIME
    assert stats.kstest(big / fl.PRIME, "uniform").pvalue > 1e-3
    with pytest.raises(ValueError, match="key"):
        secagg.prg_residues(b"short", 3, 7)


# ----------------------------------------------------------------------------- the round

def test_secure_sum_is_exact_with_and_without_dropout():
    rng = np.random.default_rng(1)
    updates = rng.uniform(-1, 1, size=(5, 40))
    full = fl.secure_sum(updates, bound=1.0)
    assert np.max(np.abs(full.total - updates.sum(0))) <= 5 * 2.0 ** -25
    dropped = fl.secure_sum(updates, bound=1.0, dropped=[2])
    assert np.max(np.abs(dropped.total - np.delete(updates, 2, 0).sum(0))) <= 4 * 2.0 ** -25
    # a dropout costs the hospitals no extra bytes; the server recomputes one mask per survivor
    assert dropped.bytes_per_client == full.bytes_per_client and dropped.server_prg_expansions == 4
    with pytest.raises(ValueError, match="threshold"):
        fl.secure_sum(updates, bound=1.0, dropped=[0, 1, 2])           # 2 survivors < t = 3
    with pytest.raises(ValueError, match="threshold"):
        secagg.SecAggRound(4, 3, threshold=2)                          # t must exceed n / 2


def test_a_late_hospital_stays_masked_never_both():
    """Hospital 3 is declared dropped, then its vector arrives. The server removes its pairwise masks
    with the reconstructed key, but the self-mask remains: what it reads is uniform (KS p > 0.001)
    and far from the update, and every honest hospital refuses to reveal hospital 3's self-mask
    seed. The single-mask idea (fl.pairwise_masks) gives the same update back exactly."""
    rng = np.random.default_rng(2)
    updates = rng.uniform(-1, 1, size=(4, 3000))
    x = np.stack([fl.encode(u, bound=1.0) for u in updates])
    rnd = secagg.SecAggRound(4, 3000)
    received = {k: rnd.masked_input(k, x[k]) for k in range(3)}
    late = rnd.masked_input(3, x[3])
    out = rnd.unmask(received)
    assert np.max(np.abs(fl.decode(out.total) - updates[:3].sum(0))) < 1e-6
    stripped = np.mod(late + rnd.pairwise_part(3, out.keys[3], out.survivors), fl.PRIME)
    assert stats.kstest(stripped / fl.PRIME, "uniform").pvalue > 1e-3
    assert np.mean(np.abs(fl.decode(stripped) - updates[3]) < 1e-3) < 0.01
    for v in range(3):
        with pytest.raises(ValueError, match="never both"):
            rnd.hospitals[v].reveal(3, "self")
    # the single-mask idea: revealing the dropped hospital's masks unmasks it when it comes late
    masks = fl.pairwise_masks(4, 3000, seed=0)
    revealed = [m for (i, j), m in masks.items() if j == 3]          # the survivors reveal m_i3
    toy_late = fl.mask_update(x[3], 3, masks)                         # x_3 - sum_i m_i3, arriving late
    for m in revealed:
        toy_late = np.mod(toy_late + m, fl.PRIME)
    assert np.max(np.abs(fl.decode(toy_late) - updates[3])) < 1e-6


def test_joint_view_test_fails_in_the_clear_and_passes_with_the_protocol():
    """Statistical: 400 rounds of 3 hospitals over Z_5. The server's view (y_u - PRG(b_u)) matches
    the simulator given the sum (contingency p > 0.001); with hospital 2 sending its value in the
    clear it does not (p < 1e-6), while the single-hospital marginal test cannot tell."""
    p, n, x = 5, 3, np.array([1, 2, 3])
    views = []
    for _ in range(400):
        rnd = secagg.SecAggRound(n, 1, modulus=p)
        received = {k: rnd.masked_input(k, [x[k]]) for k in range(n)}
        out = rnd.unmask(received)
        assert out.total[0] == x.sum() % p
        views.append(out.view(received, p)[:, 0])
    views = np.array(views)
    clear = views.copy()
    clear[:, 2] = x[2]
    sim = secagg.simulate_view(x.sum(), n, p, 400, np.random.default_rng(0))
    assert secagg.joint_view_pvalue(views, sim, p) > 1e-3
    assert secagg.joint_view_pvalue(clear, sim, p) < 1e-6
    assert stats.chisquare(np.bincount(clear[:, 0], minlength=p)).pvalue > 1e-3   # the marginal test passes


def test_masks_are_fresh_in_every_round():
    """Two rounds with the same updates: the difference of a hospital's two masked vectors is
    uniform (KS p > 0.001), not the difference of its updates (0). The single-mask idea with one
    seed reused gives that difference exactly (a two-time pad)."""
    x = np.stack([fl.encode(np.full(3000, 0.25 * k), bound=1.0) for k in range(3)])
    y1, y2 = (secagg.SecAggRound(3, 3000).masked_input(0, x[0]) for _ in range(2))
    assert stats.kstest(np.mod(y1 - y2, fl.PRIME) / fl.PRIME, "uniform").pvalue > 1e-3
    masks = fl.pairwise_masks(3, 3000, seed=7)
    assert np.array_equal(fl.mask_update(x[0], 0, masks), fl.mask_update(x[0], 0, fl.pairwise_masks(3, 3000, seed=7)))


def test_reveal_rejects_unknown_secret_and_round_checks_inputs():
    rnd = secagg.SecAggRound(3, 2)
    with pytest.raises(ValueError, match="which"):
        rnd.hospitals[0].reveal(1, "both")
    with pytest.raises(ValueError, match="residues"):
        rnd.masked_input(0, [1, 2, 3])
    with pytest.raises(ValueError, match="k must"):
        rnd.masked_input(5, [1, 2])
    with pytest.raises(ValueError, match="received"):
        rnd.unmask({0: rnd.masked_input(0, [1, 2])})
