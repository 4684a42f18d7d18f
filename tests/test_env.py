import numpy as np
import pytest

import helpers


def test_setup_seeds_numpy_and_prints_one_line(capsys):
    helpers.setup(7, tensorflow=False)
    first = np.random.rand(3)
    helpers.setup(7, tensorflow=False)
    assert np.array_equal(first, np.random.rand(3))
    out = capsys.readouterr()
    lines = out.out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("Environment: Python 3.11") and "seed 7" in lines[0]
    assert out.err == ""


def test_setup_tensorflow_is_seeded_deterministic_and_quiet(capfd):
    helpers.setup(1)
    import tensorflow as tf
    a = tf.random.uniform((3,)).numpy()
    helpers.setup(1)
    b = tf.random.uniform((3,)).numpy()
    assert np.array_equal(a, b)
    from tensorflow.python.framework import config as tf_config
    assert tf_config.is_op_determinism_enabled()
    out = capfd.readouterr()
    assert "tensorflow 2.15.1" in out.out
    assert out.err == ""


@pytest.mark.parametrize("seed", [-1, 1.5, "0", True])
def test_setup_rejects_bad_seed(seed):
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        helpers.setup(seed, tensorflow=False, verbose=False)


def test_palette_is_okabe_ito():
    import matplotlib as mpl
    helpers.setup(0, tensorflow=False, verbose=False)
    assert mpl.rcParams["axes.prop_cycle"].by_key()["color"][:3] == ["#0072B2", "#E69F00", "#009E73"]
