"""The ``>>>`` examples in physamp's docstrings run, with :mod:`doctest`, offline and seeded.

The modules are found by their text (a ``>>>`` line in ``physamp/**/*.py``), so an example
added anywhere is tested without touching this file. Each module's examples run in the module's
own namespace (as ``python -m doctest`` would), from a temporary folder, with torch seeded;
``ELLIPSIS`` and ``NORMALIZE_WHITESPACE`` are on. An example that cannot run here (it needs a
QPU, a token or the network) carries ``# doctest: +SKIP`` in its docstring; today that is
:mod:`physamp.topology.hardware` (``intersect_with_solver(..., DWaveSampler())``).
"""

from __future__ import annotations

import doctest
import importlib
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "physamp"
_PROMPT = re.compile(r"^\s*>>> ", re.M)


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules_with_examples() -> list[str]:
    return sorted(
        _module_name(p) for p in PACKAGE.rglob("*.py") if _PROMPT.search(p.read_text(encoding="utf-8"))
    )


MODULES = modules_with_examples()


def test_there_are_examples():
    assert len(MODULES) >= 5, MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DWAVE_API_TOKEN", raising=False)
    torch.manual_seed(0)
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests = [t for t in finder.find(module) if t.examples]
    assert tests, f"{name} has a '>>> ' line that doctest does not see as an example (outside a docstring?)"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    out: list[str] = []
    for t in tests:
        runner.run(t, out=out.append)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, (
        f"{result.failed} of {result.attempted} examples of {name} failed:\n" + "".join(out)
    )
