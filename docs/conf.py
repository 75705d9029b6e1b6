"""Sphinx configuration of the physamp documentation site.

Build it from the repository root (the ``docs`` extra installs what it needs)::

    pip install -e ".[docs]"
    python -m sphinx -W --keep-going -b html docs docs/_build/html

Warnings are errors (``-W``), and ``nitpicky`` is on, so a broken cross-reference to a
physamp object fails the build. References to other libraries' objects (torch, numpy,
dimod, ...) cannot be checked offline (no intersphinx inventories), so
``nitpick_ignore_regex`` leaves them alone.

Some pages are generated at every build by ``_ext/physamp_docs.py`` (see its docstring):
one page per registered sampler backend, one per thesis experiment, the list of API
modules, the changelog and copies of the notebooks. The notebooks are rendered with their
committed outputs and never executed (``nb_execution_mode = "off"``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(ROOT))  # the checkout's physamp, also when it is not installed

# keep the build quiet and light: one torch thread, matplotlib without a display
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import physamp  # noqa: E402

project = "physamp"
author = "the physamp authors"
copyright = "the physamp authors; Apache-2.0"
release = physamp.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_nb",  # MyST markdown pages and Jupyter notebooks (it loads myst_parser)
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # MathJax shipped with the site: equations render without a network
    "sphinx.ext.viewcode",
    "physamp_docs",
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
root_doc = "index"
exclude_patterns = [
    "_build",
    "_generated",  # included fragments, not pages
    "backend_notes",  # included into the generated backend pages
    "experiment_notes",  # included into the generated experiment pages
    "results",  # figures and tables that the experiment pages include
    "screenshots",
    "**.ipynb_checkpoints",
    "notebooks/runs",
    ".gitignore",
]
templates_path = ["_templates"]

# --- MyST and notebooks --------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist", "attrs_inline"]
myst_heading_anchors = 3
nb_execution_mode = "off"  # render the committed outputs; never run a notebook (or touch hardware)
nb_merge_streams = True

# --- autodoc ---------------------------------------------------------------------------
autosummary_generate = True  # scans the pages, api/index.md (written by physamp_docs) included
autosummary_imported_members = False
autodoc_default_options = {
    "members": True,
    "undoc-members": True,  # constants and methods without a docstring still get an entry
    "show-inheritance": True,
    # each object is documented once, in the module that defines it; a name a package
    # re-exports (``physamp.samplers.make_sampler``) resolves there (physamp_docs.py)
    "ignore-module-all": True,
}
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_class_signature = "mixed"
autoclass_content = "class"
# A method that overrides one without its own docstring shows none, rather than the
# parent's (or, for a property over a class attribute, the docstring of ``dict``).
autodoc_inherit_docstrings = False
autodoc_mock_imports: list[str] = []  # everything physamp needs is installed with it
napoleon_google_docstring = True
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_use_ivar = True  # "Attributes:" as fields: a dataclass field is documented once, by autodoc

# Known docstring problems of the package (RST errors, broken references, a missing
# docstring): the warnings raised inside these docstrings are dropped until each is fixed
# and its name removed here. Everything else is strict.
physamp_docstring_debt: list[str] = []

nitpicky = True
# Objects of other libraries (and of the standard library) cannot be resolved offline.
_EXTERNAL = (
    r"(torch|numpy|np|scipy|dimod|dwave|networkx|nx|matplotlib|PIL|dask|distributed|minorminer|openjij|"
    r"sklearn|h5py|onnx|onnxruntime|tqdm|typing|typing_extensions|collections|os|io|pathlib|dataclasses|"
    r"enum|abc|numbers|argparse|logging|threading|multiprocessing|concurrent|contextlib|datetime|json|"
    r"warnings|random|types|inspect|importlib|subprocess|socket|signal|ctypes|functools|itertools|"
    r"tempfile|sys|re|csv|math|hashlib|zipfile|tarfile|urllib|shutil|queue|weakref)(\..*)?"
)
_BUILTINS = (
    r"(int|float|str|bool|bytes|complex|dict|list|tuple|set|frozenset|object|type|None|Ellipsis|"
    r"callable|iterable|sequence|mapping|optional|Any|Callable|Iterable|Iterator|Sequence|Mapping|"
    r"Path|Tensor|ndarray|array|array_like|Generator|Module|Optimizer|Figure|Axes|Graph|"
    r"BinaryQuadraticModel|SampleSet|BQM|Vartype|Literal|ClassVar|Self|TypeVar|Protocol|"
    r"[A-Z]|[A-Z][0-9]?|T|P|device|dtype|Event|Lock|Process|Future|Client|Cluster|"
    r"\w*Error|\w*Exception|\w*Warning|KeyboardInterrupt|StopIteration|SystemExit)"
)
nitpick_ignore_regex = [
    (r"py:.*", _EXTERNAL),
    (r"py:.*", _BUILTINS),
    (r"py:.*", r"(optional|default|shape|of|or|and|\(.*|.*\))"),  # napoleon's type phrases
    (r"py:.*", r"(dict|list|tuple|set|frozenset|type)\[.*"),  # builtin generics, split at commas
    # prose that napoleon reads as a type ("rank (global): ...", "a / b: ..."): no physamp
    # class is a lowercase word or a phrase, and a qualified physamp name is still checked
    (r"py:class", r"[a-z_][a-z0-9_]*|[^.]*[ /'].*"),
]

# --- HTML ------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"physamp {release}"
html_static_path = ["_static"]
html_css_files = ["physamp.css"]
html_theme_options = {"navigation_with_keys": True}
html_show_sourcelink = False
add_module_names = False  # "GibbsSampler(...)" under its module's title, not the full dotted path
