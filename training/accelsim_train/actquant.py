"""Activations as the int8 datapath stores them, and their bit errors, for training (`train --p-act P`).

The simulator's integer datapath (docs/datapath.md#activations) stores every layer's input map in the activation
SRAM as one byte per value, quantized per tensor with ONNX QuantizeLinear:

    uint8 (tensor never negative on the calibration images):  s = max / 255, z = 0,  q in 0..=255
    int8  (otherwise), over [lo, hi] = [min(min, 0), max(max, 0)]:
          s = (hi - lo) / 255,  z = clamp(round_half_even(-128 - lo / s), -128, 127),  q in -128..=127
    q = saturate(round_half_even(x / s) + z)   (f32; NaN -> z),    x_hat = (q - z) * s

(`QParams::from_range` and `quantize_code` in src/engine/int8/quantize.rs, reproduced here one float32 operation
at a time). The ranges are the minimum and maximum of each tensor over the first 1000 training images in the float
network with the clean de-quantized weights (docs/datapath.md#calibration).

Bit errors (docs/activation-faults.md): each of the 8 stored bits of every stored code flips independently with
probability p (uint8: the code's bits; int8: its two's-complement byte). In training the corrupted value enters the
network with a straight-through gradient: forward x_hat' = Q^-1(flip(Q(x))), backward d x_hat'/dx = 1.

Which maps are stored (cnn-small, `CnnSmall.forward` calls `act_hook(point, x)` at each): the stored input map of
every layer the int8 engine runs as a step (a conv/linear with its fused norm/ReLU chain, a max pool), i.e.

    point 0: the image (conv1's input, int8)          point 1: relu1's output (pool1's input)
    point 2: pool1's output (conv2's input)           point 3: relu2's output (pool2's input)
    point 4: pool2's output, flattened (fc1's input)  point 5: relu3's output (fc2's input)

Inside a fused conv -> norm -> ReLU chain nothing is stored. Max pooling keeps its input's scale and zero point
(points 2 and 4 use those of 1 and 3); max of codes = max of values, so pooling the de-quantized values is exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch

from . import quant

# Points of cnn-small whose parameters are their own; the others take them from the map they pool.
CNN_POINTS = 6
CNN_SHARED = {2: 1, 4: 3}
CALIBRATION_IMAGES = 1000  # = accelsim::engine::int8::CALIBRATION_IMAGES

_MAGIC_CLAMP = 4_194_304.0  # 2^22: |x / s| beyond this saturates every 8-bit range (quantize.rs)


def _f32(x: float) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float32)


@dataclass(frozen=True)
class ActQParams:
    """Scale and zero point of one stored activation tensor (QParams in quantize.rs)."""

    scale: float  # an exact float32 value
    zero: int
    signed: bool

    @property
    def code_min(self) -> int:
        return -128 if self.signed else 0

    @property
    def code_max(self) -> int:
        return 127 if self.signed else 255


def qparams_from_range(mn: float, mx: float) -> ActQParams:
    """`QParams::from_range` in f32: uint8 when min >= 0, else int8 over [min(min,0), max(max,0)]; s = 1 when
    the range is degenerate or not finite."""
    mn32, mx32 = _f32(mn), _f32(mx)
    finite = math.isfinite(float(mn32)) and math.isfinite(float(mx32)) and float(mn32) <= float(mx32)
    if finite and float(mn32) >= 0.0:
        s = mx32 / _f32(255.0)
        sv = float(s)
        return ActQParams(sv if sv > 0.0 and math.isfinite(sv) else 1.0, 0, False)
    if finite:
        lo, hi = torch.minimum(mn32, _f32(0.0)), torch.maximum(mx32, _f32(0.0))
    else:
        lo, hi = _f32(-1.0), _f32(1.0)
    s = (hi - lo) / _f32(255.0)
    if not (float(s) > 0.0 and math.isfinite(float(s))):
        s = _f32(1.0)
    z = torch.round(_f32(-128.0) - lo / s).clamp(-128.0, 127.0)  # torch.round: half to even
    return ActQParams(float(s), int(z), True)


def quantize(x: torch.Tensor, qp: ActQParams) -> torch.Tensor:
    """ONNX QuantizeLinear as `quantize_code`: clamp(round_half_even(x / s) + z, lo, hi), NaN -> z. int64 codes."""
    x = torch.nan_to_num(x.detach().to(torch.float32), nan=0.0, posinf=float("inf"), neginf=float("-inf"))
    t = (x / _f32(qp.scale)).clamp(-_MAGIC_CLAMP, _MAGIC_CLAMP)
    q = torch.round(t).to(torch.int64) + qp.zero
    return q.clamp(qp.code_min, qp.code_max)


def dequantize(q: torch.Tensor, qp: ActQParams) -> torch.Tensor:
    """ONNX DequantizeLinear: (q - z) * s in f32."""
    return (q - qp.zero).to(torch.float32) * _f32(qp.scale)


def flip_codes(q: torch.Tensor, mask: torch.Tensor, qp: ActQParams) -> torch.Tensor:
    """The code read back after XOR-ing its stored byte with mask (int64, 0..255): uint8 codes directly, int8
    codes through their two's-complement byte (sign-extended back)."""
    byte = (q & 0xFF) ^ mask
    if qp.signed:
        byte = torch.where(byte >= 128, byte - 256, byte)
    return byte


def flip_mask(shape, p: float, generator: Optional[torch.Generator]) -> torch.Tensor:
    """int64 XOR masks of the given shape: each of the 8 bits of every code set independently with probability p
    (geometric gaps between flipped bit positions, quant.sparse_flip_mask; all zero at p = 0)."""
    n = math.prod(shape)
    return quant.sparse_flip_mask(n, p, 8, generator).reshape(shape)


class _StraightThrough(torch.autograd.Function):
    """Forward: the given read-back value; backward: the identity to x (straight-through estimator)."""

    @staticmethod
    def forward(ctx, x, y):  # noqa: D102
        return y

    @staticmethod
    def backward(ctx, g):  # noqa: D102
        return g, None


def fake_quant(x: torch.Tensor, qp: ActQParams, p: float = 0.0,
               generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Q^-1(flip_p(Q(x))) with a straight-through gradient; at p = 0 exactly Q^-1(Q(x)) (no random draw)."""
    q = quantize(x, qp)
    if p > 0.0:
        q = flip_codes(q, flip_mask(tuple(q.shape), p, generator), qp)
    return _StraightThrough.apply(x, dequantize(q, qp).to(x.dtype))


class ActHook:
    """What `CnnSmall.forward` calls at each stored map (`model.act_hook = hook`).

    mode "observe": record each point's float min/max (calibration), return x unchanged;
    mode "quant": fake-quantize every stored map to its int8-datapath format (no errors);
    mode "faults": the same plus bit errors at per-bit rate p on every stored code (fresh per call).
    """

    def __init__(self, points: int = CNN_POINTS, shared: Optional[dict] = None):
        self.points = points
        self.shared = dict(CNN_SHARED if shared is None else shared)
        self.qparams: list[Optional[ActQParams]] = [None] * points
        self.ranges: list[tuple[float, float]] = []
        self.mode = "quant"
        self.p = 0.0
        self.generator: Optional[torch.Generator] = None
        self._mn = [math.inf] * points
        self._mx = [-math.inf] * points

    def __call__(self, point: int, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "observe":
            if x.numel():
                xd = x.detach()
                xd = xd[torch.isfinite(xd)]
                if xd.numel():
                    self._mn[point] = min(self._mn[point], float(xd.min()))
                    self._mx[point] = max(self._mx[point], float(xd.max()))
            return x
        qp = self.qparams[point]
        if qp is None:
            raise RuntimeError("activation hook used before calibration")
        return fake_quant(x, qp, self.p if self.mode == "faults" else 0.0, self.generator)

    def set_ranges(self, ranges: list[tuple[float, float]]) -> None:
        """Parameters from (min, max) per point; shared points take the pooled map's (max pooling keeps them)."""
        self.ranges = [(float(mn), float(mx)) for mn, mx in ranges]
        qps = [qparams_from_range(mn, mx) if math.isfinite(mn) and math.isfinite(mx) and mn <= mx
               else qparams_from_range(0.0, 0.0) for mn, mx in ranges]
        for dst, src in self.shared.items():
            qps[dst] = qps[src]
        self.qparams = qps

    @torch.no_grad()
    def calibrate(self, model, weights: dict, x_calib: torch.Tensor, batch: int = 500) -> list[ActQParams]:
        """docs/datapath.md#calibration: min/max of every stored map over x_calib in the float network with the
        given (clean de-quantized) weights, eval mode; sets and returns the parameters."""
        from torch.func import functional_call

        old_mode, was = self.mode, model.training
        self.mode = "observe"
        self._mn = [math.inf] * self.points
        self._mx = [-math.inf] * self.points
        model.eval()
        prev = getattr(model, "act_hook", None)
        model.act_hook = self
        try:
            for i in range(0, len(x_calib), batch):
                functional_call(model, weights, (x_calib[i: i + batch],))
        finally:
            model.act_hook = prev
            model.train(was)
            self.mode = old_mode
        self.set_ranges(list(zip(self._mn, self._mx)))
        return list(self.qparams)
