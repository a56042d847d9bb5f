"""Where the companion's tests find the simulator binary and the data set (shared by the ONNX tests)."""

import os
from pathlib import Path

import pytest

from accelsim_train import data

ROOT = Path(__file__).resolve().parents[2]


def accelsim_bin() -> Path:
    for p in [os.environ.get("ACCELSIM_BIN"), ROOT / "target/release/accelsim", ROOT / "target/debug/accelsim"]:
        if p and Path(p).exists():
            return Path(p)
    pytest.skip("accelsim binary not built (cargo build --release --bin accelsim, or set ACCELSIM_BIN)")


def dataset_dir() -> Path:
    d = Path(data.DEFAULT_DIR)
    if not (d / "t10k-images-idx3-ubyte.gz").exists() and not (d / "t10k-images-idx3-ubyte").exists():
        pytest.skip(f"Fashion-MNIST not installed in {d}")
    return d
