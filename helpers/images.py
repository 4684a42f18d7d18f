"""Synthetic cell-nucleus images rendered from real WDBC rows (a digital phantom), and
measurements taken back from them with ``skimage.measure``.

**What is real and what is not.** Each WDBC row holds measurements of the nuclei in one
digitized fine-needle aspirate (Street, Wolberg & Mangasarian, 1993) and the diagnosis.
Those numbers and the label are real; the pixels drawn here are **synthetic**: a
deterministic picture whose nuclei have the size, contour and texture the row describes.
No real microscope image is used or reproduced.

**Picture.** ``size x size`` grey levels in [0, 1]: *dark* nuclei on a *light* background
(like haematoxylin-stained nuclei in a grey-scale bright-field image). Three nuclei sit in
three of the four cells of a 2x2 grid (which cell stays empty, and a jitter inside each
cell, are drawn at random), so they never overlap. One nucleus is drawn from the row's
``worst ...`` features (the largest one), the other two from the ``mean ...`` features.

**Mapping** (``s = size / 32``; constants are module attributes):

- radius (image units, WDBC's mean distance from the centre to the contour) → the mean
  centre-to-contour distance in pixels, an affine map ``r_px = s * (0.8 + 0.2 * radius)``
  (radius 7 → 2.2 px, 12 → 3.2, 18 → 4.4, 28 → 6.4 at 32x32), then scaled down if needed
  so the whole contour stays inside its grid cell (``MAX_RADIUS_PX * s``, 7.5 px at
  32x32; this shrinks 18% of the "worst" nuclei, the large and irregular ones, and 1% of
  the others). The two "mean" nuclei get ``mean radius * (1 + 0.05 z)``, ``z`` standard
  normal clipped to ±2. Perimeter and area follow from radius and contour; they are not
  drawn separately.
- compactness → low-frequency lobes (harmonics 2-3) of relative amplitude
  ``0.3 * compactness`` (≤ 0.15).
- smoothness ("local variation in radius lengths") → harmonics 4-7, amplitude
  ``0.8 * (smoothness - 0.05)`` (0 to 0.10).
- concave points → number of dents ``round(40 * concave points)`` (0 to 6), evenly spaced
  with jitter; concavity → their depth, ``1.5 * concavity`` of the radius (≤ 0.45),
  each a Gaussian notch 0.25 rad wide.
- symmetry (larger = less symmetric in WDBC) → one side of a random axis bulges by
  ``0.5 * (symmetry - 0.1)`` (0 to 0.25) of the radius.
- fractal dimension → fine boundary roughness, harmonics 8-15, amplitude
  ``1.0 * (fractal dimension - 0.045)`` (≤ 0.10); sub-pixel at 32x32, visible at larger sizes.
- texture (std of grey levels) → std of the grey levels inside the nucleus,
  ``0.004 * texture`` (0.03 to 0.16), white Gaussian "chromatin" noise.
- background: a per-image brightness ``U(0.75, 0.95)`` and nucleus contrast
  ``U(0.35, 0.55)`` (slide-to-slide staining and illumination), pixel noise of std 0.02.
  These nuisances are the same for both classes, so the average grey level of an image
  is only a noisy proxy of the nuclei's area: the diagnostic signal is in the shapes.

Edges are anti-aliased (coverage ``clip(r(θ) - ρ + 0.5, 0, 1)`` of each pixel at polar
coordinates ``(ρ, θ)``, with ``r(θ)`` sampled every 1° and interpolated). The contour
factors above multiply or add to a unit circle, which is then rescaled to mean 1, so the
radius stays the mean centre-to-contour distance. Everything is computed with numpy
arrays over the pixels of each nucleus's grid cell (no per-pixel Python loop).

**No label leak.** The label is never read: every random number (layout, phases,
jitters, stain, noise) comes from a generator seeded by ``(render_seed, patient row)`` and
the same number of draws is made for every row, so two patients with the same
measurements get the same distribution of pictures, whatever their diagnosis.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from helpers import validation

__all__ = [
    "SIZE_RANGE", "MEASURES", "NUCLEI_PER_IMAGE", "radius_to_pixels", "patient_rng",
    "render_nuclei", "render_many", "measure_nuclei", "measure_many",
]

#: Allowed image sizes (pixels per side), inclusive.
SIZE_RANGE: tuple[int, int] = (16, 128)
#: Nuclei drawn per image: one from the "worst" features, the others from the "mean" ones.
NUCLEI_PER_IMAGE: int = 3
#: Affine map from WDBC image units to pixels at 32x32: ``r_px = OFFSET + SLOPE * radius``.
RADIUS_OFFSET_PX: float = 0.8
RADIUS_SLOPE_PX: float = 0.2
#: Largest extent of a contour, in pixels at 32x32 (a grid cell is 16 px wide).
MAX_RADIUS_PX: float = 7.5
#: Relative spread of the radii of the "mean" nuclei around ``mean radius``.
MEAN_RADIUS_JITTER: float = 0.05
MAX_DENTS: int = 6
DENT_WIDTH_RAD: float = 0.25
BACKGROUND_RANGE: tuple[float, float] = (0.75, 0.95)
CONTRAST_RANGE: tuple[float, float] = (0.35, 0.55)
BACKGROUND_NOISE: float = 0.02
TEXTURE_TO_STD: float = 0.004
TEXTURE_STD_RANGE: tuple[float, float] = (0.03, 0.16)
#: Keys of :func:`measure_nuclei`, in the column order of :func:`measure_many`.
MEASURES: tuple[str, ...] = ("area", "perimeter", "concavity", "texture", "count")

_MEASUREMENTS = ("radius", "smoothness", "compactness", "concavity", "concave points",
                 "symmetry", "fractal dimension", "texture")
_HARMONICS = {"lobes": np.arange(2, 4), "smooth": np.arange(4, 8), "fractal": np.arange(8, 16)}
_THETA = np.linspace(-np.pi, np.pi, 360, endpoint=False)  # contours are sampled every 1° and interpolated
_COS = np.cos(np.outer(np.arange(16), _THETA))  # cos(k θ), sin(k θ) for the harmonics k < 16
_SIN = np.sin(np.outer(np.arange(16), _THETA))
_MIN_OBJECT_PX = 3  # segmented objects smaller than this (at 32x32) are noise


def _check_size(size: Any) -> int:
    low, high = SIZE_RANGE
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not low <= size <= high:
        raise ValueError(f"size must be an integer in {low}..{high} (pixels per side), got {size!r}")
    return int(size)


def radius_to_pixels(radius: Any, size: int = 32) -> np.ndarray:
    """The mean centre-to-contour distance in pixels of a nucleus of WDBC ``radius`` (image
    units), before the fit-in-cell shrinking: ``size / 32 * (RADIUS_OFFSET_PX + RADIUS_SLOPE_PX * radius)``."""
    size = _check_size(size)
    radius = validation.finite_array("radius", radius)
    return size / 32 * (RADIUS_OFFSET_PX + RADIUS_SLOPE_PX * radius)


def patient_rng(render_seed: int, row: int) -> np.random.Generator:
    """The generator for patient ``row`` (index in the full WDBC table): it depends only on
    ``(render_seed, row)``, not on the split or the order of rendering."""
    render_seed = validation.positive_int("render_seed", render_seed, minimum=0)
    row = validation.positive_int("row", row, minimum=0)
    return np.random.default_rng([render_seed, row])


def _features(record: Any, feature_names: Sequence[str]) -> dict[str, dict[str, float]]:
    """``{"mean": {...}, "worst": {...}}`` of the eight measurements used for drawing."""
    names = tuple(feature_names)
    values = validation.finite_array("record", record, ndim=1)
    if len(values) != len(names):
        raise ValueError(f"record must have one value per feature name ({len(names)}), got {len(values)}")
    if np.any(values < 0):
        raise ValueError("record must hold WDBC measurements in original units, all >= 0")
    index = {name: i for i, name in enumerate(names)}
    out: dict[str, dict[str, float]] = {}
    for prefix in ("mean", "worst"):
        missing = [f"{prefix} {m}" for m in _MEASUREMENTS if f"{prefix} {m}" not in index]
        if missing:
            raise ValueError(f"feature_names must contain the WDBC names {missing}")
        out[prefix] = {m: float(values[index[f"{prefix} {m}"]]) for m in _MEASUREMENTS}
    return out


def _unit_profile(harmonics: np.ndarray, coeffs: np.ndarray, phases: np.ndarray) -> np.ndarray:
    """``sum_k w_k cos(k θ + φ_k)`` on :data:`_THETA`, with RMS 1 over the circle (so an
    amplitude is a relative change of the radius)."""
    weights = coeffs / np.sqrt(0.5 * np.sum(coeffs ** 2))
    return (weights * np.cos(phases)) @ _COS[harmonics] - (weights * np.sin(phases)) @ _SIN[harmonics]


def _draws(rng: np.random.Generator, size: int) -> dict[str, np.ndarray]:
    """All random numbers of one image, always the same count (independent of the record)."""
    n = NUCLEI_PER_IMAGE
    return {
        "empty_cell": rng.integers(0, 4, size=1),
        "order": rng.permutation(n),
        "jitter": rng.uniform(-1, 1, size=(n, 2)),
        "radius_z": np.clip(rng.standard_normal(n), -2, 2),
        **{f"{band}_coeffs": rng.standard_normal((n, len(h))) for band, h in _HARMONICS.items()},
        **{f"{band}_phases": rng.uniform(0, 2 * np.pi, size=(n, len(h))) for band, h in _HARMONICS.items()},
        "dent_start": rng.uniform(0, 2 * np.pi, size=n),
        "dent_jitter": rng.uniform(-0.3, 0.3, size=(n, MAX_DENTS)),
        "axis": rng.uniform(0, 2 * np.pi, size=n),
        "background": rng.uniform(*BACKGROUND_RANGE, size=1),
        "contrast": rng.uniform(*CONTRAST_RANGE, size=1),
        "noise": rng.standard_normal((n + 1, size, size)),  # background, then one layer per nucleus
    }


def _relative_contour(f: dict[str, float], d: dict[str, np.ndarray], k: int) -> np.ndarray:
    """``r(θ) / r_base`` of nucleus ``k`` with features ``f``, at the angles :data:`_THETA`;
    its mean over θ is 1, so ``r_base`` is the mean centre-to-contour distance (WDBC's radius)."""
    theta = _THETA
    amplitude = {"lobes": min(0.3 * f["compactness"], 0.15),
                 "smooth": float(np.clip(0.8 * (f["smoothness"] - 0.05), 0.0, 0.10)),
                 "fractal": float(np.clip(1.0 * (f["fractal dimension"] - 0.045), 0.0, 0.10))}
    r = np.ones_like(theta)
    for band, harmonics in _HARMONICS.items():
        r = r + amplitude[band] * _unit_profile(harmonics, d[f"{band}_coeffs"][k], d[f"{band}_phases"][k])
    bulge = float(np.clip(0.5 * (f["symmetry"] - 0.1), 0.0, 0.25))
    r = r + bulge * (np.maximum(0.0, np.sin(theta - d["axis"][k])) - 1 / np.pi)
    n_dents = int(np.clip(round(40 * f["concave points"]), 0, MAX_DENTS))
    depth = float(np.clip(1.5 * f["concavity"], 0.0, 0.45))
    for j in range(n_dents):
        centre = d["dent_start"][k] + 2 * np.pi * j / n_dents + d["dent_jitter"][k, j]
        delta = np.angle(np.exp(1j * (theta - centre)))
        r = r * (1 - depth * np.exp(-0.5 * (delta / DENT_WIDTH_RAD) ** 2))
    r = np.maximum(r, 0.05)
    return r / r.mean()  # WDBC radius = mean distance from the centre to the contour


def _extent(f: dict[str, float], d: dict[str, np.ndarray], k: int, size: int) -> tuple[float, np.ndarray, float, float]:
    """Nucleus ``k``'s mean radius in pixels, relative contour, largest extent and the
    extent its grid cell allows (before any shrinking)."""
    base = float(radius_to_pixels(f["radius"], size))
    if k > 0:
        base *= 1 + MEAN_RADIUS_JITTER * d["radius_z"][k]
    profile = _relative_contour(f, d, k)
    return base, profile, base * float(profile.max()), MAX_RADIUS_PX * size / 32


def _coverage(f: dict[str, float], d: dict[str, np.ndarray], k: int, cell: int, size: int) -> np.ndarray:
    """``(size, size)`` fraction of each pixel covered by nucleus ``k`` (anti-aliased edge)."""
    base, profile, extent, limit = _extent(f, d, k, size)
    if extent > limit:  # shrink the whole nucleus so it stays inside its grid cell
        base, extent = base * limit / extent, limit
    half = size / 4
    slack = max(half - extent - 0.5, 0.0)
    row, col = divmod(cell, 2)
    cy, cx = (2 * row + 1) * half + slack * d["jitter"][k, 0], (2 * col + 1) * half + slack * d["jitter"][k, 1]
    coverage = np.zeros((size, size))
    # The nucleus stays inside its cell (extent + jitter <= cell half-width - 0.5 px), so
    # only the cell's pixels are computed; the others stay 0.
    rows = slice(int(np.floor(row * size / 2)), int(np.ceil((row + 1) * size / 2)))
    cols = slice(int(np.floor(col * size / 2)), int(np.ceil((col + 1) * size / 2)))
    yy, xx = np.mgrid[rows, cols] + 0.5
    rho, theta = np.hypot(yy - cy, xx - cx), np.arctan2(yy - cy, xx - cx)
    contour = base * np.interp(theta, _THETA, profile, period=2 * np.pi)
    coverage[rows, cols] = np.clip(contour - rho + 0.5, 0.0, 1.0)
    return coverage


def render_nuclei(record: Any, feature_names: Sequence[str], size: int = 32, rng: Any = 0) -> np.ndarray:
    """A ``(size, size)`` float32 image in [0, 1] of the nuclei one WDBC row describes.

    ``record`` holds the 30 WDBC values in **original units** (all >= 0) in the order of
    ``feature_names`` (those of :func:`helpers.data.load_wdbc`); ``size`` is in
    :data:`SIZE_RANGE`; ``rng`` is a seed or a ``numpy.random.Generator`` (use
    :func:`patient_rng` for the per-patient stream). The same record and seed give the
    same array. See the module docstring for the mapping.
    """
    size = _check_size(size)
    features = _features(record, feature_names)
    d = _draws(validation.rng_from(rng), size)
    background = float(d["background"][0])
    image = background + BACKGROUND_NOISE * d["noise"][0]
    cells = [c for c in range(4) if c != int(d["empty_cell"][0])]
    for k in range(NUCLEI_PER_IMAGE):
        f = features["worst"] if k == 0 else features["mean"]
        coverage = _coverage(f, d, k, cells[int(d["order"][k])], size)
        std = float(np.clip(TEXTURE_TO_STD * f["texture"], *TEXTURE_STD_RANGE))
        nucleus = background - float(d["contrast"][0]) + std * d["noise"][k + 1]
        image = image * (1 - coverage) + nucleus * coverage
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def render_many(records: Any, feature_names: Sequence[str], rows: Any, size: int = 32,
                render_seed: int = 0) -> np.ndarray:
    """``(n, size, size, 1)`` float32 images of ``records`` (original units), patient
    ``rows[i]`` drawn with :func:`patient_rng` ``(render_seed, rows[i])``."""
    records = validation.finite_array("records", records, ndim=2)
    rows = np.asarray(rows).reshape(-1)
    if len(rows) != len(records):
        raise ValueError(f"rows must have one patient index per record ({len(records)}), got {len(rows)}")
    images = np.empty((len(records), _check_size(size), size, 1), dtype=np.float32)
    for i, (record, row) in enumerate(zip(records, rows)):
        images[i, ..., 0] = render_nuclei(record, feature_names, size, patient_rng(render_seed, int(row)))
    return images


def capped(records: Any, feature_names: Sequence[str], rows: Any, size: int = 32,
           render_seed: int = 0) -> np.ndarray:
    """``(n, 3)`` bool: was nucleus ``k`` of patient ``rows[i]`` shrunk to fit its grid cell?

    Column 0 is the "worst" nucleus, columns 1-2 the two "mean" ones, drawn exactly as
    :func:`render_many` draws them (same ``render_seed``). A shrunk nucleus is drawn smaller
    than its record says: the image loses what the radius holds above the cap
    (:data:`MAX_RADIUS_PX` at 32x32)."""
    records = validation.finite_array("records", records, ndim=2)
    rows = np.asarray(rows).reshape(-1)
    if len(rows) != len(records):
        raise ValueError(f"rows must have one patient index per record ({len(records)}), got {len(rows)}")
    size = _check_size(size)
    out = np.zeros((len(records), NUCLEI_PER_IMAGE), dtype=bool)
    for i, (record, row) in enumerate(zip(records, rows)):
        features = _features(record, feature_names)
        d = _draws(patient_rng(render_seed, int(row)), size)
        for k in range(NUCLEI_PER_IMAGE):
            _, _, extent, limit = _extent(features["worst"] if k == 0 else features["mean"], d, k, size)
            out[i, k] = extent > limit
    return out


def measure_nuclei(image: Any) -> dict[str, float]:
    """Nucleus features measured back from one image with ``skimage``.

    The image (``(h, w)`` or ``(h, w, 1)``, dark nuclei on light background) is
    thresholded with Otsu's method, holes are filled, objects smaller than 3 px (scaled
    with the image area) are dropped, and ``skimage.measure.regionprops`` measures each
    nucleus. Returned, averaged over the nuclei found: ``area`` (px²), ``perimeter`` (px),
    ``concavity`` (1 - solidity, a proxy of WDBC concavity), ``texture`` (std of the grey
    levels inside the nucleus), and ``count`` (number of nuclei). An image without any
    nucleus gives 0.0 for all.
    """
    from scipy import ndimage
    from skimage import filters, measure

    image = validation.finite_array("image", image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim != 2 or min(image.shape) < 2:
        raise ValueError(f"image must have shape (h, w) or (h, w, 1) with h, w >= 2, got {image.shape}")
    empty = {name: 0.0 for name in MEASURES}
    if np.ptp(image) == 0:
        return empty
    mask = ndimage.binary_fill_holes(image < filters.threshold_otsu(image))
    labels = measure.label(mask, connectivity=2)
    min_area = _MIN_OBJECT_PX * image.size / 32 ** 2
    regions = [r for r in measure.regionprops(labels, intensity_image=image) if r.area >= min_area]
    if not regions:
        return empty
    return {"area": float(np.mean([r.area for r in regions])),
            "perimeter": float(np.mean([r.perimeter for r in regions])),
            "concavity": float(np.mean([1 - r.solidity for r in regions])),
            "texture": float(np.mean([np.std(r.image_intensity[r.image]) for r in regions])),
            "count": float(len(regions))}


def measure_many(images: Any) -> np.ndarray:
    """``(n, 5)`` float64 array of :func:`measure_nuclei` for each image, columns :data:`MEASURES`."""
    images = np.asarray(images)
    if images.ndim not in (3, 4):
        raise ValueError(f"images must have shape (n, h, w) or (n, h, w, 1), got {images.shape}")
    return np.array([[m[name] for name in MEASURES] for m in map(measure_nuclei, images)], dtype=np.float64)
