#!/usr/bin/env python3
"""Bootstrap and run the Secure AI Notebooks course.

    python3 course.py lab     # open JupyterLab on notebooks/00_intro.ipynb
    python3 course.py test    # run the whole test suite (helpers + every notebook)
    python3 course.py bench   # time and peak memory of each notebook in a fresh kernel
    python3 course.py robustness   # every notebook under two other seeds and thread counts (1 and 8)
    python3 course.py site    # build the course website into _build/html (own venv: .venv-site)
    python3 course.py wheelhouse DIR [--platform linux-x86_64|linux-aarch64|macos-arm64|macos-x86_64|windows]
                              # download every locked wheel into DIR, for a classroom without network
    python3 course.py lock    # (maintainers) re-resolve requirements.lock and requirements-site.lock

Options of `lab`: --port N, --no-browser (serve on 127.0.0.1:N and print the URL);
`lab` and `test` accept --wheelhouse DIR: create .venv from DIR, with no network.

On Windows, type `py course.py ...` instead of `python3 course.py ...`.

Every command first makes sure ``.venv`` (Python 3.11) holds exactly the locked
environment in ``requirements.lock`` plus the ``helpers`` package. The venv is only
(re)installed when the lock, ``pyproject.toml`` or this file change; a second run
with nothing changed starts at once.

The website's tools (Jupyter Book, Playwright) live in a second venv, ``.venv-site``,
installed from ``requirements-site.lock`` only by ``course.py site``: learners who run
the notebooks never install them, and the two environments cannot disturb each other.

This file uses only the standard library, so it runs with any ``python3``.
"""
from __future__ import annotations

import ast
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
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
# The website: its own venv and lock (see the module docstring), sources in website/.
SITE_VENV = ROOT / ".venv-site"
SITE_LOCK = ROOT / "requirements-site.lock"
SITE_STAMP_FILE = SITE_VENV / "course-stamp.txt"
SITE_BUILDER = ROOT / "website" / "build.py"
# `python3 course.py lock`: one file for Linux, macOS and Windows. Versions already
# in requirements.lock are kept unless pyproject.toml rules them out.
LOCK_ARGS = ["pyproject.toml", "--universal", "--python-version", "%d.%d" % PYTHON_VERSION,
             "-o", "requirements.lock", "--quiet", "--custom-compile-command", "python3 course.py lock"]
# The site group of pyproject.toml, alone (no TensorFlow), with requirements.lock as
# constraints so that every package the two locks share has one version.
SITE_LOCK_ARGS = ["--universal", "--python-version", "%d.%d" % PYTHON_VERSION, "-c", "requirements.lock",
                  "-o", "requirements-site.lock", "--quiet", "--custom-compile-command", "python3 course.py lock"]

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


def venv_python(venv: Path = VENV) -> Path:
    """The venv's interpreter: .venv/Scripts/python.exe on Windows, .venv/bin/python elsewhere."""
    return venv / ("Scripts/python.exe" if _is_windows() else "bin/python")


def venv_bin(name: str, venv: Path = VENV) -> Path:
    """A console script installed in the venv (``jupyter`` -> .venv\\Scripts\\jupyter.exe on Windows)."""
    return venv / ("Scripts" if _is_windows() else "bin") / (name + (".exe" if _is_windows() else ""))


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


def index_args(wheelhouse: Path | None) -> list[str]:
    """pip/uv options that install from a wheelhouse folder only (no network), or nothing."""
    return [] if wheelhouse is None else ["--no-index", "--find-links", str(wheelhouse)]


def install_environment(venv: Path, lock: Path, *, editable: bool, wheelhouse: Path | None = None) -> None:
    """Make `venv` hold exactly the packages of `lock` (plus, if `editable`, the course's
    own package in editable mode), from the package index or from a `wheelhouse` folder."""
    py = venv_python(venv)
    if not py.exists():
        run(find_python() + ["-m", "venv", str(venv)])
    uv_pin = next((line for line in lock.read_text().splitlines() if line.startswith("uv==")), None)
    if uv_pin is None:
        raise ValueError(f"lock {lock} pins no uv==VERSION line; course.py installs with uv")
    run([py, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *index_args(wheelhouse), uv_pin])
    uv = [py, "-m", "uv", "pip"]
    # `sync` makes the venv exactly the lock (removing anything else), then the
    # course's own package is added in editable mode without touching dependencies
    # (its build backend, setuptools, is in the lock and so in any wheelhouse).
    run(uv + ["sync", "--python", py, *index_args(wheelhouse), str(lock)])
    if editable:
        run(uv + ["install", "--python", py, *index_args(wheelhouse), "--no-deps", "-e", str(ROOT)])


def ensure_venv(wheelhouse: Path | None = None) -> None:
    """Create or update .venv from the lock (or from `wheelhouse`, offline), unless it is already up to date."""
    stamp = environment_stamp()
    if venv_python().exists() and STAMP_FILE.exists() and STAMP_FILE.read_text().strip() == stamp:
        install_lab_settings()
        return
    source = f"the wheelhouse {wheelhouse}" if wheelhouse is not None else "the package index"
    print(f"Setting up the course environment in .venv from {source} (first run, or the lock changed) ...", flush=True)
    install_environment(VENV, LOCK, editable=True, wheelhouse=wheelhouse)
    install_lab_settings()
    STAMP_FILE.write_text(stamp + "\n")
    print("Environment ready.", flush=True)


def site_environment_stamp() -> str:
    """A digest of what decides .venv-site's content: its lock and the platform."""
    digest = hashlib.sha256(SITE_LOCK.read_bytes())
    digest.update(sys.platform.encode())
    return digest.hexdigest()


def site_venv_ready() -> bool:
    """True when .venv-site holds exactly requirements-site.lock (no install needed)."""
    return (venv_python(SITE_VENV).exists() and SITE_STAMP_FILE.exists()
            and SITE_STAMP_FILE.read_text().strip() == site_environment_stamp())


def ensure_site_venv() -> None:
    """Create or update .venv-site (the website's tools) from requirements-site.lock."""
    if site_venv_ready():
        return
    print("Setting up the website tools in .venv-site (first run, or requirements-site.lock changed) ...", flush=True)
    install_environment(SITE_VENV, SITE_LOCK, editable=False)
    SITE_STAMP_FILE.write_text(site_environment_stamp() + "\n")
    print("Website tools ready.", flush=True)


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


# ---------------------------------------------------------------- wheelhouse
# Offline classrooms: `course.py wheelhouse DIR --platform P` downloads every wheel
# of requirements.lock for platform P (on a machine with network), and
# `course.py lab --wheelhouse DIR` installs .venv from DIR alone.
# Marker environment of CPython 3.11 on each platform (the lock's markers use these).
WHEELHOUSE_PLATFORMS: dict[str, dict[str, str]] = {
    "linux-x86_64": {"os_name": "posix", "sys_platform": "linux", "platform_system": "Linux",
                     "platform_machine": "x86_64"},
    "linux-aarch64": {"os_name": "posix", "sys_platform": "linux", "platform_system": "Linux",
                      "platform_machine": "aarch64"},
    "macos-arm64": {"os_name": "posix", "sys_platform": "darwin", "platform_system": "Darwin",
                    "platform_machine": "arm64"},
    "macos-x86_64": {"os_name": "posix", "sys_platform": "darwin", "platform_system": "Darwin",
                     "platform_machine": "x86_64"},
    "windows": {"os_name": "nt", "sys_platform": "win32", "platform_system": "Windows",
                "platform_machine": "AMD64"},
}
# pip's --platform tags per platform, most specific first. Linux: manylinux up to
# glibc 2.28 (Debian 10+, Ubuntu 20.04+, the level uv resolves the lock for); macOS:
# pip widens macosx_12_0 to every older macOS release and the universal2 wheels.
WHEEL_TAGS: dict[str, list[str]] = {
    "linux-x86_64": [f"manylinux_2_{minor}_x86_64" for minor in range(28, 4, -1)]
                    + ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"],
    "linux-aarch64": [f"manylinux_2_{minor}_aarch64" for minor in range(28, 16, -1)] + ["manylinux2014_aarch64"],
    "macos-arm64": ["macosx_12_0_arm64"],
    "macos-x86_64": ["macosx_12_0_x86_64"],
    "windows": ["win_amd64"],
}
# Locked packages published only as a source distribution (pure Python): built into a wheel.
SDIST_ONLY = {"lime"}
_VERSION_MARKERS = {"python_version", "python_full_version", "implementation_version"}
WHEELHOUSE_README = """\
Wheelhouse of the Secure AI Notebooks course for {platform} (CPython {py}).

Every package of requirements.lock for that platform, as wheels: {count} files.
Made by `{cmd} wheelhouse {folder} --platform {platform}`.

On a machine without network, with Python {py} installed, in the course folder:

    {cmd} lab --wheelhouse {folder}     # creates .venv from these wheels, opens JupyterLab
    {cmd} test --wheelhouse {folder}    # or: creates .venv the same way, runs the tests
"""


def this_platform() -> str:
    """The wheelhouse platform name of the machine running this script."""
    import platform as _platform
    machine = _platform.machine().lower()
    if sys.platform == "win32":
        return "windows"
    if sys.platform == "darwin":
        return "macos-arm64" if machine in {"arm64", "aarch64"} else "macos-x86_64"
    return "linux-aarch64" if machine in {"arm64", "aarch64"} else "linux-x86_64"


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".") if part.isdigit())


def marker_applies(marker: str, env: dict[str, str]) -> bool:
    """Evaluate a PEP 508 environment marker of the lock (``sys_platform == 'win32' and ...``)
    in `env`. Markers are a subset of Python's expression syntax: names, strings,
    comparisons, and/or, parentheses; version variables compare as versions."""
    def value(node: ast.expr) -> tuple[str, bool]:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value, False
        if isinstance(node, ast.Name):
            if node.id not in env:
                raise ValueError(f"marker: unknown variable {node.id!r} in {marker!r}")
            return env[node.id], node.id in _VERSION_MARKERS
        raise ValueError(f"marker: unsupported expression in {marker!r}")

    def evaluate(node: ast.expr) -> bool:
        if isinstance(node, ast.BoolOp):
            results = [evaluate(v) for v in node.values]
            return all(results) if isinstance(node.op, ast.And) else any(results)
        if isinstance(node, ast.Compare) and len(node.ops) == 1:
            (left, left_is_version), (right, right_is_version) = value(node.left), value(node.comparators[0])
            op = node.ops[0]
            if isinstance(op, (ast.In, ast.NotIn)):
                return (left in right) == isinstance(op, ast.In)
            a, b = (_version_tuple(left), _version_tuple(right)) if (left_is_version or right_is_version) else (left, right)
            compare = {ast.Eq: a == b, ast.NotEq: a != b, ast.Lt: a < b, ast.LtE: a <= b, ast.Gt: a > b, ast.GtE: a >= b}
            if type(op) not in compare:
                raise ValueError(f"marker: unsupported operator in {marker!r}")
            return compare[type(op)]
        raise ValueError(f"marker: unsupported expression in {marker!r}")

    return evaluate(ast.parse(marker.strip(), mode="eval").body)


def wheelhouse_requirements(platform: str, lock: Path = LOCK) -> list[str]:
    """The pins (``name==version``, no markers) of `lock` that apply on `platform`."""
    if platform not in WHEELHOUSE_PLATFORMS:
        raise ValueError(f"platform must be one of {', '.join(WHEELHOUSE_PLATFORMS)}, got {platform!r}")
    env = {"python_version": "%d.%d" % PYTHON_VERSION, "python_full_version": "%d.%d.0" % PYTHON_VERSION,
           "implementation_name": "cpython", "platform_python_implementation": "CPython",
           "implementation_version": "%d.%d.0" % PYTHON_VERSION, "platform_release": "", "platform_version": "",
           "extra": "", **WHEELHOUSE_PLATFORMS[platform]}
    pins = []
    for line in lock.read_text().splitlines():
        if not line.strip() or line.startswith((" ", "#", "-")):
            continue
        requirement, _, marker = line.partition(";")
        if not marker or marker_applies(marker, env):
            pins.append(requirement.strip())
    return pins


def wheelhouse_commands(pip: list[str], folder: Path, platform: str, requirements: Path) -> list[list[str]]:
    """The commands that fill `folder`: pip download of every wheel in the `requirements`
    file for `platform` (no dependency resolution: the lock is complete), and pip wheel
    for the pure-Python packages published only as source (SDIST_ONLY, one line each)."""
    if platform not in WHEEL_TAGS:
        raise ValueError(f"platform must be one of {', '.join(WHEEL_TAGS)}, got {platform!r}")
    py = "%d%d" % PYTHON_VERSION
    download = pip + ["download", "--no-deps", "--only-binary=:all:", "--dest", str(folder),
                      "--python-version", "%d.%d" % PYTHON_VERSION, "--implementation", "cp",
                      "--abi", f"cp{py}", "--abi", "abi3", "--abi", "none"]
    for tag in WHEEL_TAGS[platform]:
        download += ["--platform", tag]
    build = pip + ["wheel", "--no-deps", "--wheel-dir", str(folder), "-r", str(requirements.with_suffix(".sdist.txt"))]
    return [download + ["-r", str(requirements)], build]


def build_wheelhouse(folder: Path, platform: str, lock: Path = LOCK) -> int:
    """Download every wheel of `lock` for `platform` into `folder` (with a README);
    returns the number of wheels there. Uses pip from a throwaway venv of Python 3.11."""
    pins = wheelhouse_requirements(platform, lock)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="wheelhouse-") as tmp:
        tools = Path(tmp) / "venv"
        run(find_python() + ["-m", "venv", str(tools)])
        wheels = [p for p in pins if p.split("==")[0].lower() not in SDIST_ONLY]
        sources = [p for p in pins if p.split("==")[0].lower() in SDIST_ONLY]
        requirements = Path(tmp) / "wheels.txt"
        requirements.write_text("\n".join(wheels) + "\n")
        requirements.with_suffix(".sdist.txt").write_text("\n".join(sources) + "\n")
        pip = [str(venv_python(tools)), "-m", "pip", "--disable-pip-version-check"]
        download, build = wheelhouse_commands(pip, folder, platform, requirements)
        run(download)
        if sources:
            run(build)
    count = len(list(folder.glob("*.whl")))
    (folder / "README.txt").write_text(WHEELHOUSE_README.format(
        platform=platform, py="%d.%d" % PYTHON_VERSION, count=count, cmd=course_command(), folder=folder))
    return count


def take_option(args: list[str], name: str, has_value: bool) -> tuple[str | bool | None, list[str]]:
    """Remove ``--name VALUE`` / ``--name=VALUE`` (or the flag ``--name``) from `args`;
    returns (value, or True for a present flag, or None) and the remaining args."""
    rest, found = [], None
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == name and has_value:
            if i + 1 >= len(args):
                raise ValueError(f"{name} needs a value")
            found, i = args[i + 1], i + 2
            continue
        if has_value and arg.startswith(name + "="):
            found, i = arg.split("=", 1)[1], i + 1
            continue
        if arg == name and not has_value:
            found, i = True, i + 1
            continue
        rest.append(arg)
        i += 1
    return found, rest


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
        # The site group alone (read from pyproject.toml), on standard input: .venv-site gets no TensorFlow.
        site_group = subprocess.run(
            [str(venv_python()), "-c", "import sys, tomllib; sys.stdout.write('\\n'.join(tomllib.load("
             "open('pyproject.toml', 'rb'))['project']['optional-dependencies']['site']) + '\\n')"],
            cwd=ROOT, check=True, capture_output=True, text=True).stdout
        run([venv_python(), "-m", "uv", "pip", "compile", "-", *SITE_LOCK_ARGS, *extra], cwd=ROOT,
            input=site_group, text=True)
        print(f"Check that every platform still installs it:\n  {course_command()} test tests/test_lock_platforms.py")
        return 0
    if command == "site":
        ensure_site_venv()
        return subprocess.call([str(venv_python(SITE_VENV)), str(SITE_BUILDER), *extra], cwd=ROOT)
    if command == "wheelhouse":
        platform, extra = take_option(extra, "--platform", has_value=True)
        if len(extra) != 1:
            print(f"usage: {course_command()} wheelhouse DIR [--platform {'|'.join(WHEELHOUSE_PLATFORMS)}]",
                  file=sys.stderr)
            return 2
        folder = Path(extra[0]).resolve()
        count = build_wheelhouse(folder, platform or this_platform())
        print(f"{count} wheels in {folder}; see {folder / 'README.txt'}")
        return 0
    if command not in {"lab", "test", "bench", "robustness"}:
        print(f"unknown command {command!r}; use lab, test, bench, robustness, site, wheelhouse or lock",
              file=sys.stderr)
        return 2
    wheelhouse, extra = take_option(extra, "--wheelhouse", has_value=True)
    ensure_venv(Path(wheelhouse).resolve() if wheelhouse else None)
    os.chdir(ROOT)
    env = course_env()
    if command == "lab":
        port, extra = take_option(extra, "--port", has_value=True)
        no_browser, extra = take_option(extra, "--no-browser", has_value=False)
        return subprocess.call(lab_command(int(port) if port else None, open_browser=not no_browser) + extra, env=env)
    if command == "test":
        return subprocess.call(test_command(extra), env=env)
    script = "scripts/benchmark.py" if command == "bench" else "scripts/robustness.py"
    return subprocess.call([str(venv_python()), script, *extra], env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
