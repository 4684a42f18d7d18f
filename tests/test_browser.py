"""The course in a real browser: Debian's headless Chromium (/usr/bin/chromium), driven
by Playwright from .venv-site (website/browser_check.py; no browser is downloaded).

- The built website, served by a local http.server: the landing page, notebook 01
  (math and figures) and a search render with no console error, no failed request and no request
  leaving the machine; MathJax (a local copy) typeset the math, so no raw $...$ is
  left in the text; every image has a non-zero natural size. Screenshots go to a
  temporary folder (their paths are printed).
- JupyterLab started as `python3 course.py lab --port N --no-browser` opens
  notebooks/00_intro.ipynb with its kernel started and idle; then it is shut down.

Skipped, saying why, without Chromium or without .venv-site (`python3 course.py site`).
"""
from __future__ import annotations

import functools
import http.server
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import course
from tests.site_build import ROOT, built_site, require_site_tools

CHROMIUM = Path("/usr/bin/chromium")
CHECK = ROOT / "website" / "browser_check.py"

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module", autouse=True)
def browser_available():
    if not CHROMIUM.exists():
        pytest.skip("no Chromium at /usr/bin/chromium (Debian: apt-get install chromium; .ci/run does it as root)")
    require_site_tools()
    probe = subprocess.run([str(course.venv_python(course.SITE_VENV)), "-c", "import playwright"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"Playwright is missing from .venv-site: {probe.stderr.strip()[-200:]}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def browse(kind: str, url: str, screenshot: Path) -> dict:
    """Run website/browser_check.py in .venv-site and return its JSON report."""
    started = time.monotonic()
    done = subprocess.run([str(course.venv_python(course.SITE_VENV)), str(CHECK), kind, url, str(screenshot)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"browser_check {kind} {url} failed:\n{done.stderr[-3000:]}"
    print(f"{kind} {url}: {time.monotonic() - started:.1f} s, screenshot {screenshot}")
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def served_site():
    """The built site on http://127.0.0.1:PORT/ (a local http.server in this process)."""
    site = built_site()
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # no line per request
            pass
    handler = functools.partial(Quiet, directory=str(site.html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


RAW_MATH = re.compile(r"\$\$?[^$\n]{1,200}?\$\$?|\\\(|\\\[|\\(frac|varepsilon|epsilon|delta|sum|mathbb|mathrm|le|ge)\b")


def assert_page_reads_well(report: dict, screenshot: Path) -> None:
    where = report["url"]
    assert not report["console_errors"], (where, report["console_errors"])
    assert not report["page_errors"], (where, report["page_errors"])
    assert not report["failed_requests"], (where, report["failed_requests"])
    assert not report["external_requests"], (where, report["external_requests"])
    raw = RAW_MATH.findall(report["text"])
    assert not raw, f"{where}: raw LaTeX left in the page text: {raw[:5]}"
    assert report["math_errors"] == 0, f"{where}: MathJax reported {report['math_errors']} errors"
    broken = [img for img in report["images"] if img["visible"] and (img["width"] == 0 or img["height"] == 0)]
    assert not broken, f"{where}: images with no size: {broken}"
    assert screenshot.stat().st_size > 20_000, f"{screenshot} looks blank"


def test_landing_page_in_chromium(served_site, tmp_path):
    shot = tmp_path / "landing.png"
    report = browse("page", served_site + "index.html", shot)
    assert_page_reads_well(report, shot)
    assert report["title"].startswith("Secure AI Notebooks")
    assert "A hands-on course" in report["text"]


def test_notebook_page_with_math_and_figures_in_chromium(served_site, tmp_path):
    shot = tmp_path / "notebook_01.png"
    report = browse("page", served_site + "notebooks/01_differential_privacy.html", shot)
    assert_page_reads_well(report, shot)
    assert report["math_rendered"] >= 10, f"only {report['math_rendered']} formulas typeset"
    figures = [img for img in report["images"] if "_images/" in img["src"]]
    assert len(figures) >= 3 and all(img["width"] > 100 and img["height"] > 100 for img in figures), figures
    assert "Launch on Binder" in report["text"] and "Download notebook" in report["text"]


def test_search_finds_the_notebooks_in_chromium(served_site, tmp_path):
    shot = tmp_path / "search.png"
    report = browse("page", served_site + "search.html?q=membership+inference", shot)
    assert_page_reads_well(report, shot)
    assert report["search_results"] >= 2, report["search_results"]
    assert any("01_differential_privacy" in link for link in report["links"]), report["links"][:20]


def _api(port: int, token: str, path: str, method: str = "GET"):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                     headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read()
        return json.loads(body) if body else None


def test_jupyterlab_opens_the_intro_notebook_with_its_kernel_idle(tmp_path):
    port, token = _free_port(), "course-browser-test"
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"), JUPYTER_CONFIG_DIR=str(tmp_path / "cfg"),
               JUPYTER_DATA_DIR=str(tmp_path / "data"))
    # Exactly the learner's command, with a port and no browser of its own.
    cmd = [sys.executable, str(ROOT / "course.py"), "lab", "--port", str(port), "--no-browser",
           f"--IdentityProvider.token={token}"]
    log = (tmp_path / "lab.log").open("w")
    server = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 120
        while True:
            try:
                _api(port, token, "/api/status")
                break
            except (urllib.error.URLError, ConnectionError):
                assert server.poll() is None, "course.py lab exited early:\n" + (tmp_path / "lab.log").read_text()[-3000:]
                assert time.time() < deadline, "JupyterLab did not answer within 120 s"
                time.sleep(1)
        shot = tmp_path / "jupyterlab.png"
        report = browse("lab", f"http://127.0.0.1:{port}/lab/tree/notebooks/00_intro.ipynb?token={token}", shot)
        status = report["kernel_status"]
        assert re.search(r"Python 3 \(ipykernel\) \| Idle", status), f"JupyterLab's status bar says: {status!r}"
        assert any("00_intro.ipynb" in tab for tab in report["tabs"]), report["tabs"]
        assert report["heading"].startswith("00"), f"the notebook did not render: {report['heading']!r}"
        assert report["cells"] >= 1, report["cells"]
        assert not report["page_errors"], report["page_errors"]
        sessions = [s for s in _api(port, token, "/api/sessions") if s["path"].endswith("notebooks/00_intro.ipynb")]
        assert len(sessions) == 1, sessions
        assert sessions[0]["kernel"]["execution_state"] == "idle", sessions[0]["kernel"]
        assert sessions[0]["kernel"]["name"] == "python3"
        _api(port, token, f"/api/sessions/{sessions[0]['id']}", method="DELETE")  # shut the kernel down
        assert _api(port, token, "/api/kernels") == []
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
