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


def setup(seed: int = 0, *, tensorflow: bool = True, verbose: bool = True) -> None:
    """Prepare a notebook: seeds, determinism, quiet logs, plot style.

    Parameters
    ----------
    seed:
        Seed for Python's ``random``, NumPy's global generator and TensorFlow.
    tensorflow:
        Also import TensorFlow, seed it and switch on deterministic ops. Costs
        several seconds; notebooks without models can pass ``False``.
    verbose:
        Print a one-line summary of the environment.

    Call it before anything imports TensorFlow: the C++ log level and oneDNN switch
    are read once, when TensorFlow loads.
    """
    seed = validation.positive_int("seed", seed, minimum=0)
    _silence_tensorflow_before_import()
    os.environ["PYTHONHASHSEED"] = str(seed)  # for subprocesses; this process's hash seed is fixed at start
    warnings.filterwarnings("ignore")
    random.seed(seed)
    np.random.seed(seed)
    plot_style()
    if tensorflow:
        import tensorflow as tf

        tf.get_logger().setLevel(logging.ERROR)
        tf.autograph.set_verbosity(0)
        logging.getLogger("absl").setLevel(logging.ERROR)
        # Seed first: enabling op determinism without a seed raises in TF 2.15.
        tf.keras.utils.set_random_seed(seed)
        tf.config.experimental.enable_op_determinism()
    if verbose:
        found = versions(_SUMMARY_PACKAGES if tensorflow else ("numpy", "scikit-learn"))
        parts = [f"Python {sys.version_info.major}.{sys.version_info.minor}"]
        parts += [f"{name} {version}" for name, version in found.items()]
        parts.append(f"seed {seed}")
        if tensorflow:
            parts.append("deterministic TF ops")
        print("Environment: " + " | ".join(parts))
