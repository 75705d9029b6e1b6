"""The documentation site: its generated pages say what the code declares.

The default tests run the page generators of ``docs/_ext/physamp_docs.py`` into a temporary
folder (no Sphinx build): every registered backend gets a page listing its declared
options, a backend whose module cannot be imported still gets one, every experiment of
``EXPERIMENTS`` is on the thesis page, and the known-docstring-problem list of
``docs/conf.py`` names objects that exist. The slow test builds the whole site with
warnings as errors and takes a screenshot of it with headless Chromium.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"


@pytest.fixture(scope="module")
def docs_ext():
    """``docs/_ext/physamp_docs.py``, the site's generators (they need physamp, not Sphinx)."""
    spec = importlib.util.spec_from_file_location("physamp_docs", DOCS / "_ext" / "physamp_docs.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["physamp_docs"] = module  # its dataclasses resolve their annotations there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("physamp_docs", None)


def test_every_backend_gets_a_page_with_its_declared_options(docs_ext, tmp_path):
    from physamp.samplers.registry import available_samplers

    infos = docs_ext.write_backend_pages(tmp_path)
    assert sorted(infos) == sorted(available_samplers())
    for name, info in infos.items():
        page = (tmp_path / "backends" / f"{name}.md").read_text(encoding="utf-8")
        assert f"# `{name}`" in page
        if info.cls is None:  # e.g. an optional dependency missing here: the page says so
            assert "could not be imported" in page
            continue
        for option in info.declarations.get("parameters") or {}:
            assert f"``{option}``" in page, (name, option)
        for option in info.options:
            assert f"``{option['name']}``" in page, (name, option["name"])
        assert f".. autoclass:: {info.cls.__module__}.{info.cls.__qualname__}" in page
        steps = info.declarations.get("steps_option")
        if steps:
            assert f"`{steps}`" in page
    table = (tmp_path / "_generated" / "backends_table.md").read_text(encoding="utf-8")
    for name in infos:
        assert f"<backends/{name}>" in table


def test_a_backend_that_does_not_import_still_gets_a_page(docs_ext, tmp_path, monkeypatch):
    from physamp.samplers import registry

    monkeypatch.setitem(registry._REGISTERED, "docs-test-missing", "physamp.no_such_module:Nothing")
    infos = docs_ext.write_backend_pages(tmp_path)
    page = (tmp_path / "backends" / "docs-test-missing.md").read_text(encoding="utf-8")
    assert infos["docs-test-missing"].cls is None
    assert "could not be imported" in page and "physamp.no_such_module" in page
    assert "autoclass" not in page  # nothing that would fail the build


def test_every_registered_backend_has_hand_written_notes():
    from physamp.samplers.registry import available_samplers

    missing = [n for n in available_samplers() if not (DOCS / "backend_notes" / f"{n}.md").exists()]
    assert not missing, f"write docs/backend_notes/NAME.md (when to use it, traps) for: {missing}"


def test_every_experiment_appears_on_the_thesis_page(docs_ext, tmp_path):
    from physamp.experiments import EXPERIMENTS

    docs_ext.write_experiment_pages(tmp_path)
    table = (tmp_path / "_generated" / "experiments_table.md").read_text(encoding="utf-8")
    for name in EXPERIMENTS:
        assert f"`physamp experiment {name}`" in table, name
        assert f"experiments/{name}\n" in table, name  # in the toctree
        page = (tmp_path / "experiments" / f"{name}.md").read_text(encoding="utf-8")
        assert f"physamp experiment {name}" in page
        assert (DOCS / "experiment_notes" / f"{name}.md").exists(), f"docs/experiment_notes/{name}.md"


def test_api_reference_lists_every_public_module(docs_ext, tmp_path):
    mods = docs_ext.write_api_modules(tmp_path)
    index = (tmp_path / "api" / "index.md").read_text(encoding="utf-8")
    for m in ("physamp.samplers.gibbs", "physamp.ising", "physamp.models.rbm.ais", "physamp.training.loop"):
        assert m in mods and f"   {m}\n" in index


def test_the_changelog_page_works_with_or_without_a_changelog(docs_ext, tmp_path):
    root = tmp_path / "repo"
    root.mkdir()
    assert docs_ext.write_changelog(tmp_path, root) is False
    assert "no `CHANGELOG.md`" in (tmp_path / "_generated" / "changelog.md").read_text(encoding="utf-8")
    (root / "CHANGELOG.md").write_text(
        "# Changelog\n\n## 0.1.0\n\n- first release, under the [licence](LICENSE) ([semver](https://semver.org))\n",
        encoding="utf-8",
    )
    assert docs_ext.write_changelog(tmp_path, root) is True
    text = (tmp_path / "_generated" / "changelog.md").read_text(encoding="utf-8")
    assert text.startswith("## 0.1.0") and "# Changelog" not in text
    # a link to a repository file would be a broken reference on the site: its text stays
    assert "licence (`LICENSE`)" in text and "[semver](https://semver.org)" in text


def test_args_sections_are_read_from_google_docstrings(docs_ext):
    doc = """Summary.

    Args:
        steps: sweeps per call, or ``"auto"``:
            continued on this line.
        max_weight, max_bias: magnitude limits.
        **child_options: options of the child.

    More text.
    """
    args = docs_ext.parse_args_section(doc)
    assert args["steps"] == 'sweeps per call, or ``"auto"``: continued on this line.'
    assert args["max_weight"] == args["max_bias"] == "magnitude limits."
    assert args["**child_options"] == "options of the child."


def test_known_docstring_problems_name_existing_objects(docs_ext):
    """Each entry of ``physamp_docstring_debt`` in docs/conf.py is an object that exists, so a
    renamed or removed one does not linger in the list."""
    tree = ast.parse((DOCS / "conf.py").read_text(encoding="utf-8"))
    debt = next(
        ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "physamp_docstring_debt"
    )
    assert debt == sorted(set(debt), key=debt.index), "an entry is listed twice"
    for name in debt:
        assert _exists(name), f"{name} is in physamp_docstring_debt but does not exist: remove it"


def _exists(dotted: str) -> bool:
    """``dotted`` names a module, or an attribute (or a class-level annotation, like
    ``StyleLoss.vgg``) reached from the longest importable module prefix."""
    import importlib

    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            if hasattr(obj, attr):
                obj = getattr(obj, attr)
            elif attr == parts[-1] and attr in getattr(obj, "__annotations__", {}):
                return True
            else:
                return False
        return True
    return False


@pytest.mark.slow
def test_the_site_builds_strictly_and_renders(tmp_path):
    """The whole site with warnings as errors (about 2-4 minutes), then a screenshot of its
    index and of an API page, when Chromium is installed."""
    pytest.importorskip("myst_nb")
    out = tmp_path / "html"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(DOCS), str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (out / "index.html").exists() and (out / "api" / "physamp.samplers.gibbs.html").exists()
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no Chromium to take the screenshot (apt-get install chromium)")
    for page, png in (("index.html", "index.png"), ("api/physamp.samplers.gibbs.html", "api.png")):
        shot = tmp_path / png
        subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             f"--screenshot={shot}", "--window-size=1280,1600", (out / page).as_uri()],
            capture_output=True, timeout=120, check=False,
        )  # fmt: skip
        assert shot.exists() and shot.stat().st_size > 10_000, page
