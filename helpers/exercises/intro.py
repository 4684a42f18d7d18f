"""Exercises of notebook 00 (intro): keys ``intro.*``."""
from __future__ import annotations

from typing import Any

import numpy as np

from helpers.data import Split
from helpers.exercises.core import Finding, exercise

PILLARS = ("privacy", "integrity", "transparency")

#: Scenario letter -> (description, pillar, why).
SCENARIOS: dict[str, tuple[str, str, str]] = {
    "A": ("An insurer sends a person's record to the hospital's model and, from how confident "
          "the model is, infers that this person was a patient.", "privacy",
          "the attacker learns something about the training data (membership)"),
    "B": ("Someone edits a few values of a biopsy report so that the model answers 'benign'.", "integrity",
          "the attacker manipulates an input to change the model's decision"),
    "C": ("A clinician wants to know which measurements made the model flag a patient, and whether "
          "it relied on something medically irrelevant.", "transparency",
          "the question is why the model decided, not an attack on data or inputs"),
    "D": ("A researcher with access to the trained model reconstructs typical patient records "
          "from it.", "privacy", "the model leaks information about the people it was trained on"),
    "E": ("Records with a wrong label are slipped into the training data so that the model "
          "misses one kind of tumour.", "integrity",
          "poisoning manipulates what the model learns, so its decisions can no longer be trusted"),
}


def _classify_reference() -> dict[str, str]:
    return {"A": "privacy", "B": "integrity", "C": "transparency", "D": "privacy", "E": "integrity"}


@exercise(
    "intro.pillars", "which pillar does each scenario belong to?",
    hint="Ask what the attacker wants: learn about training data (privacy), change a decision "
         "(integrity), or is it about understanding a decision (transparency)?",
    reference=_classify_reference(),
    wrong_answers=[({k: "privacy" for k in SCENARIOS}, "integrity"),
                   (["privacy", "integrity"], "a dict")],
)
def _check_pillars(answer: Any):
    if not isinstance(answer, dict):
        yield Finding(False, f"answer must be a dict such as {{'A': 'privacy', ...}}, got {type(answer).__name__}")
        return
    missing = sorted(set(SCENARIOS) - set(answer))
    if missing:
        yield Finding(False, f"scenario(s) {', '.join(missing)} have no answer yet")
    for letter, (_, pillar, why) in SCENARIOS.items():
        if letter not in answer:
            continue
        given = str(answer[letter]).strip().lower()
        if given not in PILLARS:
            yield Finding(False, f"{letter}: {answer[letter]!r} is not one of {PILLARS}")
        elif given == pillar:
            yield Finding(True, f"{letter} is {pillar}: {why}")
        else:
            yield Finding(False, f"{letter} is not {given} but {pillar}: {why}")


TECHNIQUES = ("differential privacy", "homomorphic encryption", "secure multi-party computation")

#: Option letter -> what is protected, from whom.
PROTECTS: dict[str, str] = {
    "a": "the inputs of a computation, from the server that carries it out",
    "b": "each party's inputs, from the other parties that compute a result jointly",
    "c": "every individual in the data, from whoever sees the released result (statistic or model)",
    "d": "the model's parameters, from being read by whoever holds the model",
}


@exercise(
    "intro.protects_against", "what does each technique protect, and from whom?",
    hint="Encryption hides data from someone who computes on it; differential privacy is about "
         "what a published result reveals about one person, and publishes that result in the clear.",
    reference={"differential privacy": "c", "homomorphic encryption": "a", "secure multi-party computation": "b"},
    wrong_answers=[({"differential privacy": "d", "homomorphic encryption": "a",
                     "secure multi-party computation": "b"}, "not encryption")],
)
def _check_protects(answer: Any):
    if not isinstance(answer, dict):
        yield Finding(False, f"answer must be a dict from technique to option letter, got {type(answer).__name__}")
        return
    expected = {"differential privacy": "c", "homomorphic encryption": "a", "secure multi-party computation": "b"}
    for technique, letter in expected.items():
        given = str(answer.get(technique, "")).strip().lower()
        if not given:
            yield Finding(False, f"{technique}: no answer yet (keys must be {TECHNIQUES})")
        elif given == letter:
            yield Finding(True, f"{technique} protects {PROTECTS[letter]}")
        elif technique == "differential privacy" and given == "d":
            yield Finding(False, "differential privacy is not encryption (the seed article's mistake): a DP "
                                 "model can be published as it is; DP bounds what it reveals about any one person")
        else:
            what = PROTECTS.get(given, "nothing listed")
            yield Finding(False, f"{technique} does not protect {what}; it protects {PROTECTS[letter]}")


def _malignant_fraction_reference(split: Split) -> float:
    return float(np.mean(split.y_train == split.class_names.index("malignant")))


def _benign_fraction(split: Split) -> float:
    return float(np.mean(split.y_train == 0))


def _malignant_count(split: Split) -> float:
    return float(np.sum(split.y_train == 1))


@exercise(
    "intro.malignant_fraction", "fraction of malignant tumours in the training split",
    hint="In helpers.data the label 1 means malignant (split.class_names says so); the fraction is "
         "a mean of a boolean array, computed on the training split only.",
    reference=_malignant_fraction_reference,
    wrong_answers=[(_benign_fraction, "benign"), (_malignant_count, "a fraction")],
)
def _check_malignant_fraction(answer: Any):
    if not callable(answer):
        yield Finding(False, "answer must be a function that takes a Split and returns a number")
        return
    from helpers.data import load_wdbc

    split = load_wdbc()
    truth = _malignant_fraction_reference(split)
    got = float(answer(split))
    if not 0.0 <= got <= 1.0:
        yield Finding(False, f"you returned {got:g}, which is not a fraction between 0 and 1 "
                             f"(did you count instead of dividing by the number of patients?)")
        return
    if abs(got - (1 - truth)) < 1e-9:
        yield Finding(False, f"you returned {got:.3f}, the benign fraction: label 1 means malignant here")
        return
    yield Finding(abs(got - truth) < 1e-9, f"fraction on the WDBC training split: expected {truth:.3f}, got {got:.3f}")
    # A split with a known answer, so a hard-coded number does not pass.
    fake = Split(split.X_train[:4], split.X_test[:2], np.array([1, 1, 1, 0]), np.array([0, 1]),
                 split.feature_names, split.class_names)
    got_fake = float(answer(fake))
    yield Finding(abs(got_fake - 0.75) < 1e-9,
                  f"on a 4-patient split with 3 malignant: expected 0.750, got {got_fake:.3f}")
