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


# --- logits, positive rankings, stability of any attribution, LIME's kernel weights -----------

def test_score_function_logit_and_probability(toy, binary_model, multi_model):
    X, _ = toy
    z = binary_model(X[:20]).numpy()[:, 0].astype(np.float64)
    assert np.allclose(explain.score_function(binary_model, 1, "logit")(X[:20]), z, atol=1e-6)
    assert np.allclose(explain.score_function(binary_model, 0, "logit")(X[:20]), -z, atol=1e-6)
    p = explain.score_function(binary_model, 1, "probability")(X[:20])
    assert np.allclose(p, 1 / (1 + np.exp(-z)), atol=1e-6)
    zm = multi_model(X[:20]).numpy().astype(np.float64)
    assert np.allclose(explain.score_function(multi_model, 2, "logit")(X[:20]), zm[:, 2], atol=1e-6)
    rule = explain.RuleClassifier(KEY, 0.0)  # predict_proba in {0, 1}: log-odds clipped at 1e-12
    odds = explain.score_function(rule, 1, "logit")(X[:20])
    assert np.allclose(np.abs(odds), np.log(1 - 1e-12) - np.log(1e-12))
    with pytest.raises(ValueError, match="output must be one of"):
        explain.score_function(binary_model, 1, "log")
    with pytest.raises(ValueError, match="label must be in \\[0, 1\\]"):
        explain.score_function(binary_model, 2, "logit")(X[:2])


def test_deletion_curve_in_logits_does_not_saturate(toy):
    """A model sure at P = 1 - 1e-13: probabilities tie, logits still show the deleted evidence."""
    X, _ = toy
    model = linear_model(1, weight=10.0)
    x = X[0].copy()
    x[KEY] = 3.0  # logit 30
    proba = explain.deletion_curve(model, x, [KEY], label=1)
    logit = explain.deletion_curve(model, x, [KEY], label=1, output="logit")
    assert proba[0] - proba[1] == pytest.approx(0.5, abs=1e-6)  # deleting the key feature: P 1 -> 0.5
    other = [j for j in range(NUM_FEATURES) if j != KEY][:1]
    assert abs(np.diff(explain.deletion_curve(model, x, other, label=1))[0]) < 1e-9
    assert logit[0] == pytest.approx(30.0, rel=1e-5) and logit[1] == pytest.approx(0.0, abs=1e-5)
    randoms = explain.random_deletion_curves(model, x, 2, num_orders=5, seed=0, output="logit")
    assert randoms.shape == (5, 3) and np.allclose(randoms[:, 0], 30.0, rtol=1e-5)
    # the default is unchanged: probabilities
    assert np.allclose(explain.random_deletion_curves(model, x, 2, num_orders=5, seed=0),
                       1 / (1 + np.exp(-randoms)), atol=1e-6)


def test_positive_ranking():
    assert explain.positive_ranking([0.1, -2.0, 0.5, 0.0, 0.3]) == [2, 4, 0]
    assert explain.positive_ranking([0.1, -2.0, 0.5, 0.0, 0.3], k=2) == [2, 4]
    assert explain.positive_ranking([-1.0, 0.0]) == []
    with pytest.raises(ValueError, match="k must be"):
        explain.positive_ranking([1.0], k=0)


def test_ranking_stability():
    a, b, c = [3.0, -2.0, 1.0, 0.0], [-3.0, 2.0, 0.1, 1.0], [0.0, 0.1, 2.0, 3.0]
    assert explain.ranking_stability([a, a, a], k=2) == 1.0
    assert explain.ranking_stability([a, b], k=2) == 1.0  # by |value|: {0, 1} both times
    assert explain.ranking_stability([a, c], k=2) == 0.0  # {0, 1} vs {3, 2}: none shared
    assert explain.ranking_stability([a, b, c], k=2) == pytest.approx((1 + 0 + 0) / 3)
    with pytest.raises(ValueError, match="at least 2"):
        explain.ranking_stability([a], k=2)
    with pytest.raises(ValueError, match="k must be in \\[1, 4\\]"):
        explain.ranking_stability([a, b], k=5)
    with pytest.raises(ValueError, match="same length"):
        explain.ranking_stability([a, a[:3]], k=2)


def test_effective_sample_size():
    assert explain.effective_sample_size(np.ones(50)) == pytest.approx(50.0)
    assert explain.effective_sample_size([1.0, 0.0, 0.0, 0.0]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="weights must be non-negative"):
        explain.effective_sample_size([-1.0, 2.0])


def test_lime_records_its_distances_and_kernel_weights(toy, binary_model):
    X, names = toy
    width = 1.5
    exp = explain.lime_explanation(binary_model, X, X[0], names, ["neg", "pos"], num_samples=400,
                                   kernel_width=width)
    assert exp.distances.shape == exp.kernel_weights.shape == (400,)
    assert exp.distances[0] == 0.0 and exp.kernel_weights[0] == 1.0
    assert np.allclose(exp.kernel_weights, np.sqrt(np.exp(-exp.distances ** 2 / width ** 2)))
    # binned (default): the distance is sqrt(number of features outside x's quartile bin)
    squared = exp.distances ** 2
    assert np.allclose(squared, np.round(squared)) and squared.max() <= NUM_FEATURES
    # about 3 of 4 features leave x's bin, so at the default width the kernel hardly prefers anything
    default = explain.lime_explanation(binary_model, X, X[0], names, ["neg", "pos"], num_samples=400)
    assert explain.effective_sample_size(default.kernel_weights) > 0.9 * 400
    continuous = explain.lime_explanation(binary_model, X, X[0], names, ["neg", "pos"], num_samples=400,
                                          discretize=False)
    assert not np.allclose(continuous.distances ** 2, np.round(continuous.distances ** 2))


# --- Kernel SHAP -----------------------------------------------------------------------------

def test_kernel_shap_is_exact_for_a_linear_function_and_efficient():
    """With 6 features all 62 coalitions are enumerated: Kernel SHAP is exact, and for a linear f
    with a background of mean m, phi_j = w_j (x_j - m_j)."""
    rng = np.random.default_rng(1)
    background, x, w = rng.normal(size=(20, 6)), rng.normal(size=6), rng.normal(size=6)
    phi, base = explain.kernel_shap(lambda rows: rows @ w, background, x, nsamples=1000)
    assert np.allclose(phi, w * (x - background.mean(axis=0)), atol=1e-8)
    assert base == pytest.approx(float(background.mean(axis=0) @ w))
    assert base + phi.sum() == pytest.approx(float(x @ w), abs=1e-9)


def test_kernel_shap_seeded_silent_and_leaves_numpy_alone(capfd):
    rng = np.random.default_rng(2)
    background, x = rng.normal(size=(10, 14)), rng.normal(size=14)

    def f(rows):
        return np.tanh(rows[:, 0] * rows[:, 1]) + rows[:, 2:].sum(axis=1) ** 2 / 10

    np.random.seed(123)
    expected_next = np.random.rand()
    np.random.seed(123)
    first, base = explain.kernel_shap(f, explain.shap_background(background, 5), x, nsamples=60, seed=4)
    assert np.random.rand() == expected_next  # the global generator is restored
    again, _ = explain.kernel_shap(f, explain.shap_background(background, 5), x, nsamples=60, seed=4)
    other, _ = explain.kernel_shap(f, explain.shap_background(background, 5), x, nsamples=60, seed=5)
    assert np.array_equal(first, again) and not np.allclose(first, other)
    assert base + first.sum() == pytest.approx(float(f(x[None])[0]), abs=1e-9)  # efficiency, any seed
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_kernel_shap_validation():
    background = np.zeros((5, 3))
    with pytest.raises(ValueError, match="background must have 3 columns"):
        explain.kernel_shap(lambda r: r.sum(axis=1), np.zeros((5, 4)), np.ones(3))
    with pytest.raises(ValueError, match="one score per row"):
        explain.kernel_shap(lambda r: np.column_stack([r.sum(axis=1)] * 2), background, np.ones(3))
    with pytest.raises(ValueError, match="f must be a function"):
        explain.kernel_shap(3.0, background, np.ones(3))
    with pytest.raises(ValueError, match="k must be in \\[1, 5\\]"):
        explain.shap_background(background, 6)


# --- Integrated Gradients ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def relu_model():
    from helpers.models import mlp

    return mlp(NUM_FEATURES, 1, hidden=(32, 16), seed=3)


def completeness_gap(model, x, baseline, steps, label=1):
    score = explain.score_function(model, label, "logit")
    attributions = explain.integrated_gradients(model, x, baseline, steps=steps, label=label)
    change = score(x[None])[0] - score(baseline[None])[0]
    return abs(attributions.sum() - change), np.abs(attributions).sum()


def test_integrated_gradients_completeness(toy, relu_model):
    """Attributions sum to f(x) - f(baseline). A ReLU network is piecewise linear along the path,
    so the trapezoidal rule errs only on the pieces where a unit switches. Tolerance: 1 % of the
    attributions' total size sum |a_j| (f(x) - f(baseline) itself can be near 0 by cancellation);
    with 256 steps the 20 rows below stay under 0.2 %, with 2 steps they reach 37 %."""
    X, _ = toy
    rng = np.random.default_rng(7)  # not toy's seed: a baseline on the ray through x would make the
    gaps = []                       # bias-free ReLU network linear along the path
    for row in X[:20]:
        baseline = rng.normal(size=NUM_FEATURES).astype(np.float32)
        gap, size = completeness_gap(relu_model, row * 2, baseline, steps=256)
        assert gap <= 0.01 * size, (gap, size)
        coarse, _ = completeness_gap(relu_model, row * 2, baseline, steps=2)
        gaps.append((coarse, gap))
    coarse, fine = np.array(gaps).T
    assert fine.mean() < coarse.mean() / 5  # more steps, smaller error


def test_integrated_gradients_linear_exact_and_labels(toy, binary_model, multi_model):
    X, _ = toy
    x = X[3]
    ig = explain.integrated_gradients(binary_model, x, steps=1)  # linear: one step is exact
    expected = np.zeros(NUM_FEATURES)
    expected[KEY] = 3.0 * x[KEY]
    assert np.allclose(ig, expected, atol=1e-5)
    assert np.allclose(explain.integrated_gradients(binary_model, x, steps=1, label=0), -expected, atol=1e-5)
    for label in range(3):
        gap, _ = completeness_gap(multi_model, x, np.zeros(NUM_FEATURES, dtype=np.float32), 1, label)
        assert gap < 1e-5


def test_integrated_gradients_images_and_validation(binary_model):
    from helpers.models import mlp

    image_model = mlp((8, 8, 1), 10, hidden=(8,), seed=0)
    image = np.random.default_rng(0).uniform(size=(8, 8, 1)).astype(np.float32)
    ig = explain.integrated_gradients(image_model, image, steps=128, label=4)
    assert ig.shape == image.shape
    gap, size = completeness_gap(image_model, image, np.zeros_like(image), 128, label=4)
    assert gap <= 0.01 * size
    with pytest.raises(ValueError, match="baseline must have the shape"):
        explain.integrated_gradients(binary_model, np.zeros(NUM_FEATURES), baseline=np.zeros(3))
    with pytest.raises(ValueError, match="steps must be"):
        explain.integrated_gradients(binary_model, np.zeros(NUM_FEATURES), steps=0)
    with pytest.raises(ValueError, match="label must be in \\[0, 1\\]"):
        explain.integrated_gradients(binary_model, np.zeros(NUM_FEATURES), label=3)


# --- fooling SHAP --------------------------------------------------------------------------------

def test_coalition_samples_mix_a_row_with_background_rows():
    rng = np.random.default_rng(0)
    X, background = rng.normal(size=(200, 5)), rng.normal(size=(4, 5)) + 10.0
    fake = explain.coalition_samples(X, background, num_copies=3, seed=1)
    assert fake.shape == (600, 5)
    from_background = fake > 5.0  # every replaced value comes from the shifted background
    assert np.array_equal(fake[~from_background], np.tile(X, (3, 1))[~from_background])
    assert 0.4 < from_background.mean() < 0.6  # share ~ Uniform(0, 1): half on average
    assert np.array_equal(fake, explain.coalition_samples(X, background, num_copies=3, seed=1))
    with pytest.raises(ValueError, match="background must have 5 columns"):
        explain.coalition_samples(X, background[:, :3])


def test_kernel_shap_sees_through_a_lime_scaffold_but_not_an_adapted_one(diabetes):
    """Slack et al.: a detector trained on LIME's samples does not hide sex from Kernel SHAP (its
    coalitions keep most of a real row); one trained on coalitions as well does, at a price: it
    judges fewer real patients real."""
    train, test, names, sex = diabetes
    bmi = names.index("bmi")
    biased = explain.RuleClassifier(sex, 1.5)
    innocuous = explain.RuleClassifier(bmi, float(np.median(train[:, bmi])))
    background = explain.shap_background(train, 10)
    ranks = {}
    for name, kwargs in [("lime", {}), ("shap", dict(background=background))]:
        scaffold = explain.ScaffoldedClassifier(biased, innocuous, explain.fit_ood_detector(train, seed=0, **kwargs),
                                                threshold=0.3)
        f = explain.score_function(scaffold, 1)
        phis = [explain.kernel_shap(f, background, row, nsamples=100, seed=s)[0] for s, row in enumerate(test[:8])]
        ranks[name] = [int(np.argsort(-np.abs(phi), kind="stable").tolist().index(sex)) + 1 for phi in phis]
        ranks[name + " real"] = scaffold.looks_real(test).mean()
    assert sum(r == 1 for r in ranks["lime"]) >= 6, ranks
    assert sum(r == 1 for r in ranks["shap"]) <= 2, ranks
    assert ranks["shap real"] < ranks["lime real"] - 0.2


def _dark_area_model():
    """A Keras model whose logit is 5 - 10 * (mean grey level): darker images read as class 1."""
    import tensorflow as tf

    model = tf.keras.Sequential([tf.keras.Input((32, 32, 1)), tf.keras.layers.GlobalAveragePooling2D(),
                                 tf.keras.layers.Dense(1)])
    model.layers[-1].set_weights([np.array([[-10.0]], np.float32), np.array([5.0], np.float32)])
    return model


def test_nucleus_segments_follow_the_nuclei():
    from helpers import data, explain

    d = data.load_nuclei_images(seed=0)
    image = d.X_test[0, ..., 0]
    segments, kinds = explain.nucleus_segments(image, tiles=4)
    assert segments.shape == image.shape and segments.min() == 0
    assert sorted(np.unique(segments).tolist()) == list(range(len(kinds)))  # every label used, consecutive
    assert set(kinds) == set(explain.SEGMENT_KINDS) and kinds.count("boundary") == 3  # three nuclei per image
    assert kinds.count("background") <= 16
    # nuclei are dark: their interiors are darker than the background, their boundaries in between
    mean = {kind: image[np.isin(segments, [i for i, k in enumerate(kinds) if k == kind])].mean()
            for kind in explain.SEGMENT_KINDS}
    assert mean["interior"] < mean["boundary"] < mean["background"]
    again, _ = explain.nucleus_segments(image, tiles=4)
    np.testing.assert_array_equal(segments, again)
    with pytest.raises(ValueError, match="constant"):
        explain.nucleus_segments(np.full((32, 32), 0.5))
    with pytest.raises(ValueError, match="ring"):
        explain.nucleus_segments(image, ring=0)


def test_segment_deletion_curve_paints_segments_in_order():
    from helpers import explain

    model = _dark_area_model()
    image = np.full((32, 32), 0.9, np.float32)
    image[4:12, 4:12] = 0.2
    segments = np.zeros((32, 32), int)
    segments[4:12, 4:12] = 1
    segments[20:, 20:] = 2
    curve = explain.segment_deletion_curve(model, image, segments, [1, 2], fill=0.9)
    expected = [5 - 10 * image.mean(), 5 - 10 * 0.9, 5 - 10 * 0.9]
    np.testing.assert_allclose(curve, expected, rtol=1e-5)
    assert curve.shape == (3,)
    np.testing.assert_allclose(explain.segment_deletion_curve(model, image, segments, [], fill=0.9), expected[:1],
                               rtol=1e-5)
    with pytest.raises(ValueError, match="ranking"):
        explain.segment_deletion_curve(model, image, segments, [1, 1], fill=0.9)
    with pytest.raises(ValueError, match="segments"):
        explain.segment_deletion_curve(model, image, segments[:10], [1], fill=0.9)


def test_image_explanation_stability_is_one_for_one_seed_twice_and_ranks_the_dark_segment():
    from helpers import explain

    model = _dark_area_model()
    image = np.full((32, 32), 0.9, np.float32)
    image[4:12, 4:12] = 0.2
    segments = explain.grid_segments((32, 32), patch=8)
    assert explain.image_explanation_stability(model, image, segments, num_features=2, num_samples=200,
                                               seeds=(3, 3)) == 1.0
    explanation = explain.explain_image(model, image, label=1, segments=segments, num_samples=300, seed=0,
                                        hide_color=0.9)
    best = max(explanation.local_exp[1], key=lambda t: t[1])[0]
    assert best == segments[4, 4]   # the dark square is the evidence for class 1
    with pytest.raises(ValueError, match="seeds"):
        explain.image_explanation_stability(model, image, segments, seeds=(0,))


def test_superpixel_evidence_finds_the_dark_nucleus_and_beats_random_deletion():
    from helpers import explain

    model = _dark_area_model()
    image = np.full((32, 32), 0.9, np.float32) + np.random.default_rng(0).normal(0, 0.01, (32, 32)).astype(np.float32)
    image[4:12, 4:12] = 0.2   # one dark nucleus: the only evidence for class 1
    out = explain.superpixel_evidence(model, image, num_deleted=2, num_samples=300, num_random=5, seed=0)
    assert set(out["share"]) == set(explain.SEGMENT_KINDS) and out["kinds"].count("boundary") == 1
    assert out["share"]["boundary"] + out["share"]["interior"] > 0.9   # the evidence sits on the nucleus
    assert min(out["density"]["boundary"], out["density"]["interior"]) > 10 * abs(out["density"]["background"])
    assert out["drop"] > out["drop_random"] > -1e-6
    assert out["drop"] == pytest.approx(10 * (0.9 - 0.2) * 64 / 1024, rel=0.2)   # the whole nucleus painted over
    again = explain.superpixel_evidence(model, image, num_deleted=2, num_samples=300, num_random=5, seed=0)
    assert again["drop"] == out["drop"] and again["drop_random"] == out["drop_random"]
    with pytest.raises(ValueError, match="num_deleted"):
        explain.superpixel_evidence(model, image, num_deleted=0)


# --- issue 27: the deletion test's references, Slack et al.'s detector, SHAP's real queries -------

def test_gradient_times_input_is_exact_for_a_linear_model(toy, binary_model):
    X, _ = toy
    x = X[0].astype(np.float64)
    expected = np.zeros(NUM_FEATURES)
    expected[KEY] = 3.0 * x[KEY]
    assert np.allclose(explain.gradient_times_input(binary_model, x), expected, atol=1e-5)
    assert np.allclose(explain.gradient_times_input(binary_model, x, label=0), -expected, atol=1e-5)
    baseline = X[1].astype(np.float64)
    assert np.allclose(explain.gradient_times_input(binary_model, x, baseline),
                       explain.integrated_gradients(binary_model, x, baseline, steps=1), atol=1e-5)
    with pytest.raises(ValueError, match="baseline must have the shape of x"):
        explain.gradient_times_input(binary_model, x, baseline=np.zeros(3))
    with pytest.raises(ValueError, match="label must be in \\[0, 1\\]"):
        explain.gradient_times_input(binary_model, x, label=2)


def test_greedy_deletion_ranking_finds_the_best_single_deletion():
    """On a model z = w . x the greedy choice is the feature with the largest w_j x_j, then the next."""
    class Linear:
        w = np.array([1.0, -2.0, 3.0, 0.5])

        def predict_proba(self, X):
            p = 1.0 / (1.0 + np.exp(-(np.asarray(X) @ self.w)))
            return np.column_stack([1 - p, p])

    x = np.array([1.0, 1.0, 1.0, 4.0])   # contributions 1, -2, 3, 2
    assert explain.greedy_deletion_ranking(Linear(), x, 3) == [2, 3, 0]
    assert explain.greedy_deletion_ranking(Linear(), x, 1, baseline=np.array([0.0, 0.0, 2.0, 0.0])) == [3]
    with pytest.raises(ValueError, match="k must be in \\[1, 4\\]"):
        explain.greedy_deletion_ranking(Linear(), x, 5)


def test_shap_samples_are_the_rows_kernel_shap_queries(diabetes):
    train, test, names, sex = diabetes
    background = explain.shap_background(train, 5)
    rows = explain.shap_samples(background, test[0], nsamples=40, seed=3)
    assert rows.shape == (40 * 5, 10)
    from_x = np.isclose(rows, test[0])
    # each row keeps some of x's values and takes others from a background row (a centre's value can equal x's)
    assert from_x.any(axis=1).all() and (~from_x).any(axis=1).mean() > 0.9
    assert np.array_equal(rows, explain.shap_samples(background, test[0], nsamples=40, seed=3))
    seen = []
    explain.kernel_shap(lambda r: seen.append(np.asarray(r)) or np.zeros(len(r)), background, test[0],
                        nsamples=40, seed=3)
    assert np.array_equal(seen[-1], rows)


def test_detector_trained_on_lime_samples_hides_sex_from_the_top_3(diabetes):
    """Slack et al.'s recipe: the detector learns the explainer's own perturbations and the attacker
    tunes its threshold on its own rows (out-of-bag); a shortcut detector (shuffled columns) leaks."""
    train, test, names, sex = diabetes
    bmi = names.index("bmi")
    biased = explain.RuleClassifier(sex, 1.5)
    innocuous = explain.RuleClassifier(bmi, float(np.median(train[:, bmi])))
    own = np.random.default_rng(0).choice(len(train), 25, replace=False)
    fake = np.concatenate([explain.perturbation_samples(train, train[i], names, num_samples=201, seed=int(i),
                                                        categorical_features=[sex])[1:] for i in own])
    detector = explain.fit_ood_detector(train, seed=0, fake=fake, num_trees=50)
    threshold = explain.tune_threshold(detector, keep=0.9)
    assert np.mean(detector.oob_decision_function_[:len(train), 1] >= threshold) >= 0.9
    scaffold = explain.ScaffoldedClassifier(biased, innocuous, detector, threshold=threshold)
    shortcut_detector = explain.fit_ood_detector(train, seed=0)
    shortcut = explain.ScaffoldedClassifier(biased, innocuous, shortcut_detector,
                                            threshold=explain.tune_threshold(shortcut_detector, keep=0.9))
    queries = explain.perturbation_samples(train, test[0], names, num_samples=1000, seed=1,
                                           categorical_features=[sex])[1:]
    assert scaffold.looks_real(test).mean() > 0.8 and scaffold.looks_real(queries).mean() < 0.05
    assert shortcut.looks_real(queries).mean() > 0.15

    def in_top3(model, row, seed):
        exp = explain.lime_explanation(model, train, row, names, ["low", "high"], num_features=3, seed=seed,
                                       num_samples=1000, categorical_features=[sex])
        return any(d.startswith("sex") for d, _ in exp.as_list(exp.explained_label))
    assert sum(in_top3(scaffold, row, s) for s, row in enumerate(test[:10])) <= 5
    assert sum(in_top3(shortcut, row, s) for s, row in enumerate(test[:10])) >= 8
    with pytest.raises(ValueError, match="fake must have 10 columns"):
        explain.fit_ood_detector(train, fake=fake[:, :3])
    with pytest.raises(ValueError, match="not both"):
        explain.fit_ood_detector(train, fake=fake, background=explain.shap_background(train, 5))
    with pytest.raises(ValueError, match="keep must be"):
        explain.tune_threshold(detector, keep=1.0)
    with pytest.raises(ValueError, match="fit_ood_detector"):
        explain.tune_threshold(object())
