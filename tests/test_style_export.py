"""Export of the style network (physamp.models.style.export): TorchScript and ONNX files against eager.

Small on purpose: N = 3 styles, 32×32 example images; each format is exported once per module.
"""

from __future__ import annotations

import copy
import json
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from physamp.models.style import export as ex
from physamp.models.style.export import (
    ExportCheckError,
    check_export,
    export_model,
    one_hot_weights,
    read_metadata,
)
from physamp.models.style.network import StyleNetwork

# torch 2.13 deprecates torch.jit.load, which run_file calls directly
pytestmark = pytest.mark.filterwarnings(r"ignore:`torch\.jit\.load` is deprecated:DeprecationWarning")

N = 3
NAMES = ["monet", "klimt", "hokusai"]
# (batch, height, width): two batches and two sizes, neither the example's (2, 32, 32) as a pair
SHAPES = [(1, 32, 32), (3, 48, 40)]


@pytest.fixture(scope="module")
def net() -> StyleNetwork:
    """A StyleNetwork whose styles differ (random γ, β instead of the identity initialisation)."""
    g = torch.Generator().manual_seed(0)
    net = StyleNetwork(N, generator=g)
    with torch.no_grad():
        for m in net.norms():
            m.gamma.copy_(1.0 + 0.5 * torch.randn(m.gamma.shape, generator=g))
            m.beta.copy_(0.5 * torch.randn(m.beta.shape, generator=g))
    return net


@pytest.fixture(scope="module")
def ts_file(net, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ts") / "style.pt"
    return export_model(net, path, "torchscript", example_size=(32, 32), style_names=NAMES)


@pytest.fixture(scope="module")
def onnx_file(net, tmp_path_factory) -> Path:
    pytest.importorskip("onnxruntime")
    path = tmp_path_factory.mktemp("onnx") / "style.onnx"
    return export_model(net, path, "onnx", example_size=(32, 32), style_names=NAMES)


@pytest.fixture(params=ex.FORMATS)
def exported(request) -> tuple[str, Path]:
    fixture = {"torchscript": "ts_file", "onnx": "onnx_file"}[request.param]
    return request.param, request.getfixturevalue(fixture)


def run_file(fmt: str, path: Path, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """The exported model's output, run directly (not through check_export)."""
    if fmt == "torchscript":
        with torch.no_grad():
            return torch.jit.load(str(path))(x, w)
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return torch.from_numpy(sess.run(["stylized"], {"image": x.numpy(), "weights": w.numpy()})[0])


def images(b: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(seed))


# --- exported == eager ---------------------------------------------------------------------------
@pytest.mark.parametrize("shape", SHAPES)
def test_one_hot_rows_match_style_ids(net, exported, shape):
    fmt, path = exported
    b, h, w = shape
    x = images(b, h, w)
    ids = torch.arange(b) % N
    got = run_file(fmt, path, x, one_hot_weights(ids, N))
    with torch.no_grad():
        want = net(x, ids)
    assert got.shape == (b, 3, h, w)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=0)
    assert check_export(net, path, fmt, x=x, weights=ids) <= 1e-4


@pytest.mark.parametrize("shape", SHAPES)
def test_three_way_blend_matches_eager(net, exported, shape):
    fmt, path = exported
    b, h, w = shape
    x = images(b, h, w, seed=1)
    weights = torch.tensor([[2.0, 1.0, 1.0], [0.2, 0.3, 0.5], [1.0, 1.0, 1.0]])[:b]  # unnormalised rows
    got = run_file(fmt, path, x, weights)
    with torch.no_grad():
        want = net(x, weights)  # the eager default divides each row by its sum; so does the file
        pure = net(x, torch.zeros(b, dtype=torch.long))
    torch.testing.assert_close(got, want, atol=1e-4, rtol=0)
    assert (want - pure).abs().max() > 1e-2  # the blend really differs from style 0 alone
    assert check_export(net, path, fmt, x=x, weights=weights) <= 1e-4


def test_default_check_and_styles_differ(net, exported):
    fmt, path = exported
    assert 0.0 <= check_export(net, path, fmt) <= 1e-4
    x = images(1, 32, 32).expand(N, -1, -1, -1)
    y = run_file(fmt, path, x, torch.eye(N))
    assert (y[0] - y[1]).abs().max() > 1e-2 and (y[1] - y[2]).abs().max() > 1e-2


def test_metadata(exported):
    fmt, path = exported
    meta = read_metadata(path)  # the format is told from the file
    assert meta == read_metadata(path, fmt)
    assert meta["num_styles"] == N and meta["style_names"] == NAMES and meta["normalize_weights"] is True
    if fmt == "torchscript":
        assert zipfile.is_zipfile(path)
        extra = {ex.METADATA_FILE: ""}
        torch.jit.load(str(path), _extra_files=extra)
        assert json.loads(extra[ex.METADATA_FILE])["num_styles"] == N
    else:
        import onnxruntime as ort

        custom = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_modelmeta()
        assert custom.custom_metadata_map["num_styles"] == "3"
        assert json.loads(custom.custom_metadata_map["style_names"]) == NAMES


def test_onnx_axes_are_dynamic(onnx_file):
    import onnx

    model = onnx.load(str(onnx_file))
    image, weights = model.graph.input
    assert (image.name, weights.name) == ex.INPUT_NAMES
    dims = [d.dim_param or d.dim_value for d in image.type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]
    assert [d.dim_param or d.dim_value for d in weights.type.tensor_type.shape.dim] == ["batch", N]
    assert read_metadata(onnx_file)["onnx_exporter"] == "dynamo"  # the default exporter, no fallback


def test_unnormalised_export(net, tmp_path):
    path = export_model(net, tmp_path / "raw.pt", example_size=(16, 16), normalize=False)
    assert read_metadata(path)["normalize_weights"] is False
    x, w = images(2, 32, 32), torch.tensor([[0.5, 0.5, 0.5], [2.0, 0.0, 0.0]])
    with torch.no_grad():
        want, normalised = net(x, w, normalize=False), net(x, w)
    got = run_file("torchscript", path, x, w)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=0)
    assert (got - normalised).abs().max() > 1e-3
    assert check_export(net, path, "torchscript", x=x, weights=w) <= 1e-4


def test_legacy_fallback(net, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")

    def broken(*args, **kwargs):
        raise RuntimeError("simulated torch.export failure")

    monkeypatch.setattr(ex, "_export_onnx_dynamo", broken)
    with pytest.warns(RuntimeWarning, match="falling back"):
        path = export_model(net, tmp_path / "m.onnx", "onnx", example_size=(16, 16))
    assert read_metadata(path)["onnx_exporter"] == "legacy"
    x = images(3, 40, 32)
    w = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [1.0, 2.0, 3.0]])
    with torch.no_grad():
        torch.testing.assert_close(run_file("onnx", path, x, w), net(x, w), atol=1e-4, rtol=0)
    with pytest.raises(RuntimeError, match="simulated"):
        export_model(net, tmp_path / "n.onnx", "onnx", example_size=(16, 16), onnx_exporter="dynamo")


def test_low_opset_uses_the_legacy_exporter(net, tmp_path):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    path = export_model(net, tmp_path / "o17.onnx", "onnx", example_size=(16, 16), opset=17)
    assert read_metadata(path)["onnx_exporter"] == "legacy"
    assert [o.version for o in onnx.load(str(path)).opset_import if o.domain in ("", "ai.onnx")] == [17]


def test_network_is_not_changed(tmp_path):
    net = StyleNetwork(2).double()
    before = copy.deepcopy(net.state_dict())
    export_model(net, tmp_path / "d.pt", example_size=(16, 16))
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert next(net.parameters()).dtype == torch.float64


def test_one_hot_weights():
    assert torch.equal(one_hot_weights([2, 0], 3), torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]))
    assert one_hot_weights(1, 3).shape == (1, 3)
    with pytest.raises(ValueError, match="out of range"):
        one_hot_weights([3], 3)
    with pytest.raises(TypeError, match="integers"):
        one_hot_weights(torch.tensor([0.5]), 3)


# --- errors --------------------------------------------------------------------------------------
def test_export_argument_errors(net, tmp_path):
    with pytest.raises(ValueError, match="unknown export format 'tflite'"):
        export_model(net, tmp_path / "m", "tflite")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        export_model(net, tmp_path / "no" / "such" / "m.pt")
    with pytest.raises(IsADirectoryError):
        export_model(net, tmp_path)
    with pytest.raises(TypeError, match="StyleNetwork"):
        export_model(torch.nn.Conv2d(3, 3, 1), tmp_path / "m.pt")
    with pytest.raises(ValueError, match="multiples of 4"):
        export_model(net, tmp_path / "m.pt", example_size=(30, 32))
    with pytest.raises(ValueError, match="2 style name"):
        export_model(net, tmp_path / "m.pt", style_names=["a", "b"])
    with pytest.raises(ValueError, match="ONNX export only"):
        export_model(net, tmp_path / "m.pt", opset=17)
    with pytest.raises(ValueError, match="onnx_exporter"):
        export_model(net, tmp_path / "m.onnx", "onnx", onnx_exporter="fast")
    assert list(tmp_path.iterdir()) == []


def test_missing_onnxruntime_is_a_clear_error(net, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    with pytest.raises(ImportError, match=r'pip install "physamp\[export\]"'):
        export_model(net, tmp_path / "m.onnx", "onnx")


def test_check_errors(net, ts_file, tmp_path):
    other = copy.deepcopy(net)
    with torch.no_grad():
        other.out.norm.beta.add_(0.5)
    with pytest.raises(ExportCheckError, match="differs from the eager network"):
        check_export(other, ts_file, "torchscript")
    with pytest.raises(ValueError, match="exported for 3 styles"):
        check_export(StyleNetwork(2), ts_file, "torchscript")
    with pytest.raises(FileNotFoundError):
        check_export(net, tmp_path / "none.pt", "torchscript")
    with pytest.raises(ValueError, match="unknown export format"):
        check_export(net, ts_file, "coreml")
    with pytest.raises(ValueError, match="multiples of 4"):
        check_export(net, ts_file, "torchscript", x=torch.rand(1, 3, 30, 32))


def test_failed_check_leaves_no_file(net, tmp_path, monkeypatch):
    dest = tmp_path / "m.pt"
    dest.write_bytes(b"previous")

    def failing(*args, **kwargs):
        raise ExportCheckError("simulated mismatch")

    monkeypatch.setattr(ex, "check_export", failing)
    with pytest.raises(ExportCheckError, match="simulated"):
        export_model(net, dest, example_size=(16, 16))
    assert dest.read_bytes() == b"previous"  # the old file is kept, and no partial file is left
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]
