"""The bootstrap (course.py): clear failure without Python 3.11, no reinstall when
nothing changed, and the JupyterLab launch serving the intro notebook."""
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
    finally:
        server.terminate()
        server.wait(timeout=30)
