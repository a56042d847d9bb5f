"""Quantization: bit-exact against the shared vectors and a slow per-element numpy.float32 reference."""

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from accelsim_train import quant
from accelsim_train.quant import QuantScheme

VECTORS = Path(__file__).resolve().parents[2] / "tests" / "data" / "quant_vectors.json"
f32 = np.float32


def ref_quant(w: np.ndarray, s: QuantScheme):
    """Slow, obviously-right reference: one numpy.float32 scalar operation at a time (the normative arithmetic)."""
    w = w.astype(np.float32)
    groups = [w.reshape(w.shape[0], -1)[i] for i in range(w.shape[0])] if s.granularity == "channel" else [w.ravel()]
    levels = f32((1 << (s.bits - 1)) - 1)
    offset = f32(1 << (s.bits - 1))
    lo, hi = (s.code_min, s.code_max)
    codes, deq = [], []
    for g in groups:
        wc = [min(max(x, -f32(s.w_max)), f32(s.w_max)) if s.w_max is not None else x for x in g]
        qf = s.w_max if s.w_max is not None else 1.0
        integ = (lambda t: np.round(t)) if s.rounding else (lambda t: np.trunc(t))
        for x in wc:
            if s.symmetric:
                if s.granularity == "global":
                    # fixed range: clamp to +-q_fixed, but the step uses q_fixed + eps (2021 reference quantizer)
                    q = f32(qf)
                    delta = f32(f32(float(f32(qf)) + 0.001) / levels)
                else:
                    q = max(abs(v) for v in wc) + f32(0.001)
                    if s.w_max is not None:
                        q = min(q, f32(s.w_max))
                    delta = f32(q / levels)
                t = f32(min(max(x, -q), q) / delta)
                if not s.signed:
                    t = f32(t + offset)
                v = int(min(max(int(integ(t)), lo), hi))
                a = f32(f32(v) * delta) if s.signed else f32(f32(min(max(v, 0), hi)) - offset) * delta
                a = min(max(f32(a), -q), q)
            else:
                if s.granularity == "global":
                    qmin, qmax = -f32(qf), f32(qf)
                else:
                    qmin, qmax = min(wc), max(wc)
                delta = f32((1.0 + 0.001) / float((1 << (s.bits - 1)) - 1))
                if qmax == qmin:
                    v = 0 if s.signed else int(offset)
                else:
                    t = f32(x - qmin)
                    t = f32(t * f32(2))
                    t = f32(t / f32(qmax - qmin))
                    t = f32(t - f32(1))
                    n = min(max(t, f32(-1)), f32(1))
                    t = f32(n / delta)
                    if not s.signed:
                        t = f32(t + offset)
                    v = int(min(max(int(integ(t)), lo), hi))
                a = f32(f32(v) * delta) if s.signed else f32(f32(f32(min(max(v, 0), hi)) - offset) * delta)
                a = min(max(a, f32(-1)), f32(1))
                b = f32(a + f32(1))
                b = f32(b / f32(2))
                b = f32(b * f32(qmax - qmin))
                b = f32(b + qmin)
                a = min(max(b, qmin), qmax)
            codes.append(v)
            deq.append(f32(a))
    return np.array(codes, dtype=np.int64).reshape(w.shape), np.array(deq, dtype=np.float32).reshape(w.shape)


def schemes():
    for bits, gran, sym, signed, rnd, w_max in itertools.product(
        (2, 4, 8, 16), ("global", "layer", "channel"), (True, False), (False, True), (True, False), (None, 0.1)
    ):
        if signed and bits not in (8, 16):
            continue
        if not signed and bits > 8:
            continue
        yield QuantScheme(bits, gran, sym, signed, rnd, w_max)


@pytest.mark.parametrize("s", list(schemes()), ids=lambda s: f"{s.bits}b-{s.granularity}-sym{int(s.symmetric)}-"
                         f"sgn{int(s.signed)}-rnd{int(s.rounding)}-w{s.w_max}")
def test_matches_slow_reference(s):
    rng = np.random.default_rng(s.bits * 7 + len(s.granularity))
    for trial in range(3):
        w = (rng.standard_normal((3, 2, 3)) * [0.05, 0.3, 1.2][trial]).astype(np.float32)
        if trial == 2:
            w[1] = 0.25  # a constant channel
        ctx = quant.context(torch.from_numpy(w), s)
        v = quant.encode(torch.from_numpy(w), s, ctx)
        d = quant.decode(v, s, ctx)
        rv, rd = ref_quant(w, s)
        assert v.dtype == s.code_dtype
        np.testing.assert_array_equal(v.numpy().astype(np.int64), rv)
        assert np.array_equal(d.numpy().view(np.uint32), rd.view(np.uint32)), (d.numpy(), rd)


@pytest.mark.parametrize("s", [quant.preset("rquant", 8), quant.preset("normal", 8), quant.preset("rquant", 4, 0.1)])
def test_round_trip_error_bounded_and_codes_in_range(s):
    w = torch.randn(1000) * 0.2
    ctx = quant.context(w, s)
    v = quant.encode(w, s, ctx)
    d = quant.decode(v, s, ctx)
    assert int(v.to(torch.int64).min()) >= 0 and int(v.to(torch.int64).max()) < (1 << s.bits)
    wc = quant.clip(w, s)
    if s.symmetric:
        step = float(ctx.hi) / ((1 << (s.bits - 1)) - 1)
    else:
        step = (float(ctx.hi) - float(ctx.lo)) / 2 * 1.001 / ((1 << (s.bits - 1)) - 1)
    bound = step * (0.5 if s.rounding else 1.0) * 1.0001 + 1e-7
    assert float((d - wc).abs().max()) <= bound


def test_global_fixed_range_decodes_to_plus_minus_w_max():
    """Hand-worked values of the fixed-range ("global") scheme, as the 2021 reference quantizer computes it:
    step (w_max + eps) / levels, inputs and decoded values clamped to +-w_max (docs/quantization.md#paper-schemes)."""
    # m = 8, w_max = 0.1: -0.1 / (0.101/127) = -125.74 -> +128 -> 2; 0.1 -> 254; 0.3 is clipped to 0.1.
    s = QuantScheme(8, "global", True, False, True, 0.1)
    w = torch.tensor([-0.1, 0.1, 0.3, 0.0])
    ctx = quant.context(w, s)
    v = quant.encode(w, s, ctx)
    assert v.tolist() == [2, 254, 254, 128]
    assert quant.decode(v, s, ctx).tolist() == torch.tensor([-0.1, 0.1, 0.1, 0.0]).tolist()
    # corrupted extreme codes decode to +-w_max as well (code 0 would be -128 steps = -0.1018)
    assert quant.decode(torch.tensor([0, 255], dtype=torch.uint8), s, ctx).tolist() == torch.tensor([-0.1, 0.1]).tolist()
    # m = 4: -0.1 -> 1.07 -> code 1 -> -7 steps = -0.101 before the clamp, -0.1 after it
    s4 = QuantScheme(4, "global", True, False, True, 0.1)
    w = torch.tensor([-0.1, 0.1])
    ctx = quant.context(w, s4)
    v = quant.encode(w, s4, ctx)
    assert v.tolist() == [1, 15]
    assert quant.decode(v, s4, ctx).tolist() == torch.tensor([-0.1, 0.1]).tolist()
    # signed 8-bit: -0.1 -> -126 -> -0.1 after the clamp
    ss = QuantScheme(8, "global", True, True, True, 0.1)
    ctx = quant.context(w, ss)
    v = quant.encode(w, ss, ctx)
    assert v.tolist() == [-126, 126]
    assert quant.decode(v, ss, ctx).tolist() == torch.tensor([-0.1, 0.1]).tolist()
    # without clipping q_fixed = 1: 1.5 is clamped to 1 (not 1.001) before encoding: trunc(126.87 + 128) = 254
    st = QuantScheme(8, "global", True, False, False, None)
    w = torch.tensor([1.5, -1.5])
    ctx = quant.context(w, st)
    v = quant.encode(w, st, ctx)
    assert v.tolist() == [254, 1]
    assert quant.decode(v, st, ctx).tolist()[1] == -1.0


def test_constant_tensor_never_nan():
    for s in (quant.preset("rquant", 8), QuantScheme(8, "channel", False, True, True, None)):
        w = torch.full((4, 3), 0.3)
        ctx = quant.context(w, s)
        v = quant.encode(w, s, ctx)
        assert int(v.to(torch.int64).unique().numel()) == 1
        d = quant.decode(v, s, ctx)
        assert torch.isfinite(d).all() and torch.all(d == torch.tensor(0.3))


def test_invalid_schemes_raise_clear_errors():
    with pytest.raises(quant.QuantConfigError, match="bits"):
        QuantScheme(bits=9)
    with pytest.raises(quant.QuantConfigError, match="signed"):
        QuantScheme(bits=4, signed=True)
    with pytest.raises(quant.QuantConfigError, match="granularity"):
        QuantScheme(granularity="row")
    with pytest.raises(quant.QuantConfigError, match="w_max"):
        QuantScheme(w_max=-1.0)


def test_flip_bits_only_touches_stored_bits_and_is_an_involution():
    for s in (quant.preset("rquant", 4), QuantScheme(8, "layer", True, True, True, None)):
        w = torch.randn(500)
        v = quant.encode(w, s)
        mask = torch.randint(0, 1 << 16, (500,), dtype=torch.int64)
        v2 = quant.flip_bits(v, mask, s)
        assert v2.dtype == v.dtype
        if not s.signed:
            assert int(v2.to(torch.int64).max()) < (1 << s.bits)
        assert torch.equal(quant.flip_bits(v2, mask, s), v)
        diff = quant.to_raw(v, s) ^ quant.to_raw(v2, s)
        assert torch.equal(diff, mask & quant.code_bits_mask(s))


def test_random_flip_mask_rate_position_and_nesting():
    g = torch.Generator().manual_seed(3)
    n, bits, p = 200_000, 8, 0.01
    u = torch.rand((n, bits), generator=g)
    m1 = quant.random_flip_mask(n, p, bits, u=u)
    m2 = quant.random_flip_mask(n, 2 * p, bits, u=u)
    assert torch.equal(m1 & m2, m1)  # flips at p are a subset of those at 2p
    per_bit = torch.stack([((m1 >> j) & 1).sum() for j in range(bits)]).double()
    expect, sd = n * p, math.sqrt(n * p * (1 - p))
    assert torch.all((per_bit - expect).abs() < 5 * sd), per_bit  # unbiased in every bit position
    assert abs(float(per_bit.sum()) - bits * expect) < 5 * sd * math.sqrt(bits)
    m4 = quant.random_flip_mask(1000, 0.5, 4, generator=g)
    assert int(m4.max()) < 16


def _vector_cases():
    if not VECTORS.exists():
        return []
    return json.loads(VECTORS.read_text())["cases"]


@pytest.mark.skipif(not VECTORS.exists(), reason=f"shared vectors {VECTORS} not written yet (Rust quant side)")
@pytest.mark.parametrize("case", _vector_cases(), ids=lambda c: c["name"])
def test_shared_vectors_bit_exact(case):
    s = QuantScheme(case["bits"], case["granularity"], case["symmetric"], case["signed"], case["rounding"],
                    case["w_max"])
    w = torch.tensor(case["input"], dtype=torch.float32).reshape(case["shape"])
    ctx = quant.context(w, s)
    v = quant.encode(w, s, ctx)
    assert v.reshape(-1).to(torch.int64).tolist() == case["codes"]
    d = quant.decode(v, s, ctx).reshape(-1).numpy()
    expect = np.array(case["dequantized"], dtype=np.float32)
    assert np.array_equal(d.view(np.uint32), expect.view(np.uint32)), (d, expect)


def test_shared_vectors_file_is_versioned():
    if not VECTORS.exists():
        pytest.skip(f"shared vectors {VECTORS} not written yet (Rust quant side)")
    doc = json.loads(VECTORS.read_text())
    assert doc["version"] == 1 and len(doc["cases"]) > 0


@pytest.mark.parametrize("p", [0.001, 0.01, 0.3])
def test_sparse_flip_mask_is_an_unbiased_bernoulli_sampler(p):
    g = torch.Generator().manual_seed(7)
    n, bits, reps = 50_000, 8, 4
    per_bit = torch.zeros(bits, dtype=torch.float64)
    halves = torch.zeros(2, dtype=torch.float64)
    multi = 0.0
    for _ in range(reps):
        m = quant.sparse_flip_mask(n, p, bits, g)
        assert int(m.min()) >= 0 and int(m.max()) < (1 << bits)
        bitsets = torch.stack([(m >> j) & 1 for j in range(bits)], 1).double()
        per_bit += bitsets.sum(0)
        halves += torch.stack([bitsets[: n // 2].sum(), bitsets[n // 2:].sum()])
        multi += float((bitsets.sum(1) >= 2).sum())
    trials = n * reps
    sd = math.sqrt(trials * p * (1 - p))
    assert torch.all((per_bit - trials * p).abs() < 5 * sd), per_bit  # every bit position at rate p
    sd_h = math.sqrt(trials * bits / 2 * p * (1 - p))
    assert torch.all((halves - trials * bits / 2 * p).abs() < 5 * sd_h), halves  # no drift along memory
    # independence across bits of one element: P(>= 2 flips in m bits) follows the binomial law
    p2 = 1 - (1 - p) ** bits - bits * p * (1 - p) ** (bits - 1)
    assert abs(multi - trials * p2) < 5 * math.sqrt(trials * p2 * (1 - p2)) + 5


def test_sparse_flip_mask_edges():
    assert int(quant.sparse_flip_mask(100, 0.0, 8).sum()) == 0
    assert torch.all(quant.sparse_flip_mask(10, 1.0, 4) == 15)
    assert quant.sparse_flip_mask(0, 0.5, 8).numel() == 0
