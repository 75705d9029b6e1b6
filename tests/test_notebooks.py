"""The notebooks are committed with their outputs (so they read on a repository page) and still run.

Two guards, so that no notebook can rot:

- every committed notebook carries the outputs of one top-to-bottom execution on its
  default preset: each code cell executed, in order, without an error, with its figures,
  and without absolute paths of the machine that ran it;
- every notebook runs top to bottom on its tiny preset (no network). It runs on an
  in-memory copy in a temporary folder, so the committed outputs are never written over.

To refresh the committed outputs, execute a notebook in place on its default preset
(``PHYSAMP_PRESET`` unset) with inline figures, from ``notebooks/``::

    MPLBACKEND=module://matplotlib_inline.backend_inline jupyter execute --inplace NAME.ipynb

(``jupyter execute`` comes with nbclient, in the dev extras; ``jupyter nbconvert --to
notebook --execute --inplace`` does the same). Runs go to ``notebooks/runs/`` (ignored by
git), so a re-execution reloads them instead of training again.
"""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def _errors(nb):
    return [
        f"cell {i}: {o.get('ename')}: {o.get('evalue')}"
        for i, c in enumerate(_code_cells(nb))
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]


def _output_text(cell) -> str:
    parts = []
    for o in cell.get("outputs", []):
        if o.get("output_type") == "stream":
            parts.append(o.get("text", ""))
        elif o.get("output_type") == "error":
            parts.extend([o.get("evalue", ""), *o.get("traceback", [])])
        else:
            parts.extend(str(v) for k, v in o.get("data", {}).items() if k.startswith("text/"))
    return "".join(parts)


def test_there_are_notebooks():
    assert NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebook_has_its_outputs(path):
    """Each code cell executed once, top to bottom in one kernel, on the default preset."""
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    cells = _code_cells(nb)
    assert cells, f"{path.name} has no code cells"
    counts = [c.get("execution_count") for c in cells]
    assert None not in counts, (
        f"{path.name}: code cells {[i for i, n in enumerate(counts) if n is None]} were never executed; "
        "execute the notebook (see this module's docstring) before committing it"
    )
    assert counts == list(range(1, len(cells) + 1)), (
        f"{path.name}: execution counts {counts} are not one top-to-bottom run; execute it afresh"
    )
    assert not _errors(nb), f"{path.name} was committed with errors: {_errors(nb)}"
    assert any(c.get("outputs") for c in cells), f"{path.name} has no outputs"
    images = sum("image/png" in o.get("data", {}) for c in cells for o in c.get("outputs", []))
    assert images >= 1, f"{path.name} shows no figure; execute it with an inline matplotlib backend"
    text = "".join(_output_text(c) for c in cells)
    assert "preset 'tiny'" not in text, f"{path.name} carries the outputs of the tiny preset"
    # a notebook whose written conclusions check themselves prints this when they no longer hold
    assert "CONCLUSIONS OUT OF DATE" not in text, (
        f"{path.name}'s written conclusions no longer match its outputs"
    )
    for local in (str(ROOT), "site-packages", "/home/", "/Users/", "/tmp/", "/private/var/"):
        assert local not in text, f"{path.name}'s outputs contain a local path ({local!r})"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_executes(path, tmp_path, monkeypatch):
    """Runs on the tiny preset, on a copy: the committed file is read, never written."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    before = path.read_bytes()
    nb = nbformat.read(path, as_version=4)
    for cell in _code_cells(nb):
        cell.outputs, cell.execution_count = [], None
    monkeypatch.setenv("PHYSAMP_PRESET", "tiny")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    assert not _errors(nb)
    counts = [c.execution_count for c in _code_cells(nb)]
    assert None not in counts
    assert "preset 'tiny'" in "".join(_output_text(c) for c in _code_cells(nb)), (
        f"{path.name} should print its preset (`preset 'NAME'`) in its outputs"
    )
    assert path.read_bytes() == before, f"executing {path.name} wrote over the committed notebook"
    assert os.environ["PHYSAMP_PRESET"] == "tiny"
