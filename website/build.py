"""Build the course website: `python3 course.py site` runs this in .venv-site.

    python website/build.py [--out PARENT] [--strict]

1. Stage the book in PARENT/_build/source (PARENT defaults to the repository root):
   website/_config.yml and course_links.py; index.md, the landing page, from the
   README's introduction and its notebook table; every notebooks/[0-9][0-9]_*.ipynb
   (globbed, in file-name order: a new notebook appears with no change here); and
   every instructors/*.md ("For instructors": index.md first, then
   running_the_course.md, then the per-notebook pages in notebook order, then any
   other page). _toc.yml is written from those globs. Relative links to repository
   files that are not on the site (../datasets/README.md, ../helpers/dp.py) are
   pointed at the repository on GitHub in the staged copies.
2. Run Jupyter Book 1.x (Sphinx) on it, without executing any notebook, into
   PARENT/_build/html; the full log goes to PARENT/_build/build.log, and every
   Sphinx warning is printed again at the end. --strict fails on any warning.

Only the standard library is used here, so the tests can import the staging
functions from the course's own venv.
"""
from __future__ import annotations

import argparse
import json
import os
import posixpath
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"
REPOSITORY = "https://github.com/secure-ai-notebooks/secure-ai-notebooks"
# Markdown link or image target: [text](target "title") -> target (no spaces inside).
LINK = re.compile(r"(\]\()(<?)([^)\s>]+)(>?)((?:\s+\"[^\"]*\")?\))")
# A Sphinx warning line: "path:line: WARNING: message [type.subtype]".
WARNING = re.compile(r"^(?P<where>.*?): (?P<level>WARNING|ERROR|CRITICAL): (?P<message>.*)$")


def notebook_files(root: Path = ROOT) -> list[Path]:
    """The course's notebooks in reading order (notebooks/NN_topic.ipynb)."""
    return sorted((root / "notebooks").glob(NOTEBOOK_GLOB))


def instructor_files(root: Path = ROOT) -> list[Path]:
    """instructors/*.md in site order: index.md, running_the_course.md, the pages named
    like a notebook (NN_topic.md) in notebook order, then any other page by name."""
    pages = sorted((root / "instructors").glob("*.md"))
    def rank(path: Path) -> tuple[int, str]:
        if path.name == "index.md":
            return 0, ""
        if path.name == "running_the_course.md":
            return 1, ""
        return (2 if re.match(r"\d\d_", path.name) else 3), path.name
    return sorted(pages, key=rank)


def rewrite_links(text: str, page: str, site_files: set[str], repository: str = REPOSITORY) -> str:
    """Point relative Markdown links of `page` (a repository path such as
    notebooks/00_intro.ipynb) that leave the site at the file on GitHub; links to
    pages of the site (`site_files`, repository paths), anchors and URLs stay."""
    def fix(match: re.Match) -> str:
        target = match.group(3)
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) or target.startswith(("#", "/")):
            return match.group(0)
        path, _, anchor = target.partition("#")
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(page), path))
        if resolved.startswith("..") or resolved in site_files or not path:
            return match.group(0)
        url = f"{repository}/blob/HEAD/{resolved}" + (f"#{anchor}" if anchor else "")
        return match.group(1) + match.group(2) + url + match.group(4) + match.group(5)
    return LINK.sub(fix, text)


def notebook_title(path: Path) -> str:
    """The first Markdown heading of a notebook (its title), without the #."""
    for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
        if cell["cell_type"] == "markdown":
            for line in "".join(cell["source"]).splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return path.stem


def landing_page(readme: str, notebooks: list[Path], instructors: list[Path], site_files: set[str]) -> str:
    """index.md: the README's title, introduction and notebook table (up to the next
    section; the Binder badge, an external image, is left out), a reading list built
    from the notebooks, and a pointer to the instructor's guide."""
    lines = readme.splitlines()
    out: list[str] = []
    seen_notebooks = False
    for line in lines:
        if line.startswith("## "):
            if seen_notebooks:
                break
            seen_notebooks = line.strip() == "## Notebooks"
        if line.startswith("[![") and "badge" in line:
            continue
        out.append(line)
    text = rewrite_links("\n".join(out).strip() + "\n", "README.md", site_files)
    text += "\n## Read the course\n\n"
    for nb in notebooks:
        text += f"1. [{notebook_title(nb)}](notebooks/{nb.name})\n"
    text += ("\nEach page shows the notebook as committed, executed, with its outputs; each has a "
             "**Launch on Binder** link (nothing to install) and a **Download notebook** link. To run the "
             "course on your machine: `python3 course.py lab` in a clone of the repository.\n")
    if instructors:
        text += (f"\n## For instructors\n\nThe [instructor's guide](instructors/{instructors[0].name}): "
                 "a 90-minute plan for each notebook, likely misconceptions, discussion questions with model "
                 "answers, and how to run the course (local install, Binder, offline classrooms).\n")
    return text


def table_of_contents(notebooks: list[Path], instructors: list[Path]) -> dict:
    """_toc.yml (JSON is YAML) for Jupyter Book's jb-book format."""
    parts = [{"caption": "Course", "chapters": [{"file": f"notebooks/{nb.stem}"} for nb in notebooks]}]
    if instructors:
        first, rest = instructors[0], instructors[1:]
        chapter: dict = {"file": f"instructors/{first.stem}"}
        if first.name == "index.md" and rest:
            chapter["sections"] = [{"file": f"instructors/{p.stem}"} for p in rest]
            chapters = [chapter]
        else:
            chapters = [{"file": f"instructors/{p.stem}"} for p in instructors]
        parts.append({"caption": "For instructors", "chapters": chapters})
    return {"format": "jb-book", "root": "index", "parts": parts}


def stage(source: Path, root: Path = ROOT) -> dict:
    """Write the book's sources into `source` (emptied first); returns the toc."""
    if source.exists():
        shutil.rmtree(source)
    (source / "notebooks").mkdir(parents=True)
    notebooks, instructors = notebook_files(root), instructor_files(root)
    if not notebooks:
        raise ValueError(f"no notebooks matching notebooks/{NOTEBOOK_GLOB} under {root}")
    site_files = {f"notebooks/{p.name}" for p in notebooks} | {f"instructors/{p.name}" for p in instructors}
    for nb in notebooks:
        data = json.loads(nb.read_text(encoding="utf-8"))
        for cell in data["cells"]:
            if cell["cell_type"] == "markdown":
                cell["source"] = rewrite_links("".join(cell["source"]), f"notebooks/{nb.name}", site_files)
        (source / "notebooks" / nb.name).write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")
    if instructors:
        (source / "instructors").mkdir()
    for page in instructors:
        text = rewrite_links(page.read_text(encoding="utf-8"), f"instructors/{page.name}", site_files)
        (source / "instructors" / page.name).write_text(text, encoding="utf-8")
    (source / "index.md").write_text(
        landing_page((root / "README.md").read_text(encoding="utf-8"), notebooks, instructors, site_files),
        encoding="utf-8")
    config = (HERE / "_config.yml").read_text(encoding="utf-8")
    # Where the "Download notebook" link's original .ipynb files are (course_links.py).
    config = config.replace("  config:\n", f"  config:\n    course_source_root: {json.dumps(str(root))}\n", 1)
    (source / "_config.yml").write_text(config, encoding="utf-8")
    shutil.copyfile(HERE / "course_links.py", source / "course_links.py")
    toc = table_of_contents(notebooks, instructors)
    (source / "_toc.yml").write_text(json.dumps(toc, indent=2) + "\n", encoding="utf-8")
    return toc


def warnings_in(log: str) -> list[str]:
    """The Sphinx warning and error lines of a build log."""
    return [line for line in log.splitlines() if WARNING.match(line)]


def build(parent: Path, strict: bool = False) -> int:
    """Stage and build the site into parent/_build/html; returns the build's exit code."""
    out = parent / "_build"
    source = out / "source"
    started = time.monotonic()
    stage(source)
    jupyter_book = Path(sys.executable).parent / ("jupyter-book.exe" if os.name == "nt" else "jupyter-book")
    cmd = [str(jupyter_book), "build", str(source), "--path-output", str(parent), "--builder", "html"]
    if strict:
        cmd += ["--warningiserror", "--keep-going"]
    print("+", " ".join(cmd), flush=True)
    env = dict(os.environ, PYTHONPATH=str(source))  # course_links.py is importable
    result = subprocess.run(cmd, cwd=source, env=env, capture_output=True, text=True)
    log = result.stdout + result.stderr
    (out / "build.log").write_text(log, encoding="utf-8")
    warnings = warnings_in(log)
    for line in warnings:
        print(line)
    seconds = time.monotonic() - started
    print(f"{len(warnings)} warning(s); full log in {out / 'build.log'}; {seconds:.0f} s", flush=True)
    if result.returncode != 0:
        print(log[-4000:], file=sys.stderr)
        return result.returncode
    print(f"Site built: {out / 'html' / 'index.html'}")
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT, help="build into OUT/_build (default: the repository)")
    parser.add_argument("--strict", action="store_true", help="fail on any Sphinx warning")
    args = parser.parse_args(argv)
    return build(args.out.resolve(), strict=args.strict)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
