"""Open pages in headless Chromium and report what a reader would see, as JSON.

Runs in .venv-site (Playwright), driving Debian's /usr/bin/chromium; Playwright
never downloads a browser here. tests/test_browser.py runs it and asserts on the
report, so the checks themselves stay in the test.

    python website/browser_check.py page URL SCREENSHOT.png
        -> {"url", "title", "text", "raw_math", "math_rendered", "images": [{src, width, height}],
            "console_errors", "page_errors", "failed_requests", "external_requests", "search_results"}
    python website/browser_check.py lab URL SCREENSHOT.png
        -> {"url", "title", "kernel_status", "notebook_tab", "external_requests", ...}

Every request that does not go to file:// or 127.0.0.1/localhost is blocked and
listed in external_requests: the site must work with no network.
"""
from __future__ import annotations

import json
import re
import sys
import tempfile
import time
from urllib.parse import urlparse

from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}


def is_local(url: str) -> bool:
    parsed = urlparse(url)
    return parsed.scheme in {"file", "data", "blob", "about"} or parsed.hostname in LOCAL_HOSTS


def open_browser(playwright, profile: str):
    """Chromium with the course's flags and a fresh profile (persistent context: --user-data-dir)."""
    return playwright.chromium.launch_persistent_context(
        profile, executable_path=CHROMIUM, headless=True, args=FLAGS,
        viewport={"width": 1280, "height": 900}, ignore_default_args=["--enable-automation"])


def watch(page) -> dict:
    """Collect console errors, page errors, failed and external requests of `page`."""
    report = {"console_errors": [], "page_errors": [], "failed_requests": [], "external_requests": []}
    page.on("console", lambda m: m.type == "error" and report["console_errors"].append(m.text))
    page.on("pageerror", lambda e: report["page_errors"].append(str(e)))
    page.on("requestfailed", lambda r: is_local(r.url) and report["failed_requests"].append(
        f"{r.url}: {r.failure}"))

    def route(route):
        if is_local(route.request.url):
            route.continue_()
        else:
            report["external_requests"].append(route.request.url)
            route.abort()
    page.route("**/*", route)
    return report


def check_page(url: str, screenshot: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile, sync_playwright() as p:
        context = open_browser(p, profile)
        page = context.new_page()
        report = watch(page)
        page.goto(url, wait_until="load")
        # MathJax 3 typesets after load; wait for it when the page loads it.
        if page.evaluate("() => !!document.querySelector('script[src*=\"mathjax\"]')"):
            page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=30000)
            page.evaluate("() => MathJax.startup.promise")
        page.wait_for_load_state("networkidle")
        if "search.html?q=" in url:  # Sphinx's search runs in the page, from searchindex.js
            page.wait_for_selector("#search-results ul.search li", timeout=30000)
        report["search_results"] = page.evaluate("() => document.querySelectorAll('ul.search li').length")
        images = page.evaluate("""() => Array.from(document.images).map(img => ({
            src: img.getAttribute('src').slice(0, 120), width: img.naturalWidth, height: img.naturalHeight,
            visible: !!(img.offsetWidth || img.offsetHeight || img.getClientRects().length)}))""")
        text = page.inner_text("article") if page.query_selector("article") else page.inner_text("body")
        report.update(
            url=url, title=page.title(), text=text, images=images,
            math_rendered=page.evaluate("() => document.querySelectorAll('mjx-container').length"),
            math_errors=page.evaluate("() => document.querySelectorAll('mjx-merror, [data-mjx-error]').length"),
            links=page.evaluate("() => Array.from(document.querySelectorAll('a[href]')).map(a => a.href)"))
        page.screenshot(path=screenshot, full_page=False)
        # Two more views, for a person to look at: the first displayed formula, the first figure.
        extra = []
        for suffix, selector in (("-math", "mjx-container[display='true'], mjx-container"), ("-figure", "img[src*='_images/']")):
            element = page.query_selector(selector)
            if element is not None:
                element.scroll_into_view_if_needed()
                path = screenshot[:-4] + suffix + ".png" if screenshot.endswith(".png") else screenshot + suffix
                page.screenshot(path=path)
                extra.append(path)
        report["screenshots"] = [screenshot, *extra]
        context.close()
    return report


def check_lab(url: str, screenshot: str, timeout: float = 120.0) -> dict:
    """Open a notebook in JupyterLab and wait until its kernel reports Idle in the status bar."""
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile, sync_playwright() as p:
        context = open_browser(p, profile)
        page = context.new_page()
        report = watch(page)
        page.goto(url, wait_until="domcontentloaded")
        deadline = time.monotonic() + timeout
        state = {}
        while time.monotonic() < deadline:
            # The status bar's kernel item reads "Python 3 (ipykernel) | Idle" once the
            # kernel started ("No Kernel | Initializing" before); the notebook's first
            # heading is rendered once the document loaded.
            state = page.evaluate("""() => {
                const bar = document.querySelector('#jp-main-statusbar');
                const heading = document.querySelector('.jp-Notebook .jp-RenderedMarkdown h1');
                return {statusbar: bar ? bar.innerText.replace(/\\s+/g, ' ') : '',
                        heading: heading ? heading.innerText : ''};
            }""")
            if re.search(r"\(ipykernel\) \| Idle", state["statusbar"]) and state["heading"]:
                break
            time.sleep(1)
        page.wait_for_timeout(500)
        tab = page.evaluate("""() => Array.from(document.querySelectorAll('.lm-TabBar-tabLabel'))
                                      .map(t => t.textContent)""")
        cells = page.evaluate("() => document.querySelectorAll('.jp-Notebook .jp-Cell').length")
        report.update(url=url.split("?")[0], title=page.title(), kernel_status=state.get("statusbar", ""),
                      heading=state.get("heading", ""), tabs=tab, cells=cells)
        page.screenshot(path=screenshot)
        context.close()
    return report


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] not in {"page", "lab"}:
        print(__doc__, file=sys.stderr)
        return 2
    kind, url, screenshot = argv
    report = check_page(url, screenshot) if kind == "page" else check_lab(url, screenshot)
    json.dump(report, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
