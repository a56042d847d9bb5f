"""Makes the tiny ONNX fixtures of accelsim's importer tests (tests/data/onnx/, docs/onnx.md).

Every supported operator appears in at least one *good* fixture, each with a fixed input batch
(`NAME.input.npy`) and onnxruntime's output on it (`NAME.expected.npy`); the PyTorch-exported ones are also
checked against PyTorch here. *Refusal* fixtures (`bad_*.onnx`) each break one rule the importer enforces.

    cd training && .venv/bin/python scripts/make_onnx_fixtures.py [--out ../tests/data/onnx]

Needs torch, onnx and onnxruntime (the companion's dev extras). Deterministic: fixed seeds, so rerunning it
rewrites the same models (up to the exporter's version).
"""

from __future__ import annotations

import argparse
import io
import os
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper, numpy_helper

warnings.filterwarnings("ignore")


def export(model: torch.nn.Module, shape, opset: int) -> onnx.ModelProto:
    model.eval()
    buf = io.BytesIO()
    torch.onnx.export(
        model,
        torch.zeros(1, *shape),
        buf,
        dynamo=False,
        opset_version=opset,
        input_names=["x"],
        output_names=["y"],
        dynamic_axes={"x": {0: "N"}, "y": {0: "N"}},
    )
    return onnx.load_from_string(buf.getvalue())


def run_ort(m: onnx.ModelProto, x: np.ndarray, path: str | None = None) -> np.ndarray:
    sess = ort.InferenceSession(path if path else m.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


class CnnBn(torch.nn.Module):
    """Conv + BatchNorm (folded), ReLU, MaxPool, strided/padded Conv, ReLU6 (Clip), AvgPool with padding
    (count_include_pad), `view(N, -1)` flatten (Shape/Gather/Unsqueeze/Concat/Reshape), Linear, Dropout, BatchNorm1d."""

    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.b1 = torch.nn.BatchNorm2d(4)
        self.c2 = torch.nn.Conv2d(4, 6, 3, stride=2, padding=1, bias=False)
        self.b2 = torch.nn.BatchNorm2d(6)
        self.pool = torch.nn.AvgPool2d(3, stride=2, padding=1)
        self.fc1 = torch.nn.Linear(6 * 1 * 1, 8)
        self.bn1d = torch.nn.BatchNorm1d(8)
        self.drop = torch.nn.Dropout(0.5)
        self.fc2 = torch.nn.Linear(8, 5)

    def forward(self, x):
        x = torch.max_pool2d(torch.relu(self.b1(self.c1(x))), 2)
        x = torch.nn.functional.relu6(self.b2(self.c2(x)))
        x = self.pool(x)
        x = x.view(x.size(0), -1)
        return self.fc2(self.drop(torch.relu(self.bn1d(self.fc1(x)))))


class MobileBlock(torch.nn.Module):
    """Depthwise (groups = C, multiplier 2), pointwise, grouped and dilated convolutions, HardSwish, HardSigmoid,
    LeakyReLU, Sigmoid, residual Add, GlobalAveragePool, Flatten, Gemm, Softmax as the last op."""

    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.dw = torch.nn.Conv2d(4, 8, 3, padding=1, groups=4)
        self.pw = torch.nn.Conv2d(8, 4, 1)
        self.grp = torch.nn.Conv2d(4, 4, 3, padding=2, dilation=2, groups=2)
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x):
        x = torch.nn.functional.hardswish(self.stem(x))
        y = torch.nn.functional.leaky_relu(self.pw(torch.nn.functional.hardsigmoid(self.dw(x))), 0.1)
        x = x + torch.sigmoid(self.grp(y))
        x = torch.nn.functional.adaptive_avg_pool2d(x, 1)
        return torch.softmax(self.fc(torch.flatten(x, 1)), dim=1)


class ResGroup(torch.nn.Module):
    """GroupNorm (exported as Reshape/InstanceNormalization/Reshape/Mul/Add), channel Concat, Mul by a
    per-channel parameter, Add/Sub/Div by constants, Squeeze/Unsqueeze, MatMul + Add, MaxPool with padding."""

    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(2, 4, 3, padding=1)
        self.gn = torch.nn.GroupNorm(2, 4)
        self.c2 = torch.nn.Conv2d(4, 4, 1)
        self.scale = torch.nn.Parameter(torch.rand(1, 8, 1, 1) + 0.5)
        self.w = torch.nn.Parameter(torch.randn(8 * 3 * 3, 4) * 0.1)
        self.b = torch.nn.Parameter(torch.randn(4) * 0.1)

    def forward(self, x):
        a = torch.relu(self.gn(self.c1(x)))
        b = self.c2(a) + a
        x = torch.cat([a, b], dim=1) * self.scale
        x = (x - 0.25) / 2.0
        x = torch.max_pool2d(x, 3, stride=2, padding=1)
        x = x.reshape(x.shape[0], -1).unsqueeze(2).squeeze(2)
        return x @ self.w + self.b


def ext_model() -> onnx.ModelProto:
    """Hand-built (onnx.helper): Conv with auto_pad SAME_UPPER, MaxPool SAME_LOWER, AveragePool with
    count_include_pad = 0, Clip with only a max, Gemm with transB = 0 and alpha/beta, GroupNormalization
    (opset 21), Constant, Cast, Transpose of a weight, Identity."""
    rng = np.random.default_rng(5)
    w = rng.normal(0, 0.3, (4, 1, 2, 2)).astype(np.float32)
    gw = rng.normal(0, 0.5, (4, 16)).astype(np.float32)
    inits = [
        numpy_helper.from_array(w, "conv.w"),
        numpy_helper.from_array(rng.normal(0, 0.1, 4).astype(np.float32), "conv.b"),
        numpy_helper.from_array((rng.random(4) + 0.5).astype(np.float32), "gn.scale"),
        numpy_helper.from_array(rng.normal(0, 0.1, 4).astype(np.float32), "gn.bias"),
        numpy_helper.from_array(gw, "gemm.wt"),  # [16, 4] after the Transpose below
        numpy_helper.from_array(rng.normal(0, 0.1, (1, 4)).astype(np.float32), "gemm.c"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "conv.w", "conv.b"], ["c"], name="conv", auto_pad="SAME_UPPER", strides=[2, 2]),
        helper.make_node("GroupNormalization", ["c", "gn.scale", "gn.bias"], ["g"], name="gn", num_groups=2, epsilon=1e-3),
        helper.make_node("Constant", [], ["six"], value=numpy_helper.from_array(np.array(6.0, np.float32))),
        helper.make_node("Clip", ["g", "", "six"], ["r"], name="clip_max_only"),
        helper.make_node("MaxPool", ["r"], ["m"], name="maxpool", kernel_shape=[2, 2], auto_pad="SAME_LOWER"),
        helper.make_node("AveragePool", ["m"], ["a"], name="avgpool", kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                         count_include_pad=0, strides=[2, 2]),
        helper.make_node("Identity", ["a"], ["i"], name="identity"),
        helper.make_node("Flatten", ["i"], ["f"], name="flatten"),
        helper.make_node("Transpose", ["gemm.wt"], ["gemm.w"], name="transpose_w"),
        helper.make_node("Cast", ["gemm.c"], ["gemm.c32"], to=TensorProto.FLOAT),
        helper.make_node("Gemm", ["f", "gemm.w", "gemm.c32"], ["y"], name="gemm", alpha=0.5, beta=2.0),
    ]
    g = helper.make_graph(
        nodes, "ext", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 7, 7])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])], inits,
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)], producer_name="make_onnx_fixtures")


def more_ops_model() -> onnx.ModelProto:
    """Hand-built, opset 18: standalone BatchNormalization (after a Relu, so not folded), plain
    InstanceNormalization, GroupNormalization with per-group scale/bias (opset 18), GlobalMaxPool, MatMul whose
    weight is folded from Slice/Sqrt/Neg/Reciprocal/Mul/Reshape, and an Add bias made by ConstantOfShape."""
    rng = np.random.default_rng(7)
    c = 4
    f32 = lambda a: np.asarray(a, np.float32)  # noqa: E731
    inits = [
        numpy_helper.from_array(f32(rng.random(c) + 0.5), "bn.scale"),
        numpy_helper.from_array(f32(rng.normal(0, 0.1, c)), "bn.b"),
        numpy_helper.from_array(f32(rng.normal(0, 0.3, c)), "bn.mean"),
        numpy_helper.from_array(f32(rng.random(c) + 0.5), "bn.var"),
        numpy_helper.from_array(f32(rng.random(c) + 0.5), "in.scale"),
        numpy_helper.from_array(f32(rng.normal(0, 0.1, c)), "in.b"),
        numpy_helper.from_array(f32(rng.random(2) + 0.5), "gn.scale"),
        numpy_helper.from_array(f32(rng.normal(0, 0.1, 2)), "gn.b"),
        numpy_helper.from_array(f32(rng.random(2 * c * 3) + 0.1), "w.raw"),  # [24]; half of it is the weight
        numpy_helper.from_array(np.array([0], np.int64), "sl.start"),
        numpy_helper.from_array(np.array([c * 3], np.int64), "sl.end"),
        numpy_helper.from_array(np.array([c, 3], np.int64), "w.shape"),
        numpy_helper.from_array(f32(4.0), "four"),
        numpy_helper.from_array(np.array([3], np.int64), "b.shape"),
    ]
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("BatchNormalization", ["r", "bn.scale", "bn.b", "bn.mean", "bn.var"], ["bn"], name="bn",
                         epsilon=1e-3),
        helper.make_node("InstanceNormalization", ["bn", "in.scale", "in.b"], ["in"], name="instnorm"),
        helper.make_node("GroupNormalization", ["in", "gn.scale", "gn.b"], ["gn"], name="gn18", num_groups=2),
        helper.make_node("GlobalMaxPool", ["gn"], ["gp"], name="gmp"),
        helper.make_node("Flatten", ["gp"], ["f"], name="flatten"),
        helper.make_node("Slice", ["w.raw", "sl.start", "sl.end"], ["w.s"]),
        helper.make_node("Sqrt", ["w.s"], ["w.q"]),
        helper.make_node("Neg", ["w.q"], ["w.n"]),
        helper.make_node("Reciprocal", ["four"], ["quarter"]),
        helper.make_node("Mul", ["w.n", "quarter"], ["w.m"]),
        helper.make_node("Reshape", ["w.m", "w.shape"], ["w"]),
        helper.make_node("MatMul", ["f", "w"], ["mm"], name="matmul"),
        helper.make_node("ConstantOfShape", ["b.shape"], ["bias"],
                         value=numpy_helper.from_array(f32([0.5]))),
        helper.make_node("Add", ["mm", "bias"], ["y"], name="add_bias"),
    ]
    g = helper.make_graph(
        nodes, "more", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", c, 5, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])], inits,
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)], producer_name="make_onnx_fixtures")


def flat_input_model() -> onnx.ModelProto:
    """A graph whose input is already flat, [N, 784] (an MLP exported after its flatten): needs --dataset."""
    rng = np.random.default_rng(9)
    w = numpy_helper.from_array(rng.normal(0, 0.05, (784, 3)).astype(np.float32), "w")
    nodes = [helper.make_node("Gemm", ["x", "w"], ["y"], name="fc")]
    return small_graph(nodes, [w], opset=13, in_shape=("N", 784), out_shape=("N", 3), name="flat")


def small_graph(nodes, inits, opset=17, in_shape=("N", 1, 4, 4), out_shape=("N", 4), name="bad"):
    g = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(out_shape))], inits,
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="make_onnx_fixtures")


def flat_fc(pre_nodes, src="x", feats=16):
    """pre_nodes then Flatten + Gemm(16 → 4): a valid tail for the refusal fixtures."""
    w = numpy_helper.from_array(np.ones((4, feats), np.float32) * 0.1, "fc.w")
    return pre_nodes + [
        helper.make_node("Flatten", [src], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "fc.w"], ["y"], name="fc", transB=1),
    ], [w]


def raw_tensor(name, dims, raw: bytes) -> TensorProto:
    """A float tensor with any (possibly inconsistent) dims and raw bytes; onnx.helper would refuse to build it."""
    t = TensorProto()
    t.name = name
    t.data_type = TensorProto.FLOAT
    t.dims.extend(dims)
    t.raw_data = raw
    return t


def refusals(out: str):
    def save(name, m):
        onnx.save(m, os.path.join(out, name))

    # An operator outside the supported list.
    nodes, inits = flat_fc([helper.make_node("Erf", ["x"], ["e"], name="erf_node")], "e")
    save("bad_unsupported_op.onnx", small_graph(nodes, inits))
    # Opset outside 13..=21.
    nodes, inits = flat_fc([])
    save("bad_opset.onnx", small_graph(nodes, inits, opset=9))
    # Dynamic spatial dims.
    save("bad_dynamic_hw.onnx", small_graph(nodes, inits, in_shape=("N", 1, "H", "W")))
    # Initializer whose declared shape does not match its data (raw_data of 3 floats for [4, 16]).
    save("bad_size_mismatch.onnx", small_graph(nodes, [raw_tensor("fc.w", [4, 16], np.zeros(3, np.float32).tobytes())]))
    # Huge claimed dimension (2^40 x 2^40 with no data).
    save("bad_huge_dims.onnx", small_graph(nodes, [raw_tensor("fc.w", [1 << 40, 1 << 40], b"")]))
    # Attribute value outside the supported set: ceil_mode = 1.
    nodes2, inits2 = flat_fc(
        [helper.make_node("MaxPool", ["x"], ["p"], name="pool_ceil", kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)],
        "p", feats=4)
    save("bad_ceil_mode.onnx", small_graph(nodes2, inits2))
    # Product of two activations (not a per-channel constant).
    nodes3, inits3 = flat_fc([helper.make_node("Relu", ["x"], ["r"], name="relu"),
                              helper.make_node("Mul", ["x", "r"], ["m"], name="mul_acts")], "m")
    save("bad_mul_activations.onnx", small_graph(nodes3, inits3))
    # A QOperator-style integer op reading a QuantizeLinear's integer output (only DequantizeLinear may).
    q = [numpy_helper.from_array(np.array(0.05, np.float32), "s"), numpy_helper.from_array(np.array(0, np.uint8), "zp"),
         numpy_helper.from_array(np.ones((16, 4), np.int8), "wq")]
    nodes4 = [helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["q"], name="quant_x"),
              helper.make_node("Flatten", ["q"], ["qf"], name="flatten_q"),
              helper.make_node("MatMulInteger", ["qf", "wq"], ["mi"], name="matmul_int"),
              helper.make_node("Cast", ["mi"], ["y"], name="cast", to=TensorProto.FLOAT)]
    save("bad_qdq.onnx", small_graph(nodes4, q))
    # External data outside the model's folder.
    t = raw_tensor("fc.w", [4, 16], b"")
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    for k, v in [("location", "../escape.bin"), ("offset", "0"), ("length", "256")]:
        e = t.external_data.add()
        e.key, e.value = k, v
    save("bad_external_escape.onnx", small_graph(nodes, [t]))
    # Softmax before the last layer.
    w = numpy_helper.from_array(np.ones((4, 4), np.float32), "fc2.w")
    nodes5 = nodes + [helper.make_node("Softmax", ["y"], ["s"], name="softmax_mid"),
                      helper.make_node("Gemm", ["s", "fc2.w"], ["y2"], name="fc2", transB=1)]
    m = small_graph(nodes5, inits + [w])
    m.graph.output[0].name = "y2"
    save("bad_softmax_not_last.onnx", m)
    # A truncated file.
    good = small_graph(nodes, [numpy_helper.from_array(np.ones((4, 16), np.float32), "fc.w")]).SerializeToString()
    with open(os.path.join(out, "bad_truncated.onnx"), "wb") as f:
        f.write(good[: len(good) // 2])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data", "onnx"))
    args = ap.parse_args()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    torch_models = [
        ("cnn_bn", CnnBn(), (1, 8, 8), 13),
        ("mobile_block", MobileBlock(), (3, 6, 6), 17),
        ("res_group", ResGroup(), (2, 6, 6), 13),
    ]
    for name, model, shape, opset in torch_models:
        # Non-trivial BatchNorm statistics.
        for mod in model.modules():
            if isinstance(mod, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.data.uniform_(0.5, 1.5)
                mod.bias.data.uniform_(-0.2, 0.2)
            if isinstance(mod, torch.nn.GroupNorm):
                mod.weight.data.uniform_(0.5, 1.5)
                mod.bias.data.uniform_(-0.2, 0.2)
        m = export(model, shape, opset)
        x = rng.random((3, *shape), dtype=np.float32)
        y = run_ort(m, x)
        with torch.no_grad():
            yt = model.eval()(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(y, yt, rtol=1e-4, atol=1e-5)
        onnx.save(m, os.path.join(out, f"{name}.onnx"))
        np.save(os.path.join(out, f"{name}.input.npy"), x)
        np.save(os.path.join(out, f"{name}.expected.npy"), y)
    # Hand-built model, weights in an external-data file.
    m = ext_model()
    onnx.checker.check_model(m)
    path = os.path.join(out, "ext_ops.onnx")
    onnx.save(m, path, save_as_external_data=True, all_tensors_to_one_file=True, location="ext_ops.bin",
              size_threshold=0)
    x = rng.random((3, 1, 7, 7), dtype=np.float32)
    np.save(os.path.join(out, "ext_ops.input.npy"), x)
    np.save(os.path.join(out, "ext_ops.expected.npy"), run_ort(m, x, path))
    for name, m, shape in [("more_ops", more_ops_model(), (4, 5, 5)), ("flat_input", flat_input_model(), (784,))]:
        # (onnx.checker rejects GroupNormalization-18 as deprecated; onnxruntime runs it.)
        onnx.save(m, os.path.join(out, f"{name}.onnx"))
        x = rng.random((3, *shape), dtype=np.float32)
        np.save(os.path.join(out, f"{name}.input.npy"), x)
        np.save(os.path.join(out, f"{name}.expected.npy"), run_ort(m, x))
    refusals(out)
    total = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
    print(f"wrote {len(os.listdir(out))} files, {total} bytes, to {out}")


if __name__ == "__main__":
    main()
