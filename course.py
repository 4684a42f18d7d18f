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
environment in ``requirements.lock`` plus the ``helpers`` package. Without a Python 3.11
that can create a venv, it gets one with uv (the version in the lock): uv's wheel from
the package index (or from a wheelhouse), hash-checked and cached in ``.course-tools/``,
then ``uv python install 3.11``, a standalone CPython in uv's Python folder. The venv is only
(re)installed when the lock, ``pyproject.toml`` or this file change; a second run
with nothing changed starts at once.

The website's tools (Jupyter Book, Playwright) live in a second venv, ``.venv-site``,
installed from ``requirements-site.lock`` only by ``course.py site``: learners who run
the notebooks never install them, and the two environments cannot disturb each other.

This file uses only the standard library, so it runs with any ``python3`` (3.8 or newer).
"""
from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import zipfile
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
This course needs Python {v}, and none that can create a venv was found (tried: {tried}),
and getting one with uv failed: {reason}
Alternatives:
  * run this again with network (the first run downloads uv and CPython {v}), or with
    --wheelhouse DIR made by `{cmd} wheelhouse DIR` on a machine with network
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
# Run by each candidate interpreter: prints its version only if it can also create a venv
# with pip (Debian and Ubuntu ship python3.X without ensurepip unless python3.X-venv is installed).
PYTHON_PROBE = "import sys, venv, ensurepip; ensurepip.version(); print('%d.%d' % sys.version_info[:2])"

# ------------------------------------------------------------ Python 3.11 through uv
# Where Python 3.11 is missing, course.py gets uv (the version pinned in requirements.lock)
# as a wheel from the package index, checks it against the hashes below (PyPI's sha256 of
# each file; tests/test_bootstrap.py checks them against the index and the lock), unpacks
# the uv binary into .course-tools/ (git-ignored), and lets uv install a standalone CPython
# 3.11 (python-build-standalone, verified by uv against its own pinned hashes).
TOOLS_DIR = ROOT / ".course-tools"
UV_VERSION = "0.13.9"
# Course platform -> the uv wheels for it (file name, sha256); the first one is downloaded,
# any of them is accepted from a wheelhouse (pip picks the most specific tag there).
UV_WHEELS: dict[str, list[tuple[str, str]]] = {
    "linux-x86_64": [("uv-0.13.9-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
                      "d7f459fe4fd247d830351c75686d3996ace3c6f3f728eb0e85a30b7ada0cef19")],
    "linux-aarch64": [("uv-0.13.9-py3-none-manylinux_2_17_aarch64.manylinux2014_aarch64.musllinux_1_1_aarch64.whl",
                       "5435c5ce14a56431208ca0996416d310f1598e8c2c8ba707688985a16bb82dbe"),
                      ("uv-0.13.9-py3-none-manylinux_2_28_aarch64.whl",
                       "ecb6028d79dc96fbeafffe5c8af62a7099487ebc05a701e76714eebcffd06375")],
    "macos-arm64": [("uv-0.13.9-py3-none-macosx_11_0_arm64.whl",
                     "66c512266d633bef48384a1f53003f41f2a8e7b36fe6e7fbfd3e0fd52d96fa63")],
    "macos-x86_64": [("uv-0.13.9-py3-none-macosx_10_12_x86_64.whl",
                      "c16ed11e013557536b3e60065f1b912f6407bd6518e041b961e23ef9e6b4fbf5")],
    "windows": [("uv-0.13.9-py3-none-win_amd64.whl",
                 "6a44b2ed8111d2f60d2b92627c5dccda3f7ed7570b18ce115e569cd68c28246b")],
}
DEFAULT_INDEX = "https://pypi.org/simple"
# Course platform -> uv's (os, arch, libc) of its standalone CPython builds.
PYTHON_DOWNLOAD_PLATFORMS: dict[str, tuple[str, str, str]] = {
    "linux-x86_64": ("linux", "x86_64", "gnu"), "linux-aarch64": ("linux", "aarch64", "gnu"),
    "macos-arm64": ("macos", "aarch64", "none"), "macos-x86_64": ("macos", "x86_64", "none"),
    "windows": ("windows", "x86_64", "none"),
}
# In a wheelhouse: the CPython archive, named as uv's UV_PYTHON_CACHE_DIR expects it
# (first 9 hex digits of its sha256, '-', the file name), and this description of it.
WHEELHOUSE_PYTHON_DIR = "python"
WHEELHOUSE_PYTHON_FILE = "python.json"


class SetupError(Exception):
    """Python 3.11 could not be obtained (no network, no wheelhouse entry, a wrong hash, ...)."""


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


def local_python() -> list[str] | None:
    """A command running a Python 3.11 of this machine that can create a venv with pip, or None."""
    want = "%d.%d" % PYTHON_VERSION
    this = [[sys.executable]] if tuple(sys.version_info[:2]) == PYTHON_VERSION and sys.executable else []
    for cmd in this + python_candidates():
        if shutil.which(cmd[0]) is None:
            continue
        try:
            probe = subprocess.run(cmd + ["-c", PYTHON_PROBE], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0 and probe.stdout.strip() == want:
            return cmd
    return None


def find_python(wheelhouse: Path | None = None) -> list[str]:
    """Return a command that runs Python 3.11 able to create a venv: one of this machine
    (`local_python`), else a standalone CPython installed by uv (`managed_python`, from
    `wheelhouse` if given, with no network); exit with the alternatives if both fail.
    COURSE_UV_PYTHON=1 skips this machine's Pythons (CI uses it; so may anyone whose
    Python 3.11 misbehaves)."""
    found = None if os.environ.get("COURSE_UV_PYTHON") == "1" else local_python()
    if found is not None:
        return found
    want = "%d.%d" % PYTHON_VERSION
    tried = ", ".join([sys.executable + " (%d.%d)" % tuple(sys.version_info[:2])]
                      + [" ".join(c) for c in python_candidates()])
    print(f"No Python {want} that can create a venv on this machine (tried: {tried}).", flush=True)
    try:
        return [str(managed_python(wheelhouse))]
    except (SetupError, OSError, subprocess.CalledProcessError) as error:
        how = INSTALL_HINT.get(sys.platform, "python.org, pyenv, or your package manager").format(v=want)
        sys.exit(NO_PYTHON_MESSAGE.format(v=want, tried=tried, how=how, reason=error, cmd=course_command()))


def _mb(size: float) -> str:
    return "%.1f MB" % (size / 1e6)


def _open_url(url: str, accept: str | None = None):
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    return urllib.request.urlopen(request, timeout=120)


def fetch(url: str, dest: Path, accept: str | None = None) -> Path:
    """Download `url` into the file `dest` with urllib (which honours HTTPS_PROXY); if urllib
    fails (python.org's macOS Python without its certificates, a TLS-intercepting proxy)
    and `curl` exists, with curl. The caller checks what arrived."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with _open_url(url, accept) as response, open(dest, "wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)
        return dest
    except OSError as error:  # URLError, ssl errors and HTTPError are OSErrors
        curl = shutil.which("curl")
        if curl is None or url.startswith("file:"):
            raise SetupError(f"cannot download {url}: {error}") from error
        print(f"  urllib failed ({error}); trying curl", flush=True)
        header = ["-H", "Accept: " + accept] if accept else []
        result = subprocess.run([curl, "-fsSL", "--retry", "2", *header, "-o", str(dest), url])
        if result.returncode != 0:
            raise SetupError(f"cannot download {url} (urllib: {error}; curl exit code {result.returncode})") from error
        return dest


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def index_url() -> str:
    """The package index uv's wheel comes from: UV_DEFAULT_INDEX or PIP_INDEX_URL if set (a
    mirror), else PyPI. Any index works: the wheel is checked against UV_WHEELS' hashes."""
    return (os.environ.get("UV_DEFAULT_INDEX") or os.environ.get("PIP_INDEX_URL") or DEFAULT_INDEX).rstrip("/")


def find_in_index(project: str, filename: str, index: str, listing: Path) -> tuple[str, int | None]:
    """The URL of `filename` on the simple index page of `project` (PEP 691 JSON, or the
    HTML of PEP 503 from older mirrors), downloaded into `listing`, and its size if listed."""
    page = f"{index}/{project}/"
    fetch(page, listing, accept="application/vnd.pypi.simple.v1+json, text/html;q=0.1")
    text = listing.read_text(encoding="utf-8", errors="replace")
    if text.lstrip().startswith("{"):
        for entry in json.loads(text).get("files", []):
            if entry.get("filename") == filename:
                return urllib.parse.urljoin(page, entry["url"]), entry.get("size")
    else:
        for href, name in re.findall(r'<a\s[^>]*href="([^"]+)"[^>]*>\s*([^<\s]+)\s*</a>', text):
            if name == filename:
                return urllib.parse.urljoin(page, href.replace("&amp;", "&").split("#")[0]), None
    raise SetupError(f"{filename} is not on {page}")


def uv_executable_name() -> str:
    return "uv.exe" if _is_windows() else "uv"


def uv_binary(wheelhouse: Path | None = None, platform: str | None = None) -> Path:
    """The uv binary of version UV_VERSION for `platform` (default: this machine's), cached
    in .course-tools/uv-VERSION-PLATFORM/. Not cached yet: unpacked from its wheel, taken
    from `wheelhouse` or downloaded from the package index, after checking the wheel's
    sha256 against UV_WHEELS (what PyPI lists for that file)."""
    platform = platform or this_platform()
    target = TOOLS_DIR / f"uv-{UV_VERSION}-{platform}" / uv_executable_name()
    if target.exists():
        return target
    wheels = UV_WHEELS[platform]
    with tempfile.TemporaryDirectory(prefix="course-uv-") as tmp:
        if wheelhouse is not None:
            present = [(wheelhouse / name, sha) for name, sha in wheels if (wheelhouse / name).exists()]
            if not present:
                raise SetupError(f"the wheelhouse {wheelhouse} holds none of {', '.join(n for n, _ in wheels)}")
            wheel, sha = present[0]
            print(f"Taking uv {UV_VERSION} from the wheelhouse ({wheel.name}, {_mb(wheel.stat().st_size)}).", flush=True)
        else:
            name, sha = wheels[0]
            index = index_url()
            url, size = find_in_index("uv", name, index, Path(tmp) / "listing")
            print(f"Downloading uv {UV_VERSION}, a single program ({name}"
                  + (f", {_mb(size)}" if size else "") + f") from {index} ...", flush=True)
            started = time.time()
            wheel = fetch(url, Path(tmp) / name)
            print(f"  {_mb(wheel.stat().st_size)} in {time.time() - started:.0f} s", flush=True)
        actual = sha256_of(wheel)
        if actual != sha:
            raise SetupError(f"{wheel.name} has sha256 {actual}, course.py expects {sha}: not using it")
        member = f"uv-{UV_VERSION}.data/scripts/{uv_executable_name()}"
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial")
        with zipfile.ZipFile(wheel) as archive, archive.open(member) as src, open(partial, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
        os.chmod(partial, 0o755)
        os.replace(partial, target)
    print(f"uv {UV_VERSION} is in {target.parent} (delete the folder to remove it).", flush=True)
    return target


def uv_run(uv: Path, args: list[str], env: dict[str, str] | None = None, capture: bool = False) -> str:
    """Run uv (printing the command unless `capture`); returns its standard output if `capture`."""
    cmd = [str(uv), *args]
    if not capture:
        print("+", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True, env=env)
        return ""
    return subprocess.run(cmd, check=True, env=env, capture_output=True, text=True).stdout


def wheelhouse_python(wheelhouse: Path) -> dict[str, str] | None:
    """What `course.py wheelhouse` stored about the CPython archive in `wheelhouse`, or None."""
    description = wheelhouse / WHEELHOUSE_PYTHON_DIR / WHEELHOUSE_PYTHON_FILE
    return json.loads(description.read_text(encoding="utf-8")) if description.exists() else None


def managed_python(wheelhouse: Path | None = None) -> Path:
    """Python 3.11 installed by uv (a standalone CPython in uv's Python folder): the one
    already there, or a new install, from the network or from `wheelhouse` (offline)."""
    want = "%d.%d" % PYTHON_VERSION
    uv = uv_binary(wheelhouse)
    env = dict(os.environ)
    find = ["python", "find", "--managed-python", want]
    try:
        found = uv_run(uv, find, env=env, capture=True).strip()
    except subprocess.CalledProcessError:
        found = ""
    where = uv_run(uv, ["python", "dir"], env=env, capture=True).strip()
    if not found:
        install = ["python", "install", "--no-bin", "--no-registry"]
        if wheelhouse is not None:
            stored = wheelhouse_python(wheelhouse)
            if stored is None:
                raise SetupError(f"the wheelhouse {wheelhouse} holds no Python {want} "
                                 f"(made before course.py stored one: make it again)")
            archive = wheelhouse / WHEELHOUSE_PYTHON_DIR / stored["file"]
            print(f"Installing CPython {stored['version']} from the wheelhouse ({archive.name}, "
                  f"{_mb(archive.stat().st_size)}) into {where} ...", flush=True)
            env.update(UV_PYTHON_CACHE_DIR=str(archive.parent), UV_OFFLINE="1")
            install.append(stored["key"])
        else:
            print(f"uv downloads a standalone CPython {want} (python-build-standalone; uv prints its size)\n"
                  f"into {where} ...", flush=True)
            install.append(want)
        uv_run(uv, install, env=env)
        found = uv_run(uv, find, env=env, capture=True).strip()
    print(f"Using {found}: a CPython {want} installed by uv, shared by every uv on this machine.\n"
          f"  To remove it after the course: {uv} python uninstall {want}\n"
          f"  (or delete it from {where}), then delete .venv/ and .course-tools/.", flush=True)
    return Path(found)


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
        run(find_python(wheelhouse) + ["-m", "venv", str(venv)])
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
{python}
Made by `{cmd} wheelhouse {folder} --platform {platform}`.

On a machine without network, in the course folder:

    {cmd} lab --wheelhouse {folder}     # creates .venv from these wheels, opens JupyterLab
    {cmd} test --wheelhouse {folder}    # or: creates .venv the same way, runs the tests
"""
WHEELHOUSE_PYTHON_README = {
    True: ("And {python}/: CPython {version} for {platform} (standalone build, {size}), which course.py\n"
           "installs with uv (its wheel is among the wheels above) where no Python {py} is installed."),
    False: ("No CPython archive could be stored ({reason}):\n"
            "the machines need Python {py} installed, with its venv module."),
}


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


def pick_python_download(listing: list[dict], platform: str) -> dict:
    """The newest CPython 3.11 build for `platform` in uv's list of downloads
    (`uv python list --all-platforms --all-arches --only-downloads --show-urls --output-format json`):
    the baseline build (x86_64, not x86_64_v3), default variant (not free-threaded or debug)."""
    want_os, want_arch, want_libc = PYTHON_DOWNLOAD_PLATFORMS[platform]
    matches = [entry for entry in listing
               if entry.get("implementation") == "cpython" and entry.get("url")
               and (entry.get("os"), entry.get("arch"), entry.get("libc")) == (want_os, want_arch, want_libc)
               and entry.get("variant", "default") == "default"
               and (entry["version_parts"]["major"], entry["version_parts"]["minor"]) == PYTHON_VERSION]
    if not matches:
        raise SetupError(f"uv {UV_VERSION} lists no CPython %d.%d download for {platform}" % PYTHON_VERSION)
    return max(matches, key=lambda e: (e["version_parts"]["patch"], not e["version"][-1:].isalpha()))


def python_archive_name(url: str) -> str:
    """The archive's file name as uv names it in UV_PYTHON_CACHE_DIR (without the hash prefix):
    the URL's last segment, its `%2B` (+) made `-`."""
    return url.rstrip("/").rsplit("/", 1)[-1].replace("%2B", "-")


def store_python(folder: Path, platform: str, uv: Path) -> dict:
    """Download the standalone CPython 3.11 that `uv` would install on `platform` into
    `folder`/python/, named as uv's UV_PYTHON_CACHE_DIR expects it, with python.json
    describing it; `managed_python(wheelhouse)` installs it offline. On this machine's
    platform, uv installs it once into a throwaway folder to check it (uv verifies the
    archive's sha256 against its own metadata); elsewhere uv does so on the classroom's machines."""
    want = "%d.%d" % PYTHON_VERSION
    listing = json.loads(uv_run(uv, ["python", "list", want, "--all-platforms", "--all-arches", "--only-downloads",
                                     "--show-urls", "--output-format", "json"], capture=True))
    entry = pick_python_download(listing, platform)
    target_dir = folder / WHEELHOUSE_PYTHON_DIR
    stored = wheelhouse_python(folder)
    if stored and stored.get("key") == entry["key"] and (target_dir / stored["file"]).exists():
        print(f"CPython {entry['version']} for {platform} is already in {target_dir}.", flush=True)
        return stored
    name = python_archive_name(entry["url"])
    print(f"Downloading CPython {entry['version']} for {platform} ({entry['url']}) ...", flush=True)
    started = time.time()
    partial = fetch(entry["url"], target_dir / (name + ".partial"))
    sha = sha256_of(partial)
    archive = target_dir / f"{sha[:9]}-{name}"
    for old in target_dir.iterdir():
        if old != partial:
            old.unlink()
    os.replace(partial, archive)
    stored = {"key": entry["key"], "version": entry["version"], "platform": platform, "url": entry["url"],
              "file": archive.name, "sha256": sha, "size": archive.stat().st_size}
    print(f"  {_mb(stored['size'])} in {time.time() - started:.0f} s", flush=True)
    if platform == this_platform():
        with tempfile.TemporaryDirectory(prefix="course-python-check-") as tmp:
            env = dict(os.environ, UV_PYTHON_CACHE_DIR=str(target_dir), UV_OFFLINE="1")
            try:
                uv_run(uv, ["python", "install", "--no-bin", "--no-registry", "--install-dir", tmp, entry["key"]],
                       env=env, capture=True)
            except subprocess.CalledProcessError as error:
                archive.unlink()
                raise SetupError(f"uv does not install the downloaded {name}: {error.stderr.strip()}") from error
    (target_dir / WHEELHOUSE_PYTHON_FILE).write_text(json.dumps(stored, indent=2) + "\n", encoding="utf-8")
    return stored


def build_wheelhouse(folder: Path, platform: str, lock: Path = LOCK) -> int:
    """Download every wheel of `lock` for `platform` into `folder` (with a README), and
    the standalone CPython 3.11 for `platform` (`store_python`; if that fails, say so
    and go on: the wheels still serve machines with Python 3.11); returns the number of
    wheels there. Uses pip from a throwaway venv of Python 3.11."""
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
    py = "%d.%d" % PYTHON_VERSION
    try:
        # uv for this machine: from the wheels just downloaded when they are this machine's.
        uv = uv_binary(folder if platform == this_platform() else None)
        stored = store_python(folder, platform, uv)
        python = WHEELHOUSE_PYTHON_README[True].format(
            python=WHEELHOUSE_PYTHON_DIR, version=stored["version"], platform=platform, size=_mb(stored["size"]), py=py)
    except (SetupError, OSError, subprocess.CalledProcessError) as error:
        print(f"WARNING: no CPython {py} stored in the wheelhouse: {error}", file=sys.stderr, flush=True)
        python = WHEELHOUSE_PYTHON_README[False].format(reason=error, py=py)
    (folder / "README.txt").write_text(WHEELHOUSE_README.format(
        platform=platform, py=py, count=count, cmd=course_command(), folder=folder, python=python))
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
