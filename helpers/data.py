"""The course's datasets: all shipped inside scikit-learn, so they load offline.

Each loader returns a ready split: seeded, stratified by class, and (where a scaler is
used) with the scaler fitted on the training split only, so no statistic of the test
data leaks into training. The datasheets are in ``datasets/`` at the top of the repo.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn import datasets as _sk
from sklearn.model_selection import train_test_split

from helpers import validation

#: Units of the WDBC features in original units. The nuclei were measured on a digitized
#: image of a fine-needle aspirate (Street, Wolberg & Mangasarian, 1993); the dataset's
#: documentation gives no physical unit for lengths, so they are "image units" (not mm:
#: a cell nucleus is micrometres across). "error" and "worst" features share the unit
#: of their "mean" feature.
WDBC_UNITS: dict[str, str] = {
    "radius": "image units", "texture": "grey levels (std)", "perimeter": "image units",
    "area": "image units²", "smoothness": "unitless", "compactness": "unitless",
    "concavity": "unitless", "concave points": "unitless", "symmetry": "unitless",
    "fractal dimension": "unitless",
}

#: Columns of the diabetes table, in original units (Efron et al., 2004).
DIABETES_COLUMNS: dict[str, str] = {
    "age": "years",
    "sex": "1 or 2 (coding of the original study)",
    "bmi": "body-mass index, kg/m²",
    "bp": "mean arterial blood pressure, mmHg",
    "tc": "total serum cholesterol, mg/dL",
    "ldl": "low-density lipoproteins, mg/dL",
    "hdl": "high-density lipoproteins, mg/dL",
    "tch": "total cholesterol / HDL ratio",
    "ltg": "log of serum triglycerides",
    "glu": "blood glucose, mg/dL",
    "progression": "disease progression one year after baseline (score, 25-346)",
}


def _sizes(split) -> str:
    """``"train n (class a, class b); test m (...)"``: sizes and class balance of a split."""
    def balance(y: np.ndarray) -> str:
        counts = np.bincount(y, minlength=len(split.class_names))
        return ", ".join(f"{name} {count}" for name, count in zip(split.class_names, counts))
    return f"train {len(split.y_train)} ({balance(split.y_train)}); test {len(split.y_test)} ({balance(split.y_test)})"


@dataclass(frozen=True)
class Split:
    """A train/test split with the names needed to read it.

    ``X_*`` are float32, ``y_*`` int64 class labels. When ``mean`` and ``scale`` are set,
    ``X_*`` are standardized with statistics of the *training* split:
    ``X = (X_original - mean) / scale``.
    """

    X_train: np.ndarray
    X_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray
    feature_names: tuple[str, ...]
    class_names: tuple[str, ...]
    mean: np.ndarray | None = None
    scale: np.ndarray | None = None

    def to_original_units(self, X: np.ndarray) -> np.ndarray:
        """Undo the standardization (identity when the split is not standardized)."""
        X = np.asarray(X, dtype=np.float64)
        return X if self.mean is None else X * self.scale + self.mean

    def to_standardized(self, X_original: np.ndarray) -> np.ndarray:
        """Apply the training-split standardization to data in original units."""
        X_original = np.asarray(X_original, dtype=np.float64)
        if self.mean is None:
            return X_original.astype(np.float32)
        return ((X_original - self.mean) / self.scale).astype(np.float32)

    def describe(self) -> str:
        """One line: sizes and class balance of both splits."""
        return f"{_sizes(self)}; {self.X_train.shape[1:]} features per example"


def stratified_split(X: np.ndarray, y: np.ndarray, test_size: float, seed: int) -> tuple[np.ndarray, ...]:
    """``X_train, X_test, y_train, y_test`` with the class balance kept in both parts."""
    test_size = validation.fraction("test_size", test_size)
    seed = validation.positive_int("seed", seed, minimum=0)
    return tuple(train_test_split(X, y, test_size=test_size, random_state=seed, stratify=y))


def _standardize(X_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = X_train.mean(axis=0)
    scale = X_train.std(axis=0)
    scale[scale == 0] = 1.0
    return mean, scale


def load_wdbc(test_size: float = 0.25, seed: int = 0, standardize: bool = True) -> Split:
    """Wisconsin Diagnostic Breast Cancer: 569 patients, 30 features of cell nuclei.

    Labels are recoded so that the clinically relevant class is positive:
    ``0 = benign``, ``1 = malignant`` (scikit-learn ships the opposite coding).
    With ``standardize`` the features have zero mean and unit variance on the training
    split; :meth:`Split.to_original_units` maps back to the original units
    (:data:`WDBC_UNITS`).
    """
    raw = _sk.load_breast_cancer()
    y = (1 - raw.target).astype(np.int64)
    X_train, X_test, y_train, y_test = stratified_split(raw.data, y, test_size, seed)
    mean = scale = None
    if standardize:
        mean, scale = _standardize(X_train)
        X_train, X_test = (X_train - mean) / scale, (X_test - mean) / scale
    return Split(X_train.astype(np.float32), X_test.astype(np.float32), y_train, y_test,
                 tuple(str(name) for name in raw.feature_names), ("benign", "malignant"), mean, scale)


def wdbc_unit(feature_name: str) -> str:
    """The unit of a WDBC feature name such as ``"worst radius"``."""
    for base, unit in WDBC_UNITS.items():
        if feature_name.endswith(base):
            return unit
    raise ValueError(f"feature_name must be one of the 30 WDBC feature names, got {feature_name!r}")


def load_digits(test_size: float = 0.25, seed: int = 0, flatten: bool = False) -> Split:
    """scikit-learn's 8x8 handwritten digits: 1,797 images, 10 classes.

    Pixels are scaled from 0..16 to [0, 1] (the valid range for attacks: clip to it).
    Images have shape ``(n, 8, 8, 1)``, or ``(n, 64)`` with ``flatten``. Not standardized.
    """
    raw = _sk.load_digits()
    X = (raw.images / 16.0).astype(np.float32)
    X = X.reshape(len(X), 64) if flatten else X[..., None]
    X_train, X_test, y_train, y_test = stratified_split(X, raw.target.astype(np.int64), test_size, seed)
    names = tuple(f"pixel_{r}_{c}" for r in range(8) for c in range(8))
    return Split(X_train, X_test, y_train, y_test, names, tuple(str(d) for d in range(10)))


@dataclass(frozen=True)
class Table:
    """A small patient table in original units: ``rows[i, j]`` is column ``columns[j]``."""

    rows: np.ndarray
    columns: tuple[str, ...]
    units: tuple[str, ...]

    def column(self, name: str) -> np.ndarray:
        """All values of one column."""
        if name not in self.columns:
            raise ValueError(f"name must be one of {self.columns}, got {name!r}")
        return self.rows[:, self.columns.index(name)]

    def __len__(self) -> int:
        return len(self.rows)


def load_diabetes_table() -> Table:
    """The diabetes study of Efron et al. (2004): 442 patients, 10 baseline measurements
    and disease progression after one year, in original units (for privacy queries)."""
    raw = _sk.load_diabetes(scaled=False)
    rows = np.column_stack([raw.data, raw.target]).astype(np.float64)
    return Table(rows, tuple(DIABETES_COLUMNS), tuple(DIABETES_COLUMNS.values()))


@dataclass(frozen=True)
class ImageSplit:
    """Synthetic nucleus images rendered from real WDBC rows, split like :func:`load_wdbc`.

    ``X_*`` are float32 images ``(n, size, size, 1)`` in [0, 1] (dark nuclei on a light
    background; the pixels are synthetic, see :mod:`helpers.images`), ``y_*`` int64 labels
    (``1 = malignant``), ``records_*`` float64 ``(n, 30)`` the WDBC rows each image was
    drawn from, in original units (real measurements), ``rows_*`` their int64 indices in
    the full WDBC table (which, with ``render_seed``, fix each image's random stream).
    """

    X_train: np.ndarray
    X_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray
    records_train: np.ndarray
    records_test: np.ndarray
    feature_names: tuple[str, ...]
    class_names: tuple[str, ...]
    render_seed: int
    rows_train: np.ndarray | None = None
    rows_test: np.ndarray | None = None

    def describe(self) -> str:
        """One line: sizes and class balance of both splits, and the image shape."""
        return f"{_sizes(self)}; {self.X_train.shape[1:]} synthetic image per patient (render_seed {self.render_seed})"


def load_nuclei_images(test_size: float = 0.25, seed: int = 0, size: int = 32, render_seed: int = 0) -> ImageSplit:
    """WDBC as images: one synthetic ``size x size`` picture of nuclei per patient.

    The patients in each split are exactly those of ``load_wdbc(test_size, seed)``, in the
    same order (the same :func:`stratified_split` of the same rows), so image and tabular
    models are compared on the same test patients. Each image is drawn by
    :func:`helpers.images.render_nuclei` from the patient's row in original units, with a
    random stream seeded by ``(render_seed, row index)``: an image does not depend on the
    split or on the order. The measurements and labels are real, the pixels synthetic
    (datasheet: ``datasets/nuclei_phantom.md``). ``size`` must be in 16..128.
    """
    from helpers import images

    size = images._check_size(size)
    render_seed = validation.positive_int("render_seed", render_seed, minimum=0)
    raw = _sk.load_breast_cancer()
    y = (1 - raw.target).astype(np.int64)
    rows = np.arange(len(y), dtype=np.int64)
    rows_train, rows_test, y_train, y_test = stratified_split(rows, y, test_size, seed)
    names = tuple(str(name) for name in raw.feature_names)
    records_train, records_test = raw.data[rows_train].astype(np.float64), raw.data[rows_test].astype(np.float64)
    return ImageSplit(images.render_many(records_train, names, rows_train, size, render_seed),
                      images.render_many(records_test, names, rows_test, size, render_seed),
                      y_train, y_test, records_train, records_test, names, ("benign", "malignant"),
                      render_seed, rows_train, rows_test)
