"""The course website (`python3 course.py site`, website/): it builds from the committed
notebooks without warnings that matter, every notebook and instructor page is there with
its Binder and download links, every internal link and anchor resolves, and nothing is
loaded from the network (MathJax is a local copy).

The build runs once per session (tests/site_build.py), into a temporary folder, with the
tools of .venv-site; the staging functions of website/build.py are tested directly."""
from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from bs4 import BeautifulSoup

from tests.site_build import ROOT, built_site, load_builder

build = load_builder()
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
INSTRUCTORS = sorted((ROOT / "instructors").glob("*.md"))
BINDER = "https://mybinder.org/v2/gh/secure-ai-notebooks/secure-ai-notebooks/HEAD?urlpath=lab/tree/notebooks/{}"

# Sphinx warnings that mean a reader meets something broken: a link or reference that
# goes nowhere, a missing image, a page left out of (or missing from) the navigation,
# Markdown that did not parse as intended.
MATTERS = re.compile(
    r"reference|xref|target|image|figure|not readable|toctree|document isn't included|nonexisting"
    r"|does not exist|not found|unknown|undefined label|duplicate label|could not|failed|Unknown directive"
    r"|Unknown interpreted|Inline .* start-string without end-string|mime type", re.IGNORECASE)


def warnings_that_matter(log: str) -> list[str]:
    return [line for line in build.warnings_in(log) if MATTERS.search(line)]


@lru_cache(maxsize=None)
def soup(path: Path) -> BeautifulSoup:
    return BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


def html_pages(html: Path) -> list[Path]:
    return sorted(p for p in html.rglob("*.html") if "_static" not in p.parts and "_sources" not in p.parts)


# --------------------------------------------------------------- staging, no build

def test_warning_filter_catches_broken_references_and_images():
    log = "\n".join([
        "/b/notebooks/00_intro.ipynb:10002: WARNING: 'myst' cross-reference target not found: 'x' [myst.xref_missing]",
        "/b/instructors/a.md:3: WARNING: image file not readable: fig.png [image.not_readable]",
        "/b/index.md: WARNING: toctree contains reference to nonexisting document 'foo'",
        "/b/instructors/b.md:1: WARNING: Non-consecutive header level increase; H1 to H3 [myst.header]",
        "reading sources... [ 50%] notebooks/00_intro"])
    assert len(build.warnings_in(log)) == 4
    assert len(warnings_that_matter(log)) == 3


def test_links_leaving_the_site_point_at_the_repository():
    site_files = {"notebooks/00_intro.ipynb", "notebooks/01_dp.ipynb", "instructors/index.md"}
    text = ("[next](01_dp.ipynb) [data](../datasets/README.md#wdbc) [web](https://example.org/a.md) "
            "[top](#goals) [guide](../instructors/index.md) ![fig](../docs/fig.png \"title\")")
    out = build.rewrite_links(text, "notebooks/00_intro.ipynb", site_files)
    assert "[next](01_dp.ipynb)" in out and "[top](#goals)" in out and "[guide](../instructors/index.md)" in out
    assert "[web](https://example.org/a.md)" in out
    assert "[data](https://github.com/secure-ai-notebooks/secure-ai-notebooks/blob/HEAD/datasets/README.md#wdbc)" in out
    assert '![fig](https://github.com/secure-ai-notebooks/secure-ai-notebooks/blob/HEAD/docs/fig.png "title")' in out


def _fake_course(root: Path, notebooks: list[str], instructors: list[str]) -> None:
    (root / "notebooks").mkdir(parents=True)
    (root / "instructors").mkdir()
    for name in notebooks:
        cells = [{"cell_type": "markdown", "metadata": {}, "source": [f"# Title of {name}\n", "[data](../datasets/README.md)"]}]
        (root / "notebooks" / name).write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4,
                                                          "nbformat_minor": 5}))
    for name in instructors:
        (root / "instructors" / name).write_text(f"# {name}\n")
    (root / "notebooks" / "scratch.ipynb").write_text("{}")  # not NN_*: not on the site
    (root / "README.md").write_text("# Course\n\n[![badge](https://mybinder.org/badge_logo.svg)](https://x)\n\n"
                                    "Intro text.\n\n## Notebooks\n\n| a |\n|---|\n| [`x`](notebooks/00_a.ipynb) |\n\n"
                                    "## Two commands\n\nnot on the landing page\n")


def test_a_new_notebook_and_instructor_page_appear_without_configuration(tmp_path):
    _fake_course(tmp_path, ["00_a.ipynb", "01_b.ipynb", "06_new.ipynb"],
                 ["06_new.md", "00_a.md", "running_the_course.md", "index.md", "zz_extra.md"])
    toc = build.stage(tmp_path / "_build" / "source", root=tmp_path)
    course = toc["parts"][0]["chapters"]
    assert [c["file"] for c in course] == ["notebooks/00_a", "notebooks/01_b", "notebooks/06_new"]
    guide = toc["parts"][1]
    assert guide["caption"] == "For instructors" and guide["chapters"][0]["file"] == "instructors/index"
    assert [s["file"] for s in guide["chapters"][0]["sections"]] == [
        "instructors/running_the_course", "instructors/00_a", "instructors/06_new", "instructors/zz_extra"]
    source = tmp_path / "_build" / "source"
    index = (source / "index.md").read_text()
    assert index.startswith("# Course") and "Intro text." in index and "badge" not in index
    assert "not on the landing page" not in index and "[Title of 06_new.ipynb](notebooks/06_new.ipynb)" in index
    staged = json.loads((source / "notebooks" / "06_new.ipynb").read_text())
    assert "blob/HEAD/datasets/README.md" in staged["cells"][0]["source"]
    assert not (source / "notebooks" / "scratch.ipynb").exists()
    assert json.loads((source / "_toc.yml").read_text()) == toc


def test_without_instructor_pages_the_site_has_no_instructor_part(tmp_path):
    _fake_course(tmp_path, ["00_a.ipynb"], [])
    toc = build.stage(tmp_path / "src", root=tmp_path)
    assert [part["caption"] for part in toc["parts"]] == ["Course"]


# --------------------------------------------------------------- the real build

def test_site_builds_without_warnings_that_matter():
    site = built_site()
    bad = warnings_that_matter(site.log)
    assert not bad, "build warnings:\n" + "\n".join(bad)
    print(f"site built in {site.seconds:.1f} s; {len(build.warnings_in(site.log))} warning(s) in all")


def test_every_notebook_has_a_page_with_binder_and_download_links():
    site = built_site()
    assert NOTEBOOKS, "no notebooks found"
    for nb in NOTEBOOKS:
        page = site.html / "notebooks" / f"{nb.stem}.html"
        assert page.exists(), f"no page for {nb.name}"
        doc = soup(page)
        title = build.notebook_title(nb)
        assert doc.find("h1") is not None and title.split(",")[0] in doc.find("h1").get_text(), (nb.name, title)
        binder = doc.select_one("a.course-binder")
        assert binder is not None and binder["href"] == BINDER.format(nb.name)
        download = doc.select_one("a.course-download")
        assert download is not None and download["href"] == nb.name and download.has_attr("download")
        copy = page.parent / nb.name
        assert copy.read_bytes() == nb.read_bytes(), f"the downloadable {nb.name} is not the committed notebook"
        figures = sum(1 for cell in json.loads(nb.read_text(encoding="utf-8"))["cells"]
                      for output in cell.get("outputs", []) if "image/png" in output.get("data", {}))
        rendered = doc.find_all("img", src=re.compile(r"_images/"))
        assert len(rendered) >= figures, f"{nb.name}: {figures} figures in the notebook, {len(rendered)} on the page"
        for img in rendered:
            assert (page.parent / img["src"]).stat().st_size > 1000, img["src"]


def test_notebooks_are_in_order_with_previous_and_next_links():
    site = built_site()
    pages = [site.html / "notebooks" / f"{nb.stem}.html" for nb in NOTEBOOKS]
    for before, after in zip(pages, pages[1:]):
        nxt = soup(before).select_one("a.right-next")
        assert nxt is not None and (before.parent / nxt["href"]).resolve() == after.resolve(), before.name
        prev = soup(after).select_one("a.left-prev")
        assert prev is not None and (after.parent / prev["href"]).resolve() == before.resolve(), after.name
    nav = [a["href"] for a in soup(site.html / "index.html").select("nav.bd-links a.reference.internal")]
    order = [h for h in nav if h.startswith("notebooks/")]
    assert order == [f"notebooks/{nb.stem}.html" for nb in NOTEBOOKS], order


def test_landing_page_and_instructor_pages():
    site = built_site()
    index = soup(site.html / "index.html")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first_sentence = re.search(r"^A hands-on course.*?\.", readme, re.M | re.S).group(0)
    plain = re.sub(r"[*`\[\]]", "", " ".join(first_sentence.split()))
    assert plain in " ".join(index.get_text().split())
    links = {a["href"] for a in index.find_all("a", href=True)}
    for nb in NOTEBOOKS:
        assert f"notebooks/{nb.stem}.html" in links
    for page in INSTRUCTORS:
        assert (site.html / "instructors" / f"{page.stem}.html").exists(), f"no page for instructors/{page.name}"
    if INSTRUCTORS:
        captions = [c.get_text(strip=True) for c in index.select("p.caption, .caption-text")]
        assert "For instructors" in captions, captions
        assert any(h.startswith("instructors/") for h in links)


def test_search_page_and_index():
    site = built_site()
    assert (site.html / "search.html").exists()
    index = (site.html / "searchindex.js").read_text(encoding="utf-8")
    for word in ("laplac", "membership", "adversari"):  # stemmed terms from the notebooks
        assert f'"{word}' in index, word


def _local_target(page: Path, ref: str, html: Path) -> tuple[Path, str] | None:
    parsed = urlparse(ref)
    if parsed.scheme or parsed.netloc or ref.startswith(("mailto:", "javascript:", "data:")):
        return None
    path = unquote(parsed.path)
    target = page if not path else (html / path.lstrip("/") if path.startswith("/") else page.parent / path)
    if target.is_dir():
        target = target / "index.html"
    return target.resolve(), parsed.fragment


def test_every_internal_link_and_anchor_resolves():
    site = built_site()
    broken, checked = [], 0
    ids: dict[Path, set[str]] = {}
    for page in html_pages(site.html):
        doc = soup(page)
        refs = [a["href"] for a in doc.find_all("a", href=True)] + \
               [t["src"] for t in doc.find_all(["img", "script"], src=True)] + \
               [t["href"] for t in doc.find_all("link", href=True)]
        for ref in refs:
            found = _local_target(page, ref, site.html)
            if found is None:
                continue
            target, fragment = found
            checked += 1
            if not target.exists():
                broken.append(f"{page.relative_to(site.html)}: {ref} (no such file)")
                continue
            if fragment and target.suffix == ".html":
                if target not in ids:
                    ids[target] = {t["id"] for t in soup(target).find_all(id=True)}
                if fragment not in ids[target]:
                    broken.append(f"{page.relative_to(site.html)}: {ref} (no anchor #{fragment})")
    assert checked > 500, checked
    assert not broken, f"{len(broken)} broken internal links:\n" + "\n".join(broken[:40])


def test_nothing_is_loaded_from_the_network_and_mathjax_is_local():
    site = built_site()
    external = []
    math_pages = 0
    for page in html_pages(site.html):
        doc = soup(page)
        for tag, attr in (("script", "src"), ("img", "src"), ("link", "href"), ("iframe", "src")):
            for t in doc.find_all(tag, **{attr: True}):
                if tag == "link" and not set(t.get("rel", [])) & {"stylesheet", "icon", "preload", "modulepreload"}:
                    continue
                if urlparse(t[attr]).scheme in {"http", "https"} or t[attr].startswith("//"):
                    external.append(f"{page.relative_to(site.html)}: <{tag} {attr}={t[attr]}>")
        mathjax = [s["src"] for s in doc.find_all("script", src=True) if "mathjax" in s["src"].lower()]
        if mathjax:
            math_pages += 1
            assert all(urlparse(m).path.endswith("_static/mathjax/tex-chtml.js") for m in mathjax), mathjax
    assert not external, "\n".join(external)
    assert math_pages >= 2, "no page loads MathJax: is the math rendered?"
    assert (site.html / "_static" / "mathjax" / "tex-chtml.js").stat().st_size > 100_000
    fonts = list((site.html / "_static" / "mathjax").rglob("*.woff"))
    assert fonts, "MathJax's CHTML fonts were not copied"
