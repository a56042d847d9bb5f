"""The MobileNet- and ResNet-style architectures (docs/training.md#architectures): PyTorch -> ONNX -> `accelsim
import` -> `accelsim eval --float --logits` equals PyTorch and onnxruntime on the same images; shipping a model
through ONNX (onnx_export.ship_via_onnx) keeps every trained bit, and the simulator's quantized logits equal the
companion's. Untrained (random) weights, a few images: seconds. Needs onnx + onnxruntime (dev extras), the
accelsim binary (ACCELSIM_BIN or target/release/accelsim) and the dataset."""


import numpy as np
import pytest
import torch
from torch import nn

from accelsim_train import data, evaluate, models, quant
from accelsim_train.models import ReparamGroupNorm
from accelsim_train.train import TrainConfig, project_, quantize_model, dequantize

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
from accelsim_train.onnx_export import _call_order, export_onnx, ship_via_onnx  # noqa: E402

from sim_paths import ROOT, accelsim_bin, dataset_dir  # noqa: E402

IMAGES = 32
NEW_ARCHS = ("mobilenet-small", "resnet-small")


def trained_like(arch: str, seed: int = 5) -> nn.Module:
    """He-initialised weights plus non-zero GroupNorm alpha' and bias (as after training), deterministic."""
    torch.manual_seed(seed)
    m = models.build(arch)
    for mod in m.modules():
        if isinstance(mod, ReparamGroupNorm):
            mod.weight.data.uniform_(-0.3, 0.3)
            mod.bias.data.uniform_(-0.2, 0.2)
    return m.eval()


def run(*args):
    import subprocess

    return subprocess.run([str(accelsim_bin()), *map(str, args)], capture_output=True, text=True, timeout=300)


def test_architectures_are_small_and_use_the_intended_operators():
    mob, res = models.build("mobilenet-small"), models.build("resnet-small")
    for m in (mob, res):
        assert sum(p.numel() for p in m.parameters()) <= 100_000
    dw = [c for c in mob.modules() if isinstance(c, nn.Conv2d) and c.groups > 1]
    assert len(dw) == 4 and all(c.groups == c.in_channels == c.out_channels for c in dw)
    assert any(isinstance(c, nn.Conv2d) and c.kernel_size == (1, 1) and c.stride == (2, 2) for c in res.modules())


@pytest.mark.parametrize("arch", NEW_ARCHS)
def test_float_import_matches_pytorch_and_onnxruntime(tmp_path, arch):
    d = dataset_dir()
    model = trained_like(arch)
    onnx_path = tmp_path / f"{arch}.onnx"
    export_onnx(model, onnx_path)
    r = run("import", onnx_path, "--out", tmp_path / arch, "--dataset", "fashion-mnist",
            "--mean", data.MEAN, "--std", data.STD)
    assert r.returncode == 0, r.stderr
    toml = (tmp_path / f"{arch}.toml").read_text()
    if arch == "mobilenet-small":  # depthwise convolutions and ReLU6 arrive as such
        assert toml.count("groups = 16") >= 1 and 'type = "clip"' in toml
    else:
        assert toml.count('type = "add"') == 2
    r = run("eval", "--model", tmp_path / f"{arch}.toml", "--float", "--limit", IMAGES, "--data", d,
            "--logits", tmp_path / "logits.npy")
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
        np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    assert (ours.argmax(1) == ref_ort.argmax(1)).all()


@pytest.mark.parametrize("arch,method,w_max,p", [("mobilenet-small", "randbet", 0.1, 0.02),
                                                 ("resnet-small", "normal", None, 0.0)])
def test_shipping_through_onnx_keeps_every_trained_bit(tmp_path, monkeypatch, arch, method, w_max, p):
    d = dataset_dir()
    monkeypatch.setenv("ACCELSIM_BIN", str(accelsim_bin()))
    cfg = TrainConfig(arch=arch, method=method, bits=8, w_max=w_max, p=p, epochs=1)
    cfg.validate()
    model = trained_like(arch)
    project_(model, cfg)  # the trainer's clipping, as after the last step
    scheme = cfg.scheme()
    paths = ship_via_onnx(model, cfg, 12.5, 64, tmp_path / f"fmnist-x-{method}-8b")
    assert [p.suffix for p in paths] == [".onnx", ".toml", ".safetensors"]
    shipped = evaluate.load_model(tmp_path / f"fmnist-x-{method}-8b")  # re-quantizes and checks the stored codes
    man = shipped.manifest
    assert man["family"] == f"fmnist-x-{method}" and man["training"]["method"] == method
    norms = [lay for lay in man["layers"] if lay["type"] == "groupnorm"]
    assert norms and all(lay["reparameterized"] for lay in norms)
    # The stored codes are the trainer's codes of the trained parameters, tensor for tensor, in the order the
    # forward pass uses them (weight, then bias), which is the manifest's memory order.
    trained = quantize_model(model, scheme)
    name_of = {id(p_): n for n, p_ in model.named_parameters()}
    order = [name_of[id(getattr(m, k))] for m in _call_order(model) for k in ("weight", "bias")
             if getattr(m, k, None) is not None]
    assert len(order) == len(shipped.param_names) == len(trained)
    for n, sn in zip(order, shipped.param_names):
        assert torch.equal(shipped.codes[sn].to(torch.int64), trained[n][0].to(torch.int64)), (n, sn)
    # Quantized logits: the companion's evaluation of the shipped files = the trainer's quantized forward pass,
    # and the simulator's = both (float rounding only).
    x, _ = data.load_split(d, train=False)
    x = x[:IMAGES]
    from torch.func import functional_call

    with torch.no_grad():
        ref = functional_call(model.eval(), dequantize(trained, scheme), (x,)).numpy()
        comp = shipped.forward(x, shipped.dequantized()).numpy()
    np.testing.assert_allclose(comp, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    r = run("eval", "--model", paths[1], "--limit", IMAGES, "--data", d, "--logits", tmp_path / "q.npy")
    assert r.returncode == 0, r.stderr
    np.testing.assert_allclose(np.load(tmp_path / "q.npy"), ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    # The companion's robust error of the shipped model: the same per chip with chips in 2 processes (--jobs).
    x64, y64 = data.load_split(d, train=False)
    x64, y64 = x64[:64], y64[:64]
    one = evaluate.robust_errors(shipped, x64, y64, [0.01, 0.2], [100, 101, 102])
    two = evaluate.robust_errors(shipped, x64, y64, [0.01, 0.2], [100, 101, 102], jobs=2)
    assert one == two and len(one[0.2]["values"]) == 3
    # One quantized weight differs from the float one: the comparison above really is of quantized weights.
    assert any(not torch.equal(quant.decode(trained[n][0], scheme, trained[n][1]), p_.detach())
               for n, p_ in model.named_parameters())
