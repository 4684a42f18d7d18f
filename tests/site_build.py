"""One build of the course website per test session, shared by test_site.py and
test_browser.py. The website's tools live in .venv-site (`python3 course.py site`
installs them); without them these tests skip, except under CI (CI=true), where
.ci/run installs them first and a missing .venv-site is a failure."""
from __future__ import annotations

import functools
import importlib.util
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import course

ROOT = course.ROOT
HERE = Path(__file__).resolve().parent


def load_builder():
    """website/build.py as a module (standard library only: importable from .venv)."""
    spec = importlib.util.spec_from_file_location("website_build", ROOT / "website" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Site:
    html: Path          # the built site (index.html, notebooks/, instructors/, _static/)
    log: str            # the build's full log
    returncode: int
    seconds: float


def require_site_tools() -> None:
    """Skip (or, under CI, fail) when .venv-site does not hold requirements-site.lock."""
    if course.site_venv_ready():
        return
    message = ("the website tools are not installed (.venv-site); `python3 course.py site` installs them "
               "and builds the site")
    if os.environ.get("CI"):
        pytest.fail(message + " -- .ci/run must run it before the tests")
    pytest.skip(message)


@functools.lru_cache(maxsize=1)
def _build() -> Site:
    parent = Path(tempfile.mkdtemp(prefix="course-site-"))
    started = time.monotonic()
    result = subprocess.run([str(course.venv_python(course.SITE_VENV)), str(ROOT / "website" / "build.py"),
                             "--out", str(parent)], cwd=ROOT, capture_output=True, text=True)
    seconds = time.monotonic() - started
    log_file = parent / "_build" / "build.log"
    log = log_file.read_text(encoding="utf-8") if log_file.exists() else ""
    return Site(parent / "_build" / "html", log + result.stdout + result.stderr, result.returncode, seconds)


def built_site() -> Site:
    """The site built from this working tree into a temporary folder (once per session)."""
    require_site_tools()
    site = _build()
    assert site.returncode == 0, f"the site build failed:\n{site.log[-4000:]}"
    return site
