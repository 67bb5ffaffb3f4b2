"""Every page in the table of contents was executed and built into HTML.

`make test` builds the book first (`make book`: every page executed, any error or warning fails the
build); these checks make sure the build covered every page of _toc.yml and that the executed
pages kept their outputs. The pages are then read in a browser by test_book_browser.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"

pytestmark = pytest.mark.skipif(not (HTML / "index.html").exists(), reason="no built book: run `make book`")


def toc_pages() -> list[Path]:
    """The source files named in _toc.yml (``file:`` entries and the root), in book order."""
    names = re.findall(r"^\s*(?:-\s*)?(?:file|root):\s*(\S+)", (ROOT / "_toc.yml").read_text(), flags=re.M)
    pages = []
    for name in names:
        found = [ROOT / f"{name}{ext}" for ext in (".md", ".ipynb") if (ROOT / f"{name}{ext}").exists()]
        assert found, f"_toc.yml names {name}, which does not exist"
        pages.append(found[0])
    return pages


def is_notebook(page: Path) -> bool:
    return page.suffix == ".ipynb" or "```{code-cell}" in page.read_text()


@pytest.mark.parametrize("page", toc_pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_page_was_built(page):
    html = HTML / page.relative_to(ROOT).with_suffix(".html")
    assert html.exists(), f"{page} is in _toc.yml but {html} was not built"
    assert html.stat().st_mtime >= page.stat().st_mtime, f"{html} is older than {page}: run `make book`"
    if is_notebook(page):
        text = html.read_text(encoding="utf-8")
        assert "cell_output" in text, f"{html} shows no executed output"
        assert "Traceback (most recent call last)" not in text
