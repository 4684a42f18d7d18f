"""Exercises of notebook 03 (explainability): keys ``explain.*``.

The checkers need no TensorFlow: the probability-wrapper exercise is checked on small
stand-ins that behave like Keras models (``model(X, training=False)`` returns logits).
"""
from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from helpers.exercises.core import Finding, exercise


# --- 1. the probability function LIME needs ----------------------------------------------------

class _Logits(np.ndarray):
    """An array that, like a TensorFlow tensor, also has ``.numpy()``."""

    def numpy(self) -> np.ndarray:
        return np.asarray(self)


class _FakeKerasModel:
    """Behaves like a logit-output Keras model: ``model(X)`` and ``model.predict(X)``."""

    def __init__(self, weights: np.ndarray):
        self.weights = np.asarray(weights, dtype=np.float64)
        self.output_shape = (None, self.weights.shape[1])

    def __call__(self, X, training: bool = False):
        return (np.asarray(X, dtype=np.float64) @ self.weights).astype(np.float32).view(_Logits)

    def predict(self, X, verbose: int = 0, batch_size: int | None = None) -> np.ndarray:
        return np.asarray(self(X))


def keras_predict_proba(model, X):
    z = np.asarray(model(np.asarray(X, dtype=np.float32), training=False), dtype=np.float64)
    if z.shape[1] == 1:  # one logit z: P(class 1) = sigmoid(z)
        p1 = 1.0 / (1.0 + np.exp(-z[:, 0]))
        return np.column_stack([1.0 - p1, p1])
    e = np.exp(z - z.max(axis=1, keepdims=True))  # several logits: softmax
    return e / e.sum(axis=1, keepdims=True)


def _swapped_predict_proba(model, X):
    p1 = 1.0 / (1.0 + np.exp(-np.asarray(model(X))[:, 0]))
    return np.column_stack([p1, 1.0 - p1])


def _sigmoid_only(model, X):
    return 1.0 / (1.0 + np.exp(-np.asarray(model(X))))


def _raw_logits(model, X):
    z = np.asarray(model(X))
    return np.column_stack([-z[:, 0], z[:, 0]]) if z.shape[1] == 1 else z


@exercise(
    "explain.predict_proba", "a predict_proba for Keras logit models",
    hint="LIME wants an (n, number of classes) array of probabilities whose rows sum to 1. "
         "One logit z means P(class 1) = sigmoid(z), so the columns are [1 - sigmoid(z), sigmoid(z)]; "
         "several logits need a softmax.",
    reference=keras_predict_proba,
    wrong_answers=[(_swapped_predict_proba, "class order"), (_sigmoid_only, "one column per class"),
                   (_raw_logits, "logits")],
)
def _check_predict_proba(answer: Any):
    if not callable(answer):
        yield Finding(False, "answer must be a function predict_proba(model, X)")
        return
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 4)).astype(np.float32)
    single = _FakeKerasModel(rng.normal(size=(4, 1)))
    got = np.asarray(answer(single, X), dtype=np.float64)
    expected = keras_predict_proba(single, X)
    if got.shape != expected.shape:
        yield Finding(False, f"for a single-logit model LIME needs one column per class: shape (50, 2), "
                             f"got {got.shape}")
        return
    if got.min() < -1e-9 or got.max() > 1 + 1e-9:
        yield Finding(False, "your values are outside [0, 1]: these are logits, not probabilities "
                             "(apply the sigmoid / softmax)")
        return
    if np.allclose(got, expected[:, ::-1], atol=1e-5):
        yield Finding(False, "the class order is swapped: column 1 must be P(class 1) = sigmoid(z) "
                             "(malignant for WDBC), column 0 is 1 - sigmoid(z)")
        return
    yield Finding(np.allclose(got, expected, atol=1e-5),
                  "single-logit model: columns [1 - sigmoid(z), sigmoid(z)]" if np.allclose(got, expected, atol=1e-5)
                  else "single-logit model: the probabilities differ from [1 - sigmoid(z), sigmoid(z)]")
    multi = _FakeKerasModel(rng.normal(size=(4, 3)))
    got = np.asarray(answer(multi, X), dtype=np.float64)
    expected = keras_predict_proba(multi, X)
    if got.shape != expected.shape:
        yield Finding(False, f"for a 3-logit model the shape must be (50, 3), got {got.shape}")
        return
    ok = np.allclose(got, expected, atol=1e-5)
    yield Finding(ok, "3-logit model: softmax of the logits, rows sum to 1" if ok else
                  f"3-logit model: rows must be the softmax of the logits (your rows sum to "
                  f"{got.sum(axis=1).min():.3f}..{got.sum(axis=1).max():.3f})")


# --- 2. stability of an explanation -----------------------------------------------------------

def stability(explanations, k):
    import itertools

    tops = [set(sorted(e, key=lambda name: -abs(e[name]))[:k]) for e in explanations]
    pairs = list(itertools.combinations(tops, 2))
    return sum(len(a & b) / len(a | b) for a, b in pairs) / len(pairs)


def _signed_stability(explanations, k):
    tops = [set(sorted(e, key=lambda name: -e[name])[:k]) for e in explanations]
    pairs = list(itertools.combinations(tops, 2))
    return sum(len(a & b) / len(a | b) for a, b in pairs) / len(pairs)


def _intersection_stability(explanations, k):
    tops = [set(sorted(e, key=lambda name: -abs(e[name]))[:k]) for e in explanations]
    pairs = list(itertools.combinations(tops, 2))
    return sum(len(a & b) for a, b in pairs) / len(pairs)


def _first_only_stability(explanations, k):
    tops = [set(sorted(e, key=lambda name: -abs(e[name]))[:k]) for e in explanations]
    return sum(len(tops[0] & b) / len(tops[0] | b) for b in tops[1:]) / (len(tops) - 1)


@exercise(
    "explain.stability", "top-k Jaccard stability of explanations",
    hint="For each explanation take the k feature names with the largest |weight| (a large negative "
         "weight matters as much as a large positive one); the Jaccard index of two sets is "
         "|A ∩ B| / |A ∪ B|; average it over all pairs of explanations (itertools.combinations).",
    reference=stability,
    wrong_answers=[(_signed_stability, "absolute"), (_intersection_stability, "union"),
                   (_first_only_stability, "all pairs")],
)
def _check_stability(answer: Any):
    if not callable(answer):
        yield Finding(False, "answer must be a function stability(explanations, k)")
        return
    same = [{"a": 0.5, "b": -0.3, "c": 0.1}] * 3
    got = float(answer(same, 2))
    yield Finding(abs(got - 1.0) < 1e-9, f"three identical explanations: expected 1.000, got {got:.3f}")
    signs = [{"a": 0.5, "b": -0.9, "c": 0.1, "d": 0.05}, {"a": 0.4, "b": -0.8, "c": 0.2, "d": 0.0}]
    got = float(answer(signs, 2))
    if abs(got - 1.0) > 1e-9 and abs(got - _signed_stability(signs, 2)) < 1e-9:
        yield Finding(False, "rank by absolute weight: 'b' with weight -0.9 is the most important feature")
    else:
        yield Finding(abs(got - 1.0) < 1e-9, f"negative weights count by their absolute value: expected 1.000, "
                                             f"got {got:.3f}")
    three = [{"a": 0.9, "b": 0.8, "c": 0.1, "d": 0.0}, {"a": 0.9, "b": 0.8, "c": 0.1, "d": 0.0},
             {"c": 0.9, "d": -0.8, "a": 0.1, "b": 0.0}]
    truth = stability(three, 2)
    got = float(answer(three, 2))
    if abs(got - _intersection_stability(three, 2)) < 1e-9:
        yield Finding(False, f"you counted shared features ({got:.3f}); divide by the size of the union "
                             f"to get a number in [0, 1]")
    elif abs(got - _first_only_stability(three, 2)) < 1e-9 and abs(got - truth) > 1e-9:
        yield Finding(False, f"you compared each explanation with the first one only ({got:.3f}); "
                             f"average over all pairs ({truth:.3f})")
    else:
        yield Finding(abs(got - truth) < 1e-9, f"three explanations, k=2: expected {truth:.3f}, got {got:.3f}")


# --- 3. reading a deletion curve --------------------------------------------------------------

#: Statement letter -> (statement, true?, why).
DELETION_STATEMENTS: dict[str, tuple[str, bool, str]] = {
    "A": ("LIME's curve falls faster than the average random curve, so for this patient the model's "
          "output depends more on LIME's top features than on random ones.", True,
          "that is exactly what a deletion test measures: faithfulness of the ranking to the model"),
    "B": ("The deletion test shows that these measurements cause malignancy.", False,
          "the test is about the model, not biology: it says what the model uses, not what causes cancer"),
    "C": ("Setting a feature to its training mean can create a patient no one has ever seen, so part of "
          "the drop may be an artefact of off-manifold inputs.", True,
          "deletion by mean replacement breaks correlations (radius, perimeter and area move together)"),
    "D": ("If deleting the top-5 features hardly moves the prediction, LIME's ranking must be wrong.", False,
          "not necessarily: correlated features can carry the same information, so the model can fall "
          "back on them (redundancy)"),
}


@exercise(
    "explain.deletion_reading", "what does a deletion curve tell you?",
    hint="A deletion curve measures the model's behaviour on edited inputs. It says nothing about "
         "biology, and edited inputs may be unlike any real patient.",
    reference={letter: truth for letter, (_, truth, _) in DELETION_STATEMENTS.items()},
    wrong_answers=[({letter: True for letter in DELETION_STATEMENTS}, "not biology"),
                   (["A", "C"], "a dict"), ({"A": True, "B": False, "C": True, "D": True}, "redundancy")],
)
def _check_deletion_reading(answer: Any):
    if not isinstance(answer, dict):
        yield Finding(False, "answer must be a dict such as {'A': True, 'B': False, ...}, "
                             f"got {type(answer).__name__}")
        return
    for letter, (_, truth, why) in DELETION_STATEMENTS.items():
        given = answer.get(letter)
        if not isinstance(given, (bool, np.bool_)):
            yield Finding(False, f"{letter}: answer True or False, got {given!r}")
        elif bool(given) == truth:
            yield Finding(True, f"{letter} is {truth}: {why}")
        else:
            yield Finding(False, f"{letter} is {truth}, not {bool(given)}: {why}")


# --- 4. superpixels for 8x8 digits ------------------------------------------------------------

def grid(patch):
    rows, cols = np.indices((8, 8))
    return (rows // patch) * (8 // patch) + cols // patch


def _one_segment(patch):
    return np.zeros((8, 8), dtype=int)


def _stripes(patch):
    return np.indices((8, 8))[0] // patch  # horizontal stripes, not squares


@exercise(
    "explain.grid", "a grid segmentation for 8x8 images",
    hint="np.indices((8, 8)) gives the row and column of every pixel; integer-divide both by the "
         "patch size and combine them into one label per square: (row // p) * (8 // p) + col // p.",
    reference=grid,
    wrong_answers=[(_one_segment, "single segment"), (_stripes, "square")],
)
def _check_grid(answer: Any):
    if not callable(answer):
        yield Finding(False, "answer must be a function grid(patch) returning an (8, 8) array of labels")
        return
    for patch in (2, 4):
        seg = np.asarray(answer(patch))
        if seg.shape != (8, 8):
            yield Finding(False, f"patch={patch}: the labels must have the image's shape (8, 8), got {seg.shape}")
            continue
        labels = np.unique(seg)
        expected = (8 // patch) ** 2
        if len(labels) == 1:
            yield Finding(False, f"patch={patch}: a single segment (like quickshift on a digit) lets LIME "
                                 f"switch off only the whole image")
            continue
        squares = all(
            len(np.unique(seg[r:r + patch, c:c + patch])) == 1
            for r in range(0, 8, patch) for c in range(0, 8, patch))
        ok = squares and len(labels) == expected
        yield Finding(ok, f"patch={patch}: {expected} segments, each a {patch}x{patch} square" if ok else
                      f"patch={patch}: expected {expected} segments that are each a {patch}x{patch} square, got "
                      f"{len(labels)} segments" + ("" if squares else " that are not squares"))


# --- 5. Integrated Gradients by hand ----------------------------------------------------------

def integrated_gradients(grad, x, baseline, steps):
    alphas = np.linspace(0.0, 1.0, steps + 1)
    g = np.array([grad(baseline + a * (x - baseline)) for a in alphas])
    return (x - baseline) * ((g[:-1] + g[1:]) / 2).mean(axis=0)


def _gradient_times_input(grad, x, baseline, steps):
    return grad(x) * x


def _average_gradient_only(grad, x, baseline, steps):
    alphas = np.linspace(0.0, 1.0, steps + 1)
    return np.array([grad(baseline + a * (x - baseline)) for a in alphas]).mean(axis=0)


def _ignores_baseline(grad, x, baseline, steps):
    alphas = np.linspace(0.0, 1.0, steps + 1)
    return x * np.array([grad(baseline + a * (x - baseline)) for a in alphas]).mean(axis=0)


def _ig_function(v):
    return float(np.sum(np.sin(v)) + v[0] * v[1] + np.maximum(v[2], 0.0) ** 2)


def _ig_gradient(v):
    g = np.cos(v)
    g[0] += v[1]
    g[1] += v[0]
    g[2] += 2.0 * max(v[2], 0.0)
    return g


@exercise(
    "explain.integrated_gradients", "Integrated Gradients from a gradient function",
    hint="Walk the straight path baseline + a * (x - baseline) for a = 0, 1/steps, ..., 1; average the "
         "gradients along it (the trapezoidal rule averages neighbours); multiply feature by feature by "
         "(x - baseline). The attributions must then add up to f(x) - f(baseline).",
    reference=integrated_gradients,
    wrong_answers=[(_gradient_times_input, "gradient x input"), (_average_gradient_only, "x - baseline"),
                   (_ignores_baseline, "baseline")],
)
def _check_integrated_gradients(answer: Any):
    if not callable(answer):
        yield Finding(False, "answer must be a function integrated_gradients(grad, x, baseline, steps)")
        return
    rng = np.random.default_rng(0)
    for name, baseline in (("zero baseline", np.zeros(4)), ("non-zero baseline", rng.normal(size=4))):
        x = rng.normal(size=4) * 2
        got = np.asarray(answer(_ig_gradient, x.copy(), baseline.copy(), 200), dtype=np.float64).reshape(-1)
        if got.shape != x.shape:
            yield Finding(False, f"{name}: one attribution per feature, shape {x.shape}, got {got.shape}")
            return
        change = _ig_function(x) - _ig_function(baseline)
        gap = abs(got.sum() - change)
        ok = gap <= 0.01 * max(np.abs(got).sum(), 1e-9)
        if ok:
            yield Finding(True, f"{name}: attributions sum to f(x) - f(baseline) = {change:.3f} (completeness)")
            continue
        if np.allclose(got, _gradient_times_input(_ig_gradient, x, baseline, 200)):
            why = ("this is gradient x input, the gradient at x alone: it ignores how the gradient changes "
                   "along the path, so it is not complete")
        elif np.allclose(got, _average_gradient_only(_ig_gradient, x, baseline, 200)):
            why = "you returned the average gradient: multiply it by (x - baseline), feature by feature"
        elif np.allclose(got, _ignores_baseline(_ig_gradient, x, baseline, 200)):
            why = "you multiplied by x instead of (x - baseline): the baseline must be subtracted"
        else:
            why = "check the path, the average and the factor (x - baseline)"
        yield Finding(False, f"{name}: the attributions sum to {got.sum():.3f}, but f(x) - f(baseline) = "
                             f"{change:.3f}; {why}")
