"""The nucleus phantom: synthetic images rendered from real WDBC rows (helpers.images and
helpers.data.load_nuclei_images). Thresholds are stated here and in
datasets/nuclei_phantom.md with the values measured at 32x32, render_seed 0."""
import numpy as np
import pytest
from scipy.stats import mannwhitneyu, spearmanr
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from helpers import data, images

#: Spearman correlation between a measured-back feature and the WDBC column it was drawn
#: from, over all 569 patients (measured at 32x32, render_seed 0: 0.98, 0.97, 0.81, 0.77).
MIN_SPEARMAN = {("area", "mean area"): 0.9, ("perimeter", "mean perimeter"): 0.9,
                ("concavity", "mean concavity"): 0.5, ("texture", "mean texture"): 0.5}


@pytest.fixture(scope="module")
def phantom():
    """The default split, all patients' images, rows, labels and measured-back features."""
    split = data.load_nuclei_images()
    X = np.concatenate([split.X_train, split.X_test])
    records = np.concatenate([split.records_train, split.records_test])
    y = np.concatenate([split.y_train, split.y_test])
    return split, X, records, y, images.measure_many(X)


def test_split_is_exactly_load_wdbc_split():
    for test_size, seed in [(0.25, 0), (0.3, 2)]:
        split = data.load_nuclei_images(test_size=test_size, seed=seed, size=16)
        wdbc = data.load_wdbc(test_size=test_size, seed=seed)
        assert np.array_equal(split.y_train, wdbc.y_train) and np.array_equal(split.y_test, wdbc.y_test)
        for records, X in [(split.records_train, wdbc.X_train), (split.records_test, wdbc.X_test)]:
            assert np.array_equal(wdbc.to_standardized(records), X)  # the same rows, bit for bit
            error = np.abs(records - wdbc.to_original_units(X)) / wdbc.scale  # float32 rounding only
            assert error.max() < 1e-6
        assert split.feature_names == wdbc.feature_names and split.class_names == wdbc.class_names
        raw = data._sk.load_breast_cancer().data
        assert np.array_equal(raw[split.rows_test], split.records_test)


def test_shapes_dtypes_range_and_describe(phantom):
    split, X, records, y, _ = phantom
    assert split.X_train.shape == (426, 32, 32, 1) and split.X_test.shape == (143, 32, 32, 1)
    assert split.X_train.dtype == np.float32 and split.X_test.dtype == np.float32
    assert 0.0 <= X.min() and X.max() <= 1.0
    assert split.y_train.dtype == np.int64 and int(y.sum()) == 212  # 1 = malignant
    assert split.records_train.dtype == np.float64 and records.shape == (569, 30)
    assert split.render_seed == 0
    assert split.describe().startswith("train 426 (benign 267, malignant 159); test 143 (benign 90, malignant 53)")
    big = images.render_many(records[:4], split.feature_names, np.arange(4), size=64)
    assert big.shape == (4, 64, 64, 1) and big.dtype == np.float32


def test_rendering_is_deterministic_per_patient_and_seed(phantom):
    split, *_ = phantom
    record, names = split.records_test[0], split.feature_names
    assert np.array_equal(images.render_nuclei(record, names, rng=7), images.render_nuclei(record, names, rng=7))
    assert not np.array_equal(images.render_nuclei(record, names, rng=7), images.render_nuclei(record, names, rng=8))
    again = data.load_nuclei_images()
    assert np.array_equal(again.X_train, split.X_train) and np.array_equal(again.X_test, split.X_test)
    other = data.load_nuclei_images(render_seed=1)
    assert other.render_seed == 1 and np.array_equal(other.y_test, split.y_test)
    assert not np.any([np.array_equal(a, b) for a, b in zip(other.X_test, split.X_test)])
    # An image depends on (render_seed, patient row) only: not on the split or the order.
    resplit = data.load_nuclei_images(seed=1)
    position = {row: i for i, row in enumerate(resplit.rows_train)}
    shared = [i for i, row in enumerate(split.rows_test) if row in position]
    assert len(shared) > 50
    for i in shared:
        assert np.array_equal(split.X_test[i], resplit.X_train[position[split.rows_test[i]]])
    reversed_ = images.render_many(split.records_test[::-1], names, split.rows_test[::-1])
    assert np.array_equal(reversed_[::-1], split.X_test)


def test_bad_arguments_raise_value_error_naming_them(phantom):
    split, *_ = phantom
    record, names = split.records_test[0], split.feature_names
    for size in (15, 129, 32.0, True):
        with pytest.raises(ValueError, match=r"size must be an integer in 16\.\.128"):
            images.render_nuclei(record, names, size=size)
    with pytest.raises(ValueError, match=r"size must be an integer in 16\.\.128"):
        data.load_nuclei_images(size=8)
    for test_size in (0, 1.5):
        with pytest.raises(ValueError, match="test_size"):
            data.load_nuclei_images(test_size=test_size)
    with pytest.raises(ValueError, match="render_seed"):
        data.load_nuclei_images(render_seed=-1)
    with pytest.raises(ValueError, match=r"record must have one value per feature name \(30\), got 29"):
        images.render_nuclei(record[:29], names)
    with pytest.raises(ValueError, match="feature_names must contain"):
        images.render_nuclei(record, tuple(f"x{i}" for i in range(30)))
    with pytest.raises(ValueError, match="record must hold WDBC measurements in original units, all >= 0"):
        images.render_nuclei(-record, names)
    with pytest.raises(ValueError, match="record must contain only finite"):
        images.render_nuclei(np.where(np.arange(30) == 0, np.nan, record), names)
    with pytest.raises(ValueError, match="image must have shape"):
        images.measure_nuclei(np.zeros((2, 3, 3)))


def test_measure_nuclei_on_known_shapes():
    yy, xx = np.mgrid[0:32, 0:32]
    inside = np.hypot(yy - 15.5, xx - 15.5) < 6
    disk = np.where(inside, 0.3, 0.9)
    measured = images.measure_nuclei(disk)
    assert measured["count"] == 1 and abs(measured["area"] - np.pi * 36) < 6
    assert measured["concavity"] < 0.1 and measured["texture"] < 1e-9  # pixelation alone: 0.067
    notched = np.where(inside & ~((np.abs(yy - 15.5) < 1.5) & (xx > 12)), 0.3, 0.9)
    assert images.measure_nuclei(notched)["concavity"] > measured["concavity"] + 0.1
    assert abs(measured["perimeter"] - 2 * np.pi * 6) < 5
    assert images.measure_nuclei(np.full((32, 32), 0.8)) == {name: 0.0 for name in images.MEASURES}
    assert tuple(images.measure_nuclei(disk[..., None])) == images.MEASURES


def test_measured_features_follow_their_wdbc_source(phantom):
    split, _, records, _, measured = phantom
    assert np.all(measured[:, images.MEASURES.index("count")] == images.NUCLEI_PER_IMAGE)
    for (measure, feature), threshold in MIN_SPEARMAN.items():
        rho = spearmanr(measured[:, images.MEASURES.index(measure)],
                        records[:, split.feature_names.index(feature)])[0]
        assert rho >= threshold, (measure, feature, rho)


def test_diagnosis_is_in_the_shapes_not_in_the_brightness(phantom):
    _, X, _, y, measured = phantom
    model = make_pipeline(StandardScaler(), LogisticRegression())
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    shapes = cross_val_score(model, measured[:, :4], y, cv=folds, scoring="roc_auc").mean()
    brightness = cross_val_score(model, X.mean(axis=(1, 2, 3))[:, None], y, cv=folds, scoring="roc_auc").mean()
    assert shapes >= 0.9, shapes  # measured 0.98
    assert brightness <= shapes - 0.2, (brightness, shapes)  # measured 0.65
    # The background (pixels far from any nucleus) carries no diagnosis: its brightness
    # and noise are drawn the same way for both classes.
    background = np.array([np.median(image[image > np.percentile(image, 60)]) for image in X[..., 0]])
    assert 0.4 < roc_auc_score(y, background) < 0.6  # measured 0.51


def test_each_measurement_moves_its_own_feature(phantom):
    """Controlled experiment: the median patient with one measurement (mean and worst) at
    its 10th or 90th percentile, 40 render seeds each. Over patients the features are
    correlated (radius with concavity), so this checks the mapping itself."""
    split, _, records, _, _ = phantom
    names = split.feature_names

    def measured(**quantiles: float) -> np.ndarray:
        record = np.median(records, axis=0)
        for measurement, q in quantiles.items():
            for prefix in ("mean", "worst"):
                j = names.index(f"{prefix} {measurement.replace('_', ' ')}")
                record[j] = np.quantile(records[:, j], q)
        return images.measure_many([images.render_nuclei(record, names, rng=seed) for seed in range(40)])

    column = {name: i for i, name in enumerate(images.MEASURES)}
    effects = {}
    for measurement, feature in [("radius", "area"), ("texture", "texture"), ("concavity", "concavity")]:
        extra = {"concave_points"} if measurement == "concavity" else set()
        low = measured(**{m: 0.1 for m in {measurement} | extra})
        high = measured(**{m: 0.9 for m in {measurement} | extra})
        assert mannwhitneyu(high[:, column[feature]], low[:, column[feature]], alternative="greater").pvalue < 1e-6
        effects[measurement] = high.mean(axis=0) - low.mean(axis=0), low.mean(axis=0)
    texture_effect, texture_low = effects["texture"]
    concavity_effect, concavity_low = effects["concavity"]
    assert abs(texture_effect[column["area"]]) < 0.1 * texture_low[column["area"]]  # measured: -3%
    assert abs(concavity_effect[column["texture"]]) < 0.01  # measured: -0.001
    # Chromatin noise nibbles at the segmented contour a little (measured: +0.017 of 1 - solidity,
    # against +0.072 from concavity and concave points).
    assert concavity_effect[column["concavity"]] > 2 * texture_effect[column["concavity"]]


def test_capped_marks_exactly_the_nuclei_drawn_smaller_than_their_record(phantom):
    split = phantom[0]
    records, rows = split.records_test[:40], split.rows_test[:40]
    shrunk = images.capped(records, split.feature_names, rows, 32, split.render_seed)
    assert shrunk.shape == (40, images.NUCLEI_PER_IMAGE) and shrunk.dtype == bool
    radius = split.feature_names.index("worst radius")
    big, small = records.copy(), records.copy()
    big[:, radius], small[:, radius] = 60.0, 7.0   # 12.8 px mean radius: above the cap; 2.2 px: far below it
    assert images.capped(big, split.feature_names, rows, 32, split.render_seed)[:, 0].all()
    assert not images.capped(small, split.feature_names, rows, 32, split.render_seed)[:, 0].any()
    # a capped worst nucleus is drawn at the cap: doubling its radius leaves the image unchanged
    i = int(np.flatnonzero(shrunk[:, 0])[0])
    twice = records[i:i + 1].copy()
    twice[0, radius] *= 2
    drawn = [images.render_many(r, split.feature_names, rows[i:i + 1], 32, split.render_seed)
             for r in (records[i:i + 1], twice)]
    assert np.array_equal(drawn[0], drawn[1])
    with pytest.raises(ValueError, match="rows"):
        images.capped(records, split.feature_names, rows[:3])
