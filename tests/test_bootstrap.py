"""course.py where Python 3.11 is missing (issue 22): uv from its hash-pinned wheel, a
standalone CPython 3.11 through uv, offline from a wheelhouse; the Windows and macOS
branches with fakes; and end to end, offline, from another Python with no venv and no pip."""
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

import course

WANT = "%d.%d" % course.PYTHON_VERSION


@pytest.fixture(autouse=True)
def _this_machines_pythons_count(monkeypatch):
    monkeypatch.delenv("COURSE_UV_PYTHON", raising=False)  # set by the CI job without Python 3.11


# ------------------------------------------------------------------ the uv pins
def test_uv_pins_are_the_locked_uv_for_every_platform():
    assert f"uv=={course.UV_VERSION}" in course.LOCK.read_text().splitlines(), \
        "requirements.lock moved uv: update course.UV_VERSION and course.UV_WHEELS (hashes from PyPI)"
    assert set(course.UV_WHEELS) == set(course.WHEELHOUSE_PLATFORMS) == set(course.PYTHON_DOWNLOAD_PLATFORMS)
    for platform, wheels in course.UV_WHEELS.items():
        for name, sha in wheels:
            assert name.startswith(f"uv-{course.UV_VERSION}-py3-none-") and name.endswith(".whl"), name
            assert len(sha) == 64 and int(sha, 16) >= 0, (name, sha)


def test_uv_wheel_hashes_are_the_index_ones():
    """The pinned sha256 of each uv wheel is the one PyPI lists for that file."""
    try:
        request = urllib.request.Request("https://pypi.org/simple/uv/",
                                         headers={"Accept": "application/vnd.pypi.simple.v1+json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            files = {f["filename"]: f["hashes"]["sha256"] for f in json.loads(response.read())["files"]}
    except OSError as error:
        pytest.skip(f"PyPI cannot be reached: {error}")
    for platform, wheels in course.UV_WHEELS.items():
        for name, sha in wheels:
            assert files.get(name) == sha, (platform, name)


def test_the_wheelhouse_holds_a_pinned_uv_wheel_for_each_platform():
    """pip download picks, for each platform's tags (most specific first), a uv wheel whose hash course.py pins."""
    for platform, tags in course.WHEEL_TAGS.items():
        names = [name for name, _ in course.UV_WHEELS[platform]]
        wheel_tags = [set(name[:-4].split("-")[-1].split(".")) for name in names]
        assert any(any(tag in t for tag in tags) or (platform.startswith("macos") and
                   any(x.startswith("macosx_") and x.endswith(platform.split("-")[1]) for x in t))
                   for t in wheel_tags), (platform, names)


# --------------------------------------------------------------- uv from its wheel
def _fake_uv_wheel(folder: Path, name: str, exe: str) -> tuple[Path, str]:
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / name
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(f"uv-{course.UV_VERSION}.data/scripts/{exe}", "#!/bin/sh\necho fake uv\n")
        archive.writestr("uv/__init__.py", "")
    return wheel, hashlib.sha256(wheel.read_bytes()).hexdigest()


@pytest.mark.parametrize("platform, windows", [("linux-x86_64", False), ("macos-arm64", False), ("windows", True)])
def test_uv_binary_from_a_wheelhouse_is_hash_checked_and_cached(platform, windows, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(course, "_is_windows", lambda: windows)
    monkeypatch.setattr(course, "TOOLS_DIR", tmp_path / "tools")
    exe = "uv.exe" if windows else "uv"
    name = course.UV_WHEELS[platform][0][0]
    wheel, sha = _fake_uv_wheel(tmp_path / "wh", name, exe)

    monkeypatch.setitem(course.UV_WHEELS, platform, [(name, "0" * 64)])
    with pytest.raises(course.SetupError, match="sha256"):
        course.uv_binary(tmp_path / "wh", platform)
    assert not (tmp_path / "tools").exists() or not any((tmp_path / "tools").rglob(exe)), "a wrong wheel was unpacked"

    monkeypatch.setitem(course.UV_WHEELS, platform, [(name, sha)])
    uv = course.uv_binary(tmp_path / "wh", platform)
    assert uv == tmp_path / "tools" / f"uv-{course.UV_VERSION}-{platform}" / exe
    assert uv.read_text().endswith("echo fake uv\n")
    if not windows:
        assert os.access(uv, os.X_OK)
    assert "from the wheelhouse" in capsys.readouterr().out
    wheel.unlink()  # cached: the wheel is not needed again
    assert course.uv_binary(tmp_path / "wh", platform) == uv

    with pytest.raises(course.SetupError, match="holds none of"):
        course.uv_binary(tmp_path / "empty", "linux-aarch64")


def _serve(monkeypatch, pages: dict):
    """course._open_url answers from `pages` (url -> bytes); anything else is unreachable."""
    seen = []

    def fake_open(url, accept=None):
        seen.append((url, accept))
        if url not in pages:
            raise OSError(f"unreachable in this test: {url}")
        return io.BytesIO(pages[url])
    monkeypatch.setattr(course, "_open_url", fake_open)
    return seen


def test_uv_binary_from_the_index_json_and_html(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(course, "TOOLS_DIR", tmp_path / "tools")
    monkeypatch.setattr(course, "_is_windows", lambda: False)
    monkeypatch.delenv("UV_DEFAULT_INDEX", raising=False)
    monkeypatch.delenv("PIP_INDEX_URL", raising=False)
    name = course.UV_WHEELS["linux-x86_64"][0][0]
    wheel, sha = _fake_uv_wheel(tmp_path / "src", name, "uv")
    monkeypatch.setitem(course.UV_WHEELS, "linux-x86_64", [(name, sha)])
    listing = {"files": [{"filename": "uv-0.1.0.tar.gz", "url": "../../x/uv-0.1.0.tar.gz"},
                         {"filename": name, "url": "https://files.example/packages/ab/" + name,
                          "hashes": {"sha256": sha}, "size": 17606939}]}
    seen = _serve(monkeypatch, {"https://pypi.org/simple/uv/": json.dumps(listing).encode(),
                                "https://files.example/packages/ab/" + name: wheel.read_bytes()})
    uv = course.uv_binary(None, "linux-x86_64")
    assert uv.exists() and "json" in seen[0][1]
    out = capsys.readouterr().out
    assert f"Downloading uv {course.UV_VERSION}" in out and "17.6 MB" in out and "https://pypi.org/simple" in out

    # A mirror with only the HTML simple API (PEP 503), named by PIP_INDEX_URL.
    shutil.rmtree(tmp_path / "tools")
    monkeypatch.setenv("PIP_INDEX_URL", "https://mirror.example/simple/")
    html = f'<html><body><a href="../../files/{name}#sha256={sha}">{name}</a></body></html>'
    _serve(monkeypatch, {"https://mirror.example/simple/uv/": html.encode(),
                         f"https://mirror.example/files/{name}": wheel.read_bytes()})
    assert course.uv_binary(None, "linux-x86_64").exists()

    # A tampered file from the index is refused.
    shutil.rmtree(tmp_path / "tools")
    _serve(monkeypatch, {"https://mirror.example/simple/uv/": html.encode(),
                         f"https://mirror.example/files/{name}": b"not the wheel"})
    with pytest.raises(course.SetupError, match="course.py expects"):
        course.uv_binary(None, "linux-x86_64")


def test_fetch_falls_back_to_curl(tmp_path, monkeypatch):
    """python.org's macOS Python has no certificates until 'Install Certificates' runs: urllib fails, curl works."""
    _serve(monkeypatch, {})
    monkeypatch.setattr(course.shutil, "which", lambda name: "/usr/bin/curl" if name == "curl" else None)
    calls = []

    def fake_run(cmd, **kwargs):
        calls.append(cmd)
        Path(cmd[cmd.index("-o") + 1]).write_bytes(b"payload")
        return subprocess.CompletedProcess(cmd, 0)
    monkeypatch.setattr(course.subprocess, "run", fake_run)
    dest = course.fetch("https://pypi.org/simple/uv/", tmp_path / "x" / "page", accept="application/json")
    assert dest.read_bytes() == b"payload"
    assert calls[0][0] == "/usr/bin/curl" and calls[0][-1] == "https://pypi.org/simple/uv/"
    assert "Accept: application/json" in calls[0]

    monkeypatch.setattr(course.shutil, "which", lambda name: None)
    with pytest.raises(course.SetupError, match="cannot download"):
        course.fetch("https://pypi.org/simple/uv/", tmp_path / "y")


# ------------------------------------------------------- which CPython archive, per platform
def _listing_entry(key, url, variant="default"):
    implementation, version, os_, arch, libc = key.split("-")
    major, minor, patch = (int(p) for p in version.split("."))
    return {"key": key, "version": version, "version_parts": {"major": major, "minor": minor, "patch": patch},
            "url": url, "os": os_, "arch": arch, "libc": libc, "variant": variant, "implementation": implementation}


PBS = "https://releases.astral.sh/github/python-build-standalone/releases/download/20261110/"
LISTING = [_listing_entry(k, PBS + f) for k, f in [
    ("cpython-3.11.18-linux-x86_64-gnu", "cpython-3.11.18%2B20261110-x86_64-unknown-linux-gnu-install_only_stripped.tar.gz"),
    ("cpython-3.11.18-linux-x86_64_v3-gnu", "cpython-3.11.18%2B20261110-x86_64_v3-unknown-linux-gnu-install_only_stripped.tar.gz"),
    ("cpython-3.11.18-linux-x86_64-musl", "cpython-3.11.18%2B20261110-x86_64-unknown-linux-musl-install_only_stripped.tar.gz"),
    ("cpython-3.11.17-linux-aarch64-gnu", "cpython-3.11.17%2B20260901-aarch64-unknown-linux-gnu-install_only_stripped.tar.gz"),
    ("cpython-3.11.18-linux-aarch64-gnu", "cpython-3.11.18%2B20261110-aarch64-unknown-linux-gnu-install_only_stripped.tar.gz"),
    ("cpython-3.11.18-macos-aarch64-none", "cpython-3.11.18%2B20261110-aarch64-apple-darwin-install_only_stripped.tar.gz"),
    ("cpython-3.11.18-macos-x86_64-none", "cpython-3.11.18%2B20261110-x86_64-apple-darwin-install_only_stripped.tar.gz"),
    ("cpython-3.11.18-windows-x86_64-none", "cpython-3.11.18%2B20261110-x86_64-pc-windows-msvc-install_only_stripped.tar.gz"),
    ("cpython-3.11.18-windows-x86-none", "cpython-3.11.18%2B20261110-i686-pc-windows-msvc-install_only_stripped.tar.gz"),
    ("pypy-3.11.17-linux-x86_64-gnu", "https://downloads.python.org/pypy/pypy3.11-v8.0.1-linux64.tar.bz2"),
]] + [_listing_entry("cpython-3.11.18-linux-x86_64-gnu", PBS + "cpython-freethreaded.tar.gz", variant="freethreaded")]


@pytest.mark.parametrize("platform, key, triple", [
    ("linux-x86_64", "cpython-3.11.18-linux-x86_64-gnu", "x86_64-unknown-linux-gnu"),
    ("linux-aarch64", "cpython-3.11.18-linux-aarch64-gnu", "aarch64-unknown-linux-gnu"),
    ("macos-arm64", "cpython-3.11.18-macos-aarch64-none", "aarch64-apple-darwin"),
    ("macos-x86_64", "cpython-3.11.18-macos-x86_64-none", "x86_64-apple-darwin"),
    ("windows", "cpython-3.11.18-windows-x86_64-none", "x86_64-pc-windows-msvc"),
])
def test_the_cpython_download_of_each_platform(platform, key, triple):
    entry = course.pick_python_download(LISTING, platform)
    assert entry["key"] == key and f"%2B20261110-{triple}-install_only" in entry["url"]
    assert course.python_archive_name(entry["url"]) == f"cpython-3.11.18-20261110-{triple}-install_only_stripped.tar.gz"
    with pytest.raises(course.SetupError, match="lists no CPython"):
        course.pick_python_download([e for e in LISTING if e["key"].split("-", 2)[2] != key.split("-", 2)[2]], platform)


# ------------------------------------------------------- finding and installing Python 3.11
def _no_local_python(monkeypatch, windows: bool, platform: str):
    monkeypatch.setattr(course, "_is_windows", lambda: windows)
    monkeypatch.setattr(course.sys, "platform", platform)
    monkeypatch.setattr(course.sys, "version_info", (3, 13, 1))
    monkeypatch.setattr(course.shutil, "which", lambda name: "C:\\Windows\\py.exe" if name == "py" else None)
    probes = []

    def fake_run(cmd, **kwargs):  # `py -3.11` answers "no such Python"
        probes.append(cmd)
        return subprocess.CompletedProcess(cmd, 103, stdout="", stderr="No suitable Python runtime found")
    monkeypatch.setattr(course.subprocess, "run", fake_run)
    return probes


def test_windows_without_python_311_the_message_names_py_and_the_alternatives(monkeypatch):
    probes = _no_local_python(monkeypatch, windows=True, platform="win32")
    def no_network(wheelhouse=None):
        raise course.SetupError("cannot download https://pypi.org/simple/uv/: no network")
    monkeypatch.setattr(course, "managed_python", no_network)
    with pytest.raises(SystemExit) as info:
        course.find_python()
    message = str(info.value)
    assert probes[0][:2] == ["py", "-3.11"] and "ensurepip" in probes[0][-1]
    for text in ("py -3.11", "no network", "py course.py wheelhouse DIR", "environment.yml", "Binder",
                 "python.org's Windows installer"):
        assert text in message, (text, message)


def test_macos_without_python_311_gets_uv_python(monkeypatch, capsys):
    _no_local_python(monkeypatch, windows=False, platform="darwin")
    got = Path("/Users/me/.local/share/uv/python/cpython-3.11-macos-aarch64-none/bin/python3.11")
    monkeypatch.setattr(course, "managed_python", lambda wheelhouse=None: got)
    assert course.find_python() == [str(got)]
    assert "No Python 3.11 that can create a venv" in capsys.readouterr().out


class FakeUv:
    """Records uv commands; `python find` fails until `python install` ran."""

    def __init__(self, folder: str):
        self.calls, self.installed, self.folder = [], False, folder

    def __call__(self, uv, args, env=None, capture=False):
        self.calls.append((args, env))
        if args[:2] == ["python", "find"]:
            if not self.installed:
                raise subprocess.CalledProcessError(2, args, stderr="No interpreter found")
            return self.folder + "/cpython-3.11-x/bin/python3.11\n"
        if args[:2] == ["python", "dir"]:
            return self.folder + "\n"
        if args[:2] == ["python", "install"]:
            self.installed = True
        return ""


@pytest.mark.parametrize("windows", [False, True])
def test_managed_python_installs_with_uv_and_says_how_to_remove_it(windows, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(course, "_is_windows", lambda: windows)
    uv_path = tmp_path / "tools" / ("uv.exe" if windows else "uv")
    monkeypatch.setattr(course, "uv_binary", lambda wheelhouse=None: uv_path)
    folder = "C:\\Users\\me\\AppData\\Roaming\\uv\\python" if windows else "/home/me/.local/share/uv/python"
    fake = FakeUv(folder)
    monkeypatch.setattr(course, "uv_run", fake)
    python = course.managed_python()
    assert str(python).startswith(folder)
    install = [args for args, _ in fake.calls if args[:2] == ["python", "install"]]
    assert install == [["python", "install", "--no-bin", "--no-registry", WANT]]
    assert all("--managed-python" in args for args, _ in fake.calls if args[:2] == ["python", "find"])
    out = capsys.readouterr().out
    assert f"{uv_path} python uninstall {WANT}" in out and folder in out and "uv prints its size" in out

    # Already installed: nothing is downloaded.
    fake.calls.clear()
    course.managed_python()
    assert [args[:2] for args, _ in fake.calls] == [["python", "find"], ["python", "dir"]]


def test_managed_python_from_a_wheelhouse_is_offline(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(course, "uv_binary", lambda wheelhouse=None: tmp_path / "uv")
    fake = FakeUv("/home/me/.local/share/uv/python")
    monkeypatch.setattr(course, "uv_run", fake)
    with pytest.raises(course.SetupError, match="make it again"):
        course.managed_python(tmp_path / "old-wheelhouse")
    (tmp_path / "wh" / "python").mkdir(parents=True)
    (tmp_path / "wh" / "python" / "abcdef012-cpython.tar.gz").write_bytes(b"x" * 1000)
    (tmp_path / "wh" / "python" / "python.json").write_text(json.dumps(
        {"key": "cpython-3.11.18-linux-x86_64-gnu", "version": "3.11.18", "file": "abcdef012-cpython.tar.gz"}))
    fake.calls.clear()
    course.managed_python(tmp_path / "wh")
    (args, env), = [(a, e) for a, e in fake.calls if a[:2] == ["python", "install"]]
    assert args[-1] == "cpython-3.11.18-linux-x86_64-gnu"
    assert env["UV_PYTHON_CACHE_DIR"] == str(tmp_path / "wh" / "python") and env["UV_OFFLINE"] == "1"
    assert "from the wheelhouse" in capsys.readouterr().out


# ------------------------------------------------------------- real interpreters and real uv
BLOCKER = '''\
import os, sys
if os.path.realpath(sys.executable) in os.environ.get("COURSE_TEST_NO_VENV", "").split(os.pathsep):
    class _Block:  # Debian/Ubuntu's python3 without python3-venv and python3-pip
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {"venv", "ensurepip", "pip"}:
                raise ModuleNotFoundError("No module named %r (blocked by the test)" % name, name=name)
    sys.meta_path.insert(0, _Block())
'''


@pytest.fixture
def blocker(tmp_path):
    folder = tmp_path / "blocker"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(BLOCKER)
    return folder


def test_a_python_311_without_venv_is_not_used(blocker, monkeypatch):
    """Debian's python3.11 without python3.11-venv: the probe rejects it."""
    monkeypatch.setattr(course, "python_candidates", lambda: [])
    assert course.local_python() == [sys.executable]
    monkeypatch.setenv("PYTHONPATH", str(blocker))
    monkeypatch.setenv("COURSE_TEST_NO_VENV", os.path.realpath(sys.executable))
    assert course.local_python() is None


def other_python() -> str | None:
    """A CPython 3.8-3.14 other than 3.11 on this machine (its real path), or None."""
    names = [f"python3.{minor}" for minor in (13, 12, 14, 10, 9, 8)]
    candidates = [shutil.which(n) for n in names] + sorted(map(str, Path.home().glob(".pyenv/versions/3.1[2-4]*/bin/python3")))
    for candidate in filter(None, candidates):
        try:
            probe = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[1], sys.executable)"],
                                   capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0 and probe.stdout.split()[0] != str(course.PYTHON_VERSION[1]):
            return os.path.realpath(probe.stdout.split(None, 1)[1].strip())
    return None


@pytest.fixture(scope="module")
def standalone_python(tmp_path_factory):
    """A CPython 3.11 archive in python-build-standalone's layout (python/bin/python3.11,
    python/lib/...), made from the 3.11 running the tests, and a uv downloads JSON that lists it."""
    if sys.platform != "linux":
        pytest.skip("the archive is built from this Linux Python's layout")
    if sys.version_info[:2] != course.PYTHON_VERSION:
        pytest.skip("the tests run on Python %d.%d, not 3.11" % sys.version_info[:2])
    base = Path(sys.base_prefix)
    exe = base / "bin" / f"python{WANT}"
    if not exe.exists() or not (base / "lib" / f"python{WANT}" / "os.py").exists():
        pytest.skip(f"{base} is not a self-contained Python prefix")
    folder = tmp_path_factory.mktemp("standalone")
    patch = sys.version_info[2]
    name = f"cpython-{WANT}.{patch}+test-x86_64-unknown-linux-gnu-install_only.tar.gz"
    skip = {"test", "site-packages", "__pycache__", "idlelib", "tkinter", "turtledemo", "lib2to3", "tests"}

    def keep(info):
        parts = Path(info.name).parts
        return None if any(p in skip or p.startswith("config-") for p in parts) else info
    with tarfile.open(folder / name, "w:gz", compresslevel=1) as tar:
        tar.add(exe, f"python/bin/python{WANT}")
        for lib in base.glob("lib/libpython3*"):
            tar.add(lib, "python/lib/" + lib.name)
        tar.add(base / "lib" / f"python{WANT}", f"python/lib/python{WANT}", filter=keep)
    key = f"cpython-{WANT}.{patch}-linux-x86_64-gnu"
    entry = {"name": "cpython", "arch": {"family": "x86_64", "variant": None}, "os": "linux", "libc": "gnu",
             "major": 3, "minor": course.PYTHON_VERSION[1], "patch": patch, "prerelease": "",
             "url": (folder / name).as_uri(), "sha256": hashlib.sha256((folder / name).read_bytes()).hexdigest(),
             "variant": None, "build": "test"}
    (folder / "downloads.json").write_text(json.dumps({key: entry}))
    return {"json": folder / "downloads.json", "key": key, "archive": folder / name}


def course_copy(tmp_path: Path, lock_pins: list[str]) -> Path:
    """The course's bootstrap in a temporary folder: course.py, pyproject.toml, helpers/,
    jupyter/, and a small lock."""
    root = tmp_path / "course"
    root.mkdir()
    for name in ("course.py", "pyproject.toml", "README.md"):
        shutil.copy(course.ROOT / name, root / name)
    shutil.copytree(course.ROOT / "jupyter", root / "jupyter")
    shutil.copytree(course.ROOT / "helpers", root / "helpers", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "requirements.lock").write_text("# a small lock for the bootstrap test\n" + "\n".join(lock_pins) + "\n")
    return root


def isolated_env(tmp_path: Path, python: str, blocker: Path, standalone: dict) -> dict:
    """No Python 3.11 on the PATH (only `python3` -> `python`), no network, uv's Pythons and
    caches in tmp_path, uv's downloads list = the local JSON, and `python` without venv/pip."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(python)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "PIP_", "VIRTUAL_ENV", "PYTHON", "CONDA"))}
    env.update(PATH=str(bin_dir), HOME=str(tmp_path / "home"), PYTHONPATH=str(blocker),
               COURSE_TEST_NO_VENV=os.path.realpath(python),
               UV_PYTHON_INSTALL_DIR=str(tmp_path / "uv-python"), UV_CACHE_DIR=str(tmp_path / "uv-cache"),
               UV_PYTHON_DOWNLOADS_JSON_URL=str(standalone["json"]), UV_NO_CONFIG="1",
               PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1")
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        env[var] = "http://127.0.0.1:9"
    return env


def test_another_python_without_venv_or_pip_gets_python_311_through_uv(tmp_path, blocker, standalone_python):
    """No Python 3.11 on the PATH, the Python running course.py has no venv and no pip, no
    network: find_python installs CPython 3.11 with uv (uv already cached in .course-tools,
    as after a first run) from the downloads JSON, and that Python creates a venv."""
    python = other_python()
    if python is None:
        pytest.skip("no Python other than 3.11 on this machine to run course.py with")
    root = course_copy(tmp_path, [])
    cached = root / ".course-tools" / f"uv-{course.UV_VERSION}-{course.this_platform()}" / "uv"
    cached.parent.mkdir(parents=True)
    shutil.copy(Path(sys.prefix) / "bin" / "uv", cached)  # the lock's uv, as course.py would have unpacked it
    env = isolated_env(tmp_path, python, blocker, standalone_python)
    assert subprocess.run([python, "-c", "import venv"], env=env, capture_output=True).returncode != 0
    started = time.time()
    result = subprocess.run([python, "-c", "import course; print('FOUND', course.find_python()[0])"],
                            cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    found = result.stdout.split("FOUND ")[-1].strip()
    assert found.startswith(str(tmp_path / "uv-python")), result.stdout
    assert f"python uninstall {WANT}" in result.stdout and "No Python 3.11 that can create a venv" in result.stdout
    probe = subprocess.run([found, "-c", course.PYTHON_PROBE], env=env, capture_output=True, text=True)
    assert probe.stdout.strip() == WANT, probe.stderr
    assert time.time() - started < 60


def test_course_venv_offline_from_a_wheelhouse_with_another_python(tmp_path, blocker, standalone_python):
    """End to end, offline: a wheelhouse with a small lock's wheels (uv's among them) and the
    CPython archive stored by course.py's own `store_python`; then, with no Python 3.11 on the
    PATH, no network, nothing cached, and a Python without venv or pip, course.py's
    ensure_venv unpacks uv from the wheelhouse, installs CPython 3.11 from it and creates .venv."""
    python = other_python()
    if python is None:
        pytest.skip("no Python other than 3.11 on this machine to run course.py with")
    pins = [p for p in course.wheelhouse_requirements(course.this_platform())
            if p.split("==")[0] in {"uv", "setuptools", "six"}]
    assert len(pins) == 3, pins
    wheelhouse = tmp_path / "wheelhouse"
    download = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                               "--disable-pip-version-check", "-d", str(wheelhouse), *pins],
                              capture_output=True, text=True)
    if download.returncode != 0:
        pytest.skip(f"the package index cannot be reached for the test's wheels: {download.stderr[-300:]}")
    root = course_copy(tmp_path, pins)
    env = isolated_env(tmp_path, python, blocker, standalone_python)

    # The wheelhouse's CPython, stored by course.py (uv lists the test's archive through the JSON).
    store = subprocess.run([python, "-c", "import course, pathlib, json; w = pathlib.Path(r'%s');"
                            "print(json.dumps(course.store_python(w, course.this_platform(), course.uv_binary(w))))"
                            % wheelhouse], cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert store.returncode == 0, store.stdout + store.stderr
    stored = json.loads(store.stdout.strip().splitlines()[-1])
    sha = hashlib.sha256(standalone_python["archive"].read_bytes()).hexdigest()
    assert stored["key"] == standalone_python["key"] and stored["file"].startswith(sha[:9] + "-cpython-3.11.")
    assert (wheelhouse / "python" / stored["file"]).exists() and (wheelhouse / "python" / "python.json").exists()
    shutil.rmtree(root / ".course-tools")  # nothing cached: uv comes from the wheelhouse again

    # Offline: the JSON now points at an address that does not exist; uv takes the wheelhouse's archive.
    entry = json.loads(standalone_python["json"].read_text())
    for value in entry.values():
        value["url"] = "https://python-downloads.invalid/" + standalone_python["archive"].name.replace("+", "%2B")
    offline_json = tmp_path / "offline-downloads.json"
    offline_json.write_text(json.dumps(entry))
    env.update(UV_PYTHON_DOWNLOADS_JSON_URL=str(offline_json), UV_OFFLINE="1", UV_NO_CACHE="1")
    started = time.time()
    result = subprocess.run([python, "-c", "import course, pathlib; course.ensure_venv(pathlib.Path(r'%s'))" % wheelhouse],
                            cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Taking uv" in result.stdout and "Installing CPython" in result.stdout, result.stdout
    venv_python = root / ".venv" / "bin" / "python"
    check = subprocess.run([str(venv_python), "-c", "import sys, six, uv; print('%d.%d' % sys.version_info[:2], "
                            "sys.base_prefix)"], env=env, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    version, base = check.stdout.split()
    assert version == WANT and base.startswith(str(tmp_path / "uv-python"))
    assert (root / ".venv" / "course-stamp.txt").exists()
    print(result.stdout)  # what a learner sees (pytest -s)
    print(f"offline .venv on uv's CPython {WANT} in {time.time() - started:.1f} s")
