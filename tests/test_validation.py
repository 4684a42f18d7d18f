import numpy as np
import pytest

from helpers import validation as v


@pytest.mark.parametrize("value", [0, -1, float("nan"), float("inf"), "x", None])
def test_positive_rejects_and_names_argument(value):
    with pytest.raises(ValueError, match="epsilon"):
        v.positive("epsilon", value)


def test_positive_accepts():
    assert v.positive("epsilon", "0.5") == 0.5


@pytest.mark.parametrize("value", [0, 1, -0.1, 1.5, float("nan")])
def test_fraction_rejects(value):
    with pytest.raises(ValueError, match=r"delta must be in the open interval \(0.0, 1.0\)|delta must be a finite"):
        v.fraction("delta", value)


@pytest.mark.parametrize("value", [0, 2.0, True, "3"])
def test_positive_int_rejects(value):
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        v.positive_int("batch_size", value)


def test_bounds():
    assert v.bounds("lower", 0, "upper", 1) == (0.0, 1.0)
    with pytest.raises(ValueError, match="lower must be < upper"):
        v.bounds("lower", 1, "upper", 1)


@pytest.mark.parametrize("values,match", [([], "must not be empty"), ([1, np.nan], "finite"), ([[1]], "1 dimension")])
def test_finite_array(values, match):
    with pytest.raises(ValueError, match=match):
        v.finite_array("values", values, ndim=1)


def test_training_data():
    X, y = v.training_data([[1, 2], [3, 4]], [[0], [1]])
    assert X.dtype == np.float32 and X.shape == (2, 2) and y.tolist() == [0, 1]
    with pytest.raises(ValueError, match=r"y must have one label per row of X \(2\), got 3"):
        v.training_data([[1, 2], [3, 4]], [0, 1, 1])
    with pytest.raises(ValueError, match="X must have 2 dimension"):
        v.training_data([1, 2], [0, 1])


def test_rng_from():
    assert v.rng_from(3).integers(1000) == np.random.default_rng(3).integers(1000)
    gen = np.random.default_rng(1)
    assert v.rng_from(gen) is gen
    with pytest.raises(ValueError, match="rng must be"):
        v.rng_from(-1)
