"""PyTorch model -> ONNX -> `accelsim import` -> `accelsim eval --float --logits` equals PyTorch and onnxruntime on
the same Fashion-MNIST test images; the import's post-training quantization equals the companion's quantizer bit
for bit (docs/onnx.md). Needs onnx + onnxruntime (dev extras), the accelsim binary (cargo build) and the dataset."""

import io
import json
import struct
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from accelsim_train import data, quant

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from sim_paths import ROOT, accelsim_bin, dataset_dir  # noqa: E402

IMAGES = 64


class SepNet(nn.Module):
    """Depthwise-separable blocks (BatchNorm, ReLU6), a residual add, global average pooling, linear head."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU6())
        self.dw = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False), nn.BatchNorm2d(8), nn.ReLU6())
        self.pw = nn.Sequential(nn.Conv2d(8, 8, 1, bias=False), nn.BatchNorm2d(8))
        self.down = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU())
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.stem(x)
        x = torch.relu(x + self.pw(self.dw(x)))
        x = nn.functional.adaptive_avg_pool2d(self.down(x), 1)
        return self.fc(x.view(x.size(0), -1))


def export(model: nn.Module, path: Path, opset: int):
    warnings.filterwarnings("ignore")
    torch.onnx.export(model, torch.zeros(1, 1, 28, 28), path, dynamo=False, opset_version=opset,
                      input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})


def trained_like(model: nn.Module) -> nn.Module:
    """Random but non-trivial weights and BatchNorm statistics (deterministic)."""
    torch.manual_seed(3)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.3, 0.3)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


def run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([str(accelsim_bin()), *map(str, args)], capture_output=True, text=True, timeout=300)


def read_safetensors(path: Path) -> dict:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    out = {}
    dtypes = {"F32": np.float32, "U8": np.uint8, "I8": np.int8, "I16": np.int16, "I32": np.int32}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + a : 8 + n + b], dtype=dtypes[t["dtype"]]).reshape(t["shape"])
    return out


@pytest.mark.parametrize("opset", [13, 17])
def test_float_import_matches_pytorch_and_onnxruntime(tmp_path, opset):
    d = dataset_dir()
    model = trained_like(SepNet())
    onnx_path = tmp_path / "sep.onnx"
    export(model, onnx_path, opset)
    r = run("import", onnx_path, "--out", tmp_path / "sep", "--dataset", "fashion-mnist",
            "--mean", data.MEAN, "--std", data.STD)
    assert r.returncode == 0, r.stderr
    r = run("eval", "--model", tmp_path / "sep.toml", "--float", "--limit", IMAGES,
            "--data", d, "--logits", tmp_path / "logits.npy")
    assert r.returncode == 0, r.stderr
    ours = np.load(tmp_path / "logits.npy")
    x, _ = data.load_split(d, train=False)
    x = x[:IMAGES]
    with torch.no_grad():
        ref_torch = model(x).numpy()
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    ref_ort = sess.run(None, {"x": x.numpy()})[0]
    assert ours.shape == (IMAGES, 10) and ours.dtype == np.float32
    for ref in (ref_torch, ref_ort):
        # 1e-4 relative to the logits' scale (a logit near zero has no meaningful relative error).
        np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    # Same predictions as onnxruntime on every image.
    assert (ours.argmax(1) == ref_ort.argmax(1)).all()


@pytest.mark.parametrize("scheme,bits,w_max", [("rquant", 8, None), ("normal", 4, None), ("rquant", 6, 0.3)])
def test_post_training_quantization_equals_the_companion(tmp_path, scheme, bits, w_max):
    model = trained_like(SepNet())
    onnx_path = tmp_path / "sep.onnx"
    export(model, onnx_path, 17)
    args = ["import", onnx_path, "--out", tmp_path / "q", "--bits", bits, "--scheme", scheme]
    if w_max is not None:
        args += ["--w-max", w_max]
    r = run(*args)
    assert r.returncode == 0, r.stderr
    tensors = read_safetensors(tmp_path / "q.safetensors")
    sch = quant.preset(scheme, bits, w_max)
    params = [n for n in tensors if not n.endswith(":codes") and n + ":codes" in tensors]
    assert len(params) >= 8
    for name in params:
        w = torch.from_numpy(tensors[name].copy())
        codes = quant.encode(w, sch).numpy()
        np.testing.assert_array_equal(tensors[name + ":codes"], codes.astype(tensors[name + ":codes"].dtype),
                                      err_msg=name)


def test_refusal_is_one_line_exit_2(tmp_path):
    bad = ROOT / "tests/data/onnx/bad_unsupported_op.onnx"
    r = run("import", bad, "--out", tmp_path / "x")
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "Erf" in r.stderr
