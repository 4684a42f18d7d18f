"""helpers.stealing: a logistic API, equation solving, learning-based extraction."""
import numpy as np
import pytest

from helpers import stealing


def _victim(d=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(0, 0.8, d), 0.3


def test_equation_solving_is_exact_with_d_plus_one_queries():
    w, b = _victim()
    calls = []
    api = stealing.logistic_api(w, b)

    def counting(X):
        calls.append(len(X))
        return api(X)

    w_hat, b_hat = stealing.solve_logistic(counting, len(w), rng=1)
    assert sum(calls) == len(w) + 1
    np.testing.assert_allclose(w_hat, w, atol=1e-9)
    assert b_hat == pytest.approx(b, abs=1e-9)


def test_rounding_costs_precision_and_more_queries_recover_it():
    w, b = _victim(seed=2)
    api = stealing.logistic_api(w, b, decimals=2)
    few = stealing.solve_logistic(api, len(w), rng=0, scale=0.1)
    many = stealing.solve_logistic(api, len(w), rng=0, n_queries=100 * (len(w) + 1), scale=0.1)
    err = lambda est: max(np.abs(est[0] - w).max(), abs(est[1] - b))
    assert err(many) < err(few) and err(many) < 0.05


def test_label_answers_and_bad_budgets_are_refused():
    w, b = _victim()
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        stealing.solve_logistic(stealing.logistic_api(w, b, answer="label"), len(w), rng=0)
    with pytest.raises(ValueError, match="at least d \\+ 1"):
        stealing.solve_logistic(stealing.logistic_api(w, b), len(w), n_queries=len(w))
    with pytest.raises(ValueError, match="query budget"):
        stealing.random_queries(0, 3)
    with pytest.raises(ValueError, match="answer must be one of"):
        stealing.logistic_api(w, b, answer="logit")
    with pytest.raises(ValueError, match="columns"):
        stealing.logistic_api(w, b)(np.zeros((2, 3)))


def test_random_queries_are_standard_normal():
    """Statistical: mean 0 and SD scale within sampling error."""
    X = stealing.random_queries(20_000, 3, rng=0, scale=2.0)
    assert X.shape == (20_000, 3)
    assert np.all(np.abs(X.mean(axis=0)) < 4 * 2.0 / np.sqrt(20_000))
    assert np.all(np.abs(X.std(axis=0) - 2.0) < 0.05)


def test_extraction_agreement_grows_with_queries():
    w, b = _victim(d=6, seed=3)
    test = np.random.default_rng(9).normal(size=(500, 6))
    truth = stealing.logistic_api(w, b, answer="label")(test)
    for answer in stealing.ANSWERS:
        api = stealing.logistic_api(w, b, answer=answer)
        agreements = []
        for n in (5, 500):
            X = stealing.random_queries(n, 6, rng=4)
            copy = stealing.fit_copy(X, api(X), answer=answer)
            agreements.append(stealing.agreement(copy(test), truth))
        assert agreements[1] > 0.95 and agreements[1] >= agreements[0]


def test_fit_copy_with_one_class_and_argument_checks():
    X = np.zeros((3, 2))
    copy = stealing.fit_copy(X, np.array([1, 1, 1]), answer="label")
    assert np.all(copy(np.ones((4, 2))) == 1)
    with pytest.raises(ValueError, match="one value per query"):
        stealing.fit_copy(X, np.array([0.5, 0.5]))
    with pytest.raises(ValueError, match="equal length"):
        stealing.agreement([0, 1], [0])
