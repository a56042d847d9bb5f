"""Model files (docs/model-format.md): export of trained models through export.write_model, and loading them back."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import data, quant


class ModelFileError(ValueError):
    """A model file that cannot be read or does not follow docs/model-format.md."""


def family_of(name: str, bits: int) -> str:
    """The model family (docs/model-format.md): the name without its ``-{bits}b`` suffix, e.g.
    ``fmnist-cnn-randbet-4b`` -> ``fmnist-cnn-randbet``; a name without that suffix is a family of its own."""
    suffix = f"-{bits}b"
    return name[: -len(suffix)] if name.endswith(suffix) and len(name) > len(suffix) else name


def manifest_for(model, cfg, clean_error_pct: float, test_images: int, name: str, history=None) -> dict:
    scheme = cfg.scheme()
    cd = cfg.as_dict() if hasattr(cfg, "as_dict") else dict(vars(cfg))
    notes = f"accelsim_train; config {json.dumps(cd)}"
    if cfg.method == "plclipping":
        notes += "; per-layer clipping w_max(l) = max(0.2, k_l) w_max, k_l = max|w(l)| / max_l' max|w(l')|"
    if getattr(cfg, "init_from", ""):
        notes += (f"; fine-tuned for {cfg.epochs} epochs from the float master weights of "
                  f"{Path(cfg.init_from).name} (sha256 {cfg.init_sha256[:16]}...), not trained from scratch")
    p_act = float(getattr(cfg, "p_act", 0.0))
    if p_act > 0:
        notes += (f"; activation bit errors in training: every stored activation map fake-quantized to the int8 "
                  f"datapath's per-tensor format, each stored bit flipped with probability p_act = {p_act:g} in the "
                  f"perturbed pass (docs/training.md#activation-bit-errors)")
    return {
        "format": "accelsim-model",
        "version": 1,
        "name": name,
        "family": family_of(name, int(cfg.bits)),
        "weights": f"{name}.safetensors",
        "input": {"shape": [1, 28, 28], "mean": [data.MEAN], "std": [data.STD], "dataset": "fashion-mnist",
                  "classes": list(data.CLASSES)},
        "quantization": scheme.to_dict(),
        "training": {"method": cfg.method, "p_train": float(cfg.p)} | ({"p_act": p_act} if p_act > 0 else {}) | {
                     "clean_error_pct": round(clean_error_pct, 2),
                     "test_images": int(test_images), "epochs": int(cfg.epochs), "seed": int(cfg.seed),
                     "framework": f"torch {torch.__version__}", "notes": notes},
        "layers": model.manifest_layers(),
    }


def tensors_for(model, scheme: quant.QuantScheme) -> dict:
    """F32 clipped master weights of every parameter, its "<name>:codes", and BN running statistics (F32)."""
    out = {}
    for name, p in model.named_parameters():
        w = quant.clip(p.detach(), scheme)
        out[name] = w.numpy().astype(np.float32)
        out[f"{name}:codes"] = quant.encode(w, scheme).numpy()
    for name, b in model.named_buffers():
        if name.endswith("running_mean") or name.endswith("running_var"):
            out[name] = b.detach().to(torch.float32).numpy()
    return out


def export_trained(model, cfg, clean_error_pct: float, test_images: int, out_stem, history=None) -> list[Path]:
    """Write out_stem.toml + out_stem.safetensors with export.write_model (owned by the engine side); models without
    a hand-written manifest (no ``manifest_layers``) go through ONNX and ``accelsim import`` instead
    (onnx_export.ship_via_onnx, which also writes out_stem.onnx)."""
    from .export import write_model

    out_stem = Path(out_stem)
    if not hasattr(model, "manifest_layers"):  # MobileNet/ResNet-style: through ONNX and `accelsim import`
        from .onnx_export import ship_via_onnx

        return ship_via_onnx(model, cfg, clean_error_pct, test_images, out_stem)
    out_stem.parent.mkdir(parents=True, exist_ok=True)
    manifest = manifest_for(model, cfg, clean_error_pct, test_images, out_stem.name, history)
    write_model(str(out_stem), manifest, tensors_for(model, cfg.scheme()))
    return [Path(str(out_stem) + ".toml"), Path(str(out_stem) + ".safetensors")]
