"""requirements.lock installs on every platform a learner may have.

`uv pip compile --universal` reads one wheel's metadata per version, but
TensorFlow 2.15.1's wheels differ by platform (the Windows and Linux aarch64
`tensorflow` wheels are shims that require `tensorflow-intel` and
`tensorflow-cpu-aws`), and some locked versions have no wheel for some platform.
pyproject.toml spells out the platform-marked pins; these tests check them.

- Offline (always run): the markers give each platform exactly one version of
  each package, and the TensorFlow platform packages where they belong.
- Registry (skipped when the package index cannot be reached): for each platform,
  uv resolves pyproject.toml for that platform alone (reading that platform's own
  wheels), wheels only, constrained by the lock, and must land exactly on the
  lock's pins for that platform; and each platform's TensorFlow wheel's
  requirements (read from the wheel itself) are all in the lock.
"""
from __future__ import annotations

import functools
import io
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"

# Marker environments of CPython 3.11 on the five supported platforms, and uv's
# name for each (`--python-platform`).
PLATFORMS = {
    "linux-x86_64": ("x86_64-unknown-linux-gnu",
                     {"os_name": "posix", "sys_platform": "linux", "platform_system": "Linux",
                      "platform_machine": "x86_64"}),
    "linux-aarch64": ("aarch64-unknown-linux-gnu",
                      {"os_name": "posix", "sys_platform": "linux", "platform_system": "Linux",
                       "platform_machine": "aarch64"}),
    "macos-x86_64": ("x86_64-apple-darwin",
                     {"os_name": "posix", "sys_platform": "darwin", "platform_system": "Darwin",
                      "platform_machine": "x86_64"}),
    "macos-arm64": ("aarch64-apple-darwin",
                    {"os_name": "posix", "sys_platform": "darwin", "platform_system": "Darwin",
                     "platform_machine": "arm64"}),
    "windows-x86_64": ("x86_64-pc-windows-msvc",
                       {"os_name": "nt", "sys_platform": "win32", "platform_system": "Windows",
                        "platform_machine": "AMD64"}),
}
COMMON_ENV = {"implementation_name": "cpython", "platform_python_implementation": "CPython",
              "python_version": "3.11", "python_full_version": "3.11.9", "implementation_version": "3.11.9",
              "platform_release": "", "platform_version": "", "extra": ""}

# What TensorFlow 2.15.1 needs on top of `tensorflow` itself, per platform (read from
# each platform's wheel; the registry test below re-reads it).
TENSORFLOW_PLATFORM_PACKAGES = {
    "linux-x86_64": {},
    "linux-aarch64": {"tensorflow-cpu-aws": "2.15.1"},
    "macos-x86_64": {},
    "macos-arm64": {},  # the 2.15.1 macOS arm64 wheel is complete: no tensorflow-macos
    "windows-x86_64": {"tensorflow-intel": "2.15.1"},
}
# Locked packages published only as a source distribution; each is pure Python.
SDIST_ONLY = {"lime"}


def marker_env(platform: str) -> dict[str, str]:
    return {**COMMON_ENV, **PLATFORMS[platform][1]}


@functools.lru_cache(maxsize=1)
def lock_lines() -> tuple[Requirement, ...]:
    return tuple(Requirement(line) for line in LOCK.read_text().splitlines()
                 if line and not line.startswith((" ", "#")))


def pins_for(platform: str) -> dict[str, str]:
    """{name: version} of the lock lines whose marker applies on `platform`."""
    env, pins = marker_env(platform), {}
    for req in lock_lines():
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        name = canonicalize_name(req.name)
        assert name not in pins, f"{name} has two lock lines that both apply on {platform}"
        (spec,) = req.specifier
        assert spec.operator == "==", f"lock line not pinned: {req}"
        pins[name] = spec.version
    return pins


# --------------------------------------------------------------------- offline

@pytest.mark.parametrize("platform", PLATFORMS)
def test_each_platform_gets_one_version_of_every_package(platform):
    pins = pins_for(platform)  # asserts no two lines apply at once
    all_names = {canonicalize_name(r.name) for r in lock_lines()}
    # A package split over several marked lines must reach every platform once.
    for name in all_names:
        lines = [r for r in lock_lines() if canonicalize_name(r.name) == name]
        if len(lines) > 1:
            assert name in pins, f"{name} has lock lines for other platforms but none for {platform}"
    for name in ("tensorflow", "tensorflow-privacy", "keras", "numpy", "jupyterlab", "uv"):
        assert name in pins, f"{name} missing on {platform}"
    assert pins["tensorflow"] == "2.15.1"


@pytest.mark.parametrize("platform", PLATFORMS)
def test_tensorflow_platform_packages_are_locked_where_they_belong(platform):
    pins = pins_for(platform)
    expected = TENSORFLOW_PLATFORM_PACKAGES[platform]
    for name, version in expected.items():
        assert pins.get(name) == version, f"{platform} needs {name}=={version}"
    for other in {"tensorflow-intel", "tensorflow-cpu-aws", "tensorflow-macos"} - set(expected):
        assert other not in pins, f"{other} would be installed on {platform}"
    gcs = pins["tensorflow-io-gcs-filesystem"]
    if platform == "windows-x86_64":
        assert gcs == "0.31.0", "0.31.0 is the last tensorflow-io-gcs-filesystem with a Windows wheel"
    else:
        assert gcs == "0.37.1"


def test_linux_x86_64_lines_are_the_unmarked_lock_plus_marked_additions():
    """Platform fixes must not move the Linux x86-64 set (the venv CI and Binder use)."""
    pins = pins_for("linux-x86_64")
    unmarked = {canonicalize_name(r.name) for r in lock_lines() if r.marker is None}
    assert unmarked <= set(pins)


def test_lock_command_resolves_for_every_platform():
    import course
    assert "--universal" in course.LOCK_ARGS and "--python-version" in course.LOCK_ARGS


# -------------------------------------------------------------------- registry

def _index_url() -> str:
    return (os.environ.get("UV_DEFAULT_INDEX") or os.environ.get("UV_INDEX_URL")
            or "https://pypi.org/simple").rstrip("/")


def _get(url: str, headers: dict[str, str] | None = None, timeout: float = 30) -> bytes:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=timeout) as r:
        return r.read()


@pytest.fixture(scope="module")
def registry() -> str:
    index = _index_url()
    try:
        _get(index + "/pip/", {"Accept": "application/vnd.pypi.simple.v1+json"}, timeout=10)
    except (urllib.error.URLError, OSError) as exc:
        pytest.skip(f"package index {index} unreachable ({exc}); registry checks skipped")
    return index


def _resolve(platform: str, registry: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "uv", "pip", "compile", "pyproject.toml", "--constraint", "requirements.lock",
           "--python-version", "3.11", "--python-platform", PLATFORMS[platform][0], "--only-binary", ":all:",
           *[a for name in sorted(SDIST_ONLY) for a in ("--no-binary", name)],
           "--no-header", "--no-annotate", "--quiet", "--default-index", registry]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=240)


@pytest.fixture(scope="module")
def resolutions(registry) -> dict[str, subprocess.CompletedProcess]:
    """uv's resolution of pyproject.toml for each platform, run side by side."""
    with ThreadPoolExecutor(len(PLATFORMS)) as pool:
        return dict(zip(PLATFORMS, pool.map(lambda p: _resolve(p, registry), PLATFORMS)))


@pytest.mark.parametrize("platform", PLATFORMS)
def test_platform_resolves_to_exactly_the_lock_with_wheels(platform, resolutions):
    """uv resolves pyproject.toml for this platform alone, reading this platform's own
    wheels, wheels only (a source build only for the pure-Python SDIST_ONLY), within
    the lock, and lands exactly on the lock's pins for this platform."""
    done = resolutions[platform]
    assert done.returncode == 0, f"{platform}: the lock does not install there:\n{done.stderr}"
    resolved = {}
    for line in done.stdout.splitlines():
        if line.strip() and not line.startswith("#"):
            req = Requirement(line)
            (spec,) = req.specifier
            resolved[canonicalize_name(req.name)] = spec.version
    locked = pins_for(platform)
    missing = {n: v for n, v in resolved.items() if locked.get(n) != v}
    extra = sorted(set(locked) - set(resolved))
    assert not missing, f"{platform} needs these, absent from or different in the lock: {missing}"
    assert not extra, f"the lock installs these on {platform} although nothing there needs them: {extra}"


class _RangeFile(io.RawIOBase):
    """Read-only file over HTTP range requests: enough for zipfile to read one member."""

    def __init__(self, url: str, size: int):
        self.url, self.size, self.pos = url, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = {0: offset, 1: self.pos + offset, 2: self.size + offset}[whence]
        return self.pos

    def readinto(self, buffer) -> int:
        if self.pos >= self.size or len(buffer) == 0:
            return 0
        end = min(self.pos + len(buffer), self.size) - 1
        data = _get(self.url, {"Range": f"bytes={self.pos}-{end}"}, timeout=60)
        buffer[:len(data)] = data
        self.pos += len(data)
        return len(data)


def _wheel_requirements(registry: str, project: str, version: str, platform: str) -> list[Requirement]:
    """Requires-Dist of the cp311 wheel of project==version that this platform installs."""
    files = json.loads(_get(f"{registry}/{project}/", {"Accept": "application/vnd.pypi.simple.v1+json"}))["files"]
    machine = {"linux-x86_64": "manylinux", "linux-aarch64": "manylinux", "macos-x86_64": "macosx",
               "macos-arm64": "macosx", "windows-x86_64": "win"}[platform]
    arch = {"linux-x86_64": "x86_64", "linux-aarch64": "aarch64", "macos-x86_64": "x86_64",
            "macos-arm64": "arm64", "windows-x86_64": "amd64"}[platform]
    chosen = None
    for f in files:
        if not f["filename"].endswith(".whl"):
            continue
        _, v, _, tags = parse_wheel_filename(f["filename"])
        if str(v) == version and any(t.interpreter == "cp311" and t.platform.startswith(machine)
                                     and t.platform.endswith(arch) for t in tags):
            chosen = f
            break
    assert chosen is not None, f"no cp311 wheel of {project}=={version} for {platform}"
    size = chosen.get("size") or int(urllib.request.urlopen(
        urllib.request.Request(chosen["url"], method="HEAD"), timeout=30).headers["Content-Length"])
    with zipfile.ZipFile(io.BufferedReader(_RangeFile(chosen["url"], size), buffer_size=1 << 16)) as wheel:
        name = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
        text = wheel.read(name).decode()
    return [Requirement(line.split(":", 1)[1].strip()) for line in text.splitlines()
            if line.startswith("Requires-Dist:")]


@pytest.mark.parametrize("platform", PLATFORMS)
def test_tensorflow_wheel_of_each_platform_has_its_requirements_locked(platform, registry):
    pins, env = pins_for(platform), marker_env(platform)
    todo, seen = [("tensorflow", pins["tensorflow"])], set()
    while todo:
        project, version = todo.pop()
        seen.add(project)
        for req in _wheel_requirements(registry, project, version, platform):
            if req.marker is not None and not req.marker.evaluate(env):
                continue
            name = canonicalize_name(req.name)
            assert name in pins, f"{project} {version} on {platform} requires {req}, absent from the lock"
            assert req.specifier.contains(pins[name], prereleases=True), \
                f"{project} {version} on {platform} requires {req}; the lock has {pins[name]}"
            if name in {"tensorflow-intel", "tensorflow-cpu-aws", "tensorflow-macos"} and name not in seen:
                todo.append((name, pins[name]))
    assert seen - {"tensorflow"} == set(TENSORFLOW_PLATFORM_PACKAGES[platform])
