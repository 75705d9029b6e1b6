"""Export a :class:`~physamp.models.style.network.StyleNetwork` to TorchScript or ONNX, and check the file.

The exported graph
------------------
Both formats hold the same function of two inputs and one output::

    image    (B, 3, H, W) float32, RGB in [0, 1]; H and W multiples of 4 and at least 8
    weights  (B, N)       float32 style mixing weights (N = the network's number of styles)
    ->
    stylized (B, 3, H, W) float32 in [0, 1]

``B``, ``H`` and ``W`` are dynamic (any batch and any valid image size, not only the example's).
The styles are an **input**, always as mixing weights: style ``k`` alone is the one-hot row
``e_k`` (:func:`one_hot_weights` turns ids into those rows), a blend is any non-negative row.

**Normalisation**: by default (``normalize=True``) the graph divides every row of ``weights``
by its sum, exactly as the eager ``net(x, w)`` does, so ``(2, 1, 1)`` means
``(0.5, 0.25, 0.25)``; with ``normalize=False`` the weights are applied as given (the eager
``net(x, w, normalize=False)``, magenta's convention). The choice is recorded in the file's
metadata (``normalize_weights``).

**No input checks in the graph**: unlike ``StyleNetwork.forward``, the exported graph does not
check its inputs. Negative, NaN or all-zero weight rows (a zero row divided by its sum gives
NaN) and sizes that are not multiples of 4 (the output is then ``4 * ceil(H / 4)`` high) are
the caller's to avoid. (The torch.export-based ONNX exporter accordingly names the output's
height ``4*(((height - 1)//4)) + 4``: ``height`` itself for valid inputs.)

The graph is traced from a float32 CPU copy of the network (the network itself is not changed).

Metadata (:func:`read_metadata`)
--------------------------------
``num_styles``, ``style_names`` (a list of ``N`` strings or ``None``), ``normalize_weights``,
the input / output conventions and the physamp and torch versions:

- TorchScript: a JSON file ``physamp_style.json`` among the archive's ``_extra_files``
  (``torch.jit.load(path, _extra_files={"physamp_style.json": ""})`` fills it in);
- ONNX: ``metadata_props`` of the model, one entry per key, each value JSON text (``"3"``,
  ``'["monet", "klimt"]'``, ``"true"``); onnxruntime shows them in
  ``session.get_modelmeta().custom_metadata_map``.

Exporters
---------
TorchScript uses :func:`torch.jit.trace` (the network has no data-dependent control flow once
the styles are weights, and the traced convolutions, reflect paddings and nearest ×2
upsamplings follow the input's size). ONNX uses the ``torch.export``-based exporter
(``torch.onnx.export(..., dynamo=True)``) with dynamic ``batch``, ``height`` (≥ 8) and
``width`` (≥ 8) axes; with ``onnx_exporter="auto"`` (the default) a failure of that exporter, or
of :func:`check_export` on its file, falls back, with a warning, to the TorchScript-based one
(``dynamo=False``, ``dynamic_axes``),
and an ``opset`` below 18 goes to the TorchScript-based one directly (the torch.export-based
exporter writes opset 18 and up, and cannot down-convert this graph: no adapter for ``Pad``).
TorchScript is deprecated as of torch 2.13 (``torch.jit.save`` / ``load`` warn; this module hides
that notice around its own calls): it still works, in Python and in C++ libtorch, but ONNX is the
longer-lived format. Either way :func:`export_model` writes to a temporary file next to ``path``, runs
:func:`check_export` on it (a batch of 3 images at 40×56, or 44×60 if that is the example's
size: a batch and size other than the example's (2, H, W), so the dynamic axes are exercised)
and only then moves it to ``path``.

ONNX needs the ``export`` extra: ``pip install "physamp[export]"`` (onnx, onnxruntime, onnxscript).
"""

from __future__ import annotations

import copy
import json
import os
import warnings
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from physamp.models.style.network import StyleNetwork, check_content, style_weights

__all__ = [
    "FORMATS",
    "ONNX_EXPORTERS",
    "METADATA_FILE",
    "INPUT_NAMES",
    "OUTPUT_NAME",
    "ExportCheckError",
    "WeightedStyleNetwork",
    "one_hot_weights",
    "export_model",
    "check_export",
    "read_metadata",
]

#: the export formats
FORMATS: tuple[str, ...] = ("torchscript", "onnx")
#: ``onnx_exporter``: torch.export-based with fallback, torch.export-based only, TorchScript-based only
ONNX_EXPORTERS: tuple[str, ...] = ("auto", "dynamo", "legacy")
#: the name of the metadata JSON inside a TorchScript archive's ``_extra_files``
METADATA_FILE = "physamp_style.json"
#: graph input names (ONNX; TorchScript's forward arguments have the same names)
INPUT_NAMES: tuple[str, str] = ("image", "weights")
#: graph output name (ONNX)
OUTPUT_NAME = "stylized"

#: the lowest opset the torch.export-based exporter writes natively (lower ones go to the legacy one)
_DYNAMO_MIN_OPSET = 18
_EXTRA_HINT = 'pip install "physamp[export]"'
#: the images of the check :func:`export_model` runs: (batch, height, width)
_CHECK_SHAPE = (3, 40, 56)


class ExportCheckError(RuntimeError):
    """The exported file's output differs from the eager network's by more than the tolerance."""


class WeightedStyleNetwork(nn.Module):
    """What is exported: ``forward(image (B, 3, H, W), weights (B, N)) -> (B, 3, H, W)``.

    With ``normalize=True`` each row of ``weights`` is divided by its sum (as ``StyleNetwork.forward``
    does by default); no other check or conversion is made (see the module docstring).
    """

    def __init__(self, net: StyleNetwork, normalize: bool = True):
        super().__init__()
        self.net = net
        self.normalize = bool(normalize)

    def forward(self, image: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        if self.normalize:
            weights = weights / weights.sum(1, keepdim=True)
        return self.net.transform(image, weights)


def one_hot_weights(ids: torch.Tensor | Sequence[int] | int, num_styles: int) -> torch.Tensor:
    """Style ids ``(B,)`` (or one int) → ``(B, N)`` float32 one-hot rows, the exported graph's ``weights``."""
    ids = torch.as_tensor(ids)
    if ids.is_floating_point() or ids.dtype == torch.bool:
        raise TypeError(f"style ids must be integers, got {ids.dtype}")
    return F.one_hot(style_weights(ids.reshape(-1), num_styles, ids.numel()), num_styles).float()


# --- checks of the arguments --------------------------------------------------------------------
def _check_net(net: object) -> None:
    if not isinstance(net, StyleNetwork):
        raise TypeError(f"net must be a physamp StyleNetwork, got {type(net).__qualname__}")


def _check_format(format: object) -> str:
    if format not in FORMATS:
        raise ValueError(f"unknown export format {format!r}; choose one of {', '.join(map(repr, FORMATS))}")
    return format


def _require_onnx(need_exporter: bool = False) -> tuple[Any, Any]:
    """``(onnx, onnxruntime)``, or an ImportError naming the extra to install."""
    try:
        import onnx
        import onnxruntime
    except ImportError as e:
        raise ImportError(
            f"ONNX export and checks need onnx and onnxruntime ({e}); install them with: {_EXTRA_HINT}"
        ) from e
    if need_exporter:
        try:
            import onnxscript  # noqa: F401
        except ImportError as e:
            raise ImportError(
                f"the torch.export-based ONNX exporter needs onnxscript ({e}); install it with: "
                f'{_EXTRA_HINT} (or pass onnx_exporter="legacy")'
            ) from e
    return onnx, onnxruntime


def _target_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory; give the path of the file to write")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"the directory {path.parent} does not exist (create it first)")
    return path


def _check_example_size(example_size: Sequence[int]) -> tuple[int, int]:
    size = tuple(example_size)
    if len(size) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in size):
        raise ValueError(f"example_size must be (height, width), two ints, got {example_size!r}")
    h, w = size
    if h % 4 or w % 4 or h < 8 or w < 8:
        raise ValueError(f"example_size {h}×{w}: height and width must be multiples of 4 and at least 8")
    return h, w


def _check_style_names(style_names: Sequence[str] | None, num_styles: int) -> list[str] | None:
    if style_names is None:
        return None
    if isinstance(style_names, str):
        raise TypeError("style_names must be a list of strings (one per style), not a single string")
    names = list(style_names)
    if not all(isinstance(n, str) for n in names):
        raise TypeError(f"style_names must be strings, got {names!r}")
    if len(names) != num_styles:
        raise ValueError(f"{len(names)} style name(s) for a network of {num_styles} styles")
    return names


def _cpu_float_copy(net: StyleNetwork) -> StyleNetwork:
    return copy.deepcopy(net).to("cpu", torch.float32).eval().requires_grad_(False)


def _metadata(net: StyleNetwork, style_names: list[str] | None, normalize: bool) -> dict[str, Any]:
    import physamp

    n = net.num_styles
    return {
        "model": "physamp.models.style.StyleNetwork",
        "num_styles": n,
        "style_names": style_names,
        "normalize_weights": normalize,
        "inputs": {
            INPUT_NAMES[0]: "(B, 3, H, W) float32 RGB in [0, 1]; H, W multiples of 4, at least 8",
            INPUT_NAMES[1]: f"(B, {n}) float32 non-negative style mixing weights (one-hot rows for one style)"
            + ("; each row is divided by its sum" if normalize else "; applied as given (not normalised)"),
        },
        "output": {OUTPUT_NAME: "(B, 3, H, W) float32 in [0, 1]"},
        "physamp_version": physamp.__version__,
        "torch_version": torch.__version__,
    }


# --- the exporters -------------------------------------------------------------------------------
def _silence_torchscript() -> None:
    """Inside ``warnings.catch_warnings()``: hide two warnings that do not apply here, TorchScript's
    deprecation notice (torch 2.13) and ``F.instance_norm``'s traced ``H * W == 1`` size guard."""
    warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message="Converting a tensor to a Python boolean", category=Warning)


def _export_torchscript(model: WeightedStyleNetwork, example: tuple, dest: Path, meta: dict) -> None:
    with warnings.catch_warnings():
        _silence_torchscript()
        with torch.no_grad():
            traced = torch.jit.trace(model, example, check_trace=False)  # check_export checks it instead
        torch.jit.save(traced, str(dest), _extra_files={METADATA_FILE: json.dumps(meta)})


def _load_torchscript(path: Path, extra: dict[str, Any] | None = None) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        _silence_torchscript()
        return torch.jit.load(str(path), map_location="cpu", _extra_files=extra)


def _export_onnx_dynamo(model: WeightedStyleNetwork, example: tuple, dest: Path, opset: int | None) -> None:
    _require_onnx(need_exporter=True)
    from torch.export import Dim

    batch, height, width = Dim("batch"), Dim("height", min=8), Dim("width", min=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # renaming of dynamic axes etc.; the file is checked afterwards
        torch.onnx.export(
            model,
            example,
            str(dest),
            dynamo=True,
            input_names=list(INPUT_NAMES),
            output_names=[OUTPUT_NAME],
            opset_version=opset,
            dynamic_shapes={"image": {0: batch, 2: height, 3: width}, "weights": {0: batch}},
            external_data=False,  # one self-contained file (the weights are ~7 MB)
            verbose=False,
        )


def _export_onnx_legacy(model: WeightedStyleNetwork, example: tuple, dest: Path, opset: int | None) -> None:
    axes = {0: "batch", 2: "height", 3: "width"}
    kwargs: dict[str, Any] = {} if opset is None else {"opset_version": opset}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation notice, instance_norm's train flag
        torch.onnx.export(
            model,
            example,
            str(dest),
            dynamo=False,
            input_names=list(INPUT_NAMES),
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAMES[0]: axes, INPUT_NAMES[1]: {0: "batch"}, OUTPUT_NAME: axes},
            do_constant_folding=True,
            **kwargs,
        )


def _default_opset(proto: Any) -> int | None:
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)


def _write_onnx_metadata(onnx: Any, dest: Path, meta: dict) -> None:
    proto = onnx.load(str(dest))
    del proto.metadata_props[:]
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    proto.doc_string = (
        f"physamp StyleNetwork ({meta['num_styles']} styles): {INPUT_NAMES[0]} (B, 3, H, W) in [0, 1] and "
        f"{INPUT_NAMES[1]} (B, N) style mixing weights -> {OUTPUT_NAME} (B, 3, H, W) in [0, 1]"
    )
    onnx.checker.check_model(proto)
    onnx.save(proto, str(dest))


def _export_onnx(
    model: WeightedStyleNetwork,
    example: tuple,
    dest: Path,
    opset: int | None,
    exporter: str,
    meta: dict,
    check: Callable[[], object],
) -> str:
    """Write the ONNX file with ``meta`` in its ``metadata_props`` and ``check()`` it; returns the
    exporter used. With ``exporter="auto"``, a failure of the torch.export-based exporter, or of its
    file's check, falls back to the TorchScript-based exporter."""
    onnx, _ = _require_onnx()
    use_dynamo = exporter == "dynamo" or (
        exporter == "auto" and (opset is None or opset >= _DYNAMO_MIN_OPSET)
    )  # below opset 18 the torch.export-based exporter can only down-convert, and not every op (Pad)
    if use_dynamo:
        try:
            _export_onnx_dynamo(model, example, dest, opset)
            got = _default_opset(onnx.load(str(dest), load_external_data=False))
            if opset is not None and got != opset:
                raise RuntimeError(f"asked for opset {opset}, the torch.export-based exporter wrote {got}")
            _write_onnx_metadata(onnx, dest, {**meta, "onnx_exporter": "dynamo"})
            check()
            return "dynamo"
        except Exception as e:
            if exporter == "dynamo":
                raise
            warnings.warn(
                f"the torch.export-based ONNX exporter failed ({type(e).__name__}: {str(e)[:300]}); "
                "falling back to the TorchScript-based exporter (dynamo=False)",
                RuntimeWarning,
                stacklevel=3,
            )
    _export_onnx_legacy(model, example, dest, opset)
    _write_onnx_metadata(onnx, dest, {**meta, "onnx_exporter": "legacy"})
    check()
    return "legacy"


# --- public API ----------------------------------------------------------------------------------
def export_model(
    net: StyleNetwork,
    path: str | os.PathLike,
    format: str = "torchscript",
    *,
    example_size: Sequence[int] = (256, 256),
    opset: int | None = None,
    style_names: Sequence[str] | None = None,
    normalize: bool = True,
    onnx_exporter: str = "auto",
    atol: float = 1e-4,
) -> Path:
    """Export ``net`` as ``(image (B, 3, H, W), weights (B, N)) -> (B, 3, H, W)`` and check the file.

    Args:
        net: the :class:`StyleNetwork` (any device and dtype; a float32 CPU copy is exported).
        path: the file to write (its directory must exist); replaced only once the new file passes
            :func:`check_export`.
        format: ``"torchscript"`` or ``"onnx"``.
        example_size: ``(H, W)`` of the example images the graph is traced with (multiples of 4,
            ≥ 8); the exported graph takes any batch and any valid size.
        opset: ONNX opset (default: the exporter's, 18 or more); only for ``format="onnx"``.
        style_names: ``N`` names stored in the metadata (optional).
        normalize: divide each weights row by its sum in the graph (the eager default; see the
            module docstring).
        onnx_exporter: ``"auto"`` (torch.export-based, falling back to the TorchScript-based one
            with a warning), ``"dynamo"`` or ``"legacy"``.
        atol: the largest max-abs difference from the eager network :func:`check_export` accepts.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        TypeError: ``net`` is not a StyleNetwork.
        ValueError: an unknown format or exporter, a bad ``example_size``, ``opset`` or ``style_names``.
        FileNotFoundError: the directory of ``path`` does not exist.
        ImportError: ``format="onnx"`` without onnx / onnxruntime (``pip install "physamp[export]"``).
        ExportCheckError: the exported file does not reproduce the eager network within ``atol``.
    """
    _check_net(net)
    format = _check_format(format)
    dest = _target_path(path)
    h, w = _check_example_size(example_size)
    names = _check_style_names(style_names, net.num_styles)
    if onnx_exporter not in ONNX_EXPORTERS:
        choices = ", ".join(map(repr, ONNX_EXPORTERS))
        raise ValueError(f"unknown onnx_exporter {onnx_exporter!r}; choose one of {choices}")
    if opset is not None:
        if format != "onnx":
            raise ValueError("opset applies to ONNX export only")
        if isinstance(opset, bool) or not isinstance(opset, int) or opset < 9:
            raise ValueError(f"opset must be an int >= 9, got {opset!r}")
    if format == "onnx":
        _require_onnx()

    n = net.num_styles
    model = WeightedStyleNetwork(_cpu_float_copy(net), normalize)
    gen = torch.Generator().manual_seed(0)
    example = (torch.rand(2, 3, h, w, generator=gen), torch.rand(2, n, generator=gen) + 0.1)
    meta = _metadata(net, names, bool(normalize))
    # the check: another batch (3) and, always, another size than the example's
    b, ch, cw = _CHECK_SHAPE
    check_size = (ch, cw) if (ch, cw) != (h, w) else (ch + 4, cw + 4)
    check_x = torch.rand(b, 3, *check_size, generator=gen)
    tmp = dest.with_name(f".{dest.name}.partial-{os.getpid()}")
    try:
        if format == "torchscript":
            _export_torchscript(model, example, tmp, meta)
            check_export(net, tmp, format, x=check_x, atol=atol)
        else:
            _export_onnx(
                model,
                example,
                tmp,
                opset,
                onnx_exporter,
                meta,
                lambda: check_export(net, tmp, format, x=check_x, atol=atol),
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def read_metadata(path: str | os.PathLike, format: str | None = None) -> dict[str, Any]:
    """The metadata :func:`export_model` stored in ``path`` (``{}`` if there is none).

    ``format``: ``"torchscript"`` or ``"onnx"``; ``None`` tells them apart by the file (TorchScript
    archives are zip files).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no exported model at {path}")
    if format is None:
        format = "torchscript" if zipfile.is_zipfile(path) else "onnx"
    format = _check_format(format)
    if format == "torchscript":
        extra = {METADATA_FILE: ""}
        _load_torchscript(path, extra)
        return json.loads(extra[METADATA_FILE]) if extra[METADATA_FILE] else {}
    onnx, _ = _require_onnx()
    proto = onnx.load(str(path), load_external_data=False)
    return {p.key: json.loads(p.value) for p in proto.metadata_props}


def _default_weights(batch: int, n: int, gen: torch.Generator) -> torch.Tensor:
    """One-hot rows for styles 0, 1, ... and, in the last row, an unnormalised blend of all of them."""
    w = torch.zeros(batch, n)
    for i in range(batch - 1):
        w[i, i % n] = 1.0
    w[-1] = 2.0 * torch.rand(n, generator=gen) + 0.05
    return w


def _batch_of(weights: object) -> int:
    """The batch that ``weights`` imply: ``B`` of ids ``(B,)`` or weights ``(B, N)``, else the default 3."""
    if weights is None or isinstance(weights, int):
        return _CHECK_SHAPE[0]
    t = weights if isinstance(weights, torch.Tensor) else torch.as_tensor(weights)
    if t.is_floating_point():
        return t.shape[0] if t.dim() == 2 else _CHECK_SHAPE[0]
    return t.shape[0] if t.dim() == 1 else _CHECK_SHAPE[0]


def check_export(
    net: StyleNetwork,
    path: str | os.PathLike,
    format: str,
    *,
    x: torch.Tensor | None = None,
    weights: torch.Tensor | Sequence[float] | int | None = None,
    atol: float = 1e-4,
) -> float:
    """Max abs difference between the exported file and the eager ``net`` on the same inputs.

    Runs the file (``torch.jit.load`` / an onnxruntime CPU session, with ``torch.get_num_threads()``
    threads) and ``net(x, weights, normalize=...)`` with the normalisation recorded in the file, on a
    float32 CPU copy of ``net``.

    Args:
        net: the eager :class:`StyleNetwork` the file was exported from.
        path: the exported file.
        format: ``"torchscript"`` or ``"onnx"``.
        x: ``(B, 3, H, W)`` images in [0, 1] (default: 3 random images at 40×56).
        weights: anything ``net.forward`` takes as styles, for ``B`` images: ids ``(B,)`` (fed to the
            file as one-hot rows), weights ``(N,)`` or ``(B, N)``. Default: one-hot rows of styles
            0, 1, ... and an unnormalised blend of every style in the last row.
        atol: the tolerance.

    Returns:
        The max abs difference (a float ≤ ``atol``).

    Raises:
        ExportCheckError: a difference above ``atol`` (or a NaN, or a wrong output shape).
        ValueError: bad inputs, or a file for another number of styles / without physamp metadata.
    """
    _check_net(net)
    format = _check_format(format)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no exported model at {path}")
    n = net.num_styles
    meta = read_metadata(path, format)
    if "num_styles" not in meta:
        raise ValueError(f"{path} has no physamp metadata; export it with physamp's export_model")
    if meta["num_styles"] != n:
        raise ValueError(f"{path} was exported for {meta['num_styles']} styles; this network has {n}")
    normalize = bool(meta.get("normalize_weights", True))

    gen = torch.Generator().manual_seed(1)
    if x is None:
        x = torch.rand(_batch_of(weights), 3, *_CHECK_SHAPE[1:], generator=gen)
    check_content(x, "the check images")
    x = x.detach().to("cpu", torch.float32)
    batch = x.shape[0]
    w = _default_weights(batch, n, gen) if weights is None else weights
    w = style_weights(w, n, batch, normalize=False)
    w = F.one_hot(w, n).float() if w.dtype == torch.long else w.to("cpu", torch.float32)

    with torch.no_grad():
        expected = _cpu_float_copy(net)(x, w, normalize=normalize)
    if format == "torchscript":
        module = _load_torchscript(path)
        with torch.no_grad():
            got = module(x, w)
    else:
        _, ort = _require_onnx()
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = torch.get_num_threads()
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        out = session.run(None, dict(zip(names, (x.numpy(), w.numpy()), strict=True)))[0]
        got = torch.from_numpy(out)
    if tuple(got.shape) != tuple(expected.shape):
        raise ExportCheckError(
            f"{path}: the exported model gave shape {tuple(got.shape)} for images {tuple(x.shape)}; "
            f"the eager network gives {tuple(expected.shape)}"
        )
    diff = float((got - expected).abs().max()) if got.numel() else 0.0
    if not diff <= atol:  # also catches NaN
        raise ExportCheckError(
            f"{path}: the exported {format} model differs from the eager network by {diff:.3g} (max abs) "
            f"> atol={atol:g} on images {tuple(x.shape)}"
        )
    return diff
