"""Makes the QDQ ONNX fixtures of accelsim's integer-datapath tests (tests/data/onnx/qdq_cnn_*.onnx,
docs/onnx.md#qdq-models): a small conv net trained briefly on Fashion-MNIST, exported to ONNX (float), then
quantized by onnxruntime's `quantize_static` (QDQ format, uint8 activations, symmetric int8 weights, MinMax
calibration on the first 1000 training images), once per tensor and once per channel.

    cd training && .venv/bin/python scripts/make_qdq_model.py [--data DIR] [--out ../tests/data/onnx]

The model's input is the normalized image of `accelsim_train.data.load_split`, `(pixel/255 - 0.2860) / 0.3530`
(import with `--mean 0.2860 --std 0.3530`). Needs torch, onnx and onnxruntime (the companion's dev extras). Deterministic up
to the library versions: fixed seeds, one thread.
"""

from __future__ import annotations

import argparse
import io
import os
import warnings

import numpy as np
import onnx
import torch
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from torch import nn

from accelsim_train import data

CALIBRATION_IMAGES = 1000


class SmallCnn(nn.Module):
    """conv(8) - relu - maxpool - conv(16) - relu - maxpool - conv(16, stride 2) - relu - flatten - linear(10)."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 16, 3, stride=2, padding=1), nn.ReLU(),
        )
        self.fc = nn.Linear(16 * 4 * 4, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.body(x), 1))


def train(x: np.ndarray, y: np.ndarray, epochs: int) -> SmallCnn:
    torch.manual_seed(0)
    model = SmallCnn()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    g = torch.Generator().manual_seed(1)
    for _ in range(epochs):
        perm = torch.randperm(len(xt), generator=g)
        for i in range(0, len(xt), 128):
            idx = perm[i : i + 128]
            opt.zero_grad()
            nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
            opt.step()
    return model.eval()


class Reader(CalibrationDataReader):
    def __init__(self, x: np.ndarray):
        self.batches = iter([{"x": x[i : i + 100]} for i in range(0, len(x), 100)])

    def get_next(self):
        return next(self.batches, None)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=data.DEFAULT_DIR)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data", "onnx"))
    ap.add_argument("--epochs", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    images, labels = data.load_split(args.data, train=True)
    x, labels = images.numpy(), labels.numpy()
    model = train(x, labels, args.epochs)
    buf = io.BytesIO()
    torch.onnx.export(model, torch.zeros(1, 1, 28, 28), buf, dynamo=False, opset_version=17,
                      input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})
    float_path = os.path.join(args.out, "qdq_cnn.float.onnx.tmp")
    with open(float_path, "wb") as f:
        f.write(buf.getvalue())
    try:
        for per_channel, tag in [(False, "pt"), (True, "pc")]:
            path = os.path.join(args.out, f"qdq_cnn_{tag}.onnx")
            quantize_static(float_path, path, Reader(x[:CALIBRATION_IMAGES]), quant_format=QuantFormat.QDQ,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            per_channel=per_channel, extra_options={"WeightSymmetric": True})
            m = onnx.load(path)
            m.producer_name, m.producer_version = "make_qdq_model", "1"
            onnx.save(m, path)
            print(f"{path}: {os.path.getsize(path)} bytes")
    finally:
        os.remove(float_path)


if __name__ == "__main__":
    main()
