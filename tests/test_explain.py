"""helpers.explain: reproducible, silent LIME explanations, stability and deletion tests."""
import numpy as np
import pytest

from helpers import data, explain

NUM_FEATURES = 6
KEY = 2  # the only feature the toy models look at


def linear_model(num_outputs: int, weight: float = 3.0):
    """A Keras model whose logits depend on feature KEY only."""
    from helpers.models import mlp

    model = mlp(NUM_FEATURES, num_outputs, hidden=(), seed=0)
    kernel = np.zeros((NUM_FEATURES, num_outputs), dtype=np.float32)
    if num_outputs == 1:
        kernel[KEY, 0] = weight
    else:
        kernel[KEY] = weight * np.linspace(-1.0, 1.0, num_outputs)
    model.layers[-1].set_weights([kernel, np.zeros(num_outputs, dtype=np.float32)])
    return model


@pytest.fixture(scope="module")
def toy():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, NUM_FEATURES)).astype(np.float32)
    names = [f"f{i}" for i in range(NUM_FEATURES)]
    return X, names


@pytest.fixture(scope="module")
def binary_model():
    return linear_model(1)


@pytest.fixture(scope="module")
def multi_model():
    return linear_model(3)


def test_same_seed_same_explanation(toy, binary_model):
    X, names = toy
    kwargs = dict(num_features=3, num_samples=300)
    first = explain.explain_tabular(binary_model, X, X[0], names, ["neg", "pos"], seed=7, **kwargs)
    again = explain.explain_tabular(binary_model, X, X[0], names, ["neg", "pos"], seed=7, **kwargs)
    other = explain.explain_tabular(binary_model, X, X[0], names, ["neg", "pos"], seed=8, **kwargs)
    assert first == again
    assert first != other  # the seed matters: the weights come from random samples
    assert len(first) == 3 and all(isinstance(d, str) and isinstance(w, float) for d, w in first)


@pytest.mark.parametrize("num_outputs", [1, 3])
def test_single_feature_model_ranks_that_feature_first(toy, num_outputs, binary_model, multi_model):
    X, names = toy
    model = binary_model if num_outputs == 1 else multi_model
    classes = ["neg", "pos"] if num_outputs == 1 else ["a", "b", "c"]
    for row in range(5):
        ranked = explain.explain_tabular(model, X, X[row], names, classes, num_features=3,
                                         num_samples=500, seed=row)
        assert f"f{KEY}" in ranked[0][0], ranked
        assert abs(ranked[0][1]) > 2 * abs(ranked[1][1])


def test_default_label_is_positive_class_or_prediction(toy, binary_model, multi_model):
    X, names = toy
    exp = explain.lime_explanation(binary_model, X, X[0], names, ["neg", "pos"], num_samples=100)
    assert exp.explained_label == 1
    exp = explain.lime_explanation(multi_model, X, X[0], names, ["a", "b", "c"], num_samples=100)
    assert exp.explained_label == int(np.argmax(exp.predict_proba))
    # positive weight for class 1 when the feature is high: the sign follows the model
    high = X[np.argmax(X[:, KEY])]
    (desc, weight), *_ = explain.explain_tabular(binary_model, X, high, names, ["neg", "pos"], num_samples=500)
    assert desc.startswith(f"f{KEY} >") and weight > 0


def test_original_units_in_descriptions():
    split = data.load_wdbc()
    j = split.feature_names.index("worst radius")
    from helpers.models import mlp
    model = mlp(30, 1, hidden=(), seed=0)
    kernel = np.zeros((30, 1), dtype=np.float32)
    kernel[j, 0] = 3.0
    model.layers[-1].set_weights([kernel, np.zeros(1, dtype=np.float32)])
    row = int(np.argmax(split.X_test[:, j]))
    desc, weight = explain.explain_tabular(model, split.X_train, split.X_test[row], split.feature_names,
                                           split.class_names, num_samples=500, split=split)[0]
    assert desc.startswith("worst radius >") and weight > 0
    threshold = float(desc.split(">")[1])
    quartile = np.percentile(split.to_original_units(split.X_train)[:, j], 75)
    assert threshold == pytest.approx(quartile, rel=1e-2)  # 3 significant digits, image units
    standardized = explain.explain_tabular(model, split.X_train, split.X_test[row], split.feature_names,
                                           split.class_names, num_samples=500)[0][0]
    assert float(standardized.split(">")[1]) < 2  # without split: standardized units


def test_sklearn_style_models_are_accepted(toy):
    X, names = toy
    rule = explain.RuleClassifier(KEY, 0.0)
    ranked = explain.explain_tabular(rule, X, X[0], names, ["neg", "pos"], num_features=2, num_samples=500)
    assert f"f{KEY}" in ranked[0][0]


def test_helpers_print_nothing(toy, binary_model, capfd):
    X, names = toy
    explain.explain_tabular(binary_model, X, X[0], names, ["neg", "pos"], num_samples=200)
    explain.explanation_stability(binary_model, X, X[0], names, ["neg", "pos"], num_samples=100, seeds=(0, 1))
    image_model = image_block_model()
    explain.explain_image(image_model, np.zeros((8, 8, 1), dtype=np.float32) + 0.5, num_samples=50)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


@pytest.mark.parametrize("kwargs, name", [
    (dict(x=np.zeros(NUM_FEATURES + 1)), "x must have 6 features"),
    (dict(num_features=NUM_FEATURES + 1), "num_features must be an integer in \\[1, 6\\]"),
    (dict(num_features=0), "num_features"),
    (dict(num_samples=0), "num_samples must be an integer >= 1"),
    (dict(feature_names=["a"]), "feature_names"),
    (dict(class_names=["a", "b", "c"]), "class_names must have 2"),
    (dict(label=5), "label must be in \\[0, 1\\]"),
    (dict(kernel_width=-1.0), "kernel_width"),
])
def test_bad_input_raises_value_error(toy, binary_model, kwargs, name):
    X, names = toy
    args = dict(x=X[0], feature_names=names, class_names=["neg", "pos"], num_samples=50)
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        explain.explain_tabular(binary_model, X, **args)


def test_stability(toy, binary_model):
    X, names = toy
    stable = explain.explanation_stability(binary_model, X, X[0], names, ["neg", "pos"], num_features=1,
                                           num_samples=300, seeds=(0, 1, 2))
    assert stable == 1.0
    noisy = explain.explanation_stability(binary_model, X, X[0], names, ["neg", "pos"], num_features=3,
                                          num_samples=20, seeds=range(6))
    assert 0.0 <= noisy < 1.0  # 20 samples cannot pin down the 2 irrelevant features
    with pytest.raises(ValueError, match="seeds must contain at least 2"):
        explain.explanation_stability(binary_model, X, X[0], names, ["neg", "pos"], seeds=(0,))


def test_top_features_orders(toy, binary_model):
    X, names = toy
    exp = explain.lime_explanation(binary_model, X, X[0], names, ["neg", "pos"], num_features=4, num_samples=300)
    weights = dict(exp.as_map()[1])
    by_size = explain.top_features(exp)
    signed = explain.top_features(exp, signed=True)
    assert sorted(by_size) == sorted(signed) and len(by_size) == 4
    assert [abs(weights[j]) for j in by_size] == sorted((abs(w) for w in weights.values()), reverse=True)
    assert [weights[j] for j in signed] == sorted(weights.values(), reverse=True)
    assert explain.top_features(exp, 2) == by_size[:2]


def test_jaccard():
    assert explain.jaccard([1, 2, 3], [2, 3, 4]) == 0.5
    assert explain.jaccard([], []) == 1.0
    assert explain.jaccard([1], [2]) == 0.0


def test_deletion_curve_top_feature_falls_faster_than_random(toy, binary_model):
    X, _ = toy
    x = X[np.argmax(X[:, KEY])]  # confidently class 1
    ranking = [KEY, 0, 1]
    curve = explain.deletion_curve(binary_model, x, ranking, label=1)
    assert curve.shape == (4,)
    assert curve[0] > 0.99 and curve[1] == pytest.approx(0.5, abs=1e-6)  # logit 0 at the mean
    randoms = explain.random_deletion_curves(binary_model, x, 3, label=1, num_orders=30, seed=0)
    assert randoms.shape == (30, 4)
    assert np.allclose(randoms[:, 0], curve[0])
    assert curve[1:].mean() < randoms[:, 1:].mean(axis=0).mean() - 0.1
    again = explain.random_deletion_curves(binary_model, x, 3, label=1, num_orders=30, seed=0)
    assert np.array_equal(randoms, again)


def test_deletion_curve_validation(toy, binary_model):
    X, _ = toy
    with pytest.raises(ValueError, match="ranking must be distinct"):
        explain.deletion_curve(binary_model, X[0], [0, 0])
    with pytest.raises(ValueError, match="baseline must have 6"):
        explain.deletion_curve(binary_model, X[0], [0], baseline=np.zeros(3))
    with pytest.raises(ValueError, match="label must be in"):
        explain.deletion_curve(binary_model, X[0], [0], label=2)
    with pytest.raises(ValueError, match="num_deleted must be in \\[1, 6\\]"):
        explain.random_deletion_curves(binary_model, X[0], 7)


def test_grid_segments():
    seg = explain.grid_segments((8, 8), 2)
    assert seg.shape == (8, 8) and len(np.unique(seg)) == 16
    assert np.all(seg[:2, :2] == seg[0, 0]) and seg[0, 2] != seg[0, 0]
    with pytest.raises(ValueError, match="patch must divide"):
        explain.grid_segments((8, 8), 3)


def image_block_model():
    """A digits-shaped model whose class 1 logit is the sum of the top-left 2x2 block."""
    from helpers.models import mlp

    model = mlp((8, 8, 1), 2, hidden=(), seed=0)
    kernel = np.zeros((64, 2), dtype=np.float32)
    for r in range(2):
        for c in range(2):
            kernel[r * 8 + c, 1] = 4.0
    model.layers[-1].set_weights([kernel, np.array([2.0, 0.0], dtype=np.float32)])
    return model


def test_image_explanation_finds_the_block():
    model = image_block_model()
    image = np.full((8, 8), 0.6, dtype=np.float32)
    exp = explain.explain_image(model, image, label=1, num_samples=200, seed=0)
    ranked = sorted(exp.local_exp[1], key=lambda t: -abs(t[1]))
    assert ranked[0][0] == 0 and ranked[0][1] > 0  # segment 0 is the top-left block
    assert explain.explain_image(model, image, label=1, num_samples=200, seed=0).local_exp[1] == exp.local_exp[1]
    with pytest.raises(ValueError, match="segments must have"):
        explain.explain_image(model, image, segments=np.zeros((4, 4), dtype=int))


def test_scaffolding_hides_the_biased_feature_from_lime():
    table = data.load_diabetes_table()
    X = table.rows[:, :10]
    names = list(table.columns[:10])
    sex, bmi = names.index("sex"), names.index("bmi")
    train, test = X[:330], X[330:]
    biased = explain.RuleClassifier(sex, 1.5)
    innocuous = explain.RuleClassifier(bmi, float(np.median(train[:, bmi])))
    scaffold = explain.ScaffoldedClassifier(biased, innocuous, explain.fit_ood_detector(train, seed=0),
                                            threshold=0.3)
    assert scaffold.looks_real(test).mean() > 0.85
    assert scaffold.looks_real(explain.lime_like_samples(test, 1, seed=1)).mean() < 0.3
    assert np.mean(scaffold.predict(test) == biased.predict(test)) > 0.85
    for row in test[:3]:
        before = explain.explain_tabular(biased, train, row, names, ["low", "high"], num_samples=500)
        after = explain.explain_tabular(scaffold, train, row, names, ["low", "high"], num_samples=500)
        assert "sex" in before[0][0]
        assert "bmi" in after[0][0]
