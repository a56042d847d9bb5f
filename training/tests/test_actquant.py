"""Activation fake quantization in the int8 datapath's format and activation bit errors (`train --p-act`)."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from accelsim_train import actquant as A
from accelsim_train import models
from accelsim_train import train as T


def np_quantize(x, scale, zero, signed):
    """Slow reference of ONNX QuantizeLinear in numpy float32: saturate(rint(x / s) + z), rint = half to even."""
    x = np.asarray(x, dtype=np.float32)
    x = np.where(np.isnan(x), np.float32(0), x)
    with np.errstate(over="ignore", invalid="ignore"):
        t = np.clip(x / np.float32(scale), -4194304.0, 4194304.0).astype(np.float32)
    q = np.rint(t).astype(np.int64) + zero
    lo, hi = (-128, 127) if signed else (0, 255)
    return np.clip(q, lo, hi)


def test_quantize_rounds_half_to_even_and_saturates_as_quantize_linear():
    # the simulator's pinned cases (src/engine/int8/tests.rs): s = 1, z = 0, int8
    q = A.ActQParams(1.0, 0, True)
    x = torch.tensor([2.5, 3.5, -2.5, 1e9, -1e9, float("nan"), 0.5, -0.5, 1.5, 127.5, -128.5])
    assert A.quantize(x, q).tolist() == [2, 4, -2, 127, -128, 0, 0, 0, 2, 127, -128]
    # uint8, s = 0.5: x / s = 0.5, 1.5, 2.5 -> 0, 2, 2; negatives saturate at 0, large values at 255
    u = A.ActQParams(0.5, 0, False)
    assert A.quantize(torch.tensor([0.25, 0.75, 1.25, -3.0, 200.0, float("inf")]), u).tolist() == [0, 2, 2, 0, 255, 255]
    # int8 with a zero point: round first, then add z, then saturate; NaN -> z
    z = A.ActQParams(0.25, -55, True)
    assert A.quantize(torch.tensor([0.125, 0.375, 0.0, float("nan"), 100.0, -100.0]), z).tolist() == [-55, -53, -55,
                                                                                                    -55, 127, -128]


@pytest.mark.parametrize("signed", [False, True])
def test_quantize_matches_a_float32_reference_on_ties_and_random_values(signed):
    g = torch.Generator().manual_seed(3)
    qp = A.qparams_from_range(-0.81 if signed else 0.0, 2.02)
    s = np.float32(qp.scale)
    ties = (torch.arange(-300, 300, dtype=torch.float32) + 0.5) * torch.tensor(qp.scale)  # exact k + 0.5 steps
    x = torch.cat([ties, torch.randn(20000, generator=g) * 3, torch.tensor([0.0, -0.0, 1e30, -1e30])])
    got = A.quantize(x, qp).numpy()
    want = np_quantize(x.numpy(), s, qp.zero, signed)
    assert np.array_equal(got, want)
    # de-quantization is (q - z) * s in f32, and quantizing a de-quantized code gives the code back
    codes = torch.arange(qp.code_min, qp.code_max + 1)
    deq = A.dequantize(codes, qp)
    assert np.array_equal(deq.numpy(), ((codes.numpy() - qp.zero).astype(np.float32) * s))
    assert torch.equal(A.quantize(deq, qp), codes)


def test_qparams_follow_the_calibration_rule():
    # never negative -> uint8, z = 0, s = max / 255 (f32)
    u = A.qparams_from_range(0.0, 10.0)
    assert (u.signed, u.zero, u.scale) == (False, 0, float(np.float32(10.0) / np.float32(255.0)))
    # otherwise int8 over [min(min,0), max(max,0)]: s = (hi - lo)/255, z = round_half_even(-128 - lo/s)
    lo, hi = np.float32(-0.81019830703735), np.float32(2.02266287803650)
    q = A.qparams_from_range(float(lo), float(hi))
    s = (hi - lo) / np.float32(255.0)
    assert q.signed and q.scale == float(s) and q.zero == int(np.rint(np.float32(-128.0) - lo / s))
    assert A.quantize(torch.tensor([0.0]), q).item() == q.zero  # real 0 is exactly a code
    p = A.qparams_from_range(0.5, 2.0)  # min > 0 still uint8 from 0
    assert not p.signed and p.zero == 0
    n = A.qparams_from_range(-3.0, -1.0)  # all negative: range extended to 0
    assert n.signed and n.zero == 127
    assert A.qparams_from_range(0.0, 0.0).scale == 1.0  # degenerate


def test_signed_codes_flip_their_twos_complement_byte():
    q = A.ActQParams(1.0, 0, True)
    codes = torch.tensor([-1, -1, 0, 127, -128])
    mask = torch.tensor([0x80, 0x01, 0x80, 0x80, 0x01])
    assert A.flip_codes(codes, mask, q).tolist() == [127, -2, -128, -1, -127]
    u = A.ActQParams(1.0, 0, False)
    assert A.flip_codes(torch.tensor([0, 255, 3]), torch.tensor([0x80, 0x01, 0x03]), u).tolist() == [128, 254, 0]


@pytest.mark.parametrize("p", [0.001, 0.01, 0.2])
def test_bit_errors_flip_every_bit_position_at_the_given_rate(p):
    """Each of the 8 bits of every code flips independently with probability p: the total count, the count of
    every bit position and the number of codes with 0, 1, 2 flipped bits are all within 5 sigma of the binomial
    law. A sampler that favoured some bit positions, flipped one bit per hit code, or was off by a few percent in
    its rate would fail."""
    n = 400_000
    g = torch.Generator().manual_seed(11)
    m = A.flip_mask((n,), p, g)
    assert int(m.min()) >= 0 and int(m.max()) <= 255
    bits = ((m.unsqueeze(1) >> torch.arange(8)) & 1).to(torch.float64)  # n x 8
    def within(count, trials, prob, what):
        mean, sd = trials * prob, math.sqrt(trials * prob * (1 - prob))
        assert abs(count - mean) <= 5 * sd, f"{what}: {count} flips, expected {mean:.0f} +- {sd:.0f}"
    within(float(bits.sum()), n * 8, p, "all bits")
    for j in range(8):
        within(float(bits[:, j].sum()), n, p, f"bit {j}")
    per_code = bits.sum(1)
    for k in (0, 1, 2):
        pk = math.comb(8, k) * p ** k * (1 - p) ** (8 - k)
        within(float((per_code == k).sum()), n, pk, f"codes with {k} flipped bits")
    # the flips of neighbouring codes are independent too (no clustering): pairs of hit codes
    hit = (m != 0).to(torch.float64)
    q1 = 1 - (1 - p) ** 8
    within(float((hit[:-1] * hit[1:]).sum()), n - 1, q1 * q1, "adjacent hit codes")


def test_bit_errors_on_the_read_values_and_zero_rate_is_identity():
    torch.manual_seed(0)
    x = torch.rand(64, 16, 14, 14) * 3
    qp = A.qparams_from_range(0.0, 3.0)
    clean = A.dequantize(A.quantize(x, qp), qp)
    g = torch.Generator().manual_seed(1)
    state = g.get_state()
    # p = 0: exactly the fake-quantized value, and no random number is drawn
    assert torch.equal(A.fake_quant(x, qp, 0.0, g), clean)
    assert torch.equal(g.get_state(), state)
    # p > 0: the read-back codes differ from the stored ones in about p of their bits
    y = A.fake_quant(x, qp, 0.01, g)
    diff = A.quantize(y, qp) ^ A.quantize(x, qp)
    flipped = sum(int(((diff >> j) & 1).sum()) for j in range(8))
    n = x.numel() * 8
    assert abs(flipped - 0.01 * n) <= 5 * math.sqrt(0.01 * 0.99 * n)


def test_straight_through_gradient():
    x = (torch.rand(4, 10) * 2 - 0.5).requires_grad_(True)
    qp = A.qparams_from_range(-0.5, 1.5)
    y = A.fake_quant(x, qp, 0.3, torch.Generator().manual_seed(0))
    w = torch.randn(4, 10)
    (y * w).sum().backward()
    assert torch.equal(x.grad, w)


def test_hook_calibrates_the_stored_maps_of_the_cnn():
    torch.manual_seed(2)
    m = models.build("cnn-small")
    x = torch.randn(40, 1, 28, 28)
    w = {k: v.detach() for k, v in m.named_parameters()}
    plain = m(x)
    h = A.ActHook()
    qps = h.calibrate(m, w, x, batch=16)
    assert m.act_hook is None and torch.equal(m(x), plain)  # calibration leaves the model as it was
    assert qps[0].signed and not any(q.signed for q in qps[1:])  # the image int8, every ReLU output uint8
    assert qps[2] == qps[1] and qps[4] == qps[3]  # max pooling keeps its input's parameters
    assert qps[0] == A.qparams_from_range(float(x.min()), float(x.max()))
    m.act_hook = h
    h.mode = "quant"
    y = m(x)
    assert not torch.equal(y, plain) and (y - plain).abs().max() < 0.5  # quantized, close
    h.mode, h.p, h.generator = "faults", 0.0, torch.Generator().manual_seed(0)
    assert torch.equal(m(x), y)  # p = 0 with errors on: identical to the error-free fake quantization
    h.p = 0.05
    assert not torch.equal(m(x), y)


def test_p_act_zero_keeps_configuration_and_files_of_existing_models():
    cfg = T.TrainConfig(method="randbet", bits=8, w_max=0.1, p=0.02)
    d = dataclasses.asdict(cfg)
    for k in ("p_act", "calib_every", "init_from", "init_sha256"):
        del d[k]
    assert cfg.as_dict() == d  # fingerprint and manifest notes as before the option existed
    from accelsim_train.modelio import manifest_for

    man = manifest_for(models.build("cnn-small"), cfg, 8.0, 10000, "x-8b")
    assert "p_act" not in man["training"] and "p_act" not in man["training"]["notes"]
    cfg2 = dataclasses.replace(cfg, p_act=0.01)
    man2 = manifest_for(models.build("cnn-small"), cfg2, 8.0, 10000, "x-8b")
    assert man2["training"]["p_act"] == 0.01 and cfg2.fingerprint() != cfg.fingerprint()


def test_p_act_configuration_errors():
    with pytest.raises(T.TrainError, match="--p-act is only used by --method randbet"):
        T.TrainConfig(method="clipping", w_max=0.1, p_act=0.01).validate()
    with pytest.raises(T.TrainError, match="cnn-small only"):
        T.TrainConfig(arch="mobilenet-small", method="randbet", w_max=0.1, p=0.01, p_act=0.01).validate()
    with pytest.raises(T.TrainError, match="--p-act"):
        T.TrainConfig(method="randbet", w_max=0.1, p=0.01, p_act=1.5).validate()


def test_training_with_activation_errors_resumes_exactly(tmp_path):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn((96, 1, 28, 28), generator=g), torch.randint(0, 10, (96,), generator=g)
    cfg = T.TrainConfig(method="randbet", bits=8, w_max=0.1, p=0.01, p_act=0.02, epochs=2, batch_size=32,
                        threshold=10.0, calib_every=2)
    full = T.train(cfg, x, y, x[:32], y[:32], ckpt_path=tmp_path / "a.pt", progress=False, log=lambda s: None)
    assert full.model.act_hook is None
    assert all("test_err_int8_act_pct" in h for h in full.history)
    # the recorded clean error is the float-activation one, as the exported manifest's
    assert full.clean_error_pct == T.quantized_error(full.model, cfg.scheme(), x[:32], y[:32])
    assert full.history[-1]["test_err_pct"] == full.clean_error_pct
    assert sum(h["bit_error_steps"] for h in full.history) > 0
    T.train(cfg, x, y, x[:32], y[:32], ckpt_path=tmp_path / "b.pt", progress=False, log=lambda s: None,
            stop_after=1)
    resumed = T.train(cfg, x, y, x[:32], y[:32], ckpt_path=tmp_path / "b.pt", progress=False, log=lambda s: None)
    for (n, a), (_, b) in zip(full.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), n
    # the activation errors change the training: the same run at p_act = 0 ends elsewhere
    other = T.train(dataclasses.replace(cfg, p_act=0.0), x, y, progress=False, log=lambda s: None)
    assert any(not torch.equal(a, b) for a, b in zip(full.model.state_dict().values(),
                                                     other.model.state_dict().values()))


def test_fine_tuning_starts_from_the_given_weights(tmp_path):
    from accelsim_train.modelio import export_trained

    torch.manual_seed(5)
    src = models.build("cnn-small")
    cfg0 = T.TrainConfig(method="randbet", bits=8, w_max=0.1, p=0.01)
    export_trained(src, cfg0, 50.0, 10, tmp_path / "src-8b")
    stem = str(tmp_path / "src-8b")
    cfg = T.TrainConfig(method="randbet", bits=8, w_max=0.1, p=0.01, p_act=0.01, epochs=1, lr=1e-9,
                        init_from=stem, init_sha256=T.file_sha256(stem + ".safetensors"))
    m = models.build("cnn-small")
    T.load_init_weights(m, cfg)
    for (n, a), (_, b) in zip(m.named_parameters(), src.named_parameters()):
        assert torch.equal(a, torch.clamp(b, -0.1, 0.1)), n  # the exported (clipped) master weights
    bad = dataclasses.replace(cfg, init_sha256="0" * 64)
    with pytest.raises(T.TrainError, match="changed"):
        T.load_init_weights(m, bad)


def test_quantized_error_uses_float_activations_unless_asked():
    torch.manual_seed(4)
    m = models.build("cnn-small")
    x, y = torch.randn(200, 1, 28, 28), torch.randint(0, 10, (200,))
    cfg = T.TrainConfig(method="randbet", w_max=0.1, p=0.01)
    plain = T.quantized_error(m, cfg.scheme(), x, y)
    h = A.ActHook()
    h.set_ranges([(-1e6, 1e6)] * A.CNN_POINTS)  # huge scales: every map quantizes to its zero point
    m.act_hook = h  # as during training
    assert T.quantized_error(m, cfg.scheme(), x, y) == plain and m.act_hook is h
    crushed = T.quantized_error(m, cfg.scheme(), x, y, act=h)
    assert crushed != plain and m.act_hook is h

