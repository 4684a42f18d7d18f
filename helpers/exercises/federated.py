"""Exercises of notebook 05 (cryptography and federated learning): keys ``federated.*``."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from helpers.exercises.core import Finding, exercise


# ----------------------------------------------------------------------------- 1. gradient inversion

def _reconstruct_reference(update_kernel, update_bias):
    import numpy as np

    update_kernel = np.asarray(update_kernel, dtype=float).reshape(-1)
    return update_kernel / float(np.asarray(update_bias).reshape(-1)[0])


def _forgot_to_divide(update_kernel, update_bias):
    return np.asarray(update_kernel, dtype=float).reshape(-1)


def _divided_by_learning_rate(update_kernel, update_bias):
    return -np.asarray(update_kernel, dtype=float).reshape(-1) / 0.1


def _one_patient_update(rng: np.random.Generator, lr: float = 0.1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = rng.normal(size=30)
    w, b, y = rng.normal(size=30) * 0.3, rng.normal(), rng.integers(0, 2)
    p = 1 / (1 + np.exp(-(x @ w + b)))
    return x, -lr * (p - y) * x[:, None], np.array([-lr * (p - y)])


@exercise(
    "federated.reconstruct", "recover a patient's features from a one-patient update",
    hint="For a logistic regression, the update of the weights is -lr·(p - y)·x and the update of the "
         "bias is -lr·(p - y): the same factor. Divide one by the other.",
    reference=_reconstruct_reference,
    wrong_answers=[(_forgot_to_divide, "off by the factor"), (_divided_by_learning_rate, "learning rate")],
)
def _check_reconstruct(answer: Any):
    if not callable(answer):
        yield Finding(False, "answer must be a function (update_kernel, update_bias) -> features")
        return
    rng = np.random.default_rng(5)
    errors = []
    for _ in range(5):
        x, uk, ub = _one_patient_update(rng)
        got = np.asarray(answer(uk, ub), dtype=float).reshape(-1)
        if got.shape != x.shape:
            yield Finding(False, f"you returned shape {got.shape}; expected one value per feature {x.shape}")
            return
        errors.append(float(np.max(np.abs(got - x))))
    worst = max(errors)
    if worst < 1e-9:
        yield Finding(True, f"5 random patients recovered exactly (largest error {worst:.1e})")
        yield Finding(True, "no knowledge of the learning rate, the weights or the label was needed")
    else:
        yield Finding(False, f"your reconstruction is off by the factor -lr·(p - y) or more (largest error "
                             f"{worst:.3g}); an attacker does not know lr, p or y: the learning rate cancels in "
                             f"a ratio")


# ----------------------------------------------------------------------------- 2. the modulus

def _min_modulus_reference(n_clients, bound, frac_bits):
    import math

    largest = math.ceil(bound * 2 ** frac_bits)   # the largest encoded |value| of one client
    return 2 * n_clients * largest + 1             # the sum lies in [-n·largest, n·largest]


def _one_client(n_clients, bound, frac_bits):
    return 2 * math.ceil(bound * 2 ** frac_bits) + 1


def _no_negatives(n_clients, bound, frac_bits):
    return n_clients * math.ceil(bound * 2 ** frac_bits) + 1


@exercise(
    "federated.min_modulus", "the smallest modulus that decodes the secure sum",
    hint="Each client's value is encoded as an integer in [-B, B] with B = ceil(bound · 2^frac_bits). "
         "The server decodes the *sum* of n such integers, which may be negative: how many different "
         "values can it take?",
    reference=_min_modulus_reference,
    wrong_answers=[(_one_client, "sum of"), (_no_negatives, "negative")],
)
def _check_min_modulus(answer: Any):
    if not callable(answer):
        yield Finding(False, "answer must be a function (n_clients, bound, frac_bits) -> int")
        return
    from helpers.federated import min_modulus

    for n, bound, bits in ((5, 1.0, 16), (3, 200.0, 24), (2, 0.5, 0)):
        truth, got = min_modulus(n, bound, bits), int(answer(n, bound, bits))
        if got == truth:
            yield Finding(True, f"{n} clients, bound {bound}, {bits} fractional bits: {truth}")
        elif got == 2 * math.ceil(bound * 2 ** bits) + 1:
            yield Finding(False, f"{n} clients, bound {bound}: {got} covers one client, but the server decodes "
                                 f"the sum of {n} values (expected {truth})")
        elif got == n * math.ceil(bound * 2 ** bits) + 1:
            yield Finding(False, f"{n} clients, bound {bound}: {got} forgets that the sum can be negative; "
                                 f"[-nB, nB] holds 2nB + 1 integers (expected {truth})")
        else:
            yield Finding(False, f"{n} clients, bound {bound}, {bits} bits: expected {truth}, got {got}")


# ----------------------------------------------------------------------------- 3. what protects what

TECHNIQUES = ("differential privacy", "secure aggregation", "homomorphic encryption")

#: Option letter -> what is protected, from whom.
HIDES: dict[str, str] = {
    "a": "each hospital's update, from the server that adds the updates (the server learns only the sum)",
    "b": "a patient's features and diagnosis, from the cloud that computes the diagnosis",
    "c": "any one patient's influence on everything released (updates, the final model), from everyone",
    "d": "the model's parameters, from whoever holds or runs the model",
}
_EXPECTED = {"differential privacy": "c", "secure aggregation": "a", "homomorphic encryption": "b"}


@exercise(
    "federated.what_protects_what", "what does each technique hide, and from whom?",
    hint="Secure aggregation and HE hide *inputs* while someone computes on them; DP limits what the "
         "*output* reveals about one person, and the output is published in the clear. None of them is "
         "'model encryption'.",
    reference=dict(_EXPECTED),
    wrong_answers=[({"differential privacy": "d", "secure aggregation": "a", "homomorphic encryption": "b"},
                    "not encryption"),
                   ({"differential privacy": "c", "secure aggregation": "a", "homomorphic encryption": "d"},
                    "model owner"),
                   (["c", "a", "b"], "a dict")],
)
def _check_protects(answer: Any):
    if not isinstance(answer, dict):
        yield Finding(False, f"answer must be a dict from technique to option letter, got {type(answer).__name__}")
        return
    for technique, letter in _EXPECTED.items():
        given = str(answer.get(technique, "")).strip().lower()
        if not given or given == "ellipsis":
            yield Finding(False, f"{technique}: no answer yet (keys must be {TECHNIQUES})")
        elif given == letter:
            yield Finding(True, f"{technique} hides {HIDES[letter]}")
        elif technique == "differential privacy" and given == "d":
            yield Finding(False, "differential privacy is not encryption (seed 001 calls it 'model encryption'): "
                                 "a DP model is published in the clear; DP bounds what it reveals about one patient")
        elif given == "d":
            yield Finding(False, f"{technique} does not hide the model: in this notebook the model owner computes "
                                 f"in the clear on its own parameters; {technique} hides {HIDES[letter]}")
        else:
            yield Finding(False, f"{technique} does not hide {HIDES.get(given, 'an option listed')}; it hides "
                                 f"{HIDES[letter]}")
