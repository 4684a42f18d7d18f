"""The one call every notebook makes first: :func:`setup`."""
from __future__ import annotations

import logging
import os
import random
import sys
import warnings
from importlib import metadata

import numpy as np

from helpers import validation

#: Okabe & Ito (2008) colour-blind-safe palette, in the order plots use it.
COLORS: dict[str, str] = {
    "blue": "#0072B2",
    "orange": "#E69F00",
    "green": "#009E73",
    "vermillion": "#D55E00",
    "sky": "#56B4E9",
    "purple": "#CC79A7",
    "yellow": "#F0E442",
    "black": "#000000",
}

_SUMMARY_PACKAGES = ("numpy", "tensorflow", "tensorflow-privacy", "cleverhans", "lime", "scikit-learn")


def _silence_tensorflow_before_import() -> None:
    # Both are read once, when TensorFlow's C++ runtime loads: they must be set first.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # no C++ INFO/WARNING lines on stderr
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # same float results on every x86 CPU


def plot_style() -> None:
    """One readable plot style: colour-blind-safe colours, labelled grids, small PNGs."""
    import matplotlib as mpl
    from cycler import cycler

    mpl.rcParams.update({
        "axes.prop_cycle": cycler(color=list(COLORS.values())),
        "image.cmap": "viridis",
        "figure.figsize": (6.0, 3.6),
        "figure.dpi": 90,
        "savefig.dpi": 90,
        "font.size": 10,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "legend.frameon": False,
        "figure.max_open_warning": 0,
    })


def versions(packages: tuple[str, ...] = _SUMMARY_PACKAGES) -> dict[str, str]:
    """Installed versions of ``packages`` ("missing" when not installed)."""
    found = {}
    for name in packages:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "missing"
    return found


#: TensorFlow's intra- and inter-op thread counts in every notebook. TensorFlow splits its
#: float reductions by the number of intra-op threads, whose default is the core count, so
#: a 1-, 4- or 8-core machine would train slightly different weights than the 2 cores that
#: wrote the committed outputs. Fixed here, every machine of one CPU family computes the
#: same numbers. (The course's models are small: 2 threads cost nothing on bigger machines.)
THREADS = 2
#: Environment variables that :func:`setup` honours (and prints): another seed or another
#: thread count for a whole notebook, as ``python3 course.py robustness`` runs them.
SEED_VARIABLE = "COURSE_SEED"
THREADS_VARIABLE = "COURSE_THREADS"


def _from_environment(variable: str, default: int, minimum: int) -> tuple[int, bool]:
    """``(value, True)`` from the environment variable, else ``(default, False)``."""
    text = os.environ.get(variable, "").strip()
    if not text:
        return default, False
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{variable} must be an integer >= {minimum}, got {text!r}") from None
    return validation.positive_int(variable, value, minimum=minimum), True


def _fix_threads(tf, threads: int) -> int:
    """Set TensorFlow's thread counts before its first op; returns the intra-op count in force.

    TensorFlow reads them once, when its runtime starts: after that they cannot change, and
    the count already in force is returned (0 means TensorFlow's default, the core count).
    """
    config = tf.config.threading
    if config.get_intra_op_parallelism_threads() == threads and config.get_inter_op_parallelism_threads() == threads:
        return threads
    try:
        config.set_intra_op_parallelism_threads(threads)
        config.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # the runtime already started (a second setup() in one process)
        pass
    return config.get_intra_op_parallelism_threads()


def setup(seed: int = 0, *, tensorflow: bool = True, verbose: bool = True) -> int:
    """Prepare a notebook: seeds, determinism, thread count, quiet logs, plot style.

    Parameters
    ----------
    seed:
        Seed for Python's ``random``, NumPy's global generator and TensorFlow. The
        environment variable ``COURSE_SEED`` replaces it (the printed line says so):
        that is how a whole notebook is re-run with another draw.
    tensorflow:
        Also import TensorFlow, seed it, switch on deterministic ops and fix its thread
        counts to :data:`THREADS` (``COURSE_THREADS`` replaces it). Costs several
        seconds; notebooks without models can pass ``False``.
    verbose:
        Print a one-line summary of the environment.

    Returns
    -------
    int
        The seed in force, for the notebook's own seeded calls (``SEED = setup(0)``).

    Call it before anything imports TensorFlow: the C++ log level, the oneDNN switch and
    the thread counts are read once, when TensorFlow starts.
    """
    seed = validation.positive_int("seed", seed, minimum=0)
    seed, seed_from_env = _from_environment(SEED_VARIABLE, seed, minimum=0)
    threads, threads_from_env = _from_environment(THREADS_VARIABLE, THREADS, minimum=1)
    _silence_tensorflow_before_import()
    os.environ["PYTHONHASHSEED"] = str(seed)  # for subprocesses; this process's hash seed is fixed at start
    warnings.filterwarnings("ignore")
    random.seed(seed)
    np.random.seed(seed)
    plot_style()
    in_force = None
    if tensorflow:
        import tensorflow as tf

        tf.get_logger().setLevel(logging.ERROR)
        tf.autograph.set_verbosity(0)
        logging.getLogger("absl").setLevel(logging.ERROR)
        in_force = _fix_threads(tf, threads)
        # Seed first: enabling op determinism without a seed raises in TF 2.15.
        tf.keras.utils.set_random_seed(seed)
        tf.config.experimental.enable_op_determinism()
    if verbose:
        found = versions(_SUMMARY_PACKAGES if tensorflow else ("numpy", "scikit-learn"))
        parts = [f"Python {sys.version_info.major}.{sys.version_info.minor}"]
        parts += [f"{name} {version}" for name, version in found.items()]
        parts.append(f"seed {seed}" + (f" (from {SEED_VARIABLE})" if seed_from_env else ""))
        if tensorflow:
            count = f"{in_force} threads" if in_force else "the default thread count (the cores)"
            parts.append(f"deterministic TF ops on {count}" + (f" (from {THREADS_VARIABLE})" if threads_from_env else ""))
        print("Environment: " + " | ".join(parts))
    return seed
