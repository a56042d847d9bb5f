"""IDX reader for (Fashion-)MNIST, gzip or plain (http://yann.lecun.com/exdb/mnist/ file format)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import torch

DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"
MEAN, STD = 0.2860, 0.3530  # Fashion-MNIST training-set pixel mean/std (pixel/255)
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class DataError(ValueError):
    pass


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (magic 0x0000TTDD: type TT, DD dimensions, big-endian u32 sizes)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise DataError(f"{path}: cannot read IDX file ({e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise DataError(f"{path}: not an IDX file (bad magic)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dt = np.dtype(_DTYPES[raw[2]])
    need = int(np.prod(shape)) * dt.itemsize
    if len(raw) - header != need:
        raise DataError(f"{path}: expected {need} data bytes for shape {shape}, found {len(raw) - header}")
    return np.frombuffer(raw, dtype=dt, offset=header).reshape(shape)


def _find(data_dir: Path, stem: str) -> Path:
    for name in (stem + ".gz", stem):
        if (data_dir / name).exists():
            return data_dir / name
    raise DataError(f"{data_dir / stem}.gz: file not found (pass --data DIR with the 4 Fashion-MNIST IDX files)")


def load_split(data_dir: str | os.PathLike = DEFAULT_DIR, train: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalized images [N, 1, 28, 28] float32 and labels [N] int64."""
    d = Path(data_dir)
    prefix = "train" if train else "t10k"
    x = read_idx(_find(d, f"{prefix}-images-idx3-ubyte"))
    y = read_idx(_find(d, f"{prefix}-labels-idx1-ubyte"))
    if x.ndim != 3 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise DataError(f"{d}: images {x.shape} and labels {y.shape} do not match")
    return normalize(torch.from_numpy(x.copy())), torch.from_numpy(y.astype(np.int64))


def normalize(images_u8: torch.Tensor) -> torch.Tensor:
    """x = (pixel/255 - mean) / std, as the manifest's [input] section states."""
    x = images_u8.to(torch.float32).unsqueeze(1) / 255.0
    return (x - MEAN) / STD
