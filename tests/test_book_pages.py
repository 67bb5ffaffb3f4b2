"""Every page of the book executes without error, as it does when the book is built.

The pages are MyST-markdown notebooks; each is read with jupytext and run with nbclient in its
own folder (as Jupyter Book runs it), so a page that raises fails here before it fails `make book`.
"""

from __future__ import annotations

import re
from pathlib import Path

import jupytext
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def toc_pages() -> list[Path]:
    """The files named in _toc.yml, in book order (``file: book/...`` entries and the root)."""
    toc = (ROOT / "_toc.yml").read_text()
    names = re.findall(r"^\s*(?:-\s*)?(?:file|root):\s*(\S+)", toc, flags=re.M)
    pages = []
    for name in names:
        path = next(
            (ROOT / f"{name}{ext}" for ext in (".md", ".ipynb") if (ROOT / f"{name}{ext}").exists()), None
        )
        assert path is not None, f"_toc.yml names {name}, which does not exist"
        pages.append(path)
    return pages


def is_notebook(page: Path) -> bool:
    return page.suffix == ".ipynb" or "```{code-cell}" in page.read_text()


def test_toc_names_existing_pages():
    pages = toc_pages()
    assert pages and pages[0].name == "intro.md"
    assert any(is_notebook(p) for p in pages)


@pytest.mark.parametrize(
    "page", [p for p in toc_pages() if is_notebook(p)], ids=lambda p: str(p.relative_to(ROOT))
)
def test_page_executes(page):
    nb = jupytext.read(page)
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(page.parent)}}
    ).execute()
    errors = [
        o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"
    ]
    assert not errors
