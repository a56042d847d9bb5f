"""QAT with the straight-through estimator, clipping, RandBET update, curriculum, schedule, resume."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from accelsim_train import models, quant
from accelsim_train import train as T


def tiny_data(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn((n, 1, 28, 28), generator=g), torch.randint(0, 10, (n,), generator=g)


def test_gn_groups_rule():
    assert [models.gn_groups(c) for c in (16, 32, 64, 48, 24)] == [8, 16, 32, 24, 12]


def test_reparam_gn_starts_as_identity_scale():
    gn = models.ReparamGroupNorm(8, 16)
    x = torch.randn(2, 16, 5, 5)
    assert torch.allclose(gn(x), F.group_norm(x, 8, eps=1e-5), atol=1e-6)


def test_ste_gradient_is_the_gradient_at_the_dequantized_weights():
    torch.manual_seed(0)
    cfg = T.TrainConfig(method="rquant", bits=4)
    s = cfg.scheme()
    m = models.build("cnn-small")
    x, y = tiny_data(16)
    qp = T.quantize_model(m, s)
    wq = T.dequantize(qp, s)
    loss, g, _ = T.loss_and_grads(m, wq, x, y)
    # reference: a copy of the model whose parameters ARE the de-quantized weights, ordinary autograd
    ref = copy.deepcopy(m)
    with torch.no_grad():
        for n, p in ref.named_parameters():
            p.copy_(wq[n])
    ref_loss = F.cross_entropy(ref(x), y)
    ref_loss.backward()
    assert torch.allclose(loss, ref_loss.detach())
    for n, p in ref.named_parameters():
        assert torch.allclose(g[n], p.grad, atol=1e-6), n
    # the forward really used quantized weights (4 bit changes them) and the float weights got that gradient
    assert any(not torch.equal(wq[n], p.detach()) for n, p in m.named_parameters())


def test_clipping_invariant_every_step():
    torch.manual_seed(1)
    cfg = T.TrainConfig(method="randbet", bits=8, w_max=0.05, p=0.02, lr=0.5)
    s = cfg.scheme()
    m = models.build("cnn-small")
    opt = T.make_optimizer(m, cfg)
    g = torch.Generator().manual_seed(0)
    x, y = tiny_data(32)
    for _ in range(3):
        T.train_step(m, opt, cfg, s, x, y, True, g)
        T.project_(m, cfg)
        bound = torch.tensor(0.05, dtype=torch.float32)  # the float32 bound the weights are clamped to
        for p in m.parameters():
            assert p.detach().abs().max() <= bound
        for codes, ctx in T.quantize_model(m, s).values():
            assert quant.decode(codes, s, ctx).abs().max() <= bound


def test_plclipping_bounds_follow_the_stated_rule():
    torch.manual_seed(2)
    cfg = T.TrainConfig(method="plclipping", w_max=0.1)
    m = models.build("cnn-small")
    before = {n: float(p.detach().abs().max()) for n, p in m.named_parameters()}
    top = max(before.values())
    T.project_(m, cfg)
    for n, p in m.named_parameters():
        bound = max(0.2, before[n] / top) * 0.1
        assert float(p.detach().abs().max()) <= bound * (1 + 1e-6)


def test_randbet_update_matches_the_formula():
    torch.manual_seed(3)
    cfg = T.TrainConfig(method="randbet", bits=8, w_max=0.1, p=0.05, lr=0.05)
    s = cfg.scheme()
    m = models.build("cnn-small")
    x, y = tiny_data(16)
    T.project_(m, cfg)
    w0 = {n: p.detach().clone() for n, p in m.named_parameters()}
    gen = torch.Generator().manual_seed(11)
    gen_ref = torch.Generator().manual_seed(11)
    # expected: (g_clean + clamp(g_pert, +-0.05)) / 2, then one Nesterov SGD step with weight decay
    qp = T.quantize_model(m, s)
    masks = T.random_masks(qp, cfg.p, s.bits, gen_ref)
    assert sum(int(mk.ne(0).sum()) for mk in masks.values()) > 0
    leaves_c = {n: v.clone().requires_grad_(True) for n, v in T.dequantize(qp, s).items()}
    leaves_p = {n: v.clone().requires_grad_(True) for n, v in T.dequantize(qp, s, masks).items()}
    lc = F.cross_entropy(functional_call(m, leaves_c, (x,)), y)
    lp = F.cross_entropy(functional_call(m, leaves_p, (x,)), y)
    gc = torch.autograd.grad(lc, list(leaves_c.values()))
    gp = torch.autograd.grad(lp, list(leaves_p.values()))
    expect = {}
    for (n, w), a, b in zip(w0.items(), gc, gp):
        g = (a + b.clamp(-0.05, 0.05)) / 2 + cfg.weight_decay * w
        expect[n] = w - cfg.lr * (g + cfg.momentum * g)  # first Nesterov step: buf = g, update = g + mu * buf
    opt = T.make_optimizer(m, cfg)
    out_c, out_p, _ = T.train_step(m, opt, cfg, s, x, y, True, gen)
    assert out_c == pytest.approx(float(lc.detach()), rel=1e-6) and out_p == pytest.approx(float(lp.detach()), rel=1e-6)
    for n, p in m.named_parameters():
        assert torch.allclose(p.detach(), expect[n], atol=1e-7, rtol=1e-5), n


def test_without_bit_errors_the_update_is_plain_qat():
    torch.manual_seed(4)
    cfg = T.TrainConfig(method="randbet", bits=8, w_max=0.1, p=0.05)
    g_clean = {"a": torch.tensor([0.3, -0.2])}
    assert T.randbet_gradient(g_clean, None, 0.05) is g_clean
    out = T.randbet_gradient(g_clean, {"a": torch.tensor([1.0, -0.01])}, 0.05)
    assert torch.allclose(out["a"], torch.tensor([(0.3 + 0.05) / 2, (-0.2 - 0.01) / 2]))
    assert cfg.threshold == 1.75


def test_curriculum_switch():
    assert T.bit_errors_next(1.0, 0.0, 1.75)  # no errors yet, clean loss below the threshold: switch on
    assert not T.bit_errors_next(2.1, 0.0, 1.75)  # clean loss >= 1.15 tau
    assert T.bit_errors_next(1.0, 2.4, 1.75)  # average 1.7 <= 1.75
    assert not T.bit_errors_next(1.0, 2.6, 1.75)  # average 1.8 > 1.75


def test_lr_schedule_steps_at_two_three_four_fifths():
    f = [T.lr_factor(s, 100) for s in range(100)]
    assert f[39] == 1.0 and f[40] == pytest.approx(0.1) and f[59] == pytest.approx(0.1)
    assert f[60] == pytest.approx(0.01) and f[80] == pytest.approx(0.001) and f[99] == pytest.approx(0.001)


def test_config_errors_are_clear():
    with pytest.raises(T.TrainError, match="--w-max"):
        T.TrainConfig(method="randbet", p=0.01).validate()
    with pytest.raises(T.TrainError, match="--p"):
        T.TrainConfig(method="randbet", w_max=0.1, p=1.5).validate()
    with pytest.raises(T.TrainError, match="--method"):
        T.TrainConfig(method="magic").validate()
    with pytest.raises(quant.QuantConfigError, match="bits"):
        T.TrainConfig(method="rquant", bits=1).validate()


def test_resume_reproduces_an_uninterrupted_run(tmp_path):
    x, y = tiny_data(96)
    cfg = T.TrainConfig(method="randbet", w_max=0.1, p=0.01, epochs=2, batch_size=32, threshold=100.0)
    full = T.train(cfg, x, y, ckpt_path=tmp_path / "a.pt", progress=False, log=lambda s: None)
    logs = []
    part = T.train(cfg, x, y, ckpt_path=tmp_path / "b.pt", progress=False, log=logs.append, stop_after=1)
    assert len(part.history) == 1
    resumed = T.train(cfg, x, y, ckpt_path=tmp_path / "b.pt", progress=False, log=logs.append)
    assert any("resumed" in s for s in logs) and len(resumed.history) == 2
    assert sum(h["bit_error_steps"] for h in resumed.history) > 0
    for (n, a), (_, b) in zip(full.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), n


def test_resume_refuses_another_configuration(tmp_path):
    x, y = tiny_data(32)
    ck = tmp_path / "ck.pt"
    T.train(T.TrainConfig(method="rquant", epochs=1, batch_size=32), x, y, ckpt_path=ck, progress=False,
            log=lambda s: None)
    with pytest.raises(T.TrainError, match="another configuration"):
        T.train(T.TrainConfig(method="rquant", epochs=1, batch_size=32, bits=4), x, y, ckpt_path=ck, progress=False,
                log=lambda s: None)
