"""PyTorch CPU inference throughput of the Fashion-MNIST CNN (`cnn-small`, docs/training.md) with random weights,
at 1 and 2 threads: the reference figure `cargo bench --bench engine` prints next to accelsim's.

    training/.venv/bin/python training/scripts/bench_torch.py [--images 4096] [--batch 256]

Prints a human-readable line per thread count and, last, one JSON line with images_per_s_1 and images_per_s_2.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F


def make_params(g: torch.Generator) -> dict[str, torch.Tensor]:
    def r(*shape: int) -> torch.Tensor:
        return (torch.rand(*shape, generator=g) * 2 - 1) * 0.1

    return {
        "conv1.weight": r(16, 1, 3, 3), "gn1.weight": r(16), "gn1.bias": r(16),
        "conv2.weight": r(32, 16, 3, 3), "gn2.weight": r(32), "gn2.bias": r(32),
        "fc1.weight": r(64, 1568), "fc1.bias": r(64), "fc2.weight": r(10, 64), "fc2.bias": torch.zeros(10),
    }


def forward(p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    y = F.conv2d(x, p["conv1.weight"], padding=1)
    y = F.max_pool2d(F.relu(F.group_norm(y, 8, 1 + p["gn1.weight"], p["gn1.bias"])), 2)
    y = F.conv2d(y, p["conv2.weight"], padding=1)
    y = F.max_pool2d(F.relu(F.group_norm(y, 16, 1 + p["gn2.weight"], p["gn2.bias"])), 2)
    y = F.relu(F.linear(torch.flatten(y, 1), p["fc1.weight"], p["fc1.bias"]))
    return F.linear(y, p["fc2.weight"], p["fc2.bias"])


def measure(p: dict[str, torch.Tensor], x: torch.Tensor, batch: int, threads: int, reps: int) -> float:
    torch.set_num_threads(threads)
    best = 0.0
    with torch.inference_mode():
        for b in range(0, x.shape[0], batch):  # warm-up
            forward(p, x[b:b + batch]).argmax(1)
        for _ in range(reps):
            t = time.perf_counter()
            for b in range(0, x.shape[0], batch):
                forward(p, x[b:b + batch]).argmax(1)
            best = max(best, x.shape[0] / (time.perf_counter() - t))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=4096)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    g = torch.Generator().manual_seed(7)
    p = make_params(g)
    x = torch.rand(args.images, 1, 28, 28, generator=g) * 2.8 - 0.8
    res = {}
    for t in (1, 2):
        res[f"images_per_s_{t}"] = measure(p, x, args.batch, t, args.reps)
        print(f"torch {torch.__version__} {t} thread(s), batch {args.batch}: {res[f'images_per_s_{t}']:.0f} images/s")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
