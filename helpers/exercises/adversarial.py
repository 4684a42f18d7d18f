"""Exercises of notebook 02 (adversarial training): keys ``adversarial.*``."""
from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from helpers.exercises.core import Finding, exercise

# --------------------------------------------------------------------------- FGM for an L2 budget


@lru_cache(maxsize=1)
def _fgm_fixture():
    """A small seeded digits model and 64 test images (built once, < 1 s)."""
    from helpers import data, models

    split = data.load_digits()
    model = models.mlp((8, 8, 1), 10, hidden=(16,), seed=0)
    return model, split.X_test[:64], split.y_test[:64]


def _fgm_l2_reference(model, x, y, eps):
    import tensorflow as tf

    x = tf.convert_to_tensor(x, dtype=tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)  # x is not a variable: ask the tape to track it
        loss = tf.keras.losses.sparse_categorical_crossentropy(y, model(x), from_logits=True)
    grad = tape.gradient(loss, x)
    # One L2 norm per image: reduce over every axis except the batch axis.
    norms = tf.sqrt(tf.reduce_sum(tf.square(grad), axis=list(range(1, x.shape.rank)), keepdims=True))
    x_adv = x + eps * grad / tf.maximum(norms, 1e-12)  # a step of length eps, up the loss
    return tf.clip_by_value(x_adv, 0.0, 1.0).numpy()  # stay valid images


def _gradient(model, x, y):
    import tensorflow as tf

    x = tf.convert_to_tensor(x, dtype=tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.keras.losses.sparse_categorical_crossentropy(y, model(x), from_logits=True)
    return x, tape.gradient(loss, x)


def _fgm_sign(model, x, y, eps):
    import tensorflow as tf

    x, grad = _gradient(model, x, y)
    return tf.clip_by_value(x + eps * tf.sign(grad), 0.0, 1.0).numpy()


def _fgm_batch_norm(model, x, y, eps):
    import tensorflow as tf

    x, grad = _gradient(model, x, y)
    return tf.clip_by_value(x + eps * grad / tf.norm(grad), 0.0, 1.0).numpy()


def _fgm_descends(model, x, y, eps):
    import tensorflow as tf

    x, grad = _gradient(model, x, y)
    norms = tf.sqrt(tf.reduce_sum(tf.square(grad), axis=[1, 2, 3], keepdims=True))
    return tf.clip_by_value(x - eps * grad / norms, 0.0, 1.0).numpy()


def _fgm_no_clip(model, x, y, eps):
    import tensorflow as tf

    x, grad = _gradient(model, x, y)
    norms = tf.sqrt(tf.reduce_sum(tf.square(grad), axis=[1, 2, 3], keepdims=True))
    return (x + eps * grad / norms).numpy()


def _loss(model, x, y) -> float:
    import tensorflow as tf

    z = model(tf.constant(np.asarray(x, dtype=np.float32)), training=False)
    return float(tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(y, z, from_logits=True)))


@exercise(
    "adversarial.fgm_l2", "the fast gradient method for an L2 budget, by hand",
    hint="Same tape as FGSM, but instead of the sign divide each image's gradient by that image's own "
         "L2 norm (reduce over axes 1, 2, 3 with keepdims=True), multiply by eps, add, clip to [0, 1].",
    reference=_fgm_l2_reference,
    wrong_answers=[(_fgm_sign, "instead of taking its sign"), (_fgm_batch_norm, "its own norm"),
                   (_fgm_descends, "decreases the loss"), (_fgm_no_clip, "clip")],
)
def _check_fgm_l2(answer: Any):
    if not callable(answer):
        yield Finding(False, "answer must be a function fgm_l2(model, x, y, eps) returning adversarial images")
        return
    from helpers import robustness

    model, x, y = _fgm_fixture()
    eps = 0.5
    adv = answer(model, x, y, eps)
    adv = np.asarray(adv.numpy() if hasattr(adv, "numpy") else adv, dtype=np.float64)
    if adv.shape != x.shape:
        yield Finding(False, f"the result must have the shape of x {x.shape}, got {adv.shape}")
        return
    sizes = np.linalg.norm((adv - x).reshape(len(x), -1), axis=1)
    if sizes.max() > eps * (1 + 1e-4):
        yield Finding(False, f"the L2 size of the change reaches {sizes.max():.3f} > eps = {eps}: for an L2 budget "
                             f"divide the gradient by its L2 norm instead of taking its sign")
    elif sizes.mean() < 0.5 * eps:
        yield Finding(False, f"the average L2 size of the change is {sizes.mean():.3f}, far below eps = {eps}: "
                             f"normalise each image's gradient by its own norm, not by the norm of the whole batch")
    else:
        yield Finding(True, f"each change has L2 size at most eps = {eps} (average {sizes.mean():.3f})")
    inside = adv.min() >= -1e-6 and adv.max() <= 1 + 1e-6
    yield Finding(inside, "pixels stay in [0, 1]" if inside else
                  f"pixels range over [{adv.min():.3f}, {adv.max():.3f}]: clip the result to [0, 1] "
                  f"(tf.clip_by_value), images have no pixel below 0 or above 1")
    before, after = _loss(model, x, y), _loss(model, adv, y)
    if after <= before:
        yield Finding(False, f"your step decreases the loss ({before:.3f} -> {after:.3f}): that is a training "
                             f"step; the attacker goes up the gradient")
    else:
        yield Finding(True, f"the step increases the loss ({before:.3f} -> {after:.3f})")
    expected = robustness.fgsm(model, x, y, eps, norm=2, clip_min=0.0, clip_max=1.0)
    agree = float(np.mean(np.abs(adv - expected) < 1e-4))
    yield Finding(agree >= 0.999, f"{agree:.1%} of pixels agree with cleverhans' fast_gradient_method(norm=2)")


# --------------------------------------------------------------------------- PGD step size


def _step_size_reference(eps, nb_iter):
    return min(eps, 2.5 * eps / nb_iter)


_STEP_CASES = ((0.1, 10), (0.3, 40), (0.05, 5), (0.2, 20))


@exercise(
    "adversarial.step_size", "pick the PGD step size eps_iter from eps and nb_iter",
    hint="The steps together must be able to cross the ball (nb_iter * eps_iter >= 2 * eps, from one "
         "side to the other), yet each step must be small enough to refine (at most eps, "
         "much less than eps when there are many steps).",
    reference=_step_size_reference,
    wrong_answers=[(lambda eps, nb_iter: 2 * eps, "larger than eps"),
                   (lambda eps, nb_iter: eps / (10 * nb_iter), "cannot cross"),
                   (lambda eps, nb_iter: eps, "bounce")],
)
def _check_step_size(answer: Any):
    if not callable(answer):
        yield Finding(False, "answer must be a function step_size(eps, nb_iter) returning eps_iter")
        return
    for eps, nb_iter in _STEP_CASES:
        step = float(answer(eps, nb_iter))
        case = f"eps={eps}, nb_iter={nb_iter}: eps_iter={step:.4g}"
        if not 0 < step <= eps:
            yield Finding(False, f"{case} is not in (0, eps]; a step larger than eps is cut back by the "
                                 f"projection (cleverhans asserts eps_iter <= eps)")
        elif nb_iter * step < 2 * eps - 1e-12:
            yield Finding(False, f"{case}: all steps together cover {nb_iter * step:.4g}, so PGD cannot cross "
                                 f"the ball (diameter 2 * eps = {2 * eps:.4g}) from its random start")
        elif nb_iter >= 10 and step > eps / 2:
            yield Finding(False, f"{case}: with this many steps each one should be a small fraction of eps; "
                                 f"steps close to eps bounce between corners of the ball and never refine")
        else:
            yield Finding(True, f"{case} can cross the ball ({nb_iter * step / eps:.1f} eps in total) "
                                f"in steps of {step / eps:.2f} eps")


# --------------------------------------------------------------------------- gradient masking

#: Accuracy (%) of four defended digits models under L∞ attacks (made-up but typical numbers).
#: Columns: FGSM at eps 0.1, PGD-40 at eps 0.1, PGD-40 at eps 0.5, transfer attack (PGD on an
#: independently trained model) at eps 0.1.
MASKING_TABLE: dict[str, dict[str, float]] = {
    "A": {"fgsm@0.1": 31.0, "pgd@0.1": 4.0, "pgd@0.5": 0.0, "transfer@0.1": 46.0},
    "B": {"fgsm@0.1": 78.0, "pgd@0.1": 71.0, "pgd@0.5": 0.0, "transfer@0.1": 88.0},
    "C": {"fgsm@0.1": 22.0, "pgd@0.1": 83.0, "pgd@0.5": 79.0, "transfer@0.1": 18.0},
    "D": {"fgsm@0.1": 91.0, "pgd@0.1": 90.0, "pgd@0.5": 89.0, "transfer@0.1": 12.0},
}
VERDICTS = ("not robust", "robust", "masked")

_MASKING_TRUTH = {
    "A": ("not robust", "PGD drives it to about 0 and beats FGSM: honest gradients, no defence"),
    "B": ("robust", "PGD beats FGSM, accuracy falls to 0 at a huge eps, and the transfer attack is weaker "
                    "than white-box PGD: no sign of masking, so the model resists these attacks at eps 0.1 "
                    "(evidence, not proof: a stronger attack could still lower it)"),
    "C": ("masked", "FGSM (one step) beats PGD (40 steps) and accuracy stays high at eps 0.5: "
                    "the iterative attack is being misled, not the model defended"),
    "D": ("masked", "accuracy barely moves even at eps 0.5 (where any image can be turned into another), "
                    "while a transfer attack from another model succeeds: the gradients are useless, e.g. "
                    "saturated softmax outputs"),
}


@exercise(
    "adversarial.gradient_masking", "spot gradient masking in a table of robust accuracies",
    hint="Three checks: an iterative attack must do at least as well as a single step (PGD <= FGSM); "
         "accuracy must fall to about 0 when eps is huge; a black-box transfer attack must not beat the "
         "white-box attack. A model failing any of them shows evidence of masked gradients; passing all of "
         "them is evidence against masking, not a proof of robustness.",
    reference={letter: verdict for letter, (verdict, _) in _MASKING_TRUTH.items()},
    wrong_answers=[({"A": "not robust", "B": "robust", "C": "robust", "D": "robust"}, "FGSM (one step) beats"),
                   ({"A": "masked", "B": "robust", "C": "masked", "D": "masked"}, "honest gradients"),
                   (["C", "D"], "a dict")],
)
def _check_masking(answer: Any):
    if not isinstance(answer, dict):
        yield Finding(False, f"answer must be a dict such as {{'A': 'robust', ...}} with values in {VERDICTS}, "
                             f"got {type(answer).__name__}")
        return
    for letter, (verdict, why) in _MASKING_TRUTH.items():
        given = str(answer.get(letter, "")).strip().lower()
        if not given or answer.get(letter) is Ellipsis:
            yield Finding(False, f"{letter}: no answer yet (one of {VERDICTS})")
        elif given not in VERDICTS:
            yield Finding(False, f"{letter}: {answer[letter]!r} is not one of {VERDICTS}")
        elif given == verdict:
            yield Finding(True, f"{letter} is {verdict}: {why}")
        else:
            yield Finding(False, f"{letter}: you said {given!r}, but it is {verdict}: {why}")


# --------------------------------------------------------------------------- clinical units


def _eps_in_original_units_reference(split, eps, feature):
    j = split.feature_names.index(feature)
    return eps * split.scale[j]  # a change of eps standard deviations; the mean cancels out


def _with_mean(split, eps, feature):
    j = split.feature_names.index(feature)
    return eps * split.scale[j] + split.mean[j]


def _divided(split, eps, feature):
    j = split.feature_names.index(feature)
    return eps / split.scale[j]


@exercise(
    "adversarial.clinical_units", "translate an L∞ budget from standardized to clinical units",
    hint="Standardized x = (original - mean) / scale, so a change Δ in standardized units is a change "
         "Δ * scale in original units: a difference of two values, in which the mean cancels.",
    reference=_eps_in_original_units_reference,
    wrong_answers=[(_with_mean, "mean"), (_divided, "multiply")],
)
def _check_clinical_units(answer: Any):
    if not callable(answer):
        yield Finding(False, "answer must be a function eps_in_original_units(split, eps, feature)")
        return
    from helpers.data import load_wdbc, wdbc_unit

    split = load_wdbc()
    for eps, feature in ((0.1, "mean radius"), (0.5, "mean texture"), (0.25, "worst area")):
        j = split.feature_names.index(feature)
        truth = eps * split.scale[j]
        got = float(answer(split, eps, feature))
        unit = wdbc_unit(feature)
        if abs(got - truth) <= 1e-6 * max(1.0, abs(truth)):
            yield Finding(True, f"eps={eps} on {feature} is {truth:.3f} {unit}")
        elif abs(got - (truth + split.mean[j])) <= 1e-6 * max(1.0, abs(truth)):
            yield Finding(False, f"{feature}: you added the mean ({got:.3f}); a perturbation is a difference "
                                 f"of two values, so the mean cancels: expected {truth:.3f} {unit}")
        elif abs(got - eps / split.scale[j]) <= 1e-9 * max(1.0, abs(got)):
            yield Finding(False, f"{feature}: you divided by the scale ({got:.4g}); going back to original "
                                 f"units you multiply by it: expected {truth:.3f} {unit}")
        else:
            yield Finding(False, f"{feature}: expected {truth:.3f} {unit}, got {got:.4g}")


# --------------------------------------------------------------------------- randomized smoothing


def _certified_radius_reference(count, n, sigma, alpha):
    from scipy.stats import beta, norm

    p_lower = beta.ppf(alpha, count, n - count + 1) if count > 0 else 0.0  # one-sided Clopper-Pearson
    return sigma * norm.ppf(p_lower) if p_lower > 0.5 else 0.0  # abstain: no certificate


def _radius_plug_in(count, n, sigma, alpha):
    from scipy.stats import norm

    p = count / n
    return sigma * norm.ppf(min(p, 1 - 1e-12)) if p > 0.5 else 0.0


def _radius_two_sided(count, n, sigma, alpha):
    return _certified_radius_reference(count, n, sigma, alpha / 2)


def _radius_no_abstain(count, n, sigma, alpha):
    from scipy.stats import beta, norm

    return sigma * norm.ppf(beta.ppf(alpha, max(count, 1), n - count + 1))


_RADIUS_CASES = ((990, 1000, 0.25, 0.001), (1000, 1000, 0.25, 0.001), (700, 1000, 0.5, 0.001),
                 (540, 1000, 0.25, 0.001), (300, 1000, 0.25, 0.001), (95, 100, 1.0, 0.01))


@exercise(
    "adversarial.certified_radius", "the certified L2 radius of randomized smoothing (Cohen et al., 2019)",
    hint="Bound p_A from below with the one-sided Clopper-Pearson bound at level 1 - alpha, "
         "scipy.stats.beta.ppf(alpha, count, n - count + 1); if that bound is not above 1/2, abstain "
         "(return 0); otherwise the radius is sigma * scipy.stats.norm.ppf(bound).",
    reference=_certified_radius_reference,
    wrong_answers=[(_radius_plug_in, "lower confidence bound"), (_radius_two_sided, "one-sided"),
                   (_radius_no_abstain, "abstain")],
)
def _check_certified_radius(answer: Any):
    if not callable(answer):
        yield Finding(False, "answer must be a function certified_radius(count, n, sigma, alpha)")
        return
    for count, n, sigma, alpha in _RADIUS_CASES:
        truth = _certified_radius_reference(count, n, sigma, alpha)
        got = float(answer(count, n, sigma, alpha))
        case = f"count={count} of n={n}, sigma={sigma}, alpha={alpha}"
        if abs(got - truth) <= 1e-6 * max(1.0, abs(truth)):
            yield Finding(True, f"{case}: radius {truth:.4f}" + (" (abstain)" if truth == 0 else ""))
        elif truth == 0 and got != 0:
            yield Finding(False, f"{case}: the lower bound on p_A is not above 1/2, so the smoothed classifier "
                                 f"must abstain (return 0); you returned {got:.4f}")
        elif abs(got - _radius_plug_in(count, n, sigma, alpha)) <= 1e-6 * max(1.0, abs(got)):
            yield Finding(False, f"{case}: you used the estimate count / n itself ({got:.4f}); the certificate "
                                 f"needs a lower confidence bound on p_A, or it fails whenever the estimate is "
                                 f"high by chance: expected {truth:.4f}")
        elif abs(got - _radius_two_sided(count, n, sigma, alpha)) <= 1e-6 * max(1.0, abs(got)):
            yield Finding(False, f"{case}: you split alpha between two tails ({got:.4f}); only the lower end "
                                 f"matters, so the bound is one-sided at level 1 - alpha: expected {truth:.4f}")
        else:
            yield Finding(False, f"{case}: expected {truth:.4f}, got {got:.4f}")
