"""Exercises with automatic feedback: ``check(key, answer)`` and ``solution(key)``.

See :mod:`helpers.exercises.core` for how exercises are written; each topic module
(``intro``, ``dp``, ``adversarial``, ``explain``, ``case_study``, ``federated``, ``images``, ``language``) defines its own.
"""
from helpers.exercises.core import Exercise, Finding, Report, all_exercises, check, evaluate, exercise, get, solution

__all__ = ["Exercise", "Finding", "Report", "all_exercises", "check", "evaluate", "exercise", "get", "solution"]
