"""The built book, opened in headless Chromium as a reader would, with no network.

Serves ``_build/html`` (built by ``make book``; ``make test`` builds it first) from a local HTTP
server and opens every page in Debian's Chromium, driven by Playwright (the Python package's
driver only, no browser download). Every request that leaves the local server is refused and
recorded. For each page it checks: no traceback in an output cell, all math typeset by the local
MathJax, every image loaded, every internal link (and its #anchor) resolves. It saves a
screenshot of each chapter's first page to ``_build/screenshots/``.

Skipped, with the command to fix it, where Chromium or the built book is missing.
"""

from __future__ import annotations

import functools
import http.server
import re
import shutil
import threading
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
SCREENSHOTS = ROOT / "_build" / "screenshots"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="needs Chromium: `apt-get install chromium` (Debian), then run `make test` again",
    ),
    pytest.mark.skipif(not (HTML / "index.html").exists(), reason="no built book: run `make book` first"),
]


def book_pages() -> list[str]:
    """Paths of the book's pages relative to _build/html (Sphinx's own index/search excluded)."""
    # index.html at the root only redirects to the intro (checked below); the intro is a page here.
    skip = {"genindex.html", "search.html", "py-modindex.html", "index.html"}
    return sorted(
        str(p.relative_to(HTML))
        for p in HTML.rglob("*.html")
        if not any(part.startswith("_") for part in p.relative_to(HTML).parts)
        and str(p.relative_to(HTML)) not in skip
    )


@functools.cache
def ids_in(page: Path) -> frozenset[str]:
    return frozenset(re.findall(r'\bid="([^"]+)"', page.read_text(encoding="utf-8")))


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep pytest output clean
        pass


@pytest.fixture(scope="module")
def site():
    handler = functools.partial(QuietHandler, directory=str(HTML))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


@pytest.fixture(scope="module")
def browser():
    playwright_sync = pytest.importorskip("playwright.sync_api")
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def outside_requests():
    return []


@pytest.fixture(scope="module")
def context(browser, site, outside_requests):
    context = browser.new_context(viewport={"width": 1280, "height": 900})

    def route(route):
        if route.request.url.startswith(site):
            route.continue_()
        else:
            outside_requests.append(route.request.url)
            route.abort()

    context.route("**/*", route)
    yield context
    context.close()


# JavaScript run in each page once it has loaded and MathJax has finished.
CHECK_PAGE = """() => {
  const report = {tracebacks: [], untypeset: [], rawMath: [], brokenImages: [], links: []};
  for (const out of document.querySelectorAll('.cell_output, .output')) {
    const text = out.innerText;
    if (/Traceback \\(most recent call last\\)/.test(text)) report.tracebacks.push(text.slice(0, 300));
  }
  for (const m of document.querySelectorAll('span.math, div.math')) {
    if (!m.querySelector('mjx-container')) report.untypeset.push(m.textContent.slice(0, 80));
  }
  const root = document.querySelector('main') || document.body || document.documentElement;
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    if (node.parentElement.closest('pre, code, script, style, mjx-container, .highlight')) continue;
    if (/\\$\\$|\\\\\\(|\\\\\\[/.test(node.textContent)) report.rawMath.push(node.textContent.slice(0, 80));
  }
  for (const img of document.images) {
    if (!img.complete || img.naturalWidth === 0) report.brokenImages.push(img.getAttribute('src'));
  }
  for (const a of document.querySelectorAll('a[href]')) report.links.push(a.href);
  return report;
}"""


@pytest.mark.parametrize("page", book_pages())
def test_page_in_browser(context, site, page):
    tab = context.new_page()
    try:
        tab.goto(site + page, wait_until="load")
        # Wait until the local MathJax has typeset the page (pages without math have nothing to wait for).
        tab.wait_for_function(
            "() => !document.querySelector('span.math, div.math') || "
            "(window.MathJax && MathJax.startup && MathJax.startup.promise && "
            "document.querySelectorAll('mjx-container').length > 0)",
            timeout=30_000,
        )
        tab.evaluate("() => window.MathJax && MathJax.startup ? MathJax.startup.promise : null")
        report = tab.evaluate(CHECK_PAGE)
        if re.fullmatch(r"book/ch\d\d_\w+/index\.html|book/intro\.html", page):
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            name = page.replace("/", "_").removesuffix(".html")
            tab.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=False)
    finally:
        tab.close()

    assert not report["tracebacks"], f"{page}: an output cell shows a traceback"
    assert not report["untypeset"], f"{page}: math not typeset: {report['untypeset'][:3]}"
    assert not report["rawMath"], f"{page}: raw TeX delimiters in the text: {report['rawMath'][:3]}"
    assert not report["brokenImages"], f"{page}: images that did not load: {report['brokenImages']}"

    broken = []
    for href in report["links"]:
        if not href.startswith(site):
            continue  # launch buttons and citations point outside; they are links, not requests
        url, fragment = urldefrag(href)
        target = HTML / unquote(urlparse(url).path).lstrip("/")
        if target.is_dir():
            target = target / "index.html"
        if not target.exists():
            broken.append(href)
        elif fragment and target.suffix == ".html" and fragment not in ids_in(target):
            broken.append(href)
    assert not broken, f"{page}: internal links that do not resolve: {broken}"


def test_root_redirects_to_the_intro():
    assert "url=book/intro.html" in (HTML / "index.html").read_text(encoding="utf-8")


def test_no_request_leaves_the_site(context, site, outside_requests):
    """Runs after the pages (same module): nothing they loaded came from outside."""
    assert book_pages(), "the book has no pages"
    assert not outside_requests, f"pages requested outside resources: {sorted(set(outside_requests))}"
