"""Reusable code for the Secure AI Notebooks course.

Importing ``helpers`` is cheap and has no side effects: TensorFlow is only imported
by :func:`helpers.setup` (after its log level is set) and by the modules that train
or attack models.

Modules
-------
``helpers.env``        :func:`setup`: seeds, determinism, quiet logs, plot style.
``helpers.data``       offline datasets with seeded, stratified splits.
``helpers.exercises``  exercises with automatic feedback (``check``, ``solution``).
``helpers.validation`` argument checks that raise ``ValueError`` naming the argument.
"""
from helpers.env import COLORS, setup

__all__ = ["COLORS", "setup"]
__version__ = "0.1.0"
