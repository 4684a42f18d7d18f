"""One source of truth: pyproject.toml -> requirements.lock -> environment.yml, binder/ and .venv."""
import json
import os
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.test_lock_platforms import PLATFORMS, marker_env, pins_for

ROOT = Path(__file__).resolve().parents[1]


def lock_pins(env=None):
    """{name: (version, marker or None)} of the requirements.lock lines that apply in
    `env` (default: this machine). A package may have one line per platform."""
    env = default_environment() if env is None else env
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if not line or line.startswith((" ", "#")):
            continue
        req = Requirement(line)
        (spec,) = req.specifier
        assert spec.operator == "==", f"lock line not pinned: {line}"
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        name = canonicalize_name(req.name)
        assert name not in pins, f"two lock lines for {name} apply at once"
        pins[name] = (spec.version, req.marker)
    return pins


def test_lock_covers_every_dependency_of_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for platform in PLATFORMS:
        pins, env = pins_for(platform), marker_env(platform)
        for dep in project["dependencies"]:
            req = Requirement(dep)
            if req.marker is not None and not req.marker.evaluate(env):
                continue
            name = canonicalize_name(req.name)
            assert name in pins, \
                f"{name} is in pyproject.toml but not in requirements.lock for {platform}: run `python3 course.py lock`"
            assert req.specifier.contains(pins[name]), \
                f"lock has {name}=={pins[name]} on {platform}, pyproject wants {req.specifier}"
    assert project["requires-python"] == ">=3.11,<3.12"


def test_lock_pins_the_required_stack():
    pins = lock_pins()
    expected = {"tensorflow": "2.15.1", "tensorflow-privacy": "0.9.0", "cleverhans": "4.0.0",
                "lime": "0.2.0.1", "nbval": "0.11.0", "numpy": "1.26.4", "keras": "2.15.0"}
    for name, version in expected.items():
        assert pins[name][0] == version
    assert pins["jupyterlab"][0].startswith("4.")


def _pip_lines(text):
    return [l.strip()[2:].strip() for l in text.splitlines() if l.strip().startswith("- ") and
            not l.strip().startswith(("- python", "- pip", "- conda-forge"))]


def test_environment_yml_installs_exactly_the_lock_and_helpers():
    text = (ROOT / "environment.yml").read_text()
    assert re.search(r"^\s*-\s*python=3\.11\s*$", text, re.M)
    assert _pip_lines(text) == ["-r requirements.lock", "-e ."], _pip_lines(text)


def test_binder_installs_exactly_the_lock_and_helpers():
    """binder/ is what Binder reads (it then ignores environment.yml): the same lock,
    Python 3.11, and no version written anywhere else."""
    binder = ROOT / "binder"
    assert sorted(p.name for p in binder.iterdir()) == \
        ["jupyter_server_config.json", "postBuild", "requirements.txt", "runtime.txt"]
    assert (binder / "runtime.txt").read_text().strip() == "python-3.11"
    lines = [l.strip() for l in (binder / "requirements.txt").read_text().splitlines()
             if l.strip() and not l.startswith("#")]
    assert lines == ["-r ../requirements.lock", "-e ."], lines
    assert (binder / lines[0].split()[1]).resolve() == ROOT / "requirements.lock"
    assert os.access(binder / "postBuild", os.X_OK), "postBuild must be executable"


def test_jupyter_settings_exist_in_this_jupyterlab():
    """Every key of jupyter/overrides.json is a setting of the locked JupyterLab, with a valid value."""
    import jsonschema
    schemas = Path(sys.prefix) / "share" / "jupyter" / "lab" / "schemas"
    overrides = json.loads((ROOT / "jupyter" / "overrides.json").read_text())
    assert overrides["@jupyterlab/apputils-extension:notification"]["fetchNews"] == "false"
    assert overrides["@jupyterlab/notebook-extension:tracker"]["kernelShutdown"] is True
    for plugin, values in overrides.items():
        package, name = plugin.split(":")
        schema = json.loads((schemas / package / f"{name}.json").read_text())
        for key, value in values.items():
            assert key in schema["properties"], f"{plugin} has no setting {key}"
            jsonschema.validate(value, {**schema["properties"][key], "definitions": schema.get("definitions", {})})


def test_binder_culls_idle_kernels():
    from jupyter_server.services.kernels.kernelmanager import MappingKernelManager
    config = json.loads((ROOT / "binder" / "jupyter_server_config.json").read_text())
    culling = config["MappingKernelManager"]
    for key in culling:
        assert key in MappingKernelManager.class_trait_names(), key
    assert 0 < culling["cull_idle_timeout"] <= 1800 and culling["cull_connected"] is True


@pytest.mark.skipif(os.name == "nt", reason="postBuild is a bash script run by Binder on Linux")
def test_binder_post_build_merges_the_settings(tmp_path):
    server = tmp_path / "etc" / "jupyter" / "jupyter_server_config.json"
    server.parent.mkdir(parents=True)
    server.write_text(json.dumps({"ServerApp": {"allow_origin": "*"}}))
    env = dict(os.environ, NB_PYTHON_PREFIX=str(tmp_path))
    done = subprocess.run(["bash", str(ROOT / "binder" / "postBuild")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    merged = json.loads(server.read_text())
    assert merged["ServerApp"] == {"allow_origin": "*"}, "postBuild must keep the base image's settings"
    assert merged["MappingKernelManager"]["cull_connected"] is True
    lab = json.loads((tmp_path / "share" / "jupyter" / "lab" / "settings" / "overrides.json").read_text())
    assert lab == json.loads((ROOT / "jupyter" / "overrides.json").read_text())


def test_installed_environment_matches_the_lock():
    assert sys.version_info[:2] == (3, 11)
    mismatched = []
    for name, (version, marker) in lock_pins().items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            mismatched.append(f"{name} missing")
            continue
        if installed != version:
            mismatched.append(f"{name} {installed} != {version}")
    assert not mismatched, mismatched
