"""helpers.federated: client splits, FedAvg, the exact gradient inversion, and secure aggregation
(fixed point, additive shares, pairwise masks that cancel, dropout, uniformity of the server's view)."""
import numpy as np
import pytest
from scipy import stats

from helpers import federated as fl


# ----------------------------------------------------------------------------- split and FedAvg

def test_dirichlet_split_is_a_partition_with_every_class():
    y = np.repeat([0, 1], [300, 200])
    parts = fl.dirichlet_split(y, 4, alpha=0.5, seed=1, min_per_class=5)
    together = np.sort(np.concatenate(parts))
    assert np.array_equal(together, np.arange(len(y)))
    for p in parts:
        assert np.sum(y[p] == 0) >= 5 and np.sum(y[p] == 1) >= 5
    again = fl.dirichlet_split(y, 4, alpha=0.5, seed=1, min_per_class=5)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))  # seeded


def test_dirichlet_split_skew_grows_as_alpha_shrinks():
    """Statistical: the spread of the clients' positive fractions, averaged over 30 seeds, is
    larger for alpha = 0.3 than for alpha = 100 (near-IID)."""
    y = np.repeat([0, 1], [300, 200])

    def spread(alpha):
        return np.mean([np.std([y[p].mean() for p in fl.dirichlet_split(y, 4, alpha, seed=s, min_per_class=1)])
                        for s in range(30)])
    assert spread(0.3) > 3 * spread(100.0)


def test_split_rejects_bad_arguments():
    with pytest.raises(ValueError, match="n_clients"):
        fl.dirichlet_split([0, 1, 0, 1], 1)
    with pytest.raises(ValueError, match="alpha"):
        fl.dirichlet_split([0, 1, 0, 1], 2, alpha=0)


def test_fedavg_is_the_size_weighted_mean():
    a = [np.array([[1.0, 2.0]]), np.array([0.0])]
    b = [np.array([[3.0, 6.0]]), np.array([4.0])]
    out = fl.fedavg([a, b], [1, 3])
    assert np.allclose(out[0], [[2.5, 5.0]]) and np.allclose(out[1], [3.0])
    with pytest.raises(ValueError, match="same shapes"):
        fl.fedavg([a, [np.zeros((2, 2)), np.zeros(1)]], [1, 1])
    with pytest.raises(ValueError, match="sizes"):
        fl.fedavg([a, b], [1])


def test_flatten_roundtrip():
    w = [np.arange(6, dtype=np.float32).reshape(2, 3), np.array([7.0], np.float32)]
    assert all(np.array_equal(x, y) for x, y in zip(fl.unflatten(fl.flatten(w), w), w))
    with pytest.raises(ValueError, match="vector"):
        fl.unflatten(np.zeros(3), w)


def test_run_fedavg_with_numpy_clients_converges_to_the_pooled_mean():
    """Clients whose local step moves halfway to their mean: FedAvg converges to the pooled mean."""
    rng = np.random.default_rng(0)
    clients = [(rng.normal(k, 1, size=(n, 1)), np.zeros(n)) for k, n in enumerate([10, 30, 60])]
    pooled = np.concatenate([X for X, _ in clients]).mean()

    def local(weights, k, r):
        return [weights[0] + 0.5 * (clients[k][0].mean() - weights[0])]

    w, hist = fl.run_fedavg([np.zeros(1)], clients, 40, local, evaluate=lambda w: float(w[0][0]))
    assert abs(w[0][0] - pooled) < 1e-5 and len(hist.metric) == 40
    with pytest.raises(ValueError, match="n_clients"):
        fl.run_fedavg([np.zeros(1)], clients[:1], 2, local)


# ----------------------------------------------------------------------------- reconstruction

def test_reconstruction_from_a_one_example_gradient_is_exact():
    rng = np.random.default_rng(0)
    x = rng.normal(size=30)
    W, b = rng.normal(size=(30, 1)), rng.normal(size=1)
    p = 1 / (1 + np.exp(-(x @ W + b)))
    dz = p - 1.0  # label 1, cross-entropy
    update_W, update_b = -0.1 * np.outer(x, dz), -0.1 * dz  # an SGD update
    assert np.allclose(fl.reconstruct_from_linear_gradient(update_W, update_b), x, atol=1e-12)
    with pytest.raises(ValueError, match="grad_kernel"):
        fl.reconstruct_from_linear_gradient(np.zeros((30, 2)), np.ones(1))
    with pytest.raises(ValueError, match="grad_bias"):
        fl.reconstruct_from_linear_gradient(np.ones((30, 1)), np.zeros(1))


# ----------------------------------------------------------------------------- fixed point

def test_encode_decode_roundtrip_and_negative_numbers():
    v = np.array([-3.25, 0.0, 1e-3, 7.5])
    r = fl.encode(v, frac_bits=20)
    assert r.dtype == np.int64 and r[0] > fl.PRIME // 2
    assert np.max(np.abs(fl.decode(r, 20) - v)) <= 2.0 ** -21


def test_modulus_too_small_raises_and_min_modulus_is_tight():
    assert fl.min_modulus(3, 1.0, 4) == 2 * 3 * 16 + 1
    fl.check_modulus(3, 1.0, 4, modulus=97)
    with pytest.raises(ValueError, match="modulus must be >= 97"):
        fl.check_modulus(3, 1.0, 4, modulus=96)
    with pytest.raises(ValueError, match="modulus"):
        fl.secure_sum(np.ones((3, 2)), bound=1.0, frac_bits=4, modulus=89)
    # at the minimum modulus the extreme sums still decode
    for sign in (1, -1):
        out = fl.secure_sum(sign * np.ones((3, 2)), bound=1.0, frac_bits=4, modulus=97)
        assert np.allclose(out.total, 3 * sign)


def test_encode_rejects_values_outside_the_bound_or_saturates():
    with pytest.raises(ValueError, match="bound"):
        fl.encode([2.0], bound=1.0)
    assert np.allclose(fl.decode(fl.encode([2.0, -3.0, 0.5], bound=1.0, saturate=True)), [1.0, -1.0, 0.5])
    with pytest.raises(ValueError, match="bound"):
        fl.encode([2.0], saturate=True)
    out = fl.secure_sum(np.array([[5.0], [0.5]]), bound=1.0, saturate=True)
    assert np.allclose(out.total, 1.5)


# ----------------------------------------------------------------------------- sharing and masks

def test_additive_shares_reconstruct_and_single_shares_are_uniform():
    """Statistical: for p = 11 and the secrets 0 and 9, the first share over 11,000 draws is
    uniform (chi-square p > 0.001) and the two secrets' share distributions do not differ."""
    p = 11
    rng = np.random.default_rng(0)
    s0 = fl.additive_shares(np.zeros(11000, np.int64), 3, p, rng)
    s9 = fl.additive_shares(np.full(11000, 9, np.int64), 3, p, rng)
    assert np.all(fl.reconstruct(s0, p) == 0) and np.all(fl.reconstruct(s9, p) == 9)
    for shares in (s0, s9):
        for row in (0, 2):  # a random share and the computed last share
            counts = np.bincount(shares[row], minlength=p)
            assert stats.chisquare(counts).pvalue > 1e-3
    table = np.stack([np.bincount(s0[2], minlength=p), np.bincount(s9[2], minlength=p)])
    assert stats.chi2_contingency(table).pvalue > 1e-3


def test_pairwise_masks_cancel_and_the_server_view_is_uniform():
    """Statistical: client 0's masked value of a fixed secret, over 5,500 mask seeds with p = 11,
    is uniform (chi-square p > 0.001), whatever the secret."""
    p = 11
    for secret in (0, 7):
        seen = np.array([fl.mask_update(np.array([secret]), 0, fl.pairwise_masks(3, 1, p, seed=s), p)[0]
                         for s in range(5500)])
        assert stats.chisquare(np.bincount(seen, minlength=p)).pvalue > 1e-3
    masks = fl.pairwise_masks(4, 5, seed=3)
    x = [fl.encode(np.full(5, k + 0.5)) for k in range(4)]
    total = fl.reconstruct(np.stack([fl.mask_update(x[k], k, masks) for k in range(4)]))
    assert np.allclose(fl.decode(total), 0.5 + 1.5 + 2.5 + 3.5)


def test_secure_sum_is_exact_up_to_fixed_point_and_handles_dropout():
    rng = np.random.default_rng(1)
    updates = rng.uniform(-1, 1, size=(5, 50))
    out = fl.secure_sum(updates, bound=1.0, frac_bits=24)
    assert np.max(np.abs(out.total - updates.sum(axis=0))) <= 5 * 2.0 ** -25
    assert out.masked.shape == (5, 50)
    # key, 4 x 2 encrypted shares, the masked vector, 4 shares at unmasking
    assert out.bytes_per_client == 32 + 4 * (2 * 66 + 28) + 8 * 50 + 4 * 66
    dropped = fl.secure_sum(updates, bound=1.0, frac_bits=24, dropped=[2])
    assert dropped.survivors == [0, 1, 3, 4]
    assert np.max(np.abs(dropped.total - np.delete(updates, 2, axis=0).sum(axis=0))) <= 4 * 2.0 ** -25
    with pytest.raises(ValueError, match="n_clients"):
        fl.secure_sum(updates[:1], bound=1.0)
    with pytest.raises(ValueError, match="dropped"):
        fl.secure_sum(updates, bound=1.0, dropped=[0, 1, 2, 3])
    with pytest.raises(ValueError, match="shape"):
        fl.mask_update(np.zeros(3, np.int64), 0, fl.pairwise_masks(2, 4, seed=0))


def test_a_masked_vector_alone_says_nothing_about_its_update():
    """Statistical: the masked vectors of two very different updates are both indistinguishable
    from uniform residues (Kolmogorov-Smirnov on the residues / p, 2,000 coordinates, p > 0.001)."""
    updates = np.stack([np.zeros(2000), np.full(2000, 0.9), np.full(2000, -0.9)])
    out = fl.secure_sum(updates, bound=1.0)
    for row in out.masked[:2]:
        assert stats.kstest(row / fl.PRIME, "uniform").pvalue > 1e-3


def test_secure_aggregator_equals_fedavg():
    rng = np.random.default_rng(2)
    lists = [[rng.normal(size=(3, 2)).astype(np.float32), rng.normal(size=2).astype(np.float32)] for _ in range(3)]
    agg = fl.SecureAggregator(bound=1000.0)
    secure, plain = agg(lists, [10, 20, 30]), fl.fedavg(lists, [10, 20, 30])
    assert max(np.max(np.abs(a - b)) for a, b in zip(secure, plain)) < 1e-6
    assert agg.last_bytes_per_client == 32 + 2 * (2 * 66 + 28) + 8 * (6 + 2 + 1) + 2 * 66
    equal = fl.SecureAggregator(bound=1000.0, weighted=False)(lists, [10, 20, 30])
    assert max(np.max(np.abs(a - b)) for a, b in zip(equal, fl.fedavg(lists, [1, 1, 1]))) < 1e-6


def test_dp_fedavg_epsilon_matches_the_course_accountant_for_one_client():
    from helpers import dp

    eps = fl.dp_fedavg_epsilons([100, 200], 10, [dp.dp_sgd_steps(100, 10, 5), dp.dp_sgd_steps(200, 10, 5)],
                                1.1, 1e-5)
    assert eps[0] == pytest.approx(dp.dp_sgd_epsilon(100, 10, 5, 1.1, 1e-5), rel=1e-9)
    assert eps[1] == pytest.approx(dp.dp_sgd_epsilon(200, 10, 5, 1.1, 1e-5), rel=1e-9)
    with pytest.raises(ValueError, match="steps"):
        fl.dp_fedavg_epsilons([100, 200], 10, [5], 1.1, 1e-5)
    with pytest.raises(ValueError, match="batch_size"):
        fl.dp_fedavg_epsilons([5, 200], 10, [5, 5], 1.1, 1e-5)


def test_dp_sgd_trainer_counts_its_steps_and_is_seeded():
    """Local Poisson DP-SGD in two tiny hospitals for 2 rounds: the step counts are what the
    accountant needs (rounds x num_steps per client), and the same seed gives the same model."""
    import helpers
    from helpers import dp_training, models

    helpers.setup(seed=0, verbose=False, tensorflow=True)
    rng = np.random.default_rng(0)
    clients = [(rng.normal(size=(n, 5)).astype(np.float32), rng.integers(0, 2, n)) for n in (20, 40)]

    def run():
        trainer = fl.DPSGDTrainer(lambda: models.mlp(5, 1, hidden=()), clients, epochs=1, batch_size=5,
                                  noise_multiplier=1.0, seed=3)
        w0 = models.mlp(5, 1, hidden=()).get_weights()
        w, _ = fl.run_fedavg(w0, clients, 2, trainer, aggregate=fl.SecureAggregator(100.0, weighted=False))
        return trainer, w, w0

    trainer, w, w0 = run()
    assert trainer.steps == [2 * dp_training.num_steps(20, 5, 1), 2 * dp_training.num_steps(40, 5, 1)]
    assert not np.allclose(fl.flatten(w), fl.flatten(w0))
    assert np.allclose(fl.flatten(run()[1]), fl.flatten(w))
    with pytest.raises(ValueError, match="batch_size"):
        fl.DPSGDTrainer(lambda: models.mlp(5, 1, hidden=()), clients, epochs=1, batch_size=30, noise_multiplier=1.0)


# ----------------------------------------------------------------------------- Byzantine hospitals

def test_coordinate_median_resists_one_byzantine_client_and_fedavg_does_not():
    honest = [[np.full((2, 1), v, np.float32), np.array([v], np.float32)] for v in (0.9, 1.0, 1.1)]
    attacker = [np.full((2, 1), 1000.0, np.float32), np.array([-1000.0], np.float32)]
    lists = honest + [attacker]
    med = fl.coordinate_median(lists, [1, 1, 1, 1])
    assert all(np.all((w >= 0.9) & (w <= 1.1)) for w in med)
    assert np.all(fl.fedavg(lists, [1, 1, 1, 1])[0] > 200)


def test_norm_bounded_mean_clips_each_update():
    w0 = [np.zeros((2, 1), np.float32), np.zeros(1, np.float32)]
    agg = fl.NormBoundedMean(w0, max_norm=1.0)
    small = [np.full((2, 1), 0.1, np.float32), np.array([0.1], np.float32)]
    big = [np.full((2, 1), 100.0, np.float32), np.array([0.0], np.float32)]
    out = fl.flatten(agg([small, big], [1, 1]))
    assert agg.last_norms[1] == pytest.approx(100 * np.sqrt(2), rel=1e-6)
    assert np.linalg.norm(out) <= 0.5 * (1.0 + np.linalg.norm(fl.flatten(small))) + 1e-6
    assert np.allclose(fl.flatten(agg.current), out)
    with pytest.raises(ValueError, match="max_norm"):
        fl.NormBoundedMean(w0, 0)


def test_poisoned_trainer_reverses_and_boosts_only_the_attacker():
    def local(weights, k, r):
        return [w + 1.0 for w in weights]
    train = fl.poisoned(local, attacker=1, scale=-10)
    g = [np.zeros(3, np.float32)]
    assert np.allclose(train(g, 0, 0)[0], 1.0) and np.allclose(train(g, 1, 0)[0], -10.0)


def test_numpy_logreg_trainer_is_seeded_and_learns():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = (X[:, 0] > 0).astype(int)
    train = fl.numpy_logreg_trainer([(X, y)], epochs=5, batch_size=16, learning_rate=0.5, seed=1)
    w0 = [np.zeros((3, 1), np.float32), np.zeros(1, np.float32)]
    w = train(w0, 0, 0)
    assert np.allclose(w[0], train(w0, 0, 0)[0])
    assert np.mean(((X @ w[0][:, 0] + w[1][0]) > 0) == y) > 0.9


def test_distributed_dp_sgd_runs_central_dp_sgd_with_noise_shares():
    """The hospitals' shares add up to central DP-SGD's noise (std sigma * C); q uses all patients;
    one secure-aggregation round per step; without noise it learns a separable problem."""
    rng = np.random.default_rng(0)
    clients = []
    for n in (40, 60, 100):
        X = rng.normal(size=(n, 3))
        clients.append((X, (X[:, 0] > 0).astype(int)))
    w0 = [np.zeros((3, 1), np.float32), np.zeros(1, np.float32)]
    run = fl.distributed_dp_sgd(w0, clients, epochs=2, expected_batch=10, noise_multiplier=2.0, l2_norm_clip=1.0,
                                learning_rate=0.5, seed=0)
    assert run.sampling_rate == pytest.approx(10 / 200) and run.steps == 40
    assert run.noise_std_per_hospital * np.sqrt(3) == pytest.approx(2.0)
    assert run.bytes_per_hospital > 40 * 8 * 4
    clean = fl.distributed_dp_sgd(w0, clients, 2, 10, 0.0, 1.0, 0.5, seed=0)
    X = np.concatenate([c[0] for c in clients])
    y = np.concatenate([c[1] for c in clients])
    assert np.mean(((X @ clean.weights[0][:, 0] + clean.weights[1][0]) > 0) == y) > 0.9
    with pytest.raises(ValueError, match="expected_batch"):
        fl.distributed_dp_sgd(w0, clients, 1, 500, 1.0, 1.0, 0.5, seed=0)
