"""The pages of the physamp site that are written from the code, not typed twice.

At ``config-inited`` (every build, before Sphinx looks for the sources) this extension writes:

- ``backends/<name>.md`` for every name :func:`physamp.samplers.available_samplers`
  returns: the backend's declarations (``parameters``, ``uses_chains``, ``steps_option``,
  ``supports_persistent``), its constructor's options with their defaults and the
  descriptions of its docstring's ``Args:``, the docstring itself, and the hand-written
  notes ``backend_notes/<name>.md`` ("when to use it", "traps"). A backend whose module
  cannot be imported (missing, or an optional dependency not installed) still gets a page
  that says so; the build goes on.
- ``experiments/<name>.md`` for every entry of :data:`physamp.experiments.EXPERIMENTS`:
  its title, command, presets, protocol (the module's docstring), the thesis's numbers
  (``experiment_notes/<name>.md``) and, where ``results/<name>/<preset>/`` holds a report
  of a run, that report with its figures. ``_generated/experiments_table.md`` is the
  overview table of the thesis page.
- ``api/index.md``: the API reference's module list, one autosummary per area, from a
  walk of the package (a new module appears without being listed by hand);
  ``sphinx.ext.autosummary`` then writes a page per module beside it.
- ``_generated/changelog.md``: the repository's ``CHANGELOG.md`` (or a line saying there
  is none yet).
- ``notebooks/*.ipynb``: copies of the repository's notebooks, rendered with their
  committed outputs (the build never executes them).

Files are rewritten only when their content changes, so incremental builds stay cheap.
The generators need physamp, not Sphinx (``tests/test_docs.py`` runs them without a build).

It also resolves references to names that a package re-exports: ``:func:`make_sampler```
written in :mod:`physamp.samplers` (or ``physamp.samplers.make_sampler`` anywhere) is
documented once, in :mod:`physamp.samplers.registry` where it is defined, and the link
goes there (``missing-reference``).

Strictness: a public module without a docstring, or a class or function listed in its
module's ``__all__`` without one, is a warning (an error under ``-W``). The names in the
config value ``physamp_docstring_debt`` (``conf.py``) are known problems: the warnings raised
inside those docstrings are dropped until the docstring is fixed and the name removed.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import pkgutil
import re
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent.parent
ROOT = DOCS.parent

DECLARATIONS = ("parameters", "uses_chains", "steps_option", "supports_persistent")

# --- small helpers -----------------------------------------------------------------------


def write_if_changed(path: Path, text: str) -> bool:
    """Write ``text`` to ``path`` unless it already holds exactly that; True if written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.write_text(text, encoding="utf-8")
    return True


def remove_stale(folder: Path, keep: set[str], suffix: str = ".md") -> None:
    """Delete the generated files of ``folder`` that are not in ``keep`` (file names)."""
    if folder.is_dir():
        for f in folder.glob(f"*{suffix}"):
            if f.name not in keep:
                f.unlink()


def rst_to_myst_inline(text: str) -> str:
    """Inline reST markup (``code``, :role:`target`) as MyST markdown."""
    text = re.sub(r":([a-z]+(?::[a-z]+)?):`([^`]+)`", r"{\1}`\2`", text)
    return re.sub(r"``([^`]+)``", r"`\1`", text)


def eval_rst(body: str) -> str:
    """A MyST block that Sphinx parses as reStructuredText."""
    return "```{eval-rst}\n" + body.rstrip() + "\n```\n"


def parse_args_section(doc: str) -> dict[str, str]:
    """The ``Args:`` entries of a Google-style docstring: ``{name: description}``.

    ``"max_weight, max_bias: ..."`` gives both names the description; ``**kwargs``
    keeps its stars."""
    lines = inspect.cleandoc(doc or "").splitlines()
    out: dict[str, str] = {}
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() in ("Args:", "Arguments:"))
    except StopIteration:
        return out
    base = None
    names: list[str] = []
    for line in lines[start + 1 :]:
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        if base is None:
            base = indent
        if indent < base:
            break
        m = re.match(r"^(\*{0,2}[A-Za-z_][\w, *]*?)\s*(\([^)]*\))?:\s*(.*)$", line.strip())
        if indent == base and m:
            names = [n.strip() for n in m.group(1).split(",")]
            for n in names:
                out[n] = m.group(3).strip()
        elif names:
            for n in names:
                out[n] = (out[n] + " " + line.strip()).strip()
    return out


# --- backends ------------------------------------------------------------------------------


@dataclass
class BackendInfo:
    """What a backend page shows, read from the registry and the class."""

    name: str
    target: str | None  # "module:Class" where the registry knows it
    cls: Any = None
    error: str | None = None  # why the class could not be loaded
    declarations: dict[str, Any] = field(default_factory=dict)
    declared_by_instance: list[str] = field(default_factory=list)  # properties, read from cls()
    instance_error: str | None = None
    options: list[dict[str, Any]] = field(default_factory=list)


def _registry_target(name: str) -> str | None:
    from physamp.samplers import registry

    target = getattr(registry, "_REGISTERED", {}).get(name) or getattr(registry, "_BUILTIN", {}).get(name)
    if isinstance(target, str):
        return target
    if isinstance(target, type):
        return f"{target.__module__}:{target.__qualname__}"
    return None


def describe_backend(name: str) -> BackendInfo:
    """Load backend ``name`` and read its declarations and constructor, never raising."""
    from physamp.samplers.registry import sampler_class

    info = BackendInfo(name=name, target=_registry_target(name))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cls = sampler_class(name)
    except Exception as err:  # a missing module or optional dependency: say so on the page
        info.error = f"{type(err).__name__}: {err}"
        return info
    info.cls = cls
    info.target = f"{cls.__module__}:{cls.__qualname__}"
    instance = None
    for attr in DECLARATIONS:
        raw = inspect.getattr_static(cls, attr, None)
        if isinstance(raw, property):  # declared per instance (a composite asks its child)
            info.declared_by_instance.append(attr)
            if instance is None and info.instance_error is None:
                try:
                    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                        warnings.simplefilter("ignore")
                        instance = cls()  # default options; backends build nothing costly here
                except Exception as err:
                    info.instance_error = f"{type(err).__name__}: {err}"
            info.declarations[attr] = getattr(instance, attr) if instance is not None else None
        else:
            info.declarations[attr] = getattr(cls, attr, None)
    args = parse_args_section(cls.__doc__ or "")
    per_call = info.declarations.get("parameters") or {}
    try:
        sig = inspect.signature(cls.__init__)
    except (TypeError, ValueError):
        sig = None
    if sig is not None:
        for p in list(sig.parameters.values())[1:]:
            label = p.name
            if p.kind is p.VAR_KEYWORD:
                label = "**" + p.name
            elif p.kind is p.VAR_POSITIONAL:
                label = "*" + p.name
            default = "" if p.default is p.empty else repr(p.default)
            if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                default = ""
            elif p.default is p.empty:
                default = "(required)"
            desc = args.get(label) or args.get(p.name) or ""
            info.options.append(
                {
                    "name": label,
                    "default": default,
                    "per_call": p.name in per_call,
                    "description": desc,
                    "keyword_only": p.kind is p.KEYWORD_ONLY,
                }
            )
    return info


def _rst_cell(text: str) -> str:
    return " ".join(str(text).split()) or " "


def _fmt_value(value: Any) -> str:
    if value is None:
        return "``None``"
    if isinstance(value, bool):
        return f"``{value}``"
    if isinstance(value, str):
        return f'``"{value}"``'
    return f"``{value!r}``"


def backend_page(info: BackendInfo) -> str:
    """The Markdown (MyST) page of one backend."""
    name = info.name
    out = [f"(backend-{name})=", f"# `{name}`", ""]
    if info.cls is None:
        where = f"`{info.target}`" if info.target else "its module"
        out += [
            ":::{warning}",
            f"The `{name}` backend is registered, but {where} could not be imported when this page was "
            "built, so its options are not listed here:",
            "",
            f"`{info.error}`",
            "",
            "Its module may still be being written, or it needs an optional dependency that is not "
            'installed (`pip install -e ".[<extra>]"`; `pyproject.toml` lists the extras). '
            "`physamp samplers` lists it with its options once it imports.",
            ":::",
            "",
        ]
        out += _notes(name)
        return "\n".join(out) + "\n"
    cls = info.cls
    module, qual = cls.__module__, cls.__qualname__
    summary = inspect.cleandoc(cls.__doc__ or "").split("\n\n")[0].replace("\n", " ")
    out += [rst_to_myst_inline(summary), ""]
    d = info.declarations
    steps = d.get("steps_option")
    k_text = f"`{steps}`" if steps else "none (PCD-k does not apply `k`)"
    rows = [
        ("class", f"{{py:class}}`~{module}.{qual}` (`{module}`)"),
        (
            "draws",
            "Markov chains (`uses_chains = True`)"
            if d.get("uses_chains")
            else "independent samples on every call (`uses_chains = False`)",
        ),
        ("sweeps option (`steps_option`)", k_text),
        (
            "persistent chains (`supports_persistent`)",
            "yes: `persistent=True` keeps them (PCD)" if d.get("supports_persistent") else "no",
        ),
        (
            "per-call options (`parameters`)",
            ", ".join(f"`{k}`" for k in (d.get("parameters") or {})) or "none",
        ),
    ]
    out += ["| declaration | value |", "|---|---|"] + [f"| {a} | {b} |" for a, b in rows] + [""]
    if info.declared_by_instance:
        which = ", ".join(f"`{a}`" for a in info.declared_by_instance)
        if info.instance_error is None:
            out += [
                f"{which} {'is' if len(info.declared_by_instance) == 1 else 'are'} declared per instance "
                f'(a property); the values above are those of `make_sampler("{name}")` with its default '
                "options, and can differ with other options (a composite declares what its child declares; "
                "a solver adds its own parameters).",
                "",
            ]
        else:
            out += [
                f"{which} {'is' if len(info.declared_by_instance) == 1 else 'are'} declared per instance "
                f"(a property), and `{name}` cannot be built without options (`{info.instance_error}`), "
                "so the table cannot show them.",
                "",
            ]
    out += ["## Use it", "", "```python", "from physamp.samplers import make_sampler", ""]
    example = [o for o in info.options if o["default"] == "(required)"]
    args = ", ".join(f"{o['name']}=..." for o in example)
    if steps:
        args = (args + ", " if args else "") + f"{steps}=1000"
    call = f'make_sampler("{name}"' + (f", {args}" if args else "") + ")"
    out += [
        f"sampler = {call}",
        "samples = sampler.sample(rbm, num_samples=100)   # samples.v, samples.h, samples.info",
        "```",
        "",
    ]
    out += [
        "```bash",
        f"physamp sample runs/RUN/checkpoint.pt --sampler {name}"
        + (f" -o {steps}=1000" if steps else "")
        + "   # -o NAME=VALUE: any option",
        f"physamp train-rbm --sampler {name}" + ("   # PCD-k passes k as " + f"{steps}" if steps else ""),
        "```",
        "",
    ]
    out += [
        "## Options",
        "",
        f"The constructor's options, read from `{qual}.__init__` and the `Args:` of "
        "its docstring. *Per call* marks the options that `sample(rbm, n, **overrides)` also takes "
        "(the backend's `parameters`).",
        "",
    ]
    table = [
        ".. list-table::",
        "   :header-rows: 1",
        "   :widths: 18 14 8 60",
        "",
        "   * - option",
        "     - default",
        "     - per call",
        "     - description",
    ]
    for o in info.options:
        table += [
            f"   * - ``{o['name']}``",
            f"     - {_default_cell(o['default'])}",
            f"     - {'yes' if o['per_call'] else ' '}",
            f"     - {_rst_cell(o['description'])}",
        ]
    extra = sorted(set(d.get("parameters") or {}) - {o["name"] for o in info.options})
    for k in extra:
        table += [
            f"   * - ``{k}``",
            "     - ",
            "     - yes",
            f"     - {_rst_cell((d['parameters'] or {})[k])}",
        ]
    out += [eval_rst("\n".join(table)), ""]
    out += _notes(name)
    out += [
        "## Reference",
        "",
        f"The class's docstring, as in the {{doc}}`API reference </api/index>` "
        f"({{py:mod}}`{module}` has the module's own notes):",
        "",
        eval_rst(f".. autoclass:: {module}.{qual}\n   :no-index:\n   :no-members:"),
    ]
    return "\n".join(out) + "\n"


def _default_cell(default: str) -> str:
    """A default value as an RST table cell: code, or the plain text "(required)" / empty."""
    if default in ("", "(required)"):
        return default or " "
    return f"``{default}``"


def _notes(name: str) -> list[str]:
    note = DOCS / "backend_notes" / f"{name}.md"
    if note.exists():
        return [f"```{{include}} ../backend_notes/{name}.md", "```", ""]
    return [
        "## When to use it, and its traps",
        "",
        f"No notes have been written for `{name}` yet (`docs/backend_notes/{name}.md`).",
        "",
    ]


def write_backend_pages(docs: Path = DOCS) -> dict[str, BackendInfo]:
    """Write ``docs/backends/<name>.md`` for every registered backend; return what was read."""
    from physamp.samplers.registry import available_samplers

    folder = docs / "backends"
    infos = {name: describe_backend(name) for name in available_samplers()}
    for name, info in infos.items():
        write_if_changed(folder / f"{name}.md", backend_page(info))
    remove_stale(folder, {f"{n}.md" for n in infos})
    rows = ["| backend | what it is | chains | per-call options |", "|---|---|---|---|"]
    for name, info in infos.items():
        if info.cls is None:
            rows.append(f"| {{doc}}`{name} <backends/{name}>` | not importable here | | |")
            continue
        summary = inspect.cleandoc(info.cls.__doc__ or "").split("\n\n")[0].replace("\n", " ")
        chains = "yes" if info.declarations.get("uses_chains") else "no"
        params = ", ".join(f"`{k}`" for k in (info.declarations.get("parameters") or {}))
        rows.append(
            f"| {{doc}}`{name} <backends/{name}>` | {rst_to_myst_inline(summary).replace('|', '/')} "
            f"| {chains} | {params} |"
        )
    write_if_changed(docs / "_generated" / "backends_table.md", "\n".join(rows) + "\n")
    return infos


# --- experiments -------------------------------------------------------------------------------


@dataclass
class ExperimentInfo:
    name: str
    module: str
    mod: Any = None
    error: str | None = None


def describe_experiments() -> list[ExperimentInfo]:
    from physamp.experiments import EXPERIMENTS

    out = []
    for name, module in EXPERIMENTS.items():
        info = ExperimentInfo(name, module)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                info.mod = importlib.import_module(module)
        except Exception as err:
            info.error = f"{type(err).__name__}: {err}"
        out.append(info)
    return out


def _report_markdown(report: Path, rel_dir: str) -> str:
    """An experiment's report (``NAME.md``) as a section of its page: no title, MyST roles,
    figure paths relative to the page, headings one level down."""
    text = report.read_text(encoding="utf-8")
    lines = text.splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    body = "\n".join(lines)
    body = re.sub(r"(?m)^(#{1,4}) ", lambda m: "#" * (len(m.group(1)) + 2) + " ", body)
    body = rst_to_myst_inline(body)

    def link(m: re.Match) -> str:
        bang, text, target = m.group(1), m.group(2), m.group(3)
        if re.match(r"^[a-z]+:", target) or target.startswith(("/", "#")):
            return m.group(0)
        if not (report.parent / target).exists():  # a file the run wrote but the repo does not keep
            return f"`{text}`" if not bang else f"*({text}: not committed)*"
        return f"{bang}[{text}]({rel_dir}/{target})"

    return re.sub(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)", link, body).strip() + "\n"


def experiment_results(name: str, docs: Path = DOCS) -> list[tuple[str, Path]]:
    """``(preset, report)`` of each committed run under ``docs/results/<name>/``."""
    folder = docs / "results" / name
    if not folder.is_dir():
        return []
    return [(p.name, p / f"{name}.md") for p in sorted(folder.iterdir()) if (p / f"{name}.md").exists()]


def _thesis_ref(mod: Any) -> str:
    title = getattr(mod, "TITLE", "") or ""
    m = re.search(r"\((?:thesis )?([^()]*(?:Fig|Table|§)[^()]*)\)\s*$", title)
    if m:
        return m.group(1)
    doc = (mod.__doc__ or "").strip().splitlines()
    first = doc[0] if doc else ""
    m = re.match(r"^((?:Figs?\.|Table|§)[^—-]*?)\s+--", first)
    return m.group(1) if m else "beyond the thesis"


def experiment_page(info: ExperimentInfo, docs: Path = DOCS) -> str:
    name = info.name
    out = [f"(experiment-{name})="]
    if info.mod is None:
        out += [
            f"# `{name}`",
            "",
            ":::{warning}",
            f"`{info.module}` could not be imported when this page was built: `{info.error}`.",
            ":::",
            "",
        ]
        return "\n".join(out) + "\n"
    mod = info.mod
    title = getattr(mod, "TITLE", None) or (mod.__doc__ or name).strip().splitlines()[0]
    out += [f"# {rst_to_myst_inline(title)}", ""]
    presets = list(getattr(mod, "PRESETS", {}) or {})
    first = "quick" if "quick" in presets else (presets[0] if presets else None)
    out += ["```bash", f"physamp experiment {name}" + (f" --preset {first}" if first else "")]
    out += [f"physamp experiment {name} --help     # its presets and the keys --set takes", "```", ""]
    if presets:
        out += [
            "Presets: " + ", ".join(f"`{p}`" for p in presets) + ". Outputs go to "
            f"`results/{name}/PRESET/` (`cells.csv`, `{name}.png`, `{name}.md`; `--out DIR` elsewhere).",
            "",
        ]
    out += [f"Module: {{py:mod}}`{info.module}`.", ""]
    note = docs / "experiment_notes" / f"{name}.md"
    out += ["## What the thesis reports", ""]
    if note.exists():
        out += [f"```{{include}} ../experiment_notes/{name}.md", "```", ""]
    else:
        out += [f"No notes yet (`docs/experiment_notes/{name}.md`).", ""]
    runs = experiment_results(name, docs)
    out += ["## Our results", ""]
    if not runs:
        out += [
            "No run of this experiment is committed under `docs/results/` yet. Run the command above; "
            f"its report `results/{name}/PRESET/{name}.md` puts our numbers beside the thesis's.",
            "",
        ]
    for preset, report in runs:
        out += [
            f"### Preset `{preset}`",
            "",
            f"The report `{name}.md` of one run of `physamp experiment {name} --preset {preset}`, as it "
            f"wrote it (committed under `docs/results/{name}/{preset}/`). A `quick` preset is a small, "
            "single-seed version of the thesis's grid: compare orderings and ratios with the thesis, not "
            "absolute values.",
            "",
            _report_markdown(report, f"../results/{name}/{preset}"),
            "",
        ]
        shown = report.read_text(encoding="utf-8")
        for png in sorted(report.parent.glob("*.png")):  # the figures the report does not show itself
            if f"({png.name})" not in shown:
                out += [f"![{png.stem}](../results/{name}/{preset}/{png.name})", ""]
    protocol = inspect.cleandoc(mod.__doc__ or "")
    if protocol and not runs:  # a committed report repeats the protocol
        out += ["## Protocol", "", f"The docstring of {{py:mod}}`{info.module}`:", ""]
        body = "\n".join(protocol.splitlines()[1:]).strip()
        out += [eval_rst(_demote_rst_sections(body)), ""]
    return "\n".join(out) + "\n"


def _demote_rst_sections(text: str) -> str:
    """reST section titles (a line underlined by ---, ===, ~~~) as bold paragraphs: a page's
    own sections may not be interleaved with a docstring's."""
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if (
            line.strip()
            and re.fullmatch(r"([-=~^\"'`#*+])\1{2,}", nxt.strip())
            and len(nxt.strip()) >= len(line.strip())
        ):
            if line.strip() != "Protocol":  # the page's own section is called that
                out += [f"**{line.strip()}**", ""]
            i += 2
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


def write_experiment_pages(docs: Path = DOCS) -> list[ExperimentInfo]:
    infos = describe_experiments()
    folder = docs / "experiments"
    for info in infos:
        write_if_changed(folder / f"{info.name}.md", experiment_page(info, docs))
    remove_stale(folder, {f"{i.name}.md" for i in infos})
    rows = ["| experiment | thesis | command | committed results |", "|---|---|---|---|"]
    for info in infos:
        ref = _thesis_ref(info.mod) if info.mod is not None else "(not importable)"
        runs = ", ".join(f"`{p}`" for p, _ in experiment_results(info.name, docs)) or "–"
        rows.append(
            f"| {{doc}}`{info.name} <experiments/{info.name}>` | {ref} "
            f"| `physamp experiment {info.name}` | {runs} |"
        )
    # the pages in the order of EXPERIMENTS (the thesis's), not alphabetically
    toctree = ["", "```{toctree}", ":hidden:", ":maxdepth: 1", ""] + [f"experiments/{i.name}" for i in infos]
    write_if_changed(docs / "_generated" / "experiments_table.md", "\n".join(rows + toctree + ["```"]) + "\n")
    return infos


# --- API module list ---------------------------------------------------------------------------

# areas of the API reference, in reading order: (title, module prefixes)
API_AREAS = [
    (
        "Core: energies, Ising form, seeds",
        [
            "physamp",
            "physamp.energy",
            "physamp.ising",
            "physamp.seeding",
            "physamp.credentials",
            "physamp.plotting",
        ],
    ),
    ("Samplers", ["physamp.samplers"]),
    ("Topologies", ["physamp.topology"]),
    ("RBMs", ["physamp.models", "physamp.models.rbm"]),
    ("ALI", ["physamp.models.ali"]),
    ("Style transfer", ["physamp.models.style"]),
    ("Training utilities", ["physamp.training"]),
    ("Data", ["physamp.data"]),
    ("Experiments", ["physamp.experiments"]),
    ("Command line", ["physamp.cli", "physamp.cli_style"]),
]
# aliases of other modules (the same objects under an earlier name) and scripts
API_SKIP = {"physamp.__main__", "physamp.ais", "physamp.models.rbm_train"}


API_INTRO = """\
(api)=
# API reference

Generated from the docstrings of every public module of `physamp`, grouped by area (this
page is written at every build from a walk of the package, so a new module appears here
by itself). Each object is documented once, in the module that defines it; a name that a
package re-exports (`physamp.samplers.make_sampler`, `physamp.RBM`) links there. The
conventions the docstrings use are those of {doc}`/concepts`: `W` of shape
`(n_hidden, n_visible)`, units in {0, 1}, `p ∝ exp(-E)`.
"""


def public_modules() -> list[str]:
    """Every importable public module of physamp (no ``_private`` part), sorted."""
    import physamp

    names = ["physamp"]
    for m in pkgutil.walk_packages(physamp.__path__, "physamp."):
        if any(part.startswith("_") for part in m.name.split(".")):
            continue
        names.append(m.name)
    return sorted(n for n in names if n not in API_SKIP)


def _area(module: str) -> int:
    best, best_len = len(API_AREAS) - 1, -1
    for i, (_, prefixes) in enumerate(API_AREAS):
        for p in prefixes:
            exact_only = p in ("physamp", "physamp.models")
            hit = module == p if exact_only else (module == p or module.startswith(p + "."))
            if hit and len(p) > best_len:
                best, best_len = i, len(p)
    return best


def write_api_modules(docs: Path = DOCS) -> list[str]:
    mods = public_modules()
    groups: dict[int, list[str]] = {}
    for m in mods:
        groups.setdefault(_area(m), []).append(m)
    out = []
    for i, (title, _) in enumerate(API_AREAS):
        if i not in groups:
            continue
        body = (
            ".. autosummary::\n   :toctree: .\n   :template: autosummary/physamp-module.rst\n\n"
            + "\n".join(f"   {m}" for m in groups[i])
        )
        out += [f"## {title}", "", eval_rst(body), ""]
    write_if_changed(docs / "api" / "index.md", API_INTRO + "\n" + "\n".join(out))
    return mods


# --- changelog and notebooks -----------------------------------------------------------------


def write_changelog(docs: Path = DOCS, root: Path = ROOT) -> bool:
    """Copy ``CHANGELOG.md`` (its title aside) into the changelog page; True if it exists."""
    src = root / "CHANGELOG.md"
    if src.exists():
        lines = src.read_text(encoding="utf-8").splitlines()
        if lines and lines[0].startswith("# "):
            lines = lines[1:]
        text = "\n".join(lines).strip() + "\n"
        # a link to a repository file (``[LICENSE](LICENSE)``) is no page of this site: keep its text
        text = re.sub(
            r"(?<!!)\[([^\]]+)\]\((?![a-z]+:|#)([^)\s]+)\)", lambda m: f"{m.group(1)} (`{m.group(2)}`)", text
        )
        found = True
    else:
        text = "There is no `CHANGELOG.md` in this checkout yet.\n"
        found = False
    write_if_changed(docs / "_generated" / "changelog.md", text)
    return found


def copy_notebooks(docs: Path = DOCS, root: Path = ROOT) -> list[str]:
    """Copy ``notebooks/*.ipynb`` into ``docs/notebooks/`` (as committed: outputs included)."""
    folder = docs / "notebooks"
    folder.mkdir(exist_ok=True)
    names = []
    for nb in sorted((root / "notebooks").glob("*.ipynb")):
        dst = folder / nb.name
        if not dst.exists() or dst.read_bytes() != nb.read_bytes():
            shutil.copyfile(nb, dst)
        names.append(nb.name)
    remove_stale(folder, set(names), suffix=".ipynb")
    return names


def generate_all(docs: Path = DOCS) -> None:
    write_backend_pages(docs)
    write_experiment_pages(docs)
    write_api_modules(docs)
    write_changelog(docs)
    copy_notebooks(docs)


# --- Sphinx hooks -----------------------------------------------------------------------------


def _on_config_inited(app, config) -> None:
    generate_all(Path(app.srcdir))


def _canonical_name(dotted: str) -> str | None:
    """The ``module.qualname`` where the object ``dotted`` names is defined (None if unknown)."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        modname = ".".join(parts[:i])
        try:
            obj: Any = importlib.import_module(modname)
        except Exception:
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except Exception:
            return None
        if inspect.ismodule(obj):
            return obj.__name__
        mod = getattr(obj, "__module__", None)
        qual = getattr(obj, "__qualname__", None)
        if mod and qual and "<" not in qual:
            return f"{mod}.{qual}"
        return None
    return None


def _on_missing_reference(app, env, node, contnode):
    """Resolve a re-exported physamp name to where it is documented (see the module docstring)."""
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    modname = node.get("py:module") or ""
    clsname = node.get("py:class") or ""
    candidates = [target]
    if modname:
        candidates = [f"{modname}.{clsname}.{target}" if clsname else "", f"{modname}.{target}", target]
    domain = env.get_domain("py")
    for cand in [c for c in candidates if c.startswith("physamp")]:
        canon = _canonical_name(cand)
        if canon and canon != target:
            new = node.deepcopy()
            new["reftarget"] = canon
            new["refspecific"] = False
            res = domain.resolve_xref(
                env, node.get("refdoc", ""), app.builder, node["reftype"], canon, new, contnode
            )
            if res is None and node["reftype"] != "obj":
                res = domain.resolve_xref(
                    env, node.get("refdoc", ""), app.builder, "obj", canon, new, contnode
                )
            if res is not None:
                return res
    if not target.startswith("physamp") and not target.startswith("_"):
        # an unqualified name (``RBM``, ``RBM.free_energy``) written where no module is
        # current, e.g. in an autosummary table: link it if exactly one physamp object has it
        suffix = "." + target.lstrip("~.")
        hits = sorted({n for n in domain.objects if n.startswith("physamp") and n.endswith(suffix)})
        if len(hits) == 1:
            new = node.deepcopy()
            new["reftarget"] = hits[0]
            new["refspecific"] = False
            return domain.resolve_xref(
                env, node.get("refdoc", ""), app.builder, "obj", hits[0], new, contnode
            )
    return None


# --- docstrings: what napoleon reads as types, what must exist, known problems -----------------


def _attribute_docstring_as_prose(self) -> list[str]:
    """napoleon reads the first line of an attribute's docstring as ``type: description``;
    physamp writes those docstrings as prose ("A Leap API token: ..."), and the type comes
    from the annotation, so keep the text whole."""
    return self.__class__(self._consume_to_end(), self._config).lines()


def _missing_docstrings() -> list[tuple[str, str]]:
    """``(name, what)`` of every public module without a docstring, and of every class or
    function a module lists in ``__all__`` (and defines) without one."""
    out = []
    for m in public_modules():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                mod = importlib.import_module(m)
        except Exception:
            continue  # autodoc reports a module that does not import
        if not (mod.__doc__ or "").strip():
            out.append((m, "module"))
        for n in getattr(mod, "__all__", None) or []:
            obj = getattr(mod, n, None)
            if (inspect.isclass(obj) or inspect.isfunction(obj)) and getattr(obj, "__module__", None) == m:
                if not (obj.__doc__ or "").strip():
                    out.append((f"{m}.{n}", "class" if inspect.isclass(obj) else "function"))
    return out


class _DocstringDebtFilter:
    """Drops the warnings raised inside the docstrings listed in ``physamp_docstring_debt``
    (known problems, each to be fixed in the package and then removed from the list)."""

    def __init__(self, names: list[str], pages: list[str] = ()):
        self.names = tuple(names)
        self.pages = tuple(pages)  # generated pages that show one of those docstrings

    def filter(self, record) -> bool:
        from docutils import nodes
        from sphinx.util.logging import get_node_location

        location = getattr(record, "location", None)
        if isinstance(location, nodes.Node):  # a reference warning: its node, not yet a string
            location = get_node_location(location)
        elif isinstance(location, tuple):
            location = ":".join(str(x) for x in location if x is not None)
        location = str(location or "")
        if any(
            f"docstring of {n}:" in location or location.endswith(f"docstring of {n}") for n in self.names
        ):
            return False
        return not any(f"{p}:" in location or location.endswith(p) for p in self.pages)


def _safe_available_samplers() -> list[str]:
    try:
        from physamp.samplers.registry import available_samplers

        return available_samplers()
    except Exception:
        return []


def _on_builder_inited(app) -> None:
    import logging

    debt = list(app.config.physamp_docstring_debt)
    if debt:
        # a backend page shows its class's docstring (autoclass): its warnings are that docstring's
        pages = []
        for name in _safe_available_samplers():
            target = _registry_target(name) or ""
            if target.replace(":", ".") in debt:
                pages.append(str(Path("backends") / f"{name}.md"))
        for handler in logging.getLogger("sphinx").handlers:
            if handler.level >= logging.WARNING:
                handler.filters.insert(0, _DocstringDebtFilter(debt, pages))
    from sphinx.util import logging as sphinx_logging

    log = sphinx_logging.getLogger(__name__)
    for name, what in _missing_docstrings():
        if name not in debt:
            log.warning(
                f"physamp: the public {what} {name} has no docstring",
                type="physamp",
                subtype="missing_docstring",
            )


def module_constants(modname: str) -> list[tuple[str, bool]]:
    """``(name, long)`` of the public constants ``modname`` assigns at its top level that
    autodoc leaves out: those without a ``#:`` doc comment (autodoc documents a module's
    data only when it has one). ``long`` marks a value whose repr is too long to show."""
    import ast

    from sphinx.pycode import ModuleAnalyzer

    mod = importlib.import_module(modname)
    try:
        source = inspect.getsource(mod)
    except (OSError, TypeError):
        return []
    try:
        documented = {name for (_, name) in ModuleAnalyzer.for_module(modname).find_attr_docs()}
    except Exception:
        documented = set()
    names: list[str] = []
    for node in ast.parse(source).body:
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets = [node.target]
        for t in targets:
            if isinstance(t, ast.Name) and not t.id.startswith("_") and t.id not in names:
                names.append(t.id)
    out = []
    for name in names:
        if name in documented or not hasattr(mod, name):
            continue
        value = getattr(mod, name)
        if inspect.ismodule(value) or inspect.isclass(value) or callable(value):
            continue
        try:
            long = len(repr(value)) > 120
        except Exception:
            long = True
        out.append((name, long))
    return out


def _constants_directive():
    from docutils import nodes
    from docutils.statemachine import StringList
    from sphinx.util.docutils import SphinxDirective
    from sphinx.util.nodes import nested_parse_with_titles

    class PhysampConstants(SphinxDirective):
        """``.. physamp-constants:: module``: an ``autodata`` entry for each public constant
        of the module that has no doc comment, so references to it resolve."""

        required_arguments = 1

        def run(self):
            modname = self.arguments[0]
            lines = []
            for name, long in module_constants(modname):
                lines.append(f".. autodata:: {modname}.{name}")
                if long:
                    lines.append("   :no-value:")
                lines.append("")
            if not lines:
                return []
            node = nodes.container()
            nested_parse_with_titles(self.state, StringList(lines, source=self.get_source_info()[0]), node)
            return node.children

    return PhysampConstants


def _on_process_docstring(app, what, name, obj, options, lines) -> None:
    """A constant without a docstring of its own shows none (not the docstring of ``dict``)."""
    if what in ("data", "attribute") and lines:
        own = getattr(type(obj), "__doc__", None)
        own = inspect.cleandoc(own) if isinstance(own, str) else ""
        if own and inspect.cleandoc("\n".join(lines)) == own:
            lines.clear()


def _on_process_bases(app, name, obj, options, bases) -> None:
    """Show a public class's public bases: a private base (``_Trainer``) is replaced by its own."""
    i = 0
    while i < len(bases):
        b = bases[i]
        if isinstance(b, type) and b is not object and b.__name__.startswith("_"):
            bases[i : i + 1] = list(b.__bases__)
            continue
        i += 1


def setup(app):
    from sphinx.ext.napoleon.docstring import GoogleDocstring

    GoogleDocstring._parse_attribute_docstring = _attribute_docstring_as_prose
    app.add_config_value("physamp_docstring_debt", [], "env", types=(list, tuple))
    app.connect("builder-inited", _on_builder_inited)
    app.connect("autodoc-process-bases", _on_process_bases)
    app.connect("autodoc-process-docstring", _on_process_docstring, priority=400)  # before napoleon
    app.add_directive("physamp-constants", _constants_directive())
    # before Sphinx looks for the source files, and so before autosummary's builder-inited
    # handler reads api/index.md
    app.connect("config-inited", _on_config_inited)
    app.connect("missing-reference", _on_missing_reference)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}


__all__ = [
    "generate_all",
    "write_backend_pages",
    "write_experiment_pages",
    "write_api_modules",
    "write_changelog",
    "copy_notebooks",
    "describe_backend",
    "parse_args_section",
    "public_modules",
]
