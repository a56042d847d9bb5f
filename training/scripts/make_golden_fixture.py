"""Generate the engine's golden fixture (tests/data/golden/): a small CNN with every layer type, its float32
weights in the accelsim model format, a batch of inputs, and the logits PyTorch computes for them.

The Rust test `tests/model_engine.rs` runs the same weights through accelsim's engine (float weights, no
quantization) and requires the logits to agree within 1e-4 relative. Run once and commit the output:

    training/.venv/bin/python training/scripts/make_golden_fixture.py [--out tests/data/golden]

Graph (input 3x10x10): conv(3->8, 3x3, pad 1, bias) -> batchnorm -> relu [r1] -> conv(8->8, 3x3, pad 1, no bias)
-> groupnorm(4 groups, reparameterized 1 + a') -> relu -> add(r1) -> maxpool 2 [p1] -> conv(8->16, 3x3, stride 2,
pad 1) -> relu -> avgpool(3, stride 1, pad 1) -> dropout -> flatten -> linear(144->32) -> relu -> identity
-> linear(32->10) [fc2]; side branch: global_avgpool(p1) -> linear(8->10) [aux]; logits = fc2 + aux.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.numpy import save_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from accelsim_train.export import write_model  # noqa: E402


def build_params(g: torch.Generator) -> dict[str, torch.Tensor]:
    def r(*shape: int, scale: float = 0.3) -> torch.Tensor:
        return (torch.rand(*shape, generator=g) * 2 - 1) * scale

    return {
        "conv1.weight": r(8, 3, 3, 3),
        "conv1.bias": r(8, scale=0.1),
        "bn1.weight": 1 + r(8, scale=0.2),
        "bn1.bias": r(8, scale=0.1),
        "bn1.running_mean": r(8, scale=0.5),
        "bn1.running_var": 0.5 + torch.rand(8, generator=g),
        "conv2.weight": r(8, 8, 3, 3, scale=0.2),
        "gn2.weight": r(8, scale=0.2),  # alpha' of the reparameterized scale 1 + alpha'
        "gn2.bias": r(8, scale=0.1),
        "conv3.weight": r(16, 8, 3, 3, scale=0.2),
        "conv3.bias": r(16, scale=0.1),
        "fc1.weight": r(32, 144, scale=0.1),
        "fc1.bias": r(32, scale=0.1),
        "fc2.weight": r(10, 32, scale=0.3),
        "fc2.bias": r(10, scale=0.1),
        "aux.weight": r(10, 8, scale=0.3),
        "aux.bias": r(10, scale=0.1),
    }


def forward(p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    y = F.conv2d(x, p["conv1.weight"], p["conv1.bias"], padding=1)
    y = F.batch_norm(y, p["bn1.running_mean"], p["bn1.running_var"], p["bn1.weight"], p["bn1.bias"],
                     training=False, eps=1e-5)
    r1 = F.relu(y)
    y = F.conv2d(r1, p["conv2.weight"], None, padding=1)
    y = F.group_norm(y, 4, 1 + p["gn2.weight"], p["gn2.bias"], eps=1e-5)
    y = F.relu(y)
    y = y + r1
    p1 = F.max_pool2d(y, 2)
    y = F.relu(F.conv2d(p1, p["conv3.weight"], p["conv3.bias"], stride=2, padding=1))
    y = F.avg_pool2d(y, 3, stride=1, padding=1)  # count_include_pad=True (PyTorch default)
    y = F.dropout(y, 0.5, training=False)
    y = torch.flatten(y, 1)
    y = F.relu(F.linear(y, p["fc1.weight"], p["fc1.bias"]))
    y = F.linear(y, p["fc2.weight"], p["fc2.bias"])
    aux = F.linear(p1.mean(dim=(2, 3)), p["aux.weight"], p["aux.bias"])
    return y + aux


def manifest() -> dict:
    return {
        "name": "golden-cnn",
        "input": {"shape": [3, 10, 10], "mean": [0.0], "std": [1.0], "dataset": "synthetic",
                  "classes": [f"c{i}" for i in range(10)]},
        "quantization": {"bits": 8, "granularity": "layer", "symmetric": False, "signed": False,
                         "rounding": True},
        "training": {"method": "other", "p_train": 0.0, "framework": f"torch {torch.__version__}",
                     "notes": "golden fixture: random weights, every layer type"},
        "layers": [
            {"name": "conv1", "type": "conv2d", "in_channels": 3, "out_channels": 8, "kernel": [3, 3],
             "stride": [1, 1], "padding": [1, 1], "weight": "conv1.weight", "bias": "conv1.bias"},
            {"name": "bn1", "type": "batchnorm", "channels": 8, "eps": 1e-5, "reparameterized": False,
             "weight": "bn1.weight", "bias": "bn1.bias", "running_mean": "bn1.running_mean",
             "running_var": "bn1.running_var"},
            {"name": "r1", "type": "relu"},
            {"name": "conv2", "type": "conv2d", "in_channels": 8, "out_channels": 8, "kernel": [3, 3],
             "padding": [1, 1], "weight": "conv2.weight"},
            {"name": "gn2", "type": "groupnorm", "groups": 4, "channels": 8, "eps": 1e-5, "reparameterized": True,
             "weight": "gn2.weight", "bias": "gn2.bias"},
            {"name": "r2", "type": "relu"},
            {"name": "res", "type": "add", "inputs": ["r2", "r1"]},
            {"name": "p1", "type": "maxpool2d", "kernel": [2, 2]},
            {"name": "conv3", "type": "conv2d", "in_channels": 8, "out_channels": 16, "kernel": [3, 3],
             "stride": [2, 2], "padding": [1, 1], "weight": "conv3.weight", "bias": "conv3.bias"},
            {"name": "r3", "type": "relu"},
            {"name": "ap", "type": "avgpool2d", "kernel": [3, 3], "stride": [1, 1], "padding": [1, 1]},
            {"name": "drop", "type": "dropout", "p": 0.5},
            {"name": "flat", "type": "flatten"},
            {"name": "fc1", "type": "linear", "in_features": 144, "out_features": 32, "weight": "fc1.weight",
             "bias": "fc1.bias"},
            {"name": "r4", "type": "relu"},
            {"name": "id", "type": "identity"},
            {"name": "fc2", "type": "linear", "in_features": 32, "out_features": 10, "weight": "fc2.weight",
             "bias": "fc2.bias"},
            {"name": "gap", "type": "global_avgpool", "input": "p1"},
            {"name": "aux", "type": "linear", "in_features": 8, "out_features": 10, "weight": "aux.weight",
             "bias": "aux.bias"},
            {"name": "logits", "type": "add", "inputs": ["fc2", "aux"]},
        ],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="tests/data/golden")
    ap.add_argument("--images", type=int, default=16)
    args = ap.parse_args()
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1234)
    params = build_params(g)
    x = torch.randn(args.images, 3, 10, 10, generator=g)
    with torch.no_grad():
        logits = forward(params, x)
        # Also in float64, to show how far float32 PyTorch itself is from exact.
        logits64 = forward({k: v.double() for k, v in params.items()}, x.double())
    err = ((logits.double() - logits64).abs().max() / logits64.abs().max()).item()
    os.makedirs(args.out, exist_ok=True)
    write_model(os.path.join(args.out, "golden_cnn"), manifest(), {k: v.numpy() for k, v in params.items()})
    save_file({"inputs": x.numpy().astype(np.float32), "logits": logits.numpy().astype(np.float32)},
              os.path.join(args.out, "golden_io.safetensors"),
              metadata={"torch": torch.__version__, "float32_vs_float64_max_rel": f"{err:.3e}"})
    print(f"wrote {args.out}/golden_cnn.toml, golden_cnn.safetensors, golden_io.safetensors "
          f"({args.images} images; torch float32 vs float64 max rel diff {err:.2e})")


if __name__ == "__main__":
    main()
