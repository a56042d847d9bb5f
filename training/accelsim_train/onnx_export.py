"""Ship a trained model through ONNX and `accelsim import` (docs/training.md#architectures, docs/onnx.md).

The MobileNet- and ResNet-style models have no hand-written manifest: they are exported with
``torch.onnx.export`` (TorchScript exporter) to ``NAME.onnx`` and turned into ``NAME.toml`` + ``NAME.safetensors``
by ``accelsim import`` with the training scheme (``--scheme normal|rquant --bits m [--w-max W]``). The import
stores the float weights exactly as trained (no BatchNorm or constants to fold: convolutions have no bias and
each GroupNorm keeps its own scale and shift), and quantizes them with the simulator's quantizer, which is
bit-identical to the companion's (tests/test_onnx.py). Two things are then completed here:

1. Reparameterized GroupNorm (docs/training.md#normalization): the trained scale is ``1 + alpha'`` with alpha'
   clipped and quantized. The ONNX graph can only hold the product ``1 + alpha'`` (the exporter folds the sum), so
   the import writes it as a plain GroupNorm scale. Each such tensor is replaced by the trained alpha' (checked to
   equal the imported scale minus one within float32 rounding of ``1 + alpha'``), the layer gets
   ``reparameterized = true`` and its codes are re-derived with the training scheme. The stored bits are then
   exactly the trained ones, so the bit errors hit what RandBET trained against.
2. The manifest gets the model's name, ``family`` and the ``[training]`` facts (method, p_train, clean error,
   epochs, seed), keeping the import's record of the ONNX file (opset, producer, SHA-256) in ``notes``.

Every other parameter is checked to be bit-identical to the trained (clipped) one; any mismatch is an error, never
a silently different model. The result is loaded back by ``accelsim model show`` (the simulator's validation,
including the codes cross-check).
"""

from __future__ import annotations

import json
import os
import subprocess
import tomllib
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import data, quant
from .export import canonical_safetensors, manifest_toml, write_atomic
from .models import ReparamGroupNorm

ROOT = Path(__file__).resolve().parents[2]


class OnnxShipError(RuntimeError):
    """The import did not reproduce the trained model, or the simulator refused it."""


def accelsim_bin() -> Path:
    """ACCELSIM_BIN, else ACCELSIM, else the repository's target/release/accelsim."""
    for p in (os.environ.get("ACCELSIM_BIN"), os.environ.get("ACCELSIM"), ROOT / "target/release/accelsim"):
        if p and Path(p).exists():
            return Path(p)
    raise OnnxShipError("accelsim binary not found: run 'cargo build --release --bin accelsim' or set ACCELSIM_BIN")


def export_onnx(model: nn.Module, path, opset: int = 17) -> None:
    """TorchScript exporter, dynamic batch (docs/onnx.md#exporting)."""
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, torch.zeros(1, 1, 28, 28), str(path), dynamo=False, opset_version=opset,
                          input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})


def _run(binary: Path, *args) -> str:
    r = subprocess.run([str(binary), *map(str, args)], capture_output=True, text=True)
    if r.returncode != 0:
        raise OnnxShipError(f"accelsim {args[0]} failed ({r.returncode}): {r.stderr.strip()}")
    return r.stdout


def _call_order(model: nn.Module) -> list[nn.Module]:
    """Conv2d, Linear and ReparamGroupNorm modules in the order the forward pass calls them (= the import's order)."""
    order: list[nn.Module] = []
    hooks = [m.register_forward_hook(lambda mod, i, o: order.append(mod)) for m in model.modules()
             if isinstance(m, (nn.Conv2d, nn.Linear, ReparamGroupNorm))]
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 1, 28, 28))
    finally:
        for h in hooks:
            h.remove()
    return order


def _load_safetensors(path: Path) -> dict:
    from safetensors.numpy import load_file

    return dict(load_file(str(path)))


def ship_via_onnx(model: nn.Module, cfg, clean_error_pct: float, test_images: int, out_stem,
                  binary: Path | None = None) -> list[Path]:
    """Writes out_stem.onnx, out_stem.toml and out_stem.safetensors; returns the three paths."""
    from .modelio import family_of

    binary = binary or accelsim_bin()
    out_stem = Path(out_stem)
    out_stem.parent.mkdir(parents=True, exist_ok=True)
    name = out_stem.name
    scheme = cfg.scheme()
    onnx_path = Path(str(out_stem) + ".onnx")
    toml_path, st_path = Path(str(out_stem) + ".toml"), Path(str(out_stem) + ".safetensors")

    export_onnx(model, onnx_path)
    args = ["import", onnx_path, "--out", out_stem, "--dataset", "fashion-mnist", "--mean", data.MEAN,
            "--std", data.STD, "--bits", scheme.bits, "--scheme", "normal" if cfg.method == "normal" else "rquant"]
    if scheme.w_max is not None:
        args += ["--w-max", scheme.w_max]
    _run(binary, *args)

    manifest = tomllib.loads(toml_path.read_text())
    tensors = _load_safetensors(st_path)
    layers = [lay for lay in manifest["layers"] if lay["type"] in ("conv2d", "linear", "groupnorm")]
    mods = _call_order(model)
    if len(layers) != len(mods):
        raise OnnxShipError(f"{toml_path}: {len(layers)} parameter layers, the PyTorch model has {len(mods)}")
    for lay, mod in zip(layers, mods):
        want = {"conv2d": nn.Conv2d, "linear": nn.Linear, "groupnorm": ReparamGroupNorm}[lay["type"]]
        if not isinstance(mod, want):
            raise OnnxShipError(f"{toml_path}: layer {lay['name']!r} ({lay['type']}) is not {type(mod).__name__}")
        for key in ("weight", "bias"):
            p = getattr(mod, key, None)
            if p is None:
                if key in lay:
                    raise OnnxShipError(f"{toml_path}: layer {lay['name']!r} has a {key} the model does not have")
                continue
            trained = quant.clip(p.detach(), scheme).numpy().astype(np.float32)
            got = tensors[lay[key]]
            if lay["type"] == "groupnorm" and key == "weight":
                # The import holds 1 + alpha' (float32); store alpha' itself, reparameterized.
                if not np.allclose(got.astype(np.float64) - 1.0, trained, rtol=0, atol=2e-7):
                    raise OnnxShipError(f"{toml_path}: {lay[key]!r} is not 1 + the trained alpha'")
                lay["reparameterized"] = True
                tensors[lay[key]] = trained
                codes = quant.encode(torch.from_numpy(trained), scheme).numpy()
                tensors[lay[key] + ":codes"] = codes.astype(tensors[lay[key] + ":codes"].dtype)
            elif got.shape != trained.shape or not np.array_equal(got, trained):
                raise OnnxShipError(f"{toml_path}: tensor {lay[key]!r} differs from the trained {key}")
            # Every stored code is the training quantizer's code of the trained weight.
            codes = quant.encode(torch.from_numpy(trained), scheme).numpy()
            if not np.array_equal(tensors[lay[key] + ":codes"].astype(np.int64), codes.astype(np.int64)):
                raise OnnxShipError(f"{toml_path}: codes of {lay[key]!r} differ from the training quantizer's")

    imported = manifest.get("training", {})
    # The import calls its quantization post-training; here it re-derives the codes of quantization-aware weights.
    record = imported.get("notes", "").replace("; post-training quantization", "")
    notes = (f"accelsim_train; shipped through ONNX and accelsim import ({record}; "
             f"{imported.get('framework', '')}; GroupNorm scales stored reparameterized, docs/training.md#architectures); "
             f"config {json.dumps(cfg.as_dict() if hasattr(cfg, 'as_dict') else vars(cfg))}")
    manifest["name"] = name
    manifest["family"] = family_of(name, int(cfg.bits))
    manifest["input"]["classes"] = list(data.CLASSES)
    manifest["training"] = {"method": cfg.method, "p_train": float(cfg.p), "clean_error_pct": round(clean_error_pct, 2),
                            "test_images": int(test_images), "epochs": int(cfg.epochs), "seed": int(cfg.seed),
                            "framework": f"torch {torch.__version__}", "notes": notes}
    from safetensors.numpy import save

    meta = _safetensors_metadata(st_path)
    write_atomic(st_path, canonical_safetensors(save({k: np.ascontiguousarray(v) for k, v in tensors.items()},
                                                     metadata=meta)))
    write_atomic(toml_path, manifest_toml(manifest, st_path.name).encode("utf-8"))
    _run(binary, "model", "show", toml_path)  # the simulator's own validation (shapes, codes cross-check)
    return [onnx_path, toml_path, st_path]


def _safetensors_metadata(path: Path) -> dict | None:
    import struct

    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8: 8 + n]).get("__metadata__")
