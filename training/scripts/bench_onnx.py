"""onnxruntime's fp32 CPU throughput on two ONNX networks for Fashion-MNIST (1x28x28), at 1 and 2 threads: the
reference figures `cargo bench --bench engine` prints next to accelsim's on the same files (docs/onnx.md).

    training/.venv/bin/python training/scripts/bench_onnx.py --out DIR [--images 1024] [--r18-images 128]

Writes DIR/cnn.onnx and DIR/cnn_qdq.onnx (the companion's CNN, fp32 and onnxruntime's int8 QDQ quantization),
DIR/mobilenet.onnx (depthwise-separable, BatchNorm, ReLU6; random weights) and DIR/resnet18.onnx
(ResNet-18 layout, 11.2 M parameters), prints a line per measurement and, last, one JSON line
{"cnn": {"onnx": PATH, "qdq": PATH, "images": N, "ort_1": .., "ort_int8_1": .., ...}, "mobilenet": {"onnx": PATH, "images": N, "ort_1": IMG/S, "ort_2": IMG/S}, "resnet18": {...}}.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

warnings.filterwarnings("ignore")


def sep_block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin), nn.ReLU6(),
        nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU6(),
    )


class MobileNetStyle(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 32, 3, 1, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU6())
        self.blocks = nn.Sequential(sep_block(32, 64, 1), sep_block(64, 128, 2), sep_block(128, 128, 1),
                                    sep_block(128, 256, 2), sep_block(256, 256, 1))
        self.fc = nn.Linear(256, 10)

    def forward(self, x):
        x = nn.functional.adaptive_avg_pool2d(self.blocks(self.stem(x)), 1)
        return self.fc(torch.flatten(x, 1))


class Basic(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.c2, self.b2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.sc = None
        if stride != 1 or cin != cout:
            self.sc = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.b2(self.c2(torch.relu(self.b1(self.c1(x)))))
        return torch.relu(y + (x if self.sc is None else self.sc(x)))


class ResNet18(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU())
        layers, cin = [], 64
        for cout, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
            layers += [Basic(cin, cout, stride), Basic(cout, cout, 1)]
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(512, 10)

    def forward(self, x):
        x = nn.functional.adaptive_avg_pool2d(self.layers(self.stem(x)), 1)
        return self.fc(torch.flatten(x, 1))


def export(model: nn.Module, path: str):
    torch.onnx.export(model.eval(), torch.zeros(1, 1, 28, 28), path, dynamo=False, opset_version=17,
                      input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})


def measure(path: str, x: np.ndarray, threads: int, reps: int, batch: int = 256) -> float:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    sess.run(None, {"x": x[:batch]})  # warm-up
    best = 0.0
    for _ in range(reps):
        t = time.perf_counter()
        for i in range(0, len(x), batch):
            sess.run(None, {"x": x[i : i + batch]})
        best = max(best, len(x) / (time.perf_counter() - t))
    return best


def cnn_entry(out: str, rng, n: int, reps: int) -> dict:
    """The companion's CNN (cnn-small, GroupNorm; random weights) as fp32 ONNX and as onnxruntime's own int8 QDQ
    model (quantize_static: uint8 activations calibrated on the first 512 images, symmetric int8 weights per
    channel), timed by onnxruntime at 1 and 2 threads."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from accelsim_train import models

    torch.manual_seed(0)
    fp, qdq = os.path.join(out, "cnn.onnx"), os.path.join(out, "cnn_qdq.onnx")
    export(models.build("cnn-small", "gn"), fp)
    x = rng.uniform(-0.8, 2.0, (n, 1, 28, 28)).astype(np.float32)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"x": x[i : i + 128]} for i in range(0, min(n, 512), 128)])

        def get_next(self):
            return next(self.it, None)

    quantize_static(fp, qdq, Reader(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, per_channel=True)
    r = {"onnx": fp, "qdq": qdq, "images": n}
    for t in (1, 2):
        r[f"ort_{t}"] = measure(fp, x, t, reps)
        r[f"ort_int8_{t}"] = measure(qdq, x, t, reps)
        print(f"onnxruntime {ort.__version__} cnn: {t} thread(s): fp32 {r[f'ort_{t}']:.0f}, int8 {r[f'ort_int8_{t}']:.0f} images/s")
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--images", type=int, default=1024)
    ap.add_argument("--r18-images", type=int, default=128)
    ap.add_argument("--cnn-images", type=int, default=4096)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    result = {"cnn": cnn_entry(args.out, rng, args.cnn_images, args.reps)}
    for name, model, n in [("mobilenet", MobileNetStyle(), args.images), ("resnet18", ResNet18(), args.r18_images)]:
        path = os.path.join(args.out, f"{name}.onnx")
        export(model, path)
        x = rng.uniform(-0.8, 2.0, (n, 1, 28, 28)).astype(np.float32)
        r = {"onnx": path, "images": n}
        for t in (1, 2):
            r[f"ort_{t}"] = measure(path, x, t, args.reps)
            print(f"onnxruntime {ort.__version__} {name}: {t} thread(s): {r[f'ort_{t}']:.0f} images/s")
        result[name] = r
    print(json.dumps(result))


if __name__ == "__main__":
    main()
