"""The README's Python blocks run, offline, as a reader would paste them.

Each ```` ```python ```` block of README.md is one test (its id is the block's line). What runs:

- **Every block is compiled**, and the imports of every block are executed, so a renamed or
  removed name fails here even in a block that cannot run on this machine.
- A block runs in a fresh namespace that holds the imports of the blocks above it (block 4 may
  use the ``physamp`` that block 3 imported) and the placeholders of :data:`PLACEHOLDERS`: the
  reader's own data that a fragment uses without making it (``x``, a batch of images). Any other
  name a block uses must come from the block itself.
- It runs in a temporary folder (its run directories go there), with no D-Wave token in the
  environment and every network connection refused except to this machine; the torch thread
  count and the environment are restored after it.

Which blocks are not run, by one rule for every block, present or future:

- **hardware**: a block that builds a client of a real QPU or cloud solver, i.e. calls
  ``make_sampler("dwave", ...)`` without ``sampler=`` (the default is the real QPU),
  ``DWaveSampler``, ``DWaveCliqueSampler`` or a ``LeapHybrid*Sampler``, or passes
  ``download=True``: skipped (its imports are still checked);
- **slow**: a block that trains, calibrates or draws samples (it calls ``train_and_evaluate``,
  ``.fit(``, ``calibrate(`` or ``.sample(``): run only with ``-m slow``;
- a marker on the line just above the block's opening fence overrides both rules:
  ``<!-- readme-test: skip: REASON -->`` (never run; the reason is shown),
  ``<!-- readme-test: slow -->`` or ``<!-- readme-test: fast -->`` (run by default).
"""

from __future__ import annotations

import ast
import os
import re
import socket
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"

#: names a README fragment may use for the reader's own data (built fresh for every block)
PLACEHOLDERS = {
    "x": "torch.rand(4, 3, 32, 32)",  # a batch of images in [0, 1] (SVHN's size; H, W multiples of 4)
    "styles": "torch.tensor([0, 1, 2, 3])",  # one style id per image of x
}

_FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
_MARKER = re.compile(r"<!--\s*readme-test:\s*(skip|slow|fast)\s*(?::\s*(.*?))?\s*-->\s*$")
_HARDWARE_CALLS = {"DWaveSampler", "DWaveCliqueSampler"}
_SLOW_CALLS = {"train_and_evaluate", "fit", "calibrate", "sample"}


class Block:
    def __init__(self, line: int, source: str, marker: tuple[str, str] | None):
        self.line, self.source, self.marker = line, source, marker
        self.tree = ast.parse(source, filename=f"README.md:{line}")

    def imports(self) -> list[ast.stmt]:
        return [n for n in self.tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]

    def _calls(self):
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
                yield name, node

    def needs_hardware(self) -> bool:
        for name, call in self._calls():
            keywords = {k.arg: k.value for k in call.keywords}
            if name == "make_sampler" and call.args:
                first = call.args[0]
                if isinstance(first, ast.Constant) and first.value == "dwave" and "sampler" not in keywords:
                    return True
            if name in _HARDWARE_CALLS or (name.startswith("LeapHybrid") and name.endswith("Sampler")):
                return True
            download = keywords.get("download")
            if isinstance(download, ast.Constant) and download.value is True:
                return True
        return False

    def is_slow(self) -> bool:
        return any(name in _SLOW_CALLS for name, _ in self._calls())

    def kind(self) -> tuple[str, str]:
        """``("skip" | "slow" | "fast", why)``."""
        if self.marker is not None:
            what, why = self.marker
            return what, why or "marked in the README"
        if self.needs_hardware():
            return "skip", "needs a QPU or the network (the hardware rule of this module)"
        if self.is_slow():
            return "slow", "trains, calibrates or samples (the slow rule of this module)"
        return "fast", ""


def readme_blocks() -> list[Block]:
    text = README.read_text(encoding="utf-8")
    blocks = []
    for m in _FENCE.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        mark = _MARKER.search(before)
        blocks.append(Block(line, m.group(1), (mark.group(1), mark.group(2) or "") if mark else None))
    return blocks


BLOCKS = readme_blocks()


def _params(kind: str):
    out = []
    for i, b in enumerate(BLOCKS):
        what, why = b.kind()
        marks = [pytest.mark.slow] if what == "slow" else []
        if what == "skip":
            marks = [pytest.mark.skip(reason=f"README.md:{b.line}: {why}")]
        if kind == "run":
            out.append(pytest.param(i, marks=marks, id=f"line{b.line}"))
        else:
            out.append(pytest.param(i, id=f"line{b.line}"))
    return out


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """A temporary folder, no token, no network beyond this machine; threads and environment restored."""
    torch = pytest.importorskip("torch")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DWAVE_API_TOKEN", raising=False)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    connect = socket.socket.connect

    def local_only(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and host not in ("localhost", "::1") and not host.startswith("127."):
            raise OSError(f"a README block tried to reach {address!r}: the README tests run offline")
        return connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", local_only)
    threads, env = torch.get_num_threads(), dict(os.environ)
    yield
    torch.set_num_threads(threads)
    os.environ.clear()
    os.environ.update(env)


def _namespace(index: int) -> dict:
    ns: dict = {"__name__": "__readme__"}
    exec("import torch", ns)
    for name, expr in PLACEHOLDERS.items():
        ns[name] = eval(expr, ns)
    for earlier in BLOCKS[:index]:
        module = ast.Module(body=earlier.imports(), type_ignores=[])
        exec(compile(module, f"README.md:{earlier.line}", "exec"), ns)
    return ns


def test_readme_has_python_blocks():
    assert BLOCKS, "README.md has no ```python blocks"


@pytest.mark.parametrize("index", _params("imports"))
def test_readme_block_compiles_and_imports(index):
    """Every block, hardware ones included: it parses and its imports resolve."""
    b = BLOCKS[index]
    compile(b.source, f"README.md:{b.line}", "exec")
    exec(compile(ast.Module(body=b.imports(), type_ignores=[]), f"README.md:{b.line}", "exec"), {})


@pytest.mark.parametrize("index", _params("run"))
def test_readme_block_runs(index, offline):
    b = BLOCKS[index]
    ns = _namespace(index)
    exec(compile(b.source, f"README.md:{b.line}", "exec"), ns)


def test_the_rules_classify_blocks():
    """The hardware and slow rules on small examples (so a README change cannot hide a broken rule)."""
    qpu = Block(1, 'qpu = make_sampler("dwave")\n', None)
    simulated = Block(1, 'qpu = make_sampler("dwave", sampler=device)\n', None)
    trains = Block(1, "r = train_and_evaluate(cfg, data)\n", None)
    quick = Block(1, "topo = chimera_rbm(14)\n", None)
    marked = Block(1, "s = sampler.sample(rbm, num_samples=10)\n", ("fast", ""))
    assert qpu.kind()[0] == "skip" and Block(1, "DWaveSampler()\n", None).kind()[0] == "skip"
    assert Block(1, 'load("mnist", download=True)\n', None).kind()[0] == "skip"
    assert simulated.kind()[0] == "fast" and quick.kind()[0] == "fast"
    assert trains.kind()[0] == "slow" and marked.kind()[0] == "fast"
    assert _MARKER.search("<!-- readme-test: skip: needs a token -->").groups() == ("skip", "needs a token")
