"""One source of truth: pyproject.toml -> requirements.lock -> environment.yml and .venv."""
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def lock_pins():
    """{name: (version, marker or None)} from requirements.lock."""
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if not line or line.startswith((" ", "#")):
            continue
        req = Requirement(line)
        (spec,) = req.specifier
        assert spec.operator == "==", f"lock line not pinned: {line}"
        pins[req.name.lower().replace("_", "-")] = (spec.version, req.marker)
    return pins


def test_lock_covers_every_dependency_of_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = lock_pins()
    for dep in project["dependencies"]:
        req = Requirement(dep)
        name = req.name.lower()
        assert name in pins, f"{name} is in pyproject.toml but not in requirements.lock: run `python3 course.py lock`"
        assert req.specifier.contains(pins[name][0]), f"lock has {name}=={pins[name][0]}, pyproject wants {req.specifier}"
    assert project["requires-python"] == ">=3.11,<3.12"


def test_lock_pins_the_required_stack():
    pins = lock_pins()
    expected = {"tensorflow": "2.15.1", "tensorflow-privacy": "0.9.0", "cleverhans": "4.0.0",
                "lime": "0.2.0.1", "nbval": "0.11.0", "numpy": "1.26.4", "keras": "2.15.0"}
    for name, version in expected.items():
        assert pins[name][0] == version
    assert pins["jupyterlab"][0].startswith("4.")


def test_environment_yml_installs_exactly_the_lock_and_helpers():
    text = (ROOT / "environment.yml").read_text()
    assert re.search(r"^\s*-\s*python=3\.11\s*$", text, re.M)
    pip_lines = [l.strip()[2:].strip() for l in text.splitlines() if l.strip().startswith("- ") and
                 not l.strip().startswith(("- python", "- pip", "- conda-forge"))]
    assert pip_lines == ["-r requirements.lock", "-e ."], pip_lines
    assert not (ROOT / "binder").exists(), "a binder/ folder would make Binder ignore environment.yml"


def test_installed_environment_matches_the_lock():
    env = default_environment()
    assert sys.version_info[:2] == (3, 11)
    mismatched = []
    for name, (version, marker) in lock_pins().items():
        if marker is not None and not marker.evaluate(env):
            continue
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            mismatched.append(f"{name} missing")
            continue
        if installed != version:
            mismatched.append(f"{name} {installed} != {version}")
    assert not mismatched, mismatched
