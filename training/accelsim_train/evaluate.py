"""Evaluation of exported models in PyTorch: clean error, robust error under random bit errors, fault-pattern replay.

A cross-check of the simulator (docs/run-and-sweep.md#evaluation-protocol):
- Err  = clean test error of the quantized model (all given images, normally the 10k test set);
- RErr = an example counts as wrong if the clean OR the faulty prediction is wrong, over the first 9000 test images;
  mean, standard deviation and a 95% interval of the mean over simulated chips (seeds, default 100..149);
- a chip = one u ~ U(0,1)^(W x m) drawn from torch.Generator().manual_seed(seed) over all parameters in memory order
  (layers in manifest order, weight then bias, row-major); bit j of element i flips iff u_ij < p, so flips at a
  smaller p are a subset of those at a larger p for the same chip (docs/faults.md#paper-model).
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from . import quant

PARAM_TYPES = ("conv2d", "linear", "groupnorm", "batchnorm")


class ModelFileError(ValueError):
    """A model or pattern file that cannot be read or does not follow docs/model-format.md."""


def _pair(v, default):
    if v is None:
        return tuple(default)
    if isinstance(v, int):
        return (v, v)
    return tuple(int(t) for t in v)


@dataclass
class LoadedModel:
    """Manifest, scheme, float weights and their codes + contexts in memory order. Weights are never copied per chip."""

    path: Path
    manifest: dict
    scheme: quant.QuantScheme
    layers: list
    param_names: list  # memory order
    floats: dict  # name -> float32 tensor (parameters and BN buffers)
    codes: dict  # name -> code tensor
    contexts: dict  # name -> quant.Context

    @property
    def numel(self) -> int:
        return sum(self.codes[n].numel() for n in self.param_names)

    def dequantized(self, codes: Optional[dict] = None) -> dict:
        codes = codes or self.codes
        out = dict(self.floats)
        for n in self.param_names:
            out[n] = quant.decode(codes[n], self.scheme, self.contexts[n])
        return out

    def forward(self, x: torch.Tensor, params: dict) -> torch.Tensor:
        """Run the manifest graph on NCHW input with the given tensors (inference semantics of docs/model-format.md)."""
        outs = {"input": x}
        h = x
        for layer in self.layers:
            t = layer["type"]
            src = outs[layer["input"]] if "input" in layer else h
            if t == "conv2d":
                h = F.conv2d(src, params[layer["weight"]], params.get(layer.get("bias")) if "bias" in layer else None,
                             _pair(layer.get("stride"), (1, 1)), _pair(layer.get("padding"), (0, 0)),
                             _pair(layer.get("dilation"), (1, 1)), int(layer.get("groups", 1)))
            elif t == "linear":
                h = F.linear(src, params[layer["weight"]], params[layer["bias"]] if "bias" in layer else None)
            elif t == "relu":
                h = F.relu(src)
            elif t in ("maxpool2d", "avgpool2d"):
                k = _pair(layer.get("kernel"), (2, 2))
                s = _pair(layer.get("stride"), k)
                pd = _pair(layer.get("padding"), (0, 0))
                if t == "maxpool2d":
                    h = F.max_pool2d(src, k, s, pd)
                else:
                    h = F.avg_pool2d(src, k, s, pd, count_include_pad=bool(layer.get("count_include_pad", True)))
            elif t == "clip":
                h = torch.clamp(src, layer.get("min"), layer.get("max"))
            elif t == "reshape":
                h = src.reshape(src.shape[0], *layer["shape"])
            elif t == "global_avgpool":
                h = src.mean(dim=(2, 3))
            elif t == "flatten":
                h = torch.flatten(src, 1)
            elif t == "add":
                a, b = layer["inputs"]
                h = outs[a] + outs[b]
            elif t in ("groupnorm", "batchnorm"):
                w = params[layer["weight"]]
                if layer.get("reparameterized", t == "groupnorm"):
                    w = 1.0 + w
                eps = float(layer.get("eps", 1e-5))
                if t == "groupnorm":
                    h = F.group_norm(src, int(layer["groups"]), w, params[layer["bias"]], eps)
                else:
                    h = F.batch_norm(src, params[layer["running_mean"]], params[layer["running_var"]], w,
                                     params[layer["bias"]], False, 0.0, eps)
            elif t in ("identity", "dropout"):
                h = src
            else:
                raise ModelFileError(f"{self.path}: layer '{layer.get('name')}': unknown type '{t}'")
            outs[layer["name"]] = h
        return h


def load_model(stem, check_codes: bool = True) -> LoadedModel:
    """Load NAME.toml + its safetensors; re-quantize and (if present) check the stored codes bit for bit."""
    from safetensors.numpy import load_file

    stem = Path(stem)
    toml_path = stem if stem.suffix == ".toml" else Path(str(stem) + ".toml")
    try:
        manifest = tomllib.loads(toml_path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ModelFileError(f"{toml_path}: cannot read manifest ({e})") from None
    if manifest.get("format") != "accelsim-model" or manifest.get("version") != 1:
        raise ModelFileError(f"{toml_path}: format/version: expected \"accelsim-model\" version 1")
    q = dict(manifest.get("quantization", {}))
    try:
        scheme = quant.QuantScheme(**q)
    except TypeError as e:
        raise ModelFileError(f"{toml_path}: [quantization]: {e}") from None
    wpath = toml_path.parent / manifest.get("weights", stem.name + ".safetensors")
    try:
        raw = load_file(str(wpath))
    except Exception as e:  # noqa: BLE001
        raise ModelFileError(f"{wpath}: cannot read tensors ({e})") from None
    layers = manifest.get("layers", [])
    names, floats = [], {}
    for layer in layers:
        if layer.get("type") in PARAM_TYPES:
            for key in ("weight", "bias"):
                if key in layer:
                    names.append(layer[key])
            for key in ("running_mean", "running_var"):
                if key in layer:
                    floats[layer[key]] = torch.from_numpy(raw[layer[key]].astype(np.float32))
    codes, ctxs = {}, {}
    for n in names:
        if n not in raw:
            raise ModelFileError(f"{wpath}: tensor '{n}' named in the manifest is missing")
        w = torch.from_numpy(np.ascontiguousarray(raw[n], dtype=np.float32))
        floats[n] = w
        ctxs[n] = quant.context(w, scheme)
        codes[n] = quant.encode(w, scheme, ctxs[n])
        stored = raw.get(f"{n}:codes")
        if check_codes and stored is not None and not np.array_equal(stored, codes[n].numpy()):
            bad = int((stored.astype(np.int64) != codes[n].numpy().astype(np.int64)).sum())
            raise ModelFileError(f"{wpath}: '{n}:codes' differs from the re-quantized weights in {bad} elements")
    return LoadedModel(toml_path, manifest, scheme, layers, names, floats, codes, ctxs)


@torch.no_grad()
def predict(model: LoadedModel, params: dict, x: torch.Tensor, batch: int = 1000) -> torch.Tensor:
    return torch.cat([model.forward(x[i: i + batch], params).argmax(1) for i in range(0, len(x), batch)])


def split_masks(model: LoadedModel, flat: torch.Tensor) -> dict:
    out, off = {}, 0
    for n in model.param_names:
        k = model.codes[n].numel()
        out[n] = flat[off: off + k].reshape(model.codes[n].shape)
        off += k
    return out


def chip_uniforms(model: LoadedModel, seed: int) -> torch.Tensor:
    """u ~ U(0,1)^(W x m) for one simulated chip."""
    return torch.rand((model.numel, model.scheme.bits), generator=torch.Generator().manual_seed(seed))


def faulty_codes(model: LoadedModel, u: torch.Tensor, p: float) -> dict:
    masks = split_masks(model, quant.random_flip_mask(model.numel, p, model.scheme.bits, u=u))
    return {n: quant.flip_bits(model.codes[n], masks[n], model.scheme) for n in model.param_names}


def t_quantile_975(dof: int) -> float:
    """Student-t 97.5% quantile (Cornish-Fisher expansion around z = 1.959964; < 0.2% off for dof >= 5)."""
    if dof <= 0:
        return float("nan")
    table = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776}
    if dof in table:
        return table[dof]
    z, v = 1.959963985, float(dof)
    return z + (z**3 + z) / (4 * v) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * v**2) + (
        3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * v**3)


def summarize(values: list[float]) -> dict:
    """mean, sample std (ddof 1) and the 95% t-interval of the mean."""
    a = np.asarray(values, dtype=np.float64)
    n = len(a)
    mean = float(a.mean()) if n else float("nan")
    std = float(a.std(ddof=1)) if n > 1 else 0.0
    half = t_quantile_975(n - 1) * std / math.sqrt(n) if n > 1 else float("nan")
    return {"n": n, "mean": mean, "std": std, "ci95": [mean - half, mean + half]}


def paired_difference(values: list[float], ref_values: list[float]) -> dict:
    """Summary of values[i] - ref_values[i] over chips i (same seeds): the paired comparison of two models.

    Both models see chip i's uniforms, so the chip-to-chip variation common to both cancels and the interval
    is much narrower than the two separate intervals suggest.
    """
    if len(values) != len(ref_values):
        raise ValueError(f"paired difference needs the same chips: {len(values)} vs {len(ref_values)} values")
    return summarize([float(a) - float(b) for a, b in zip(values, ref_values)])


def clean_error(model: LoadedModel, x, y) -> float:
    return 100.0 * float((predict(model, model.dequantized(), x) != y).float().mean())


def _chip_rerr(model: LoadedModel, x, y, clean_wrong, ps: list[float], seed: int) -> list[float]:
    """RErr (percent) of one chip at every p."""
    u = chip_uniforms(model, seed)
    out = []
    for p in ps:
        params = model.dequantized(faulty_codes(model, u, p))
        wrong = clean_wrong | (predict(model, params, x) != y)
        out.append(100.0 * float(wrong.float().mean()))
    return out


_WORK = None  # (model, x, y, clean_wrong, ps) inherited by forked workers


def _chip_worker(seed: int) -> list[float]:
    torch.set_num_threads(1)
    return _chip_rerr(*_WORK, seed)


def robust_errors(model: LoadedModel, x, y, ps: list[float], seeds: list[int], progress: bool = False,
                  jobs: int = 1) -> dict:
    """p -> summary of RErr (percent) over the chips; the same chip (seed) is used for every p (nested patterns).

    ``jobs`` > 1 evaluates the chips in that many forked processes (one torch thread each); every chip is computed
    independently from its seed, so the result does not depend on ``jobs``."""
    global _WORK
    clean_wrong = predict(model, model.dequantized(), x) != y
    per_p = {p: [] for p in ps}
    if jobs > 1 and len(seeds) > 1:
        import multiprocessing as mp

        _WORK = (model, x, y, clean_wrong, ps)
        try:
            with mp.get_context("fork").Pool(min(jobs, len(seeds))) as pool:
                rows = pool.map(_chip_worker, seeds, chunksize=1)
        finally:
            _WORK = None
    else:
        it = seeds
        if progress:
            from tqdm import tqdm

            it = tqdm(seeds, desc=model.path.stem, leave=False)
        rows = [_chip_rerr(model, x, y, clean_wrong, ps, seed) for seed in it]
    for row in rows:
        for p, v in zip(ps, row):
            per_p[p].append(v)
    return {p: summarize(v) | {"values": v} for p, v in per_p.items()}


# ------------------------------------------------------------------------------------------------- pattern replay


def load_pattern(path) -> dict:
    """Fault pattern (safetensors): I64 "index" (global element index in memory order), U32 "flip", "set0", "set1"."""
    from safetensors.numpy import load_file

    try:
        t = load_file(str(path))
    except Exception as e:  # noqa: BLE001
        raise ModelFileError(f"{path}: cannot read fault pattern ({e})") from None
    need = {"index": np.int64, "flip": np.uint32, "set0": np.uint32, "set1": np.uint32}
    for k, dt in need.items():
        if k not in t:
            raise ModelFileError(f"{path}: tensor '{k}' missing (need index, flip, set0, set1)")
        if t[k].dtype != dt:
            raise ModelFileError(f"{path}: tensor '{k}' has dtype {t[k].dtype}, expected {np.dtype(dt)}")
        if t[k].ndim != 1 or len(t[k]) != len(t["index"]):
            raise ModelFileError(f"{path}: tensor '{k}' must be 1-D with the length of 'index' ({len(t['index'])})")
    return t


def pattern_bits(path) -> Optional[int]:
    """The `bits` metadata (m) of a simulator pattern file, if it has one."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
    except Exception:  # noqa: BLE001 - load_pattern reports unreadable files
        return None
    try:
        return int(meta["bits"]) if "bits" in meta else None
    except ValueError:
        raise ModelFileError(f"{path}: metadata 'bits' = {meta['bits']!r} is not an integer") from None


def apply_pattern(model: LoadedModel, pattern: dict, path="pattern") -> dict:
    """v' = ((v ^ flip) & ~set0) | set1 on the stored m bits; entries for the same element apply in file order."""
    idx = pattern["index"].astype(np.int64)
    if len(idx) and (idx.min() < 0 or idx.max() >= model.numel):
        raise ModelFileError(f"{path}: 'index' out of range [0, {model.numel}) for {model.path}")
    mbits = quant.code_bits_mask(model.scheme)
    flat = torch.cat([quant.to_raw(model.codes[n], model.scheme).reshape(-1) for n in model.param_names])
    order = np.argsort(idx, kind="stable")
    sorted_idx = idx[order]
    first = np.r_[True, sorted_idx[1:] != sorted_idx[:-1]] if len(idx) else np.zeros(0, bool)
    starts = np.maximum.accumulate(np.where(first, np.arange(len(idx)), 0)) if len(idx) else np.zeros(0, np.int64)
    rank = np.empty(len(idx), np.int64)
    rank[order] = np.arange(len(idx)) - starts
    for r in range(int(rank.max()) + 1 if len(idx) else 0):
        sel = rank == r
        i = torch.from_numpy(idx[sel])
        flip = torch.from_numpy(pattern["flip"][sel].astype(np.int64)) & mbits
        set0 = torch.from_numpy(pattern["set0"][sel].astype(np.int64)) & mbits
        set1 = torch.from_numpy(pattern["set1"][sel].astype(np.int64)) & mbits
        v = flat[i]
        flat[i] = (((v ^ flip) & (~set0 & mbits)) | set1) & mbits
    out, off = {}, 0
    for n in model.param_names:
        k = model.codes[n].numel()
        out[n] = quant.from_raw(flat[off: off + k].reshape(model.codes[n].shape), model.scheme)
        off += k
    return out


def replay(model: LoadedModel, pattern_path, x, y) -> dict:
    pattern = load_pattern(pattern_path)
    bits = pattern_bits(pattern_path)
    if bits is not None and bits != model.scheme.bits:
        raise ModelFileError(f"{pattern_path}: pattern is for {bits}-bit codes, {model.path} stores "
                             f"{model.scheme.bits} bits")
    codes = apply_pattern(model, pattern, pattern_path)
    changed = sum(int((codes[n] != model.codes[n]).sum()) for n in model.param_names)
    clean_pred = predict(model, model.dequantized(), x)
    faulty_pred = predict(model, model.dequantized(codes), x)
    return {"model": str(model.path), "pattern": str(pattern_path), "images": len(y), "entries": len(pattern["index"]),
            "changed_codes": changed, "clean_error_pct": 100.0 * float((clean_pred != y).float().mean()),
            "faulty_error_pct": 100.0 * float((faulty_pred != y).float().mean()),
            "robust_error_pct": 100.0 * float(((clean_pred != y) | (faulty_pred != y)).float().mean())}


def from_torch(model, scheme: quant.QuantScheme, path="<memory>") -> LoadedModel:
    """A LoadedModel straight from a trained torch model (same tensors the exporter writes), without files."""
    layers = model.manifest_layers()
    names, floats, codes, ctxs = [], {}, {}, {}
    params = dict(model.named_parameters())
    for layer in layers:
        if layer.get("type") in PARAM_TYPES:
            for key in ("weight", "bias"):
                if key in layer:
                    n = layer[key]
                    names.append(n)
                    w = quant.clip(params[n].detach(), scheme)
                    floats[n] = w
                    ctxs[n] = quant.context(w, scheme)
                    codes[n] = quant.encode(w, scheme, ctxs[n])
    for n, b in model.named_buffers():
        floats[n] = b.detach().to(torch.float32)
    return LoadedModel(Path(path), {"layers": layers}, scheme, layers, names, floats, codes, ctxs)
