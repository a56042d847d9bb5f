"""Fixed-point quantization of parameter tensors, bit for bit identical to the Rust side (src/quant).

Follows the paper's schemes (docs/quantization.md#paper-schemes) and the normative arithmetic of the foundation issue. Every operation is a single
float32 operation on a torch float32 tensor; constants are float32 tensors, never python floats, so that nothing is
silently computed in float64 or fused.

Symmetric (paper Eq. 1, per-layer = "normal"):
    q = min(max|wc| + 0.001, w_max), delta = q / (2^(m-1) - 1)        (layer/channel)
    q = q_fixed (= w_max or 1), delta = f32(q_fixed + 0.001 in f64) / (2^(m-1) - 1)        (global: eps widens only
        the step; inputs and decoded values stay clamped to +-q_fixed, as the 2021 reference quantizer)
    v = integerize(clamp(wc, -q, q) / delta [+ 2^(m-1) if unsigned]),   clamped to the storage range
    w_hat = clamp((v [- 2^(m-1)]) * delta, -q, q)
Asymmetric (RQuant when unsigned + rounding):
    n = clamp(2 (wc - qmin) / (qmax - qmin) - 1, -1, 1),  delta = f32((1 + 0.001) / (2^(m-1) - 1))
    v = integerize(n / delta [+ 2^(m-1)]);  w_hat = clamp((clamp(a, -1, 1) + 1) / 2 (qmax - qmin) + qmin, qmin, qmax)
The range ("context") is computed from the clean tensor and reused unchanged to decode corrupted codes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, asdict
from typing import Optional

import numpy as np
import torch

EPS = 0.001
GRANULARITIES = ("global", "layer", "channel")


class QuantConfigError(ValueError):
    """An invalid quantization scheme (bits, granularity, w_max)."""


@dataclass(frozen=True)
class QuantScheme:
    """How every parameter tensor is stored (docs/model-format.md `[quantization]`)."""

    bits: int = 8
    granularity: str = "layer"
    symmetric: bool = False
    signed: bool = False
    rounding: bool = True
    w_max: Optional[float] = None

    def __post_init__(self):
        if self.granularity not in GRANULARITIES:
            raise QuantConfigError(
                f"quantization.granularity: '{self.granularity}' is not one of {', '.join(GRANULARITIES)}"
            )
        if self.signed:
            if self.bits not in (8, 16, 32):
                raise QuantConfigError(f"quantization.bits: {self.bits} not allowed for signed codes (8, 16 or 32)")
        elif not 2 <= self.bits <= 8:
            raise QuantConfigError(f"quantization.bits: {self.bits} out of range for unsigned codes (2..8)")
        if self.w_max is not None and not (math.isfinite(self.w_max) and self.w_max > 0):
            raise QuantConfigError(f"quantization.w_max: {self.w_max} must be a finite number > 0")

    def to_dict(self) -> dict:
        d = asdict(self)
        if d["w_max"] is None:
            del d["w_max"]
        return d

    @property
    def code_dtype(self) -> torch.dtype:
        if not self.signed:
            return torch.uint8
        return {8: torch.int8, 16: torch.int16, 32: torch.int32}[self.bits]

    @property
    def code_min(self) -> int:
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def code_max(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1


def preset(name: str, bits: int = 8, w_max: Optional[float] = None) -> QuantScheme:
    """Named presets: rquant (layer, asymmetric, unsigned, rounding), normal (layer, symmetric, unsigned, truncation)."""
    if name == "rquant":
        return QuantScheme(bits, "layer", False, False, True, w_max)
    if name == "normal":
        return QuantScheme(bits, "layer", True, False, False, w_max)
    raise QuantConfigError(f"unknown quantization preset '{name}' (rquant, normal)")


def _f32(x: float) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float32)


@dataclass
class Context:
    """Per-tensor (or per-channel) range computed from the clean tensor. Tensors are float32, shaped to broadcast."""

    lo: torch.Tensor  # symmetric: -q ; asymmetric: qmin
    hi: torch.Tensor  # symmetric: q ; asymmetric: qmax


def _group_reduce(x: torch.Tensor, granularity: str, op: str) -> torch.Tensor:
    if granularity == "channel" and x.dim() >= 1 and x.numel() > 0:
        flat = x.reshape(x.shape[0], -1)
        r = flat.amax(dim=1) if op == "max" else flat.amin(dim=1)
        return r.reshape((x.shape[0],) + (1,) * (x.dim() - 1))
    return x.amax() if op == "max" else x.amin()


def clip(w: torch.Tensor, scheme: QuantScheme) -> torch.Tensor:
    """Step 0: wc = clamp(w, -w_max, w_max) (docs/quantization.md#clipping), or w itself when no bound is set."""
    w = w.detach().to(torch.float32)
    if scheme.w_max is None:
        return w
    b = _f32(scheme.w_max)
    return torch.clamp(w, -b, b)


def context(w: torch.Tensor, scheme: QuantScheme) -> Context:
    """The range of a tensor (its clipped values), from the clean weights."""
    wc = clip(w, scheme)
    q_fixed = scheme.w_max if scheme.w_max is not None else 1.0
    if scheme.symmetric:
        if scheme.granularity == "global":
            # the fixed range itself; eps enters only the step (_sym_step_q)
            q = _f32(q_fixed)
        else:
            q = _group_reduce(wc.abs(), scheme.granularity, "max") + _f32(EPS)
            if scheme.w_max is not None:
                q = torch.minimum(q, _f32(scheme.w_max))
        return Context(-q, q)
    if scheme.granularity == "global":
        return Context(-_f32(q_fixed), _f32(q_fixed))
    return Context(_group_reduce(wc, scheme.granularity, "min"), _group_reduce(wc, scheme.granularity, "max"))


def _sym_step_q(q: torch.Tensor, scheme: QuantScheme) -> torch.Tensor:
    """The q of the symmetric step delta = q / levels: the range itself (layer/channel ranges include eps), or for
    the fixed global range f32(f64(f32(q_fixed)) + 0.001), one cast (w_max is an f32 on both sides)."""
    if scheme.granularity == "global":
        return _f32(float(q) + EPS)
    return q


def _levels_f32(bits: int) -> torch.Tensor:
    return _f32(float((1 << (bits - 1)) - 1))


def _asym_delta(bits: int) -> torch.Tensor:
    return _f32((1.0 + EPS) / float((1 << (bits - 1)) - 1))


def _integerize_and_clamp(t: torch.Tensor, scheme: QuantScheme) -> torch.Tensor:
    t = torch.round(t) if scheme.rounding else torch.trunc(t)
    # float32 integers are exact in int64; clamp there (2^31 - 1 is not a float32).
    v = t.to(torch.int64).clamp(scheme.code_min, scheme.code_max)
    return v.to(scheme.code_dtype)


def encode(w: torch.Tensor, scheme: QuantScheme, ctx: Optional[Context] = None) -> torch.Tensor:
    """Integer codes v = Q(w) (uint8 for unsigned, int8/16/32 for signed), same shape as w."""
    if ctx is None:
        ctx = context(w, scheme)
    wc = clip(w, scheme)
    offset = _f32(float(1 << (scheme.bits - 1)))
    if scheme.symmetric:
        q = ctx.hi
        delta = _sym_step_q(q, scheme) / _levels_f32(scheme.bits)
        t = torch.clamp(wc, -q, q) / delta
    else:
        qmin, qmax = ctx.lo, ctx.hi
        delta = _asym_delta(scheme.bits)
        rng = qmax - qmin
        t = wc - qmin
        t = t * _f32(2.0)
        t = t / rng
        t = t - _f32(1.0)
        n = torch.clamp(t, -1.0, 1.0)
        t = n / delta
        const = (qmax == qmin).expand_as(t)
        # constant group: no division result is used (guard, never NaN)
        t = torch.where(const, torch.zeros_like(t), t)
    if not scheme.signed:
        t = t + offset
    return _integerize_and_clamp(t, scheme)


def decode(v: torch.Tensor, scheme: QuantScheme, ctx: Context) -> torch.Tensor:
    """De-quantized float32 weights w_hat = Q^-1(v) with the clean context (also for corrupted codes)."""
    if scheme.signed:
        a = v.to(torch.int64).to(torch.float32)
    else:
        offset = _f32(float(1 << (scheme.bits - 1)))
        a = v.to(torch.int64).clamp(0, scheme.code_max).to(torch.float32) - offset
    if scheme.symmetric:
        q = ctx.hi
        delta = _sym_step_q(q, scheme) / _levels_f32(scheme.bits)
        a = a * delta
        return torch.maximum(torch.minimum(a, q), -q)
    qmin, qmax = ctx.lo, ctx.hi
    a = a * _asym_delta(scheme.bits)
    a = torch.clamp(a, -1.0, 1.0)
    b = a + _f32(1.0)
    b = b / _f32(2.0)
    b = b * (qmax - qmin)
    b = b + qmin
    return torch.maximum(torch.minimum(b, qmax), qmin)


def fake_quant(w: torch.Tensor, scheme: QuantScheme) -> torch.Tensor:
    """Q^-1(Q(w)) with the tensor's own context (no gradient; the caller applies the straight-through estimator)."""
    ctx = context(w, scheme)
    return decode(encode(w, scheme, ctx), scheme, ctx)


# ---------------------------------------------------------------------------------------------- bit manipulation


def code_bits_mask(scheme: QuantScheme) -> int:
    """The m stored bits (LSB first); the 8 - m high bits of a uint8 code are never used (docs/quantization.md#low-precision-storage)."""
    return (1 << scheme.bits) - 1


def to_raw(v: torch.Tensor, scheme: QuantScheme) -> torch.Tensor:
    """Codes as their stored m-bit pattern in int64 (two's complement for signed)."""
    return v.to(torch.int64) & code_bits_mask(scheme)


def from_raw(raw: torch.Tensor, scheme: QuantScheme) -> torch.Tensor:
    """Inverse of to_raw: m-bit pattern -> code tensor of the scheme's dtype (sign-extended for signed)."""
    raw = raw & code_bits_mask(scheme)
    if scheme.signed:
        sign = 1 << (scheme.bits - 1)
        raw = torch.where(raw >= sign, raw - (1 << scheme.bits), raw)
    return raw.to(scheme.code_dtype)


def flip_bits(v: torch.Tensor, flip_mask: torch.Tensor, scheme: QuantScheme) -> torch.Tensor:
    """v' = v XOR flip on the stored m bits (flip_mask: int64 tensor of v's shape)."""
    return from_raw(to_raw(v, scheme) ^ flip_mask, scheme)


def random_flip_mask(
    numel: int, p: float, bits: int, generator: Optional[torch.Generator] = None, u: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """Per-element int64 XOR mask: bit j (LSB first, j < m) set iff u_ij < p with u ~ U(0,1)^(numel x m).

    One uniform per (weight, bit) as in docs/faults.md#paper-model, so for a fixed u the flips at p' <= p are a subset of those at p.
    """
    if u is None:
        u = torch.rand((numel, bits), generator=generator)
    weights = torch.tensor([1 << j for j in range(bits)], dtype=torch.int64)
    return ((u[:, :bits] < p).to(torch.int64) * weights).sum(dim=1)


def sparse_flip_mask(numel: int, p: float, bits: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Same distribution as random_flip_mask (each of the numel x m stored bits flips independently with
    probability p), drawn in O(p·numel·m) instead of one uniform per bit: the gaps between flipped bit positions
    (bit index i·m + j, LSB first) of a Bernoulli(p) process are Geometric(p). Used for the fresh pattern of every
    RandBET step, where no nesting across p is needed."""
    total = numel * bits
    mask = torch.zeros(numel, dtype=torch.int64)
    if p <= 0.0 or total == 0:
        return mask
    if p >= 1.0:
        return mask + ((1 << bits) - 1)
    pos_chunks, last = [], -1
    chunk = int(total * p + 6.0 * math.sqrt(total * p) + 16)
    while True:
        gaps = torch.empty(chunk, dtype=torch.float64).geometric_(p, generator=generator)
        pos = last + torch.cumsum(gaps, 0).to(torch.int64)
        keep = pos[pos < total]
        pos_chunks.append(keep)
        if len(keep) < len(pos):
            break
        last = int(pos[-1])
    pos = torch.cat(pos_chunks)
    bit_values = torch.ones_like(pos) << (pos % bits)
    return mask.index_add_(0, pos // bits, bit_values)  # distinct positions: add == or
