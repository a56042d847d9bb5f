"""Write accelsim model files (docs/model-format.md, format version 1) with only numpy and safetensors.

A model is ``NAME.toml`` (the manifest: graph, input, quantization scheme, training facts) plus
``NAME.safetensors`` (float32 parameters; optional integer ``"<param>:codes"``). Usage from any PyTorch script::

    import numpy as np
    from accelsim_train.export import write_model

    manifest = {
        "name": "my-net",
        "input": {"shape": [1, 28, 28], "mean": [0.286], "std": [0.353], "dataset": "fashion-mnist"},
        "quantization": {"bits": 8, "granularity": "layer", "symmetric": False, "signed": False,
                         "rounding": True, "w_max": 0.1},
        "training": {"method": "clipping", "p_train": 0.0, "clean_error_pct": 9.1, "test_images": 10000},
        "layers": [
            {"name": "conv1", "type": "conv2d", "in_channels": 1, "out_channels": 16, "kernel": [3, 3],
             "padding": [1, 1], "weight": "conv1.weight", "bias": "conv1.bias"},
            {"name": "relu1", "type": "relu"},
            {"name": "flat", "type": "flatten"},
            {"name": "fc", "type": "linear", "in_features": 16 * 28 * 28, "out_features": 10,
             "weight": "fc.weight", "bias": "fc.bias"},
        ],
    }
    tensors = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items() if k in wanted}
    write_model("models/my-net", manifest, tensors)   # -> models/my-net.toml + models/my-net.safetensors

``format``, ``version`` and ``weights`` are filled in. The manifest is validated (layer types and keys, tensor
names and shapes, unreferenced tensors) before anything is written, so mistakes surface here rather than in the
simulator. The TOML is written by hand: no toml package is needed.
"""

from __future__ import annotations

import json
import math
import os
import struct
from typing import Any

import numpy as np
from safetensors.numpy import save

FORMAT = "accelsim-model"
VERSION = 1
CODES_SUFFIX = ":codes"
METHODS = ("normal", "rquant", "clipping", "randbet", "plclipping", "other")

# type -> (required keys, optional keys with defaults written as given, parameter tensor keys, buffer tensor keys)
_LAYERS: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "conv2d": (("in_channels", "out_channels", "kernel", "weight"), ("stride", "padding", "bias", "groups"),
               ("weight", "bias"), ()),
    "linear": (("in_features", "out_features", "weight"), ("bias",), ("weight", "bias"), ()),
    "relu": ((), (), (), ()),
    "maxpool2d": (("kernel",), ("stride", "padding"), (), ()),
    "avgpool2d": (("kernel",), ("stride", "padding"), (), ()),
    "global_avgpool": ((), (), (), ()),
    "flatten": ((), (), (), ()),
    "add": (("inputs",), (), (), ()),
    "groupnorm": (("groups", "channels", "weight", "bias"), ("eps", "reparameterized"), ("weight", "bias"), ()),
    "batchnorm": (("channels", "weight", "bias", "running_mean", "running_var"), ("eps", "reparameterized"),
                  ("weight", "bias"), ("running_mean", "running_var")),
    "identity": ((), (), (), ()),
    "dropout": ((), ("p",), (), ()),
}


# Top-level manifest keys; `format`, `version` and `weights` are optional here (filled in by write_model).
_TOP_KEYS = ("format", "version", "name", "family", "weights", "input", "quantization", "training", "layers")


class ExportError(ValueError):
    """A manifest or tensor that accelsim would refuse; the message names the key or tensor."""


def _pair(v: Any, key: str) -> list[int]:
    if isinstance(v, int):
        v = [v, v]
    if not (isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(x, int) and x >= 0 for x in v)):
        raise ExportError(f"{key}: expected two non-negative integers, got {v!r}")
    return [int(x) for x in v]


def _expected_shapes(layer: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    t = layer["type"]
    if t == "conv2d":
        k = _pair(layer["kernel"], "kernel")
        s = {layer["weight"]: (layer["out_channels"], layer["in_channels"], k[0], k[1])}
        if layer.get("bias"):
            s[layer["bias"]] = (layer["out_channels"],)
        return s
    if t == "linear":
        s = {layer["weight"]: (layer["out_features"], layer["in_features"])}
        if layer.get("bias"):
            s[layer["bias"]] = (layer["out_features"],)
        return s
    if t in ("groupnorm", "batchnorm"):
        keys = ("weight", "bias", "running_mean", "running_var") if t == "batchnorm" else ("weight", "bias")
        return {layer[k]: (layer["channels"],) for k in keys}
    return {}


def validate(manifest: dict[str, Any], tensors: dict[str, np.ndarray]) -> None:
    """Raises ExportError when accelsim would refuse the model (a subset of its checks: no shape inference)."""
    for key in ("name", "input", "quantization", "layers"):
        if key not in manifest:
            raise ExportError(f"manifest: missing key {key!r}")
    for key in manifest:
        if key not in _TOP_KEYS:
            raise ExportError(f"manifest: unknown key {key!r} (allowed: {', '.join(_TOP_KEYS)})")
    if manifest.get("format", FORMAT) != FORMAT:
        raise ExportError(f"format: must be {FORMAT!r}, got {manifest['format']!r}")
    if manifest.get("version", VERSION) != VERSION:
        raise ExportError(f"version: this exporter writes version {VERSION}, got {manifest['version']!r}")
    inp = manifest["input"]
    shape = inp.get("shape")
    if not (isinstance(shape, (list, tuple)) and len(shape) == 3 and all(isinstance(x, int) and x > 0 for x in shape)):
        raise ExportError(f"input.shape: expected [C, H, W] positive integers, got {shape!r}")
    for k in ("mean", "std"):
        v = inp.get(k, [])
        if len(v) not in (0, 1, shape[0]):
            raise ExportError(f"input.{k}: give 1 value or one per channel ({shape[0]}), got {len(v)}")
    if any(not (s > 0 and math.isfinite(s)) for s in inp.get("std", [])):
        raise ExportError("input.std: values must be finite and > 0")
    q = manifest["quantization"]
    for k in ("bits", "granularity", "symmetric", "signed", "rounding"):
        if k not in q:
            raise ExportError(f"quantization.{k}: missing")
    ok_bits = q["bits"] in (8, 16, 32) if q["signed"] else 2 <= q["bits"] <= 8
    if not ok_bits:
        raise ExportError(f"quantization.bits: {q['bits']} not allowed (2..8 unsigned; 8, 16, 32 signed)")
    if q["granularity"] not in ("global", "layer", "channel"):
        raise ExportError(f"quantization.granularity: {q['granularity']!r} is not global, layer or channel")
    if q.get("w_max") is not None and not (q["w_max"] > 0 and math.isfinite(q["w_max"])):
        raise ExportError(f"quantization.w_max: {q['w_max']} must be finite and > 0")
    tr = manifest.get("training", {})
    if tr.get("method", "other") not in METHODS:
        raise ExportError(f"training.method: {tr.get('method')!r} is not one of {', '.join(METHODS)}")
    if not 0.0 <= float(tr.get("p_train", 0.0)) <= 1.0:
        raise ExportError(f"training.p_train: {tr.get('p_train')} is not a per-bit probability in [0, 1]")
    if not 0.0 <= float(tr.get("p_act", 0.0)) <= 1.0:
        raise ExportError(f"training.p_act: {tr.get('p_act')} is not a per-bit probability in [0, 1]")

    names = {"input"}
    referenced: set[str] = set()
    if not manifest["layers"]:
        raise ExportError("layers: the model has no layers")
    for i, layer in enumerate(manifest["layers"]):
        where = f"layers[{i}] ({layer.get('name')!r})"
        t = layer.get("type")
        if t not in _LAYERS:
            raise ExportError(f"{where}.type: unknown layer type {t!r} (known: {', '.join(_LAYERS)})")
        req, opt, _, _ = _LAYERS[t]
        allowed = set(req) | set(opt) | {"name", "type", "input"}
        for k in req:
            if k not in layer:
                raise ExportError(f"{where}: missing key {k!r}")
        for k in layer:
            if k not in allowed:
                raise ExportError(f"{where}: unknown key {k!r} for type {t}")
        if layer.get("groups", 1) != 1 and t == "conv2d":
            raise ExportError(f"{where}.groups: only 1 is supported")
        if layer["name"] in names:
            raise ExportError(f"{where}.name: {layer['name']!r} is reserved or used twice")
        srcs = layer["inputs"] if t == "add" else ([layer["input"]] if "input" in layer else [])
        for s in srcs:
            if s not in names:
                raise ExportError(f"{where}: input {s!r} is not 'input' or an earlier layer")
        names.add(layer["name"])
        for tname, want in _expected_shapes(layer).items():
            if tname in referenced:
                raise ExportError(f"tensor {tname!r}: referenced by more than one layer")
            referenced.add(tname)
            if tname not in tensors:
                raise ExportError(f"tensor {tname!r}: missing (needed by {where})")
            arr = np.asarray(tensors[tname])
            if tuple(arr.shape) != tuple(want):
                raise ExportError(f"tensor {tname!r}: shape {tuple(arr.shape)}, expected {tuple(want)}")
            if not np.all(np.isfinite(arr)):
                raise ExportError(f"tensor {tname!r}: contains non-finite values")
            codes = tname + CODES_SUFFIX
            if codes in tensors:
                referenced.add(codes)
                c = np.asarray(tensors[codes])
                if tuple(c.shape) != tuple(want) or c.dtype not in (np.uint8, np.int8, np.int16, np.int32):
                    raise ExportError(f"tensor {codes!r}: must be uint8/int8/int16/int32 of shape {tuple(want)}")
    extra = sorted(set(tensors) - referenced)
    if extra:
        raise ExportError(f"tensor {extra[0]!r}: not referenced by any layer ({len(extra)} unreferenced)")


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if not math.isfinite(f):
            raise ExportError(f"cannot write non-finite number {f} to the manifest")
        return repr(f)
    if isinstance(v, str):
        out = v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
        return f'"{out}"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise ExportError(f"cannot write {type(v).__name__} value {v!r} to the manifest")


def _table(lines: list[str], header: str, d: dict[str, Any]) -> None:
    lines.append("")
    lines.append(header)
    for k, v in d.items():
        if v is None:
            continue
        lines.append(f"{k} = {_toml_value(v)}")


def manifest_toml(manifest: dict[str, Any], weights_file: str) -> str:
    """The manifest as TOML text (format and version first)."""
    lines = [f'format = "{FORMAT}"', f"version = {VERSION}", f"name = {_toml_value(manifest['name'])}"]
    if manifest.get("family"):
        lines.append(f"family = {_toml_value(manifest['family'])}")
    lines.append(f"weights = {_toml_value(weights_file)}")
    _table(lines, "[input]", manifest["input"])
    _table(lines, "[quantization]", manifest["quantization"])
    if manifest.get("training"):
        _table(lines, "[training]", manifest["training"])
    for layer in manifest["layers"]:
        _table(lines, "[[layers]]", layer)
    return "\n".join(lines) + "\n"


def write_model(out_stem: str | os.PathLike[str], manifest: dict[str, Any], tensors: dict[str, np.ndarray]) -> tuple[str, str]:
    """Validates and writes ``out_stem.toml`` and ``out_stem.safetensors``; returns both paths.

    ``tensors`` maps names to arrays; parameters and BatchNorm statistics are converted to float32 (C order),
    ``"<param>:codes"`` integer tensors are kept as they are.
    """
    validate(manifest, tensors)
    stem = os.fspath(out_stem)
    toml_path, st_path = stem + ".toml", stem + ".safetensors"
    out: dict[str, np.ndarray] = {}
    for k, v in tensors.items():
        a = np.asarray(v)
        out[k] = np.ascontiguousarray(a if k.endswith(CODES_SUFFIX) else a.astype(np.float32))
    d = os.path.dirname(stem)
    if d:
        os.makedirs(d, exist_ok=True)
    write_atomic(st_path, canonical_safetensors(save(out, metadata={"format": FORMAT, "version": str(VERSION)})))
    write_atomic(toml_path, manifest_toml(manifest, os.path.basename(st_path)).encode("utf-8"))
    return toml_path, st_path


def canonical_safetensors(raw: bytes) -> bytes:
    """The same safetensors file with its JSON header in one canonical form (sorted keys, no spaces).

    The safetensors library writes the header from a hash map, so the order of the ``__metadata__`` entries
    differs between runs and the same model would export to different bytes. Data offsets are relative to the
    end of the header, so rewriting the header leaves the tensor data untouched. The header is padded with
    spaces to a multiple of 8 bytes, as the library does.
    """
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + raw[8 + n :]


def write_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write to a temporary file beside ``path`` and rename it over ``path``: a killed export leaves the old file."""
    path = os.fspath(path)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
