"""Sphinx extension of the course website: on each notebook page, a "Launch on Binder"
link (the README badge's URL, urlpath=lab/tree/notebooks/<file>) and a "Download
notebook" link to the original, executed .ipynb (copied next to the page)."""
from __future__ import annotations

import html
import shutil
from pathlib import Path
from typing import Any

BINDER = "{hub}/v2/gh/{repo}/{branch}?urlpath=lab/tree/{path}"


def binder_url(repository_url: str, branch: str, path: str, hub: str = "https://mybinder.org") -> str:
    """mybinder.org URL that opens `path` (e.g. notebooks/00_intro.ipynb) in JupyterLab."""
    prefix = "https://github.com/"
    if not repository_url.startswith(prefix):
        raise ValueError(f"repository_url must start with {prefix}, got {repository_url!r}")
    repo = repository_url[len(prefix):].strip("/")
    return BINDER.format(hub=hub.rstrip("/"), repo=repo, branch=branch, path=path)


def _settings(app: Any) -> tuple[str, str, str]:
    options = app.config.html_theme_options or {}
    hub = (options.get("launch_buttons") or {}).get("binderhub_url") or "https://mybinder.org"
    return options.get("repository_url", ""), options.get("repository_branch", "HEAD"), hub


def dedupe_scripts(app: Any, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    """Jupyter Book 1.0 and sphinx-thebe both add the same inline thebe script; declared
    twice, its `const` raises a SyntaxError in every page's console. Keep one of each."""
    seen, unique = set(), []
    for script in context.get("script_files", []):
        filename = getattr(script, "filename", script) or ""  # inline scripts: None or ""
        key = (str(filename), str(getattr(script, "attributes", {}).get("body", "")))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def add_links(app: Any, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    source = Path(app.srcdir) / (pagename + ".ipynb")
    if not pagename.startswith("notebooks/") or not source.exists() or "body" not in context:
        return
    repository, branch, hub = _settings(app)
    name = source.name
    launch = binder_url(repository, branch, f"notebooks/{name}", hub)
    context["body"] = (
        '<div class="course-links admonition tip"><p class="admonition-title">Run this notebook</p><p>'
        f'<a class="reference external course-binder" href="{html.escape(launch)}">Launch on Binder</a>'
        " (nothing to install) &middot; "
        f'<a class="reference internal course-download" href="{html.escape(name)}" download>Download notebook</a>'
        f" ({html.escape(name)}, with its outputs) &middot; or, in your copy of the course: "
        "<code>python3 course.py lab</code></p></div>\n" + context["body"])


def copy_notebooks(app: Any, exception: Exception | None) -> None:
    """Put each original notebook next to its page (the "Download notebook" target)."""
    if exception is not None or app.builder.format != "html":
        return
    root = Path(app.config.course_source_root or app.srcdir)
    target = Path(app.outdir) / "notebooks"
    for staged in sorted((Path(app.srcdir) / "notebooks").glob("*.ipynb")):
        target.mkdir(parents=True, exist_ok=True)
        original = root / "notebooks" / staged.name
        shutil.copyfile(original if original.exists() else staged, target / staged.name)


def setup(app: Any) -> dict:
    app.add_config_value("course_source_root", "", "html")
    app.connect("html-page-context", add_links)
    app.connect("html-page-context", dedupe_scripts, priority=900)
    app.connect("build-finished", copy_notebooks)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
