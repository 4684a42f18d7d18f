"""The bootstrap (course.py): clear failure without Python 3.11 (and without uv's fallback,
tested in test_bootstrap.py), no reinstall when
nothing changed, and the JupyterLab launch serving the intro notebook."""
import json
import os
import socket
import subprocess
import time
import urllib.request

import pytest

import course


def test_without_python_311_the_message_names_alternatives(monkeypatch):
    monkeypatch.setattr(course.sys, "version_info", (3, 12, 0))
    monkeypatch.setattr(course.shutil, "which", lambda name: None)
    monkeypatch.delenv("COURSE_UV_PYTHON", raising=False)
    def no_network(wheelhouse=None):  # the fallback through uv (tests/test_bootstrap.py) fails too
        raise course.SetupError("cannot download https://pypi.org/simple/uv/")
    monkeypatch.setattr(course, "managed_python", no_network)
    with pytest.raises(SystemExit) as info:
        course.find_python()
    message = str(info.value)
    assert "Python 3.11" in message and "environment.yml" in message and "Binder" in message


def test_windows_paths_and_python_launcher(monkeypatch):
    """On Windows the venv is .venv\\Scripts\\python.exe and Python 3.11 is found with `py -3.11`."""
    monkeypatch.setattr(course, "_is_windows", lambda: True)
    assert course.venv_python() == course.VENV / "Scripts" / "python.exe"
    assert course.venv_bin("jupyter") == course.VENV / "Scripts" / "jupyter.exe"
    assert course.python_candidates()[0] == ["py", "-3.11"]
    assert course.course_command() == "py course.py"
    monkeypatch.delattr(course.os, "geteuid", raising=False)  # Windows has no geteuid
    cmd = course.lab_command(port=8888, open_browser=False)
    assert cmd[0] == str(course.VENV / "Scripts" / "jupyter.exe") and "--allow-root" not in cmd
    assert cmd[-1] == course.INTRO_NOTEBOOK

    monkeypatch.setattr(course.sys, "version_info", (3, 12, 0))
    monkeypatch.setattr(course.shutil, "which", lambda name: "C:\\Windows\\py.exe" if name == "py" else None)
    monkeypatch.delenv("COURSE_UV_PYTHON", raising=False)
    probes = []
    def fake_run(cmd, **kwargs):
        probes.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, stdout="3.11\n", stderr="")
    monkeypatch.setattr(course.subprocess, "run", fake_run)
    assert course.find_python() == ["py", "-3.11"]
    assert probes[0][:2] == ["py", "-3.11"]


def test_lab_settings_are_merged_into_the_environment(tmp_path):
    target = course.lab_settings_file(tmp_path)
    target.parent.mkdir(parents=True)
    target.write_text(json.dumps({"@jupyterlab/apputils-extension:themes": {"theme": "JupyterLab Dark"},
                                  "@jupyterlab/notebook-extension:tracker": {"lineNumbers": True}}))
    assert course.install_lab_settings(tmp_path) is True
    merged = json.loads(target.read_text())
    assert merged["@jupyterlab/apputils-extension:themes"] == {"theme": "JupyterLab Dark"}
    assert merged["@jupyterlab/notebook-extension:tracker"] == {"lineNumbers": True, "kernelShutdown": True}
    assert merged["@jupyterlab/apputils-extension:notification"]["fetchNews"] == "false"
    assert course.install_lab_settings(tmp_path) is False, "a second install must not rewrite the file"


def test_second_run_does_not_reinstall(monkeypatch):
    assert course.STAMP_FILE.read_text().strip() == course.environment_stamp(), \
        "the venv in use was not created by course.py from this lock"
    def refuse(*args, **kwargs):
        raise AssertionError("ensure_venv reinstalled although nothing changed")
    monkeypatch.setattr(course, "run", refuse)
    course.ensure_venv()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_launch_command_serves_the_intro_notebook(tmp_path):
    port, token = _free_port(), "course-test-token"
    env = dict(course.course_env(), JUPYTER_RUNTIME_DIR=str(tmp_path), JUPYTER_CONFIG_DIR=str(tmp_path / "cfg"))
    course.install_lab_settings()  # what ensure_venv does before every launch
    cmd = course.lab_command(port=port, open_browser=False) + [f"--IdentityProvider.token={token}"]
    assert cmd[-2] == course.INTRO_NOTEBOOK or course.INTRO_NOTEBOOK in cmd
    server = subprocess.Popen(cmd, cwd=course.ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/api/contents/notebooks/00_intro.ipynb?token={token}&content=0"
        deadline = time.time() + 90
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    assert response.status == 200
                    body = response.read().decode()
                    assert '"name": "00_intro.ipynb"' in body or '"name":"00_intro.ipynb"' in body
                break
            except (urllib.error.URLError, ConnectionError):
                assert server.poll() is None, "jupyter lab exited early"
                assert time.time() < deadline, "jupyter lab did not answer within 90 s"
                time.sleep(1)
        lab = f"http://127.0.0.1:{port}/lab/tree/notebooks/00_intro.ipynb?token={token}"
        with urllib.request.urlopen(lab, timeout=10) as response:
            assert response.status == 200 and "JupyterLab" in response.read().decode()
        # The course's defaults reach JupyterLab: no news prompt, kernels shut down with their tab.
        def setting(plugin, key):
            api = f"http://127.0.0.1:{port}/lab/api/settings/{plugin}?token={token}"
            with urllib.request.urlopen(api, timeout=10) as response:
                # overrides.json becomes the schema's default (no user settings exist here)
                return json.loads(response.read())["schema"]["properties"][key]["default"]
        assert setting("@jupyterlab/apputils-extension:notification", "fetchNews") == "false"
        assert setting("@jupyterlab/apputils-extension:notification", "checkForUpdates") is False
        assert setting("@jupyterlab/notebook-extension:tracker", "kernelShutdown") is True
    finally:
        server.terminate()
        server.wait(timeout=30)


# ------------------------------------------------------------ offline classrooms: wheelhouse
# `course.py wheelhouse DIR --platform P` and `course.py lab/test --wheelhouse DIR` (README,
# "Offline classroom"; instructors/running_the_course.md documents the same two commands).

WHEELHOUSE_TO_LOCK_TEST = {"linux-x86_64": "linux-x86_64", "linux-aarch64": "linux-aarch64",
                           "macos-arm64": "macos-arm64", "macos-x86_64": "macos-x86_64",
                           "windows": "windows-x86_64"}


def test_wheelhouse_platforms_are_the_supported_ones():
    from tests import test_lock_platforms as lock_test
    assert set(course.WHEELHOUSE_PLATFORMS) == set(WHEELHOUSE_TO_LOCK_TEST)
    for name, lock_name in WHEELHOUSE_TO_LOCK_TEST.items():
        assert course.WHEELHOUSE_PLATFORMS[name] == lock_test.PLATFORMS[lock_name][1]
    assert course.SDIST_ONLY == lock_test.SDIST_ONLY
    assert course.this_platform() in course.WHEELHOUSE_PLATFORMS


def test_marker_evaluation_agrees_with_packaging_on_every_lock_line():
    from packaging.markers import Marker
    from tests.test_lock_platforms import marker_env
    markers = {line.partition(";")[2].strip() for line in course.LOCK.read_text().splitlines()
               if ";" in line and not line.startswith((" ", "#"))}
    markers |= {"python_full_version >= '3.11.1'", "python_version < '3.12' and 'linux' in sys_platform",
                "platform_machine not in 'x86_64 AMD64'"}
    assert len(markers) > 5
    for name, lock_name in WHEELHOUSE_TO_LOCK_TEST.items():
        env = marker_env(lock_name)
        for marker in markers:
            assert course.marker_applies(marker, env) == Marker(marker).evaluate(env), (name, marker)
    with pytest.raises(ValueError, match="unknown variable"):
        course.marker_applies("os_flavour == 'x'", marker_env("linux-x86_64"))


def test_wheelhouse_takes_exactly_the_lock_pins_of_each_platform():
    from tests.test_lock_platforms import pins_for
    for name, lock_name in WHEELHOUSE_TO_LOCK_TEST.items():
        pins = course.wheelhouse_requirements(name)
        got = {p.split("==")[0].lower().replace("_", "-"): p.split("==")[1] for p in pins}
        want = {k.lower(): v for k, v in pins_for(lock_name).items()}
        assert got == want, name
    assert "tensorflow-intel==2.15.1" in course.wheelhouse_requirements("windows")
    assert "tensorflow-cpu-aws==2.15.1" in course.wheelhouse_requirements("linux-aarch64")
    assert not any(p.startswith("tenseal") for p in course.wheelhouse_requirements("macos-arm64"))
    with pytest.raises(ValueError, match="platform must be one of"):
        course.wheelhouse_requirements("solaris")


@pytest.mark.parametrize("platform", sorted(WHEELHOUSE_TO_LOCK_TEST))
def test_wheelhouse_download_command_for_each_platform(platform, tmp_path):
    """The pip commands `course.py wheelhouse DIR --platform P` runs: every wheel for P,
    CPython 3.11, no dependency resolution (the lock is complete), no source builds
    except pure-Python SDIST_ONLY packages, built into a wheel."""
    reqs = tmp_path / "wheels.txt"
    download, build = course.wheelhouse_commands(["pip"], tmp_path / "wh", platform, reqs)
    assert download[:2] == ["pip", "download"] and download[-2:] == ["-r", str(reqs)]
    for flag in ("--no-deps", "--only-binary=:all:"):
        assert flag in download
    pairs = list(zip(download, download[1:]))
    assert ("--dest", str(tmp_path / "wh")) in pairs and ("--python-version", "3.11") in pairs
    assert ("--implementation", "cp") in pairs and ("--abi", "cp311") in pairs
    tags = [value for flag, value in pairs if flag == "--platform"]
    expected_first = {"linux-x86_64": "manylinux_2_28_x86_64", "linux-aarch64": "manylinux_2_28_aarch64",
                      "macos-arm64": "macosx_12_0_arm64", "macos-x86_64": "macosx_12_0_x86_64",
                      "windows": "win_amd64"}[platform]
    assert tags[0] == expected_first and all(platform.split("-")[-1] in t or platform == "windows" for t in tags)
    if platform.startswith("linux"):
        assert "manylinux2014_" + platform.split("-")[1] in tags  # TensorFlow's own tag
    assert build[:2] == ["pip", "wheel"] and "--no-deps" in build
    assert ("--wheel-dir", str(tmp_path / "wh")) in list(zip(build, build[1:]))
    with pytest.raises(ValueError, match="platform must be one of"):
        course.wheelhouse_commands(["pip"], tmp_path, "beos", reqs)


def test_options_are_taken_out_of_the_arguments():
    assert course.take_option(["--port", "8890", "--no-browser", "x"], "--port", True) == ("8890", ["--no-browser", "x"])
    assert course.take_option(["--wheelhouse=/w", "-k", "dp"], "--wheelhouse", True) == ("/w", ["-k", "dp"])
    assert course.take_option(["a", "--no-browser"], "--no-browser", False) == (True, ["a"])
    assert course.take_option(["a"], "--port", True) == (None, ["a"])
    with pytest.raises(ValueError, match="--port needs a value"):
        course.take_option(["--port"], "--port", True)


def test_wheelhouse_builds_and_installs_a_venv_offline(tmp_path, monkeypatch):
    """A small wheelhouse, made by the real command for this platform from a small lock (uv,
    setuptools, six and the sdist-only lime), then a venv installed from it alone, the course's
    own package included, with the index unreachable and pip's configured find-links off."""
    lock = tmp_path / "small.lock"
    pins = [p for p in course.wheelhouse_requirements(course.this_platform())
            if p.split("==")[0] in {"uv", "setuptools", "six", "lime"}]
    assert len(pins) == 4, pins
    lock.write_text("# a small lock for this test\n" + "\n".join(pins) + "\n")
    wheelhouse = tmp_path / "wheelhouse"
    try:
        count = course.build_wheelhouse(wheelhouse, course.this_platform(), lock=lock)
    except subprocess.CalledProcessError as error:
        pytest.skip(f"the package index cannot be reached to build the wheelhouse: {error}")
    assert count == 4, sorted(p.name for p in wheelhouse.iterdir())
    assert any(p.name.startswith("lime-0.2.0.1-py3-none-any") for p in wheelhouse.glob("*.whl"))
    readme = (wheelhouse / "README.txt").read_text()
    assert f"lab --wheelhouse {wheelhouse}" in readme and f"test --wheelhouse {wheelhouse}" in readme

    # Offline: every proxy points at a closed port, no configured index or find-links; only the wheelhouse.
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setenv("UV_NO_CACHE", "1")
    monkeypatch.setenv("UV_OFFLINE", "1")
    venv = tmp_path / "venv"
    course.install_environment(venv, lock, editable=True, wheelhouse=wheelhouse)
    py = course.venv_python(venv)
    listed = subprocess.run([str(py), "-m", "uv", "pip", "list", "--python", str(py), "--format", "json"],
                            capture_output=True, text=True, check=True)
    installed = {p["name"].lower(): p["version"] for p in json.loads(listed.stdout)}
    for pin in pins:
        name, version = pin.split("==")
        assert installed.get(name) == version, (pin, installed)
    assert installed.get("secure-ai-notebooks") == "0.1.0", installed


def test_lab_port_no_browser_and_wheelhouse_options(monkeypatch, tmp_path):
    """`course.py lab --port N --no-browser --wheelhouse DIR ARGS`: the port and browser
    options reach the JupyterLab command, the wheelhouse reaches ensure_venv, ARGS pass through."""
    calls = {}
    monkeypatch.setattr(course, "ensure_venv", lambda wheelhouse=None: calls.setdefault("wheelhouse", wheelhouse))
    monkeypatch.setattr(course.subprocess, "call", lambda cmd, **kw: calls.setdefault("cmd", cmd) and 0)
    monkeypatch.chdir(tmp_path)
    assert course.main(["lab", "--port", "8899", "--no-browser", "--wheelhouse", str(tmp_path), "--debug"]) == 0
    assert calls["wheelhouse"] == tmp_path.resolve()
    cmd = calls["cmd"]
    assert "--ServerApp.port=8899" in cmd and "--no-browser" in cmd and cmd[-1] == "--debug"
    assert "--port" not in cmd and "--wheelhouse" not in cmd and str(tmp_path) not in cmd
