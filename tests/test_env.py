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


def test_setup_returns_the_seed_and_honours_course_seed(monkeypatch, capsys):
    assert helpers.setup(3, tensorflow=False, verbose=False) == 3
    monkeypatch.setenv("COURSE_SEED", "11")
    assert helpers.setup(3, tensorflow=False) == 11
    assert "seed 11 (from COURSE_SEED)" in capsys.readouterr().out


@pytest.mark.parametrize("variable, value", [("COURSE_SEED", "-1"), ("COURSE_SEED", "one"), ("COURSE_THREADS", "0")])
def test_setup_refuses_bad_environment_values(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=f"{variable} must be an integer >= "):
        helpers.setup(0, tensorflow=False, verbose=False)


# A model whose float reductions TensorFlow splits by its intra-op thread count (a 1024-wide
# layer, batches of 1024): trained in a fresh process, the sum of its weights.
_TRAIN = """
import helpers, numpy as np
helpers.setup(0, verbose=False)
import tensorflow as tf
print(tf.config.threading.get_intra_op_parallelism_threads(), tf.config.threading.get_inter_op_parallelism_threads())
from helpers import data, models
d = data.load_digits(seed=0)
m = models.mlp((8, 8, 1), 10, hidden=(1024,), seed=0)
m.compile(optimizer=tf.keras.optimizers.Adam(1e-2), loss=models.loss_for(10))
m.fit(d.X_train, d.y_train, epochs=2, batch_size=1024, verbose=0)
print(repr(float(sum(np.sum(w.astype(np.float64)) for w in m.get_weights()))))
"""


def _train_in_subprocess(**env):
    import os
    import subprocess
    import sys
    environment = {k: v for k, v in os.environ.items() if k not in {"COURSE_SEED", "COURSE_THREADS"}}
    environment.update(env, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, "-c", _TRAIN], capture_output=True, text=True, env=environment, check=True)
    threads, weights = out.stdout.strip().splitlines()[-2:]
    return threads, weights


def test_thread_count_is_fixed_so_every_core_count_trains_the_same_weights():
    """TF_NUM_INTRAOP_THREADS stands for a machine with that many cores: with setup's fixed count,
    1 and 8 give the same weights; COURSE_THREADS (not fixed) shows that this model is sensitive."""
    one = _train_in_subprocess(TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1")
    eight = _train_in_subprocess(TF_NUM_INTRAOP_THREADS="8", TF_NUM_INTEROP_THREADS="8")
    assert one == eight and one[0] == f"{helpers.env.THREADS} {helpers.env.THREADS}"
    other = _train_in_subprocess(COURSE_THREADS="1")
    assert other[0] == "1 1" and other[1] != one[1], "the model must be sensitive to the thread count"
