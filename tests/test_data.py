import numpy as np
import pytest

from helpers import data


def test_wdbc_split_is_stratified_seeded_and_scaled_on_train_only():
    split = data.load_wdbc(test_size=0.25, seed=0)
    assert split.X_train.shape == (426, 30) and split.X_test.shape == (143, 30)
    assert split.X_train.dtype == np.float32
    assert split.class_names == ("benign", "malignant")
    assert int(split.y_train.sum() + split.y_test.sum()) == 212  # malignant = 1
    assert abs(split.y_train.mean() - split.y_test.mean()) < 0.01  # stratified
    np.testing.assert_allclose(split.X_train.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(split.X_train.std(axis=0), 1, atol=1e-4)
    assert np.abs(split.X_test.mean(axis=0)).max() > 0.01  # test statistics were not used
    again = data.load_wdbc(test_size=0.25, seed=0)
    assert np.array_equal(split.X_test, again.X_test)
    assert not np.array_equal(split.y_test, data.load_wdbc(seed=1).y_test)


def test_wdbc_original_units_round_trip():
    split = data.load_wdbc()
    original = split.to_original_units(split.X_test)
    radius = original[:, split.feature_names.index("mean radius")]
    assert 5 < radius.min() and radius.max() < 30  # image units, as in the UCI data
    np.testing.assert_allclose(split.to_standardized(original), split.X_test, atol=1e-5)
    assert data.wdbc_unit("worst radius") == "image units"
    with pytest.raises(ValueError, match="feature_name"):
        data.wdbc_unit("height")


def test_digits():
    split = data.load_digits()
    assert split.X_train.shape[1:] == (8, 8, 1)
    assert split.X_train.min() >= 0 and split.X_train.max() <= 1
    assert len(split.y_train) + len(split.y_test) == 1797
    assert set(np.unique(split.y_test)) == set(range(10))
    assert data.load_digits(flatten=True).X_train.shape[1] == 64
    assert split.mean is None and np.array_equal(split.to_original_units(split.X_test[:2]), split.X_test[:2])


def test_diabetes_table_in_original_units():
    table = data.load_diabetes_table()
    assert len(table) == 442 and table.rows.shape == (442, 11)
    assert table.columns[-1] == "progression"
    age = table.column("age")
    assert 19 <= age.min() and age.max() <= 79
    assert set(np.unique(table.column("sex"))) == {1.0, 2.0}
    with pytest.raises(ValueError, match="name must be one of"):
        table.column("weight")


@pytest.mark.parametrize("kwargs,match", [({"test_size": 0}, "test_size"), ({"test_size": 1.2}, "test_size"),
                                          ({"seed": -3}, "seed")])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        data.load_wdbc(**kwargs)
