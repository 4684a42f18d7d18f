"""Exercises of notebook 06 (image diagnosis): keys ``images.*``. No TensorFlow needed."""
from __future__ import annotations

from typing import Any

import numpy as np

from helpers.exercises.core import Finding, exercise

# --- 1. one PGD projection on an image ---------------------------------------------------------


def project(x_adv: np.ndarray, x: np.ndarray, eps: float) -> np.ndarray:
    """Back into the L∞ ball of radius ``eps`` around ``x``, then into the valid grey levels [0, 1]."""
    return np.clip(np.clip(x_adv, x - eps, x + eps), 0.0, 1.0)


def _no_range_clip(x_adv, x, eps):
    return np.clip(x_adv, x - eps, x + eps)


def _range_only(x_adv, x, eps):
    return np.clip(x_adv, 0.0, 1.0)


def _l2_scaled(x_adv, x, eps):
    d = x_adv - x
    norm = np.sqrt((d ** 2).sum(axis=tuple(range(1, d.ndim)), keepdims=True))
    return np.clip(x + d * np.minimum(1.0, eps / np.maximum(norm, 1e-12)), 0.0, 1.0)


@exercise(
    "images.project", "keep an attacked image inside the threat model",
    hint="Two constraints: every pixel may move at most eps from the original (np.clip(x_adv, x - eps, x + eps)), "
         "and a pixel is a grey level, so it must stay in [0, 1]. Apply both; the ball first, then the range.",
    reference=project,
    wrong_answers=[(_no_range_clip, "outside [0, 1]"), (_range_only, "more than eps"), (_l2_scaled, "L∞")],
)
def _check_project(answer: Any):
    if not callable(answer):
        yield Finding(False, "answer must be a function project(x_adv, x, eps)")
        return
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (6, 8, 8, 1))
    x[0] = 0.99   # a bright image next to the top of the range
    eps = 8 / 255
    x_adv = x + rng.uniform(-3 * eps, 3 * eps, x.shape)
    got = np.asarray(answer(x_adv, x, eps), dtype=float)
    if got.shape != x.shape:
        yield Finding(False, f"the result must have the images' shape {x.shape}, got {got.shape}")
        return
    if got.min() < -1e-9 or got.max() > 1 + 1e-9:
        yield Finding(False, f"some pixels are outside [0, 1] (from {got.min():.3f} to {got.max():.3f}): "
                             f"an image cannot hold those grey levels")
    else:
        yield Finding(True, "every pixel is a valid grey level in [0, 1]")
    moved = np.abs(got - x).max()
    if moved > eps + 1e-9:
        yield Finding(False, f"a pixel moved by {moved:.4f}, more than eps = {eps:.4f}")
    else:
        yield Finding(True, f"no pixel moved more than eps = {eps:.4f}")
    if not np.allclose(got, project(x_adv, x, eps), atol=1e-9):
        if moved <= eps + 1e-9 and 0 <= got.min() and got.max() <= 1:
            yield Finding(False, "the result is inside the box but not the closest point to x_adv: the L∞ "
                                 "projection clips each pixel on its own, it does not rescale the whole "
                                 "perturbation (that is the L2 projection)")
    else:
        yield Finding(True, "each pixel is clipped on its own: the L∞ projection")


# --- 2. which threat model, which radius -------------------------------------------------------

#: Scenario -> (description, answer, why).
SCENARIOS: dict[str, tuple[str, str, str]] = {
    "A": ("malware on the slide scanner adds noise of at most 4 grey levels to every pixel of the images it saves",
          "image", "it changes pixels within a small grey-level budget: the image model's L∞ threat model"),
    "B": ("a lab employee changes the measured radius and texture slightly (within 0.25 SD) in the report sent "
          "to the model",
          "table", "it changes measured features: the tabular model's threat model (in SD per feature)"),
    "C": ("someone replaces a patient's slide by another patient's slide",
          "neither", "the input is a genuine image of another patient: no bounded perturbation describes it; "
                     "it is a chain-of-custody problem"),
    "D": ("an attacker re-renders a malignant aspirate's nuclei as round and small",
          "neither", "a large, visible change is not a small perturbation: a pathologist's review, not a "
                     "robustness radius, has to catch it"),
}
ANSWERS = ("image", "table", "neither")


@exercise(
    "images.threat_models", "which model's robustness figure covers each attack?",
    hint="The image model's robust accuracy covers small changes of pixel grey levels (L∞, a few /255); "
         "the tabular model's covers small changes of the measured features. An attack that is neither "
         "small nor on one of those inputs is covered by neither figure.",
    reference={k: v[1] for k, v in SCENARIOS.items()},
    wrong_answers=[({"A": "image", "B": "table", "C": "image", "D": "image"}, "no bounded perturbation"),
                   ({"A": "table", "B": "table", "C": "neither", "D": "neither"}, "grey-level budget"),
                   (["image", "table"], "a dict")],
)
def _check_threat_models(answer: Any):
    if not isinstance(answer, dict):
        yield Finding(False, f"answer must be a dict such as {{'A': 'image', ...}}, got {type(answer).__name__}")
        return
    for letter, (_, expected, why) in SCENARIOS.items():
        if letter not in answer:
            yield Finding(False, f"scenario {letter} has no answer yet")
            continue
        given = str(answer[letter]).strip().lower()
        if given not in ANSWERS:
            yield Finding(False, f"{letter}: {answer[letter]!r} is not one of {ANSWERS}")
        elif given == expected:
            yield Finding(True, f"{letter}: {expected}: {why}")
        else:
            yield Finding(False, f"{letter} is not {given} but {expected}: {why}")
