"""Serve MathJax from the built book instead of a CDN, so math typesets offline.

MathJax 3 comes from the ``django-static-mathjax`` wheel (plain static files, no Django needed),
pinned with the other dependencies. At the end of the build its ``es5`` folder is copied to
``_static/mathjax`` and Sphinx's ``mathjax_path`` points at the copy.
"""

from __future__ import annotations

import shutil
from importlib.resources import files
from pathlib import Path

from sphinx.application import Sphinx

MATHJAX_ENTRY = "tex-chtml.js"  # TeX input, HTML output: all the book needs


def mathjax_source() -> Path:
    """The folder of MathJax's ready-to-serve ``es5`` build inside the installed package."""
    folder = Path(str(files("mathjax"))) / "static" / "mathjax" / "es5"
    if not (folder / MATHJAX_ENTRY).exists():
        raise FileNotFoundError(f"MathJax not found at {folder}; install the pinned dependencies (make venv)")
    return folder


def _point_sphinx_at_local_copy(app: Sphinx, config) -> None:
    config.mathjax_path = f"mathjax/{MATHJAX_ENTRY}"  # relative to _static


def _copy_mathjax(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    target = Path(app.outdir) / "_static" / "mathjax"
    shutil.copytree(mathjax_source(), target, dirs_exist_ok=True)


def setup(app: Sphinx) -> dict:
    # Load MathJax on every page, not only on pages with equations: the navigation sidebar shows
    # page titles with math (e.g. "choosing $K$") on every page.
    app.set_html_assets_policy("always")
    app.connect("config-inited", _point_sphinx_at_local_copy)
    app.connect("build-finished", _copy_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
