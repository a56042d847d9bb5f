"""QDQ models (docs/onnx.md#qdq-models): onnxruntime's `quantize_static` of a small conv net
(tests/data/onnx/qdq_cnn_{pt,pc}.onnx, made by scripts/make_qdq_model.py) → `accelsim import` keeps its integer
weights, scales and activation parameters → `accelsim eval --datapath int8 --logits` equals onnxruntime's CPU
int8 outputs on at least 99.5% of values, and never more than one output step apart, on the whole Fashion-MNIST
test set: onnxruntime's integer kernels on CPUs with VNNI (elsewhere they saturate), and its unoptimized run (the
QDQ graph as written) on every CPU. Needs onnx + onnxruntime (dev extras), the accelsim binary and the dataset."""

import subprocess
import tomllib

import numpy as np
import pytest

from accelsim_train import data

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import numpy_helper  # noqa: E402

from sim_paths import ROOT, accelsim_bin, dataset_dir  # noqa: E402
from test_onnx import read_safetensors  # noqa: E402

FIXTURES = ROOT / "tests" / "data" / "onnx"


def run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([str(accelsim_bin()), *map(str, args)], capture_output=True, text=True, timeout=600)


def imported(tmp_path, tag):
    out = tmp_path / f"qdq_{tag}"
    r = run("import", FIXTURES / f"qdq_cnn_{tag}.onnx", "--out", out, "--dataset", "fashion-mnist",
            "--mean", "0.2860", "--std", "0.3530")
    assert r.returncode == 0, r.stderr
    return out


@pytest.fixture(scope="module")
def test_images():
    x, y = data.load_split(dataset_dir(), train=False)
    return x.numpy(), y.numpy()


def cpu_has_vnni() -> bool:
    """Whether this CPU has a u8 x s8 dot product that cannot saturate (AVX-512 VNNI or AVX-VNNI)."""
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return "avx512_vnni" in flags or "avx_vnni" in flags


def onnxruntime_outputs(tag, x, optimized: bool):
    """onnxruntime's CPU outputs, 1 thread. `optimized`: its default graph optimizations, which fuse each
    DequantizeLinear -> op -> QuantizeLinear group into an integer kernel; without them every node runs as the
    graph says (integer codes de-quantized, the op in float, quantized again): the QDQ model's own definition."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    if not optimized:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(str(FIXTURES / f"qdq_cnn_{tag}.onnx"), so, providers=["CPUExecutionProvider"])
    return np.concatenate([sess.run(None, {"x": x[i : i + 1000]})[0] for i in range(0, len(x), 1000)])


def assert_within_one_step(ours, theirs, step, what):
    assert ours.shape == theirs.shape == (10000, 10), what
    steps = np.abs(ours.astype(np.float64) - theirs) / step
    # Both are dequantized uint8 codes of the same scale: whole steps apart.
    assert np.allclose(steps, np.round(steps), atol=1e-3), what
    assert steps.max() <= 1.0 + 1e-3, (what, steps.max())
    assert (steps < 0.5).mean() >= 0.995, (what, (steps < 0.5).mean())
    # The same predictions up to the rare one-step ties.
    assert (ours.argmax(1) != theirs.argmax(1)).mean() < 0.005, what


@pytest.mark.parametrize("tag", ["pt", "pc"])
def test_int8_outputs_equal_onnxruntime_int8(tmp_path, tag, test_images):
    x, y = test_images
    out = imported(tmp_path, tag)
    r = run("eval", "--model", out.with_suffix(".toml"), "--datapath", "int8", "--data", dataset_dir(),
            "--logits", tmp_path / "logits.npy")
    assert r.returncode == 0, r.stderr
    ours = np.load(tmp_path / "logits.npy")
    m = onnx.load(FIXTURES / f"qdq_cnn_{tag}.onnx")
    step = float(next(numpy_helper.to_array(i) for i in m.graph.initializer if i.name == "y_scale"))
    # Against the QDQ graph's own definition, on every CPU.
    assert_within_one_step(ours, onnxruntime_outputs(tag, x, optimized=False), step, "unoptimized onnxruntime")
    # Against onnxruntime's integer kernels where they are exact. Without VNNI its u8 x s8 kernels use
    # vpmaddubsw, whose i16 pair sums saturate (onnxruntime's quantization docs say so and advise reduce_range):
    # on an AVX2-only Zen 3 its outputs were up to 5 steps from its own unoptimized run, accelsim's within 1.
    if cpu_has_vnni():
        assert_within_one_step(ours, onnxruntime_outputs(tag, x, optimized=True), step, "onnxruntime int8")
    # The float datapath (float activations, the ReLUs the quantizer removed made explicit) stays close.
    r = run("eval", "--model", out.with_suffix(".toml"), "--data", dataset_dir(), "--logits", tmp_path / "f.npy")
    assert r.returncode == 0, r.stderr
    float_err = (np.load(tmp_path / "f.npy").argmax(1) != y).mean()
    int8_err = (ours.argmax(1) != y).mean()
    assert abs(float_err - int8_err) < 0.005, (float_err, int8_err)


@pytest.mark.parametrize("tag", ["pt", "pc"])
def test_import_keeps_codes_scales_and_activation_parameters(tmp_path, tag):
    out = imported(tmp_path, tag)
    m = onnx.load(FIXTURES / f"qdq_cnn_{tag}.onnx")
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    st = read_safetensors(out.with_suffix(".safetensors"))
    man = tomllib.loads(out.with_suffix(".toml").read_text())
    assert man["quantization"] == {"bits": 8, "granularity": "channel", "symmetric": True, "signed": True,
                                   "rounding": True}
    convs = [l for l in man["layers"] if l["type"] in ("conv2d", "linear")]
    onnx_weights = sorted(k for k in inits if k.endswith("weight_quantized"))
    assert len(convs) == len(onnx_weights) == 4
    for layer, wname in zip(convs, onnx_weights):
        q = inits[wname]
        s = inits[wname.replace("_quantized", "_scale")]
        codes = st[layer["weight"] + ":codes"]
        assert codes.dtype == np.int8 and np.array_equal(codes, q), layer["name"]
        # The stored float weights are ONNX's DequantizeLinear, bit for bit.
        per = s.reshape(-1, *([1] * (q.ndim - 1))) if s.ndim else s
        want = (q.astype(np.float32) * per.astype(np.float32)).astype(np.float32)
        assert np.array_equal(st[layer["weight"]].view(np.uint32), want.view(np.uint32)), layer["name"]
        # int32 biases: their dequantized value is kept (to one ulp).
        b = inits[wname.replace("weight_quantized", "bias_quantized")]
        bs = inits[wname.replace("weight_quantized", "bias_quantized_scale")]
        np.testing.assert_allclose(st[layer["bias"]], b.astype(np.float32) * bs, rtol=2e-7, atol=0)
    # Every QuantizeLinear on an activation is one [[activation_quant]] entry with its own scale and zero point.
    acts = {(a["scale"], a["zero_point"]) for a in man["activation_quant"]}
    qnodes = [n for n in m.graph.node if n.op_type == "QuantizeLinear"]
    onnx_acts = {(float(inits[n.input[1]]), int(inits[n.input[2]])) for n in qnodes}
    assert {(np.float32(s), z) for s, z in acts} == {(np.float32(s), z) for s, z in onnx_acts}
    assert man["activation_quant"][0]["value"] == "input"


def test_qdq_import_refuses_ptq_flags(tmp_path):
    r = run("import", FIXTURES / "qdq_cnn_pc.onnx", "--out", tmp_path / "m", "--bits", "4")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "QDQ model keeps its own integer weights" in r.stderr, r.stderr
