"""Sphinx configuration of the zerodce-jax documentation.

Build (warnings are errors, as in CI)::

    pip install -e ".[docs]"
    python -m sphinx -W --keep-going -b html docs /tmp/docs_html

Pages are Markdown (MyST); the API reference is generated from the
docstrings (Google style, read by napoleon). The tables in ``results/`` are
written by ``python -m benchmarks.report`` and included by the pages.
"""

import os
import sys

# The package is imported from the checkout this file lives in (autodoc).
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__),
                                                "..")))
# Importing the package must not grab an accelerator or spread devices.
os.environ.setdefault("JAX_PLATFORMS", "cpu")

project = "zerodce-jax"
author = "zerodce-jax contributors"
copyright = "zerodce-jax contributors; Apache-2.0"  # noqa: A001

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
# Fragments are included by the pages, not pages of their own.
exclude_patterns = ["_build", "results/*.md", "bundled_model*",
                    "**/.ipynb_checkpoints"]

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

autodoc_default_options = {
    "members": True,
    "undoc-members": False,
    "show-inheritance": True,
}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
# "Attributes:" sections as fields of the class, so that the dataclass
# fields autodoc lists are not described twice.
napoleon_use_ivar = True

html_theme = "alabaster"
html_title = "zerodce-jax"
