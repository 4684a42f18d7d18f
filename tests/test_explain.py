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


# --- categorical features -------------------------------------------------------------------

@pytest.fixture(scope="module")
def diabetes():
    """The diabetes table's 10 baseline columns, in original units: sex is coded 1 or 2."""
    table = data.load_diabetes_table()
    X = table.rows[:, :10]
    names = list(table.columns[:10])
    return X[:330], X[330:], names, names.index("sex")


def test_categorical_sex_is_sampled_from_existing_codes(diabetes):
    train, test, names, sex = diabetes
    codes, counts = np.unique(train[:, sex], return_counts=True)
    assert codes.tolist() == [1.0, 2.0]
    for seed, row in enumerate(test[:3]):
        samples = explain.perturbation_samples(train, row, names, num_samples=2000, seed=seed,
                                               categorical_features=[sex])
        assert samples.shape == (2000, 10) and np.array_equal(samples[0], row.astype(np.float32))
        assert set(np.unique(samples[:, sex])) <= {1.0, 2.0}
        # LIME draws each code with its training frequency: 2000 draws, sd of a proportion <= 0.012,
        # so 0.04 is more than 3 sd.
        assert np.mean(samples[1:, sex] == 2.0) == pytest.approx(counts[1] / counts.sum(), abs=0.04)
        # the other columns are still binned and redrawn within their quartile bins, inside the data's range
        others = [j for j in range(10) if j != sex]
        assert np.all(samples[:, others] >= train[:, others].min(axis=0) * (1 - 1e-6))
        assert np.all(samples[:, others] <= train[:, others].max(axis=0) * (1 + 1e-6))


def test_without_categorical_lime_invents_sex_codes(diabetes):
    """The lime 0.2.0.1 quirk that categorical_features avoids: the lower quartile bin of sex has
    equal edges (1 and 1) and is "undiscretized" to its z-score 0.0, a code that does not exist."""
    train, test, names, sex = diabetes
    samples = explain.perturbation_samples(train, test[0], names, num_samples=2000, seed=0)
    invented = np.mean(samples[1:, sex] == 0.0)
    assert set(np.unique(samples[1:, sex])) == {0.0, 2.0}
    assert 0.45 < invented < 0.65  # P(sex = 1) in the training data is 0.53


def test_categorical_explanation_describes_the_code(diabetes):
    train, test, names, sex = diabetes
    biased = explain.RuleClassifier(sex, 1.5)
    for row in test[:3]:
        exp = explain.lime_explanation(biased, train, row, names, ["low", "high"],
                                                     num_samples=1000, categorical_features=[sex])
        ranked = exp.as_list(exp.explained_label)
        assert ranked[0][0] == f"sex={int(row[sex])}"
        # the rule is exactly "the sample has the patient's code" (the sign depends on the code), so a
        # linear surrogate fits it: R² = 1 up to the shrinkage of LIME's ridge penalty (alpha = 1)
        assert (ranked[0][1] > 0) == (row[sex] == 2.0)
        assert exp.score == pytest.approx(1.0, abs=1e-3)
        assert all("sex" not in d for d, _ in ranked[1:])


def test_non_categorical_call_is_unchanged(diabetes, toy, binary_model):
    """No categorical_features (or an empty list) is exactly LIME's own sampler and explanation
    (up to the float32 rounding every model input gets)."""
    from lime.lime_tabular import LimeTabularExplainer

    train, test, names, _ = diabetes
    recorder = explain._Recorder()
    raw = LimeTabularExplainer(train, feature_names=names, class_names=["a", "b"],
                               random_state=np.random.RandomState(3))
    raw.explain_instance(test[0], recorder.predict_proba, num_samples=500)
    for kwargs in ({}, dict(categorical_features=())):
        samples = explain.perturbation_samples(train, test[0], names, num_samples=500, seed=3, **kwargs)
        assert np.array_equal(samples, recorder.rows[-1].astype(np.float32))
    X, feature_names = toy
    default = explain.explain_tabular(binary_model, X, X[0], feature_names, ["neg", "pos"], num_samples=300)
    empty = explain.explain_tabular(binary_model, X, X[0], feature_names, ["neg", "pos"], num_samples=300,
                                    categorical_features=[])
    assert default == empty


def test_categorical_with_split_in_original_units():
    """Through a standardized split the codes survive the round trip and reach LIME as integers."""
    rng = np.random.default_rng(0)
    original = np.column_stack([rng.normal(10.0, 2.0, 200), rng.integers(1, 4, 200)]).astype(np.float64)
    mean, std = original.mean(axis=0), original.std(axis=0)
    split = data.Split(X_train=((original - mean) / std).astype(np.float32), y_train=np.zeros(200, dtype=int),
                       X_test=((original[:5] - mean) / std).astype(np.float32), y_test=np.zeros(5, dtype=int),
                       feature_names=("size", "grade"), class_names=("a", "b"), mean=mean, scale=std)
    samples = explain.perturbation_samples(split.X_train, split.X_test[0], split.feature_names, num_samples=300,
                                           split=split, categorical_features=[1])
    assert set(np.round(split.to_original_units(samples)[:, 1], 6)) <= {1.0, 2.0, 3.0}
    rule = explain.RuleClassifier(1, float((2.5 - mean[1]) / std[1]))  # grade 3, in standardized units
    ranked = explain.explain_tabular(rule, split.X_train, split.X_test[0], split.feature_names, split.class_names,
                                     num_features=1, num_samples=300, split=split, categorical_features=[1])
    assert ranked[0][0] == f"grade={int(original[0, 1])}"


@pytest.mark.parametrize("categorical, message", [
    ([6], "categorical_features must be distinct column indices in \\[0, 5\\]"),
    ([-1], "categorical_features must be distinct"),
    ([1, 1], "categorical_features must be distinct"),
    ([1.0], "categorical_features must be distinct"),
    ([True], "categorical_features must be distinct"),
    (3, "categorical_features must be distinct"),
    ([0], "column 0 \\(f0\\) of X_train must hold integer category codes"),
])
def test_bad_categorical_features_raise(toy, binary_model, categorical, message):
    X, names = toy
    with pytest.raises(ValueError, match=message):
        explain.explain_tabular(binary_model, X, X[0], names, ["neg", "pos"], num_samples=50,
                                categorical_features=categorical)


def test_categorical_code_of_x_must_be_integer(diabetes):
    train, test, names, sex = diabetes
    row = test[0].copy()
    row[sex] = 1.5
    with pytest.raises(ValueError, match="column 1 \\(sex\\) of x must hold integer"):
        explain.explain_tabular(explain.RuleClassifier(sex, 1.5), train, row, names, ["low", "high"],
                                num_samples=50, categorical_features=[sex])
