#!/usr/bin/env python3
"""Bootstrap and run the Secure AI Notebooks course.

    python3 course.py lab     # open JupyterLab on notebooks/00_intro.ipynb
    python3 course.py test    # run the whole test suite (helpers + every notebook)
    python3 course.py bench   # time and peak memory of each notebook in a fresh kernel
    python3 course.py lock    # (maintainers) re-resolve requirements.lock from pyproject.toml

On Windows, type `py course.py ...` instead of `python3 course.py ...`.

Every command first makes sure ``.venv`` (Python 3.11) holds exactly the locked
environment in ``requirements.lock`` plus the ``helpers`` package. The venv is only
(re)installed when the lock, ``pyproject.toml`` or this file change; a second run
with nothing changed starts at once.

This file uses only the standard library, so it runs with any ``python3``.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
LOCK = ROOT / "requirements.lock"
STAMP_FILE = VENV / "course-stamp.txt"
PYTHON_VERSION = (3, 11)
INTRO_NOTEBOOK = "notebooks/00_intro.ipynb"
SANITIZE_FILE = "nbval_sanitize.cfg"
# JupyterLab defaults of the course (no news prompt, no update check, a notebook's
# kernel shuts down when its tab closes); copied into the venv here and on Binder
# by binder/postBuild.
LAB_OVERRIDES = ROOT / "jupyter" / "overrides.json"
# `python3 course.py lock`: one file for Linux, macOS and Windows. Versions already
# in requirements.lock are kept unless pyproject.toml rules them out.
LOCK_ARGS = ["pyproject.toml", "--universal", "--python-version", "%d.%d" % PYTHON_VERSION,
             "-o", "requirements.lock", "--quiet", "--custom-compile-command", "python3 course.py lock"]

NO_PYTHON_MESSAGE = """\
This course needs Python {v}, and none was found (tried: {tried}).
Alternatives:
  * conda:  conda env create -f environment.yml
            conda activate secure-ai-notebooks
            jupyter lab notebooks/00_intro.ipynb
  * Binder: use the "launch binder" badge in README.md (nothing to install)
  * install Python {v} ({how}) and run this again.
"""
INSTALL_HINT = {
    "win32": "python.org's Windows installer, then `py course.py lab`",
    "darwin": "python.org's macOS installer, or `brew install python@{v}`",
}


def _is_windows() -> bool:
    return os.name == "nt"


def venv_python() -> Path:
    """The venv's interpreter: .venv/Scripts/python.exe on Windows, .venv/bin/python elsewhere."""
    return VENV / ("Scripts/python.exe" if _is_windows() else "bin/python")


def venv_bin(name: str) -> Path:
    """A console script installed in the venv (``jupyter`` -> .venv\\Scripts\\jupyter.exe on Windows)."""
    return VENV / ("Scripts" if _is_windows() else "bin") / (name + (".exe" if _is_windows() else ""))


def course_command() -> str:
    """How to run this script on this platform, for the commands it prints."""
    return "py course.py" if _is_windows() else "python3 course.py"


def python_candidates() -> list[list[str]]:
    """Commands tried, in order, to find Python 3.11 when this script runs on another version.

    Windows: the `py` launcher (`py -3.11`) that python.org's installer puts on the PATH,
    then `python3.11`. Elsewhere: `python3.11`.
    """
    want = "%d.%d" % PYTHON_VERSION
    if _is_windows():
        return [["py", "-" + want], ["python" + want]]
    return [["python" + want]]


def find_python() -> list[str]:
    """Return a command that runs Python 3.11, or exit with a clear message."""
    want = "%d.%d" % PYTHON_VERSION
    if sys.version_info[:2] == PYTHON_VERSION:
        return [sys.executable]
    candidates = python_candidates()
    for cmd in candidates:
        if shutil.which(cmd[0]) is None:
            continue
        probe = subprocess.run(
            cmd + ["-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True, text=True,
        )
        if probe.returncode == 0 and probe.stdout.strip() == want:
            return cmd
    tried = ", ".join([sys.executable + " (%d.%d)" % sys.version_info[:2]] + [" ".join(c) for c in candidates])
    how = INSTALL_HINT.get(sys.platform, "python.org, pyenv, or your package manager").format(v=want)
    sys.exit(NO_PYTHON_MESSAGE.format(v=want, tried=tried, how=how))


def environment_stamp() -> str:
    """A digest of everything that decides what the venv must contain."""
    digest = hashlib.sha256()
    for name in ("requirements.lock", "pyproject.toml", "course.py"):
        digest.update((ROOT / name).read_bytes())
    digest.update(sys.platform.encode())
    return digest.hexdigest()


def run(cmd: list[str], **kwargs) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, **kwargs)


def lab_settings_file(prefix: Path) -> Path:
    """Where JupyterLab reads setting overrides in an environment (`{prefix}/share/jupyter/lab/settings`)."""
    return prefix / "share" / "jupyter" / "lab" / "settings" / "overrides.json"


def install_lab_settings(prefix: Path = VENV) -> bool:
    """Merge the course's JupyterLab defaults (jupyter/overrides.json) into the
    environment at `prefix`, keeping any other overrides there. Returns True if
    the file changed."""
    target = lab_settings_file(prefix)
    merged = json.loads(target.read_text(encoding="utf-8")) if target.exists() else {}
    for plugin, settings in json.loads(LAB_OVERRIDES.read_text(encoding="utf-8")).items():
        merged.setdefault(plugin, {}).update(settings)
    text = json.dumps(merged, indent=2, sort_keys=True) + "\n"
    if target.exists() and target.read_text(encoding="utf-8") == text:
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return True


def ensure_venv() -> None:
    """Create or update .venv from the lock, unless it is already up to date."""
    stamp = environment_stamp()
    if venv_python().exists() and STAMP_FILE.exists() and STAMP_FILE.read_text().strip() == stamp:
        install_lab_settings()
        return
    print("Setting up the course environment in .venv (first run, or the lock changed) ...", flush=True)
    if not venv_python().exists():
        run(find_python() + ["-m", "venv", str(VENV)])
    py = venv_python()
    uv_pin = next(line for line in LOCK.read_text().splitlines() if line.startswith("uv=="))
    run([py, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", uv_pin])
    uv = [py, "-m", "uv", "pip"]
    # `sync` makes the venv exactly the lock (removing anything else), then the
    # course's own package is added in editable mode without touching dependencies.
    run(uv + ["sync", "--python", py, str(LOCK)])
    run(uv + ["install", "--python", py, "--no-deps", "-e", str(ROOT)])
    install_lab_settings()
    STAMP_FILE.write_text(stamp + "\n")
    print("Environment ready.", flush=True)


def course_env() -> dict[str, str]:
    """Environment for everything the course runs: quiet, deterministic TensorFlow."""
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    env.setdefault("PYTHONHASHSEED", "0")
    env.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    return env


def lab_command(port: int | None = None, open_browser: bool = True) -> list[str]:
    """The JupyterLab command line used by `course.py lab` (and by its test)."""
    cmd = [str(venv_bin("jupyter")), "lab", f"--ServerApp.root_dir={ROOT}"]
    if port is not None:
        cmd += ["--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0"]
    if not open_browser:
        cmd.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers and CI run as root
        cmd.append("--allow-root")
    cmd.append(INTRO_NOTEBOOK)
    return cmd


def test_command(extra: list[str]) -> list[str]:
    return [str(venv_python()), "-m", "pytest", "--nbval", "--nbval-sanitize-with", SANITIZE_FILE,
            "-p", "no:cacheprovider", *extra]


def main(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(__doc__)
        return 0
    command, extra = argv[0], argv[1:]
    if command == "lock":
        ensure_venv()
        run([venv_python(), "-m", "uv", "pip", "compile", *LOCK_ARGS, *extra], cwd=ROOT)
        print(f"Check that every platform still installs it:\n  {course_command()} test tests/test_lock_platforms.py")
        return 0
    if command not in {"lab", "test", "bench"}:
        print(f"unknown command {command!r}; use lab, test, bench or lock", file=sys.stderr)
        return 2
    ensure_venv()
    os.chdir(ROOT)
    env = course_env()
    if command == "lab":
        return subprocess.call(lab_command() + extra, env=env)
    if command == "test":
        return subprocess.call(test_command(extra), env=env)
    return subprocess.call([str(venv_python()), "scripts/benchmark.py", *extra], env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
