"""The bootstrap (course.py): clear failure without Python 3.11, no reinstall when
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
