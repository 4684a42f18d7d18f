"""Explaining model decisions with LIME, and measuring how far an explanation can be trusted.

Everything here is silent (nothing on stdout or stderr: no tqdm bars, no warnings, no
JavaScript) and reproducible: each explanation uses a fresh
``numpy.random.RandomState(seed)``, so the same seed gives the same explanation.

Models can be Keras models that output logits (single-logit binary or multi-logit;
:func:`helpers.models.predict_proba` turns them into probabilities) or any object with a
scikit-learn style ``predict_proba``.

Tabular explanations can be given in **original units** (``split=`` a
:class:`helpers.data.Split`): LIME then samples and discretizes in clinical units
("worst radius > 18.79") while the model still receives standardized inputs.

Columns that hold category codes (a patient's sex coded 1 or 2) must be declared in
``categorical_features``: LIME then samples them from the codes seen in the training data
and explains them as "sex=2". Left continuous, lime 0.2.0.1 bins them into quartiles and
turns a bin whose lower and upper edges coincide back into the z-score 0.0 instead of a
value (``BaseDiscretizer.get_undiscretize_values``): about half of its samples get a code
that does not exist (see :func:`perturbation_samples`).
"""
from __future__ import annotations

import contextlib
import io
import itertools
import warnings
from typing import Any, Callable, Sequence
from unittest import mock

import numpy as np

from helpers import validation

__all__ = [
    "probability_function", "lime_explanation", "explain_tabular", "top_features", "jaccard",
    "explanation_stability", "perturbation_samples", "deletion_curve", "random_deletion_curves", "grid_segments",
    "explain_image", "image_weights", "plot_explanation", "RuleClassifier", "fit_ood_detector", "ScaffoldedClassifier",
    "score_function", "effective_sample_size", "shap_background", "kernel_shap", "integrated_gradients",
    "ranking_stability", "positive_ranking", "lime_like_samples", "coalition_samples",
    "gradient_times_input", "greedy_deletion_ranking", "shap_samples", "tune_threshold",
]


@contextlib.contextmanager
def _silent():
    """Swallow Python-level stdout, stderr and warnings (LIME and tqdm write there)."""
    sink = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        warnings.simplefilter("ignore")
        yield


def probability_function(model: Any, split: Any = None) -> Callable[[np.ndarray], np.ndarray]:
    """A function ``X -> (n, num_classes)`` class probabilities, the ``predict_fn`` LIME needs.

    ``model`` is a logit-output Keras model (single- or multi-logit) or an object with a
    scikit-learn ``predict_proba``. With ``split`` (a standardized
    :class:`helpers.data.Split`) the function takes inputs in **original units** and
    standardizes them before calling the model.
    """
    if hasattr(model, "predict_proba"):
        base = model.predict_proba
    elif callable(model):
        from helpers.models import predict_proba

        def base(X):
            return predict_proba(model, X)
    else:
        raise ValueError(f"model must be a Keras model or have predict_proba, got {type(model).__name__}")
    if split is None:
        return lambda X: np.asarray(base(np.asarray(X, dtype=np.float32)), dtype=np.float64)
    return lambda X: np.asarray(base(split.to_standardized(X)), dtype=np.float64)


def _check_tabular(X_train: Any, x: Any, feature_names: Sequence[str], num_features: int,
                   num_samples: int) -> tuple[np.ndarray, np.ndarray, int, int]:
    X_train = validation.finite_array("X_train", X_train, ndim=2)
    x = validation.finite_array("x", x).reshape(-1)
    width = X_train.shape[1]
    if x.shape[0] != width:
        raise ValueError(f"x must have {width} features (the width of X_train), got {x.shape[0]}")
    if len(feature_names) != width:
        raise ValueError(f"feature_names must have {width} names (one per column), got {len(feature_names)}")
    num_features = validation.positive_int("num_features", num_features)
    if num_features > width:
        raise ValueError(f"num_features must be an integer in [1, {width}] (the number of features), "
                         f"got {num_features}")
    num_samples = validation.positive_int("num_samples", num_samples, minimum=1)
    return X_train, x, num_features, num_samples


def _check_categorical(categorical_features: Sequence[int], X_train: np.ndarray, x: np.ndarray,
                       feature_names: Sequence[str]) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Validate the categorical column indices and make their values exact integer codes.

    LIME names a categorical condition ``f"{name}={int(value)}"``, so a column with
    non-integer values would be described wrongly: it is refused. Values within 1e-4 of
    an integer (a round trip through float32 standardization leaves such errors) are
    rounded to it. Returns the indices and copies of ``X_train`` and ``x``.
    """
    width = X_train.shape[1]
    message = f"categorical_features must be distinct column indices in [0, {width - 1}], got {categorical_features!r}"
    try:
        indices = list(categorical_features)
    except TypeError:
        raise ValueError(message) from None
    if any(isinstance(j, (bool, np.bool_)) or not isinstance(j, (int, np.integer)) or not 0 <= j < width
           for j in indices) or len(set(indices)) != len(indices):
        raise ValueError(message)
    indices = [int(j) for j in indices]
    X_train, x = X_train.copy(), x.copy()
    for j in indices:
        for name, values in (("X_train", X_train[:, j]), ("x", x[j:j + 1])):
            codes = np.round(values)
            if not np.allclose(values, codes, rtol=0.0, atol=1e-4):
                raise ValueError(f"categorical_features: column {j} ({feature_names[j]}) of {name} must hold "
                                 f"integer category codes, got {values[np.argmax(np.abs(values - codes))]!r}")
            values[:] = codes
    return indices, X_train, x


_FEATURE_SELECTION = ("highest_weights", "auto", "forward_selection", "lasso_path", "none")


def _number(value: float) -> str:
    return f"{value:.3g}"


def _readable_bin_names(discretizer: Any, feature_names: Sequence[str]) -> None:
    """Rewrite LIME's bin names with 3 significant digits (LIME prints "%.2f": 0.00 for
    a fractal dimension of 0.0038)."""
    for feature in discretizer.names:
        name, qts = feature_names[feature], discretizer.mins[feature][1:]
        names = [f"{name} <= {_number(qts[0])}"]
        names += [f"{_number(lo)} < {name} <= {_number(hi)}" for lo, hi in zip(qts[:-1], qts[1:])]
        names.append(f"{name} > {_number(qts[-1])}")
        discretizer.names[feature] = names


def lime_explanation(model: Any, X_train: np.ndarray, x: np.ndarray, feature_names: Sequence[str],
                     class_names: Sequence[str], num_features: int = 5, num_samples: int = 5000,
                     seed: int = 0, *, split: Any = None, label: int | None = None,
                     kernel_width: float | None = None, discretize: bool = True,
                     feature_selection: str = "highest_weights", categorical_features: Sequence[int] = ()):
    """LIME's full ``Explanation`` object for one row ``x`` (see :func:`explain_tabular`).

    Besides ``as_list(label)`` it carries the surrogate's local fidelity ``score`` (weighted
    R²), ``intercept[label]``, ``local_pred`` and ``predict_proba``. The explained label is
    stored as ``explanation.explained_label``; ``explanation.distances`` and
    ``explanation.kernel_weights`` hold, for each of the ``num_samples`` samples, the distance
    to ``x`` LIME measured and the weight its kernel gave (see :func:`effective_sample_size`).

    Where LIME measures distance depends on ``discretize``. Binned (the default), every
    feature of a sample becomes 1 if it falls in ``x``'s quartile bin and 0 otherwise, and the
    distance is the Euclidean norm of that 0/1 difference: ``sqrt(number of features in another
    bin)``, at most ``sqrt(d)``. Continuous (``discretize=False``), it is the Euclidean distance of
    the standardized values. The same ``kernel_width`` means different neighbourhoods on the two
    scales.
    """
    from lime.lime_tabular import LimeTabularExplainer

    X_train, x, num_features, num_samples = _check_tabular(X_train, x, feature_names, num_features,
                                                           num_samples)
    seed = validation.positive_int("seed", seed, minimum=0)
    if kernel_width is not None:
        kernel_width = validation.positive("kernel_width", kernel_width)
    if feature_selection not in _FEATURE_SELECTION:
        raise ValueError(f"feature_selection must be one of {_FEATURE_SELECTION}, got {feature_selection!r}")
    if split is not None:
        X_train, x = split.to_original_units(X_train), split.to_original_units(x)
    categorical, X_train, x = _check_categorical(categorical_features, X_train, x, feature_names)
    predict_fn = probability_function(model, split)
    with _silent():
        proba = predict_fn(x[None, :])[0]
        if len(proba) != len(class_names):
            raise ValueError(f"class_names must have {len(proba)} names (the model's classes), "
                             f"got {len(class_names)}")
        if label is None:
            label = 1 if len(proba) == 2 else int(np.argmax(proba))
        if not 0 <= label < len(proba):
            raise ValueError(f"label must be in [0, {len(proba) - 1}], got {label}")
        explainer = LimeTabularExplainer(
            X_train, feature_names=list(feature_names), class_names=list(class_names),
            categorical_features=categorical, discretize_continuous=discretize, kernel_width=kernel_width,
            feature_selection=feature_selection, random_state=np.random.RandomState(seed))
        if explainer.discretizer is not None:
            _readable_bin_names(explainer.discretizer, feature_names)
        recorded: dict[str, np.ndarray] = {}
        fit = explainer.base.explain_instance_with_data

        def recording_fit(neighborhood_data, neighborhood_labels, distances, *args, **kwargs):
            recorded["distances"] = np.asarray(distances, dtype=np.float64).copy()
            return fit(neighborhood_data, neighborhood_labels, distances, *args, **kwargs)

        explainer.base.explain_instance_with_data = recording_fit
        explanation = explainer.explain_instance(x, predict_fn, labels=(label,), num_features=num_features,
                                                 num_samples=num_samples)
    explanation.explained_label = label
    explanation.distances = recorded["distances"]
    explanation.kernel_weights = np.asarray(explainer.base.kernel_fn(recorded["distances"]), dtype=np.float64)
    return explanation


def explain_tabular(model: Any, X_train: np.ndarray, x: np.ndarray, feature_names: Sequence[str],
                    class_names: Sequence[str], num_features: int = 5, num_samples: int = 5000,
                    seed: int = 0, *, split: Any = None, label: int | None = None,
                    kernel_width: float | None = None, feature_selection: str = "highest_weights",
                    categorical_features: Sequence[int] = ()) -> list[tuple[str, float]]:
    """Explain the model's prediction for one row ``x`` with LIME.

    Parameters
    ----------
    model:
        A logit-output Keras model (one logit for a binary task, or one per class) or an
        object with ``predict_proba``.
    X_train, x:
        Training data (LIME's sampling distribution) and the row to explain, in the units
        the model takes (standardized for :func:`helpers.data.load_wdbc`).
    feature_names, class_names:
        Names of the columns and of the model's classes (in the model's class order).
    num_features:
        Length of the explanation, in ``[1, number of features]``.
    num_samples:
        Perturbed samples LIME draws (>= 1); more is slower but more stable.
    seed:
        Seed of a fresh ``numpy.random.RandomState`` for this explanation.
    split:
        Optional standardized :class:`helpers.data.Split`: explain in original units.
    label:
        Class to explain; default class 1 for two classes (malignant for WDBC), else the
        predicted class.
    kernel_width:
        LIME's kernel width (default ``0.75 * sqrt(number of features)``).
    feature_selection:
        LIME's feature selection (see :func:`lime_explanation`).
    categorical_features:
        Indices of the columns that hold integer category codes (in the units LIME sees:
        original units with ``split``). LIME samples each from the codes of ``X_train``
        with their training frequencies, and explains it as ``"name=code"``: whether the
        sample has the patient's code. Default: none, every column is continuous and binned
        into quartiles (exactly LIME's behaviour without the argument).

    Returns
    -------
    ``[(feature description, weight), ...]`` sorted by decreasing ``|weight|``; a
    positive weight pushes the probability of ``label`` up.
    """
    explanation = lime_explanation(model, X_train, x, feature_names, class_names, num_features,
                                   num_samples, seed, split=split, label=label, kernel_width=kernel_width,
                                   feature_selection=feature_selection, categorical_features=categorical_features)
    return [(str(name), float(weight)) for name, weight in explanation.as_list(explanation.explained_label)]


def top_features(explanation: Any, k: int | None = None, signed: bool = False) -> list[int]:
    """Indices of the ``k`` features with the largest ``|weight|`` in a LIME explanation.

    With ``signed`` the order is by weight instead: the features that push hardest
    *towards* the explained class first, those that push against it last (the order a
    deletion test of the evidence for a prediction needs).
    """
    key = (lambda t: -t[1]) if signed else (lambda t: -abs(t[1]))
    ranked = sorted(explanation.as_map()[explanation.explained_label], key=key)
    if k is not None:
        k = validation.positive_int("k", k)
        ranked = ranked[:k]
    return [int(i) for i, _ in ranked]


def jaccard(a: Sequence[Any], b: Sequence[Any]) -> float:
    """``|A ∩ B| / |A ∪ B|`` of two collections (1.0 for two empty ones)."""
    a, b = set(a), set(b)
    return 1.0 if not a | b else len(a & b) / len(a | b)


def explanation_stability(model: Any, X_train: np.ndarray, x: np.ndarray, feature_names: Sequence[str],
                          class_names: Sequence[str], num_features: int = 5, num_samples: int = 5000,
                          seeds: Sequence[int] = (0, 1, 2, 3, 4), *, split: Any = None,
                          label: int | None = None, kernel_width: float | None = None,
                          feature_selection: str = "highest_weights",
                          categorical_features: Sequence[int] = ()) -> float:
    """Mean top-k Jaccard similarity of LIME explanations of ``x`` over ``seeds``.

    ``k = num_features``. Each seed gives one explanation; the result is the mean, over
    all pairs of seeds, of the Jaccard index of their top-k feature sets: 1.0 means every
    seed picks the same features, 0.0 that no two seeds share one. Needs >= 2 seeds.
    """
    seeds = [validation.positive_int("seeds", s, minimum=0) for s in seeds]
    if len(seeds) < 2:
        raise ValueError(f"seeds must contain at least 2 seeds, got {len(seeds)}")
    tops = [set(top_features(lime_explanation(model, X_train, x, feature_names, class_names, num_features,
                                              num_samples, seed, split=split, label=label,
                                              kernel_width=kernel_width,
                                              feature_selection=feature_selection,
                                              categorical_features=categorical_features)))
            for seed in seeds]
    return float(np.mean([jaccard(a, b) for a, b in itertools.combinations(tops, 2)]))


class _Recorder:
    """A constant two-class model that keeps the rows it is asked about."""

    def __init__(self) -> None:
        self.rows: list[np.ndarray] = []

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        self.rows.append(X.copy())  # the last call is LIME's batch of samples
        return np.full((len(X), 2), 0.5)


def perturbation_samples(X_train: np.ndarray, x: np.ndarray, feature_names: Sequence[str],
                         num_samples: int = 5000, seed: int = 0, *, split: Any = None,
                         kernel_width: float | None = None,
                         categorical_features: Sequence[int] = ()) -> np.ndarray:
    """The rows LIME asks the model about when it explains ``x`` (same arguments and seed as
    :func:`explain_tabular`): shape ``(num_samples, number of features)``, row 0 is ``x``.

    Exactly what the model receives: standardized with ``split``, and rounded to float32
    like every input :func:`probability_function` passes on. An auditor can see what the
    explanation is built from, e.g. whether a categorical column only takes codes that exist.
    """
    recorder = _Recorder()
    lime_explanation(recorder, X_train, x, feature_names, ["class 0", "class 1"], 1, num_samples, seed,
                     split=split, kernel_width=kernel_width, categorical_features=categorical_features)
    return recorder.rows[-1]


def _deletion_inputs(x: np.ndarray, orders: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    """Rows: for each order, ``x`` with its first 0, 1, ..., k features set to the baseline."""
    num_orders, k = orders.shape
    rows = np.repeat(x[None, :], num_orders * (k + 1), axis=0).reshape(num_orders, k + 1, -1)
    for step in range(1, k + 1):
        cols = orders[:, :step]
        for o in range(num_orders):
            rows[o, step, cols[o]] = baseline[cols[o]]
    return rows.reshape(num_orders * (k + 1), -1)


def _check_deletion(x, baseline):
    x = validation.finite_array("x", x).reshape(-1)
    baseline = np.zeros_like(x) if baseline is None else validation.finite_array("baseline", baseline).reshape(-1)
    if baseline.shape != x.shape:
        raise ValueError(f"baseline must have {x.shape[0]} values (one per feature), got {baseline.shape[0]}")
    return x, baseline


def _check_label(label: int, num_classes: int) -> int:
    label = validation.positive_int("label", label, minimum=0)
    if label >= num_classes:
        raise ValueError(f"label must be in [0, {num_classes - 1}], got {label}")
    return label


_OUTPUTS = ("probability", "logit")


def score_function(model: Any, label: int = 1, output: str = "probability") -> Callable[[np.ndarray], np.ndarray]:
    """A function ``X -> (n,)``: the model's score for class ``label`` on each row.

    ``output="probability"``: P(``label``). ``output="logit"``: for a Keras model the raw
    logit of ``label`` (a single-logit model's ``z`` for label 1 and ``-z`` for label 0, the
    log-odds); for an object with ``predict_proba``, the log-odds ``log(p / (1 - p))`` with
    ``p`` clipped to ``[1e-12, 1 - 1e-12]``. Logits do not saturate: a model that is 99.99 %
    sure still changes its logit visibly when evidence is removed, while its probability
    hardly moves.
    """
    if output not in _OUTPUTS:
        raise ValueError(f"output must be one of {_OUTPUTS}, got {output!r}")
    label = validation.positive_int("label", label, minimum=0)
    if output == "logit" and not hasattr(model, "predict_proba") and callable(model):
        from helpers.models import logits

        def logit_of_label(X):
            z = logits(model, X)
            if z.shape[1] == 1:
                _check_label(label, 2)
                return z[:, 0] if label == 1 else -z[:, 0]
            return z[:, _check_label(label, z.shape[1])]
        return logit_of_label
    predict_fn = probability_function(model)

    def score(X):
        proba = predict_fn(X)
        p = proba[:, _check_label(label, proba.shape[1])]
        if output == "probability":
            return p
        p = np.clip(p, 1e-12, 1.0 - 1e-12)
        return np.log(p) - np.log1p(-p)
    return score


def _check_ranking(ranking: Sequence[int], n: int, what: str) -> np.ndarray:
    """``ranking`` as an int array of distinct values in ``[0, n - 1]`` (``ValueError`` otherwise)."""
    ranking = np.asarray(list(ranking), dtype=int)
    if ranking.ndim != 1 or len(set(ranking.tolist())) != len(ranking) or \
            (len(ranking) and not (0 <= ranking.min() and ranking.max() < n)):
        raise ValueError(f"ranking must be distinct {what} in [0, {n - 1}], got {ranking.tolist()}")
    return ranking


def deletion_curve(model: Any, x: np.ndarray, ranking: Sequence[int], baseline: np.ndarray | None = None,
                   label: int = 1, *, output: str = "probability") -> np.ndarray:
    """Probability (or logit, see :func:`score_function`) of ``label`` as the features in
    ``ranking`` are removed one by one.

    "Removing" feature ``j`` sets it to ``baseline[j]`` (default 0: the training mean
    for standardized data). Returns ``len(ranking) + 1`` scores: before any
    deletion, after deleting ``ranking[0]``, after ``ranking[:2]``, ... A faithful ranking
    makes the curve fall faster than random rankings (:func:`random_deletion_curves`).
    One batched model call.
    """
    x, baseline = _check_deletion(x, baseline)
    score = score_function(model, label, output)
    ranking = _check_ranking(ranking, len(x), "feature indices")
    return score(_deletion_inputs(x, ranking[None, :], baseline))


def random_deletion_curves(model: Any, x: np.ndarray, num_deleted: int, baseline: np.ndarray | None = None,
                           label: int = 1, num_orders: int = 20, seed: int | np.random.Generator = 0, *,
                           output: str = "probability") -> np.ndarray:
    """Deletion curves of ``num_orders`` random feature orders: shape ``(num_orders, num_deleted + 1)``.

    The reference a ranking must beat: average them (``.mean(axis=0)``) and compare with
    :func:`deletion_curve` (same ``output``). One batched model call.
    """
    x, baseline = _check_deletion(x, baseline)
    score = score_function(model, label, output)
    num_deleted = validation.positive_int("num_deleted", num_deleted)
    if num_deleted > len(x):
        raise ValueError(f"num_deleted must be in [1, {len(x)}] (the number of features), got {num_deleted}")
    num_orders = validation.positive_int("num_orders", num_orders)
    rng = validation.rng_from(seed)
    orders = np.stack([rng.permutation(len(x))[:num_deleted] for _ in range(num_orders)])
    return score(_deletion_inputs(x, orders, baseline)).reshape(num_orders, num_deleted + 1)


def positive_ranking(attributions: Sequence[float], k: int | None = None) -> list[int]:
    """Indices of the features with a **positive** attribution, largest first (at most ``k``).

    The features a deletion test of the evidence *for* the explained class should remove:
    deleting a feature that pushes against the class would raise the score and blur the test.
    """
    a = validation.finite_array("attributions", attributions, ndim=1)
    order = [int(j) for j in np.argsort(-a, kind="stable") if a[j] > 0]
    if k is not None:
        order = order[:validation.positive_int("k", k)]
    return order


def greedy_deletion_ranking(model: Any, x: np.ndarray, k: int, baseline: np.ndarray | None = None,
                            label: int = 1, *, output: str = "logit") -> list[int]:
    """The ``k`` features whose deletion lowers the score most, chosen greedily: at each step the
    feature whose removal (set to ``baseline``, default 0) lowers the score of ``label`` most,
    given the features already removed.

    Not an explanation but a **reference** for deletion tests: it looks at the model's answers
    on the very inputs the test measures, so an attribution method's deletion curve can come
    close to it but is not expected to beat it (greedy is not guaranteed optimal, so it is a
    reference, not a bound). ``k`` batched model calls of at most ``d`` rows.
    """
    x, baseline = _check_deletion(x, baseline)
    score = score_function(model, label, output)
    k = validation.positive_int("k", k)
    if k > len(x):
        raise ValueError(f"k must be in [1, {len(x)}] (the number of features), got {k}")
    current, chosen = x.copy(), []
    for _ in range(k):
        candidates = [j for j in range(len(x)) if j not in chosen]
        rows = np.repeat(current[None], len(candidates), axis=0)
        rows[np.arange(len(candidates)), candidates] = baseline[candidates]
        best = candidates[int(np.argmin(score(rows)))]
        chosen.append(best)
        current[best] = baseline[best]
    return chosen


def ranking_stability(attributions: Sequence[Sequence[float]], k: int = 5) -> float:
    """Mean pairwise top-``k`` Jaccard (by ``|attribution|``) of several attribution vectors.

    The measure :func:`explanation_stability` applies to LIME, for any method's vectors
    (Kernel SHAP over seeds, say): 1.0 means every vector names the same ``k`` features.
    Needs >= 2 vectors of equal length >= ``k``.
    """
    vectors = [validation.finite_array("attributions", a, ndim=1) for a in attributions]
    if len(vectors) < 2:
        raise ValueError(f"attributions must contain at least 2 vectors, got {len(vectors)}")
    if len({len(v) for v in vectors}) != 1:
        raise ValueError("attributions must all have the same length")
    k = validation.positive_int("k", k)
    if k > len(vectors[0]):
        raise ValueError(f"k must be in [1, {len(vectors[0])}] (the number of features), got {k}")
    tops = [set(np.argsort(-np.abs(v), kind="stable")[:k].tolist()) for v in vectors]
    return float(np.mean([jaccard(a, b) for a, b in itertools.combinations(tops, 2)]))


def effective_sample_size(weights: Sequence[float]) -> float:
    """Kish's effective sample size ``(sum w)^2 / sum w^2`` of non-negative weights.

    For LIME's kernel weights (``explanation.kernel_weights``): how many equally weighted
    samples the weighted fit is worth. Close to the number of samples means the kernel hardly
    prefers the neighbourhood: the "local" surrogate is nearly a global one.
    """
    w = validation.finite_array("weights", weights, ndim=1)
    if len(w) == 0 or w.min() < 0 or w.sum() <= 0:
        raise ValueError("weights must be non-negative with a positive sum")
    return float(w.sum() ** 2 / np.sum(w ** 2))


# --- Kernel SHAP and Integrated Gradients -----------------------------------------------------

def _import_shap():
    """Import shap silently (0.49.1 emits matplotlib PendingDeprecationWarnings on import)."""
    with _silent():
        import shap
    return shap


def shap_background(X: np.ndarray, k: int = 10) -> Any:
    """A background of ``k`` weighted k-means centres of ``X`` (``shap.kmeans``, seed 0).

    Kernel SHAP evaluates the model on ``nsamples x len(background)`` rows, so a small
    background keeps it fast; each centre is weighted by the rows it stands for, and every
    value is rounded to one that occurs in its column (category codes stay codes).
    """
    shap = _import_shap()
    X = validation.finite_array("X", X, ndim=2)
    k = validation.positive_int("k", k)
    if k > len(X):
        raise ValueError(f"k must be in [1, {len(X)}] (the number of rows), got {k}")
    with _silent():
        return shap.kmeans(X, k)


@contextlib.contextmanager
def _global_numpy_seed(seed: int):
    """Seed numpy's global generator (Kernel SHAP draws from it) and restore it afterwards."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def kernel_shap(f: Callable[[np.ndarray], np.ndarray], background: Any, x: np.ndarray, nsamples: int = 1000,
                seed: int = 0, *, l1_reg: Any = False) -> tuple[np.ndarray, float]:
    """Kernel SHAP values of the scalar function ``f`` at one row ``x``.

    ``f`` maps ``(n, d)`` rows to ``(n,)`` scores (e.g. :func:`score_function` with
    ``output="logit"``); ``background`` is an ``(m, d)`` array or :func:`shap_background`.
    ``nsamples`` coalitions are evaluated (capped by shap at ``2**d - 2``), drawn from numpy's
    global generator seeded with ``seed`` (its state is restored afterwards), so the same
    seed gives the same values. ``l1_reg=False`` (default here, unlike shap's
    ``"num_features(10)"``) estimates every feature instead of keeping 10. Silent.

    Returns ``(phi, base_value)``: ``phi`` has one value per feature and
    ``base_value + phi.sum() == f(x)`` (SHAP's efficiency), where ``base_value`` is ``f``'s
    (weighted) mean over the background.
    """
    import logging

    shap = _import_shap()
    x = validation.finite_array("x", x).reshape(1, -1)
    nsamples = validation.positive_int("nsamples", nsamples, minimum=2)
    seed = validation.positive_int("seed", seed, minimum=0)
    if not callable(f):
        raise ValueError(f"f must be a function from rows to scores, got {type(f).__name__}")

    def scores(rows):
        out = np.asarray(f(np.asarray(rows, dtype=np.float64)), dtype=np.float64)
        if out.shape != (len(rows),):
            raise ValueError(f"f must return one score per row, shape ({len(rows)},), got {out.shape}")
        return out

    logger = logging.getLogger("shap")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with _silent(), _global_numpy_seed(seed):
            explainer = shap.KernelExplainer(scores, background)
            if explainer.data.data.shape[1] != x.shape[1]:
                raise ValueError(f"background must have {x.shape[1]} columns (the width of x), "
                                 f"got {explainer.data.data.shape[1]}")
            phi = explainer.shap_values(x, nsamples=nsamples, l1_reg=l1_reg, silent=True)
    finally:
        logger.setLevel(level)
    return np.asarray(phi, dtype=np.float64).reshape(-1), float(np.squeeze(explainer.expected_value))


def shap_samples(background: Any, x: np.ndarray, nsamples: int = 100, seed: int = 0) -> np.ndarray:
    """The rows Kernel SHAP asks the model about when :func:`kernel_shap` explains ``x`` (same
    ``background``, ``nsamples`` and ``seed``): for each sampled coalition, ``x`` with the
    columns outside the coalition taken from each background row in turn, shape
    ``(number of coalitions x background rows, d)``.

    Recorded from shap itself (a model that returns zeros and keeps its inputs), so the
    coalition sizes follow the Shapley kernel as in a real explanation, with the small and
    large coalitions it enumerates first.
    """
    calls: list[np.ndarray] = []

    def recorder(rows):
        calls.append(np.array(rows, dtype=np.float64))
        return np.zeros(len(rows))

    kernel_shap(recorder, background, x, nsamples=nsamples, seed=seed)
    return calls[-1]  # shap calls the model on the background, on x, then on all coalition rows at once


def gradient_times_input(model: Any, x: np.ndarray, baseline: np.ndarray | None = None,
                         label: int = 1) -> np.ndarray:
    """Gradient x input of a Keras logit model at ``x``: ``(x - baseline) * grad f(x)``.

    ``f`` is the logit of ``label`` (as in :func:`integrated_gradients`); ``baseline`` defaults
    to zeros (the training mean of standardized data). One gradient, no path: exact
    (and equal to Integrated Gradients) for a model linear between ``baseline`` and ``x``;
    otherwise the attributions need not add up to ``f(x) - f(baseline)``.
    """
    import tensorflow as tf

    x = validation.finite_array("x", x)
    baseline = np.zeros_like(x) if baseline is None else validation.finite_array("baseline", baseline)
    if baseline.shape != x.shape:
        raise ValueError(f"baseline must have the shape of x {x.shape}, got {baseline.shape}")
    label = validation.positive_int("label", label, minimum=0)
    point = tf.constant(x[None], dtype=tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(point)
        z = model(point, training=False)
        if z.shape[-1] == 1:
            _check_label(label, 2)
            out = z[:, 0] if label == 1 else -z[:, 0]
        else:
            out = z[:, _check_label(label, int(z.shape[-1]))]
    return (x - baseline) * tape.gradient(out, point).numpy()[0].astype(np.float64)


def integrated_gradients(model: Any, x: np.ndarray, baseline: np.ndarray | None = None, steps: int = 64,
                         label: int = 1) -> np.ndarray:
    """Integrated Gradients (Sundararajan, Taly & Yan, 2017) of a Keras logit model at ``x``.

    Attribution of feature ``j``: ``(x_j - baseline_j)`` times the average gradient of the
    logit of ``label`` (see :func:`score_function`: ``z`` or ``-z`` for a single-logit model)
    along the straight path from ``baseline`` (default all zeros: the training mean of
    standardized data) to ``x``, by the trapezoidal rule on ``steps`` intervals. Completeness:
    the attributions sum to ``f(x) - f(baseline)``, up to the quadrature error, which falls as
    ``steps`` grows (exact for a model that is linear along the path). ``x`` may be a row or an
    image; the result has its shape. One batched gradient call.
    """
    import tensorflow as tf

    x = validation.finite_array("x", x)
    baseline = np.zeros_like(x) if baseline is None else validation.finite_array("baseline", baseline)
    if baseline.shape != x.shape:
        raise ValueError(f"baseline must have the shape of x {x.shape}, got {baseline.shape}")
    steps = validation.positive_int("steps", steps)
    label = validation.positive_int("label", label, minimum=0)
    alphas = np.linspace(0.0, 1.0, steps + 1).reshape((-1,) + (1,) * x.ndim)
    path = tf.constant(baseline[None] + alphas * (x - baseline)[None], dtype=tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(path)
        z = model(path, training=False)
        if z.shape[-1] == 1:
            _check_label(label, 2)
            out = z[:, 0] if label == 1 else -z[:, 0]
        else:
            out = z[:, _check_label(label, int(z.shape[-1]))]
    grads = tape.gradient(out, path).numpy().astype(np.float64)
    average = ((grads[:-1] + grads[1:]) / 2.0).mean(axis=0)
    return (x - baseline) * average


# --- images -------------------------------------------------------------------------------

def grid_segments(shape: tuple[int, int] = (8, 8), patch: int = 2) -> np.ndarray:
    """Segment labels that cut an image into ``patch x patch`` squares (row-major numbering).

    LIME's default quickshift segmentation needs images far larger than 8x8 (on a digit
    it returns one segment); a fixed grid gives 16 superpixels of 2x2 pixels.
    """
    rows, cols = (validation.positive_int("shape", int(s)) for s in shape)
    patch = validation.positive_int("patch", patch)
    if rows % patch or cols % patch:
        raise ValueError(f"patch must divide both image sides {shape}, got {patch}")
    r, c = np.indices((rows, cols))
    return (r // patch) * (cols // patch) + c // patch


def explain_image(model: Any, image: np.ndarray, label: int | None = None, segments: np.ndarray | None = None,
                  num_samples: int = 500, seed: int = 0, hide_color: float = 0.0):
    """LIME explanation of a greyscale image ``(h, w)`` or ``(h, w, 1)`` for a Keras model.

    ``segments`` is an ``(h, w)`` label array (default :func:`grid_segments` with 2x2
    patches); ``hide_color`` replaces switched-off superpixels (0 = blank paper for the
    digits). ``label`` defaults to the predicted class. Returns LIME's
    ``ImageExplanation`` with ``explained_label`` and ``segments`` set; its
    ``local_exp[label]`` lists ``(segment, weight)``. Silent (no tqdm bar).
    """
    from lime import lime_image

    image = _grey_image(image)
    segments = grid_segments(image.shape) if segments is None else np.asarray(segments)
    if segments.shape != image.shape:
        raise ValueError(f"segments must have the image's shape {image.shape}, got {segments.shape}")
    num_samples = validation.positive_int("num_samples", num_samples)
    seed = validation.positive_int("seed", seed, minimum=0)
    base = probability_function(model)

    def predict_fn(rgb):  # LIME works on RGB copies of the grey image
        return base(np.asarray(rgb)[..., :1])

    proba = predict_fn(np.repeat(image[None, :, :, None], 3, axis=3))[0]
    label = int(np.argmax(proba)) if label is None else _check_label(label, len(proba))
    explainer = lime_image.LimeImageExplainer(random_state=np.random.RandomState(seed))
    with _silent(), mock.patch.object(lime_image, "tqdm", lambda iterable, *a, **k: iterable):
        explanation = explainer.explain_instance(
            image, predict_fn, labels=(label,), top_labels=None, hide_color=hide_color,
            num_features=int(segments.max()) + 1, num_samples=num_samples, batch_size=min(num_samples, 100),
            segmentation_fn=lambda img: segments, random_seed=seed)
    explanation.explained_label = label
    explanation.segments = segments
    return explanation


#: Kinds of the superpixels of :func:`nucleus_segments`.
SEGMENT_KINDS = ("boundary", "interior", "background")


def _grey_image(image: Any) -> np.ndarray:
    image = validation.finite_array("image", image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim != 2:
        raise ValueError(f"image must have shape (h, w) or (h, w, 1), got {image.shape}")
    return image


def nucleus_segments(image: Any, ring: int = 1, tiles: int = 4, min_size: int = 4) -> tuple[np.ndarray, tuple[str, ...]]:
    """Superpixels that follow the nuclei of a grey image (dark nuclei on a light background).

    The nuclei are found with Otsu's threshold and labelled (``skimage``); each nucleus
    gives two superpixels, its **boundary** (pixels within ``ring`` pixels of its contour,
    inside or outside: ``dilation - erosion`` by a disk of radius ``ring``) and its
    **interior** (the eroded nucleus; binary morphology from ``scipy.ndimage``); the rest, the **background**, is cut into a
    ``tiles x tiles`` grid. Objects smaller than ``min_size`` pixels count as background.
    Returns ``(segments, kinds)``: an ``(h, w)`` array of labels ``0..m-1`` and, for each
    label, its kind (:data:`SEGMENT_KINDS`). Deterministic.
    """
    from scipy import ndimage
    from skimage import filters, measure, morphology

    image = _grey_image(image)
    ring = validation.positive_int("ring", ring)
    tiles = validation.positive_int("tiles", tiles)
    min_size = validation.positive_int("min_size", min_size)
    if image.max() == image.min():
        raise ValueError("image must not be constant (no nuclei to segment)")
    nuclei = measure.label(image < filters.threshold_otsu(image))
    segments = np.full(image.shape, -1, dtype=np.int64)
    kinds: list[str] = []
    disk = morphology.disk(ring)
    for region in measure.regionprops(nuclei):
        if region.area < min_size:
            continue
        mask = nuclei == region.label
        interior = ndimage.binary_erosion(mask, disk)
        boundary = ndimage.binary_dilation(mask, disk) & ~interior
        for part, kind in ((boundary, "boundary"), (interior, "interior")):
            free = part & (segments < 0)
            if free.any():
                segments[free] = len(kinds)
                kinds.append(kind)
    r, c = np.indices(image.shape)
    cell = (r * tiles // image.shape[0]) * tiles + c * tiles // image.shape[1]
    for t in range(tiles * tiles):
        free = (cell == t) & (segments < 0)
        if free.any():
            segments[free] = len(kinds)
            kinds.append("background")
    return segments, tuple(kinds)


def segment_deletion_curve(model: Any, image: Any, segments: np.ndarray, ranking: Sequence[int],
                           fill: float, label: int = 1, *, output: str = "logit") -> np.ndarray:
    """Score of ``label`` (:func:`score_function`, the logit by default) as the superpixels in
    ``ranking`` are painted over with the grey level ``fill``, one after the other:
    ``len(ranking) + 1`` values, the first for the intact image. The image analogue of
    :func:`deletion_curve`; one batched model call."""
    image = _grey_image(image)
    segments = np.asarray(segments)
    if segments.shape != image.shape:
        raise ValueError(f"segments must have the image's shape {image.shape}, got {segments.shape}")
    ranking = _check_ranking(ranking, int(segments.max()) + 1, "segment labels")
    fill = float(validation.finite_array("fill", fill))
    batch = np.repeat(image[None], len(ranking) + 1, axis=0)
    for k in range(1, len(ranking) + 1):
        batch[k:][:, segments == ranking[k - 1]] = fill
    return score_function(model, label, output)(batch[..., None].astype(np.float32))


def image_explanation_stability(model: Any, image: Any, segments: np.ndarray, num_features: int = 5,
                                num_samples: int = 500, seeds: Sequence[int] = (0, 1, 2), label: int | None = None,
                                hide_color: float = 0.0) -> float:
    """Mean top-k Jaccard similarity of LIME image explanations (:func:`explain_image` with
    these ``segments``) of one image over ``seeds``: the image analogue of
    :func:`explanation_stability` (top ``num_features`` superpixels by ``|weight|``)."""
    seeds = [validation.positive_int("seeds", s, minimum=0) for s in seeds]
    if len(seeds) < 2:
        raise ValueError(f"seeds must contain at least 2 seeds, got {len(seeds)}")
    num_features = validation.positive_int("num_features", num_features)
    tops = []
    for seed in seeds:
        explanation = explain_image(model, image, label=label, segments=segments, num_samples=num_samples,
                                    seed=seed, hide_color=hide_color)
        ranked = sorted(explanation.local_exp[explanation.explained_label], key=lambda t: -abs(t[1]))
        tops.append({int(i) for i, _ in ranked[:num_features]})
    return float(np.mean([jaccard(a, b) for a, b in itertools.combinations(tops, 2)]))


def superpixel_evidence(model: Any, image: Any, label: int = 1, num_deleted: int = 5, num_samples: int = 1000,
                        num_random: int = 10, seed: int = 0) -> dict[str, Any]:
    """Where LIME finds the evidence for ``label`` in a nucleus image, and a deletion test of it.

    Segments the image with :func:`nucleus_segments`, explains it with :func:`explain_image`
    (switched-off superpixels painted with the image's median grey level, the background),
    and returns ``{"share": {kind: share of the positive LIME weight on superpixels of that
    kind}, "density": {kind: signed LIME weight per pixel of that kind (superpixels differ in
    size: a boundary ring holds more pixels than an interior)}, "drop": logit drop after painting over the ``num_deleted`` superpixels LIME ranks
    highest, "drop_random": mean drop over ``num_random`` random sets of as many superpixels,
    "segments", "kinds", "explanation"}``. A faithful explanation drops the logit more than
    random superpixels do. Seeded by ``seed`` (LIME and the random orders).
    """
    num_deleted = validation.positive_int("num_deleted", num_deleted)
    num_random = validation.positive_int("num_random", num_random)
    seed = validation.positive_int("seed", seed, minimum=0)
    image = _grey_image(image)
    segments, kinds = nucleus_segments(image)
    fill = float(np.median(image))
    explanation = explain_image(model, image, label=label, segments=segments, num_samples=num_samples, seed=seed,
                                hide_color=fill)
    weights = dict(explanation.local_exp[explanation.explained_label])
    positive = {s: w for s, w in weights.items() if w > 0}
    total = sum(positive.values())
    share = {kind: (sum(w for s, w in positive.items() if kinds[s] == kind) / total if total > 0 else 0.0)
             for kind in SEGMENT_KINDS}
    density = {}
    for kind in SEGMENT_KINDS:
        labels = [s for s, k in enumerate(kinds) if k == kind]
        pixels = int(np.isin(segments, labels).sum())
        density[kind] = sum(weights.get(s, 0.0) for s in labels) / pixels if pixels else 0.0
    k = min(num_deleted, len(kinds))
    top = sorted(weights, key=lambda s: -weights[s])[:k]
    curve = segment_deletion_curve(model, image, segments, top, fill, explanation.explained_label)
    rng = np.random.default_rng(seed)
    random_drops = [curve[0] - segment_deletion_curve(model, image, segments, rng.permutation(len(kinds))[:k], fill,
                                                      explanation.explained_label)[-1] for _ in range(num_random)]
    return {"share": share, "density": density, "drop": float(curve[0] - curve[-1]), "drop_random": float(np.mean(random_drops)),
            "segments": segments, "kinds": kinds, "explanation": explanation}


def image_weights(explanation: Any, label: int | None = None) -> np.ndarray:
    """LIME's segment weights painted onto the image grid: an ``(h, w)`` array."""
    label = explanation.explained_label if label is None else label
    heat = np.zeros(explanation.segments.shape)
    for segment, weight in explanation.local_exp[label]:
        heat[explanation.segments == segment] = weight
    return heat


def plot_explanation(ranked: Sequence[tuple[str, float]], title: str, xlabel: str = "LIME weight", ax: Any = None):
    """A horizontal bar chart of ``[(description, weight), ...]``, the largest at the top.

    Positive weights (towards the explained class) are vermillion, negative ones blue.
    Returns the axes; the caller adds ``plt.show()``.
    """
    import matplotlib.pyplot as plt

    from helpers.env import COLORS

    if not ranked:
        raise ValueError("ranked must contain at least one (description, weight) pair")
    if ax is None:
        _, ax = plt.subplots(figsize=(6.0, 0.45 * len(ranked) + 1.0))
    names = [d for d, _ in ranked][::-1]
    weights = np.array([w for _, w in ranked][::-1], dtype=float)
    colors = [COLORS["vermillion"] if w > 0 else COLORS["blue"] for w in weights]
    ax.barh(names, weights, color=colors)
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.grid(axis="y", visible=False)
    return ax


# --- fooling LIME (Slack et al., 2020) ---------------------------------------------------------

class RuleClassifier:
    """A transparent two-class rule: class 1 iff ``X[:, feature] > threshold``."""

    def __init__(self, feature: int, threshold: float):
        self.feature = validation.positive_int("feature", feature, minimum=0)
        self.threshold = float(threshold)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        positive = (np.asarray(X, dtype=np.float64)[:, self.feature] > self.threshold).astype(np.float64)
        return np.column_stack([1.0 - positive, positive])

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.predict_proba(X).argmax(axis=1)


def lime_like_samples(X: np.ndarray, num_copies: int = 2, seed: int | np.random.Generator = 0) -> np.ndarray:
    """Rows whose columns are resampled independently from the data's marginals.

    This is what LIME's tabular sampler does (each feature drawn on its own), and it breaks
    the correlations between features: the samples fall off the data manifold.
    """
    X = validation.finite_array("X", X, ndim=2)
    num_copies = validation.positive_int("num_copies", num_copies)
    rng = validation.rng_from(seed)
    copies = [np.column_stack([rng.permutation(X[:, j]) for j in range(X.shape[1])]) for _ in range(num_copies)]
    return np.concatenate(copies)


def coalition_samples(X: np.ndarray, background: np.ndarray, num_copies: int = 2,
                      seed: int | np.random.Generator = 0) -> np.ndarray:
    """Rows like those Kernel SHAP asks about: each row of ``X`` with a random subset of its
    columns replaced by the values of a random ``background`` row.

    Per row, a share ``u ~ Uniform(0, 1)`` is drawn and each column is replaced with
    probability ``u``, so coalitions of every size occur. This is an **approximation**: Kernel
    SHAP draws coalition sizes from the Shapley kernel (mostly very small and very large
    coalitions) and pairs each coalition with every background row; :func:`shap_samples`
    records the rows it really queries. Unlike :func:`lime_like_samples`,
    most columns of a sample still come from one real row, so many samples look real.
    """
    X = validation.finite_array("X", X, ndim=2)
    background = validation.finite_array("background", getattr(background, "data", background), ndim=2)
    if background.shape[1] != X.shape[1]:
        raise ValueError(f"background must have {X.shape[1]} columns (the width of X), got {background.shape[1]}")
    num_copies = validation.positive_int("num_copies", num_copies)
    rng = validation.rng_from(seed)
    copies = []
    for _ in range(num_copies):
        rows = X.copy()
        mask = rng.random(X.shape) < rng.random((len(X), 1))
        donors = background[rng.integers(len(background), size=len(X))]
        rows[mask] = donors[mask]
        copies.append(rows)
    return np.concatenate(copies)


def fit_ood_detector(X: np.ndarray, num_copies: int = 2, seed: int = 0, *, background: Any = None,
                     fake: np.ndarray | None = None, num_trees: int = 100):
    """A random forest that tells real rows ``X`` (class 1) from an explainer's queries (class 0).

    ``fake`` gives the class-0 rows directly. Slack et al. (2020) train on the explainer's own
    perturbations: for LIME, :func:`perturbation_samples` around the attacker's rows; for
    Kernel SHAP, :func:`shap_samples`. Without ``fake`` the class-0 rows are a **proxy**:
    ``num_copies`` copies of ``X`` with each column shuffled on its own
    (:func:`lime_like_samples`), plus with ``background`` :func:`coalition_samples`. A proxy
    that misses how the explainer really samples leaves a leak (see notebook 03).

    The forest keeps out-of-bag estimates (``oob_score=True``), and ``num_real_`` records
    how many of its training rows were real, so :func:`tune_threshold` can pick a threshold
    from the attacker's own rows without touching anybody else's.
    """
    from sklearn.ensemble import RandomForestClassifier

    X = validation.finite_array("X", X, ndim=2)
    seed = validation.positive_int("seed", seed, minimum=0)
    num_trees = validation.positive_int("num_trees", num_trees, minimum=10)
    if fake is None:
        fake = lime_like_samples(X, num_copies, seed)
        if background is not None:
            fake = np.concatenate([fake, coalition_samples(X, background, num_copies, seed)])
    else:
        fake = validation.finite_array("fake", fake, ndim=2)
        if fake.shape[1] != X.shape[1]:
            raise ValueError(f"fake must have {X.shape[1]} columns (the width of X), got {fake.shape[1]}")
        if background is not None:
            raise ValueError("give either fake (the explainer's own rows) or background (the proxy), not both")
    data = np.concatenate([X, fake])
    target = np.concatenate([np.ones(len(X)), np.zeros(len(fake))])
    detector = RandomForestClassifier(n_estimators=num_trees, min_samples_leaf=2, random_state=seed, n_jobs=1,
                                      oob_score=True)
    with _silent():  # a row no tree left out would warn; with >= 10 trees it is vanishingly rare
        detector.fit(data, target)
    detector.num_real_ = len(X)
    return detector


def tune_threshold(detector: Any, keep: float = 0.9) -> float:
    """The attacker's threshold: the largest one at which a share ``keep`` of its **own** real
    rows (out-of-bag estimates of a :func:`fit_ood_detector` forest) are judged real.

    The attacker never needs the patients the model will later see: the out-of-bag
    estimate of each of its rows comes from the trees that did not train on it.
    """
    keep = validation.fraction("keep", keep)
    if not hasattr(detector, "oob_decision_function_") or not hasattr(detector, "num_real_"):
        raise ValueError("detector must come from fit_ood_detector (it needs out-of-bag estimates)")
    p_real = detector.oob_decision_function_[:detector.num_real_, 1]
    return float(np.quantile(p_real, 1.0 - keep, method="lower"))


class ScaffoldedClassifier:
    """Slack et al.'s adversarial scaffolding: ``biased`` on real-looking inputs, ``innocuous``
    on inputs the ``detector`` flags as off-manifold (the perturbations LIME asks about)."""

    def __init__(self, biased: Any, innocuous: Any, detector: Any, threshold: float = 0.5):
        self.biased, self.innocuous, self.detector = biased, innocuous, detector
        self.threshold = validation.fraction("threshold", threshold)

    def looks_real(self, X: np.ndarray) -> np.ndarray:
        """True where the detector believes the row is real data."""
        return self.detector.predict_proba(np.asarray(X, dtype=np.float64))[:, 1] >= self.threshold

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        real = self.looks_real(X)[:, None]
        return np.where(real, self.biased.predict_proba(X), self.innocuous.predict_proba(X))

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.predict_proba(X).argmax(axis=1)
