"""Quantization-aware training, weight clipping and RandBET (docs/training.md#paper-methods).

One iteration (paper Algorithm 1 with the reference-code details of docs/training.md#randbet):
  1. project: w <- clamp(w, -w_max, w_max) on the float master weights (every trainable parameter);
  2. v = Q(w) per tensor with fresh contexts, w_q = Q^-1(v);
  3. clean gradient g_c = dL(f(x; w_q), y)/dw_q, copied to w (straight-through estimator);
  4. if bit errors are on: w~_q = Q^-1(BErr_p(v)) with a fresh pattern on the m stored bits, perturbed gradient g_p,
     g = (g_c + clamp(g_p, -0.05, 0.05)) / 2; otherwise g = g_c;
  5. SGD (Nesterov 0.9, weight decay 5e-4) on w with g; lr 0.05, x0.1 at 2/5, 3/5, 4/5 of all iterations;
  6. curriculum: bit errors are on for the next iteration iff L_c < 1.15 tau and (L_c + L_p)/2 <= tau (tau = 1.75,
     L_p = 0 when the iteration had none).

With `p_act > 0` (`--p-act`, RandBET on cnn-small only; docs/training.md#activation-bit-errors) both passes also
fake-quantize every activation map the int8 datapath stores (accelsim_train.actquant) with parameters calibrated as
the simulator does (first 1000 training images, float network, current clean de-quantized weights), recalibrated
every `calib_every` steps and once more after the last one; the perturbed pass flips each stored activation bit
with probability p_act (fresh per step, straight-through gradient) on top of the weight bit errors at p.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from torch.func import functional_call

from . import data as data_mod
from . import models, quant

METHODS = ("normal", "rquant", "clipping", "plclipping", "randbet")


class TrainError(ValueError):
    """Bad training configuration or an unusable checkpoint."""


@dataclass
class TrainConfig:
    arch: str = "cnn-small"
    norm: str = "gn"
    method: str = "rquant"
    bits: int = 8
    w_max: Optional[float] = None
    p: float = 0.0
    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    threshold: float = 1.75
    grad_clip: float = 0.05
    seed: int = 1
    train_limit: int = 0  # 0 = all training images
    # Activation bit errors (docs/training.md#activation-bit-errors). Left out of the fingerprint and the manifest
    # notes at their defaults, so every model trained without them keeps its files byte for byte.
    p_act: float = 0.0
    calib_every: int = 20
    init_from: str = ""  # fine-tune: start from this model's float master weights (stem of NAME.safetensors)
    init_sha256: str = ""  # of that safetensors file, checked when training starts

    def validate(self) -> None:
        if self.method not in METHODS:
            raise TrainError(f"--method: '{self.method}' is not one of {', '.join(METHODS)}")
        if self.arch not in models.ARCHS:
            raise TrainError(f"--arch: '{self.arch}' is not one of {', '.join(models.ARCHS)}")
        if self.method in ("clipping", "plclipping", "randbet") and self.w_max is None:
            raise TrainError(f"--w-max is required for --method {self.method} (e.g. 0.1)")
        if self.method == "randbet" and not 0.0 < self.p < 1.0:
            raise TrainError(f"--p: {self.p} must be a per-bit probability in (0, 1) for randbet (e.g. 0.01)")
        if self.method != "randbet" and self.p != 0.0:
            raise TrainError("--p is only used by --method randbet")
        if not 0.0 <= self.p_act < 1.0:
            raise TrainError(f"--p-act: {self.p_act} must be a per-bit probability in [0, 1)")
        if self.p_act > 0.0 and self.method != "randbet":
            raise TrainError("--p-act is only used by --method randbet (its perturbed pass carries the activation errors)")
        if self.p_act > 0.0 and self.arch != "cnn-small":
            raise TrainError(f"--p-act: activation bit errors are implemented for --arch cnn-small only, not {self.arch}")
        if self.calib_every < 1:
            raise TrainError(f"--calib-every: {self.calib_every} must be >= 1")
        if self.epochs < 1:
            raise TrainError(f"--epochs: {self.epochs} must be >= 1")
        if self.batch_size < 1:
            raise TrainError(f"--batch-size: {self.batch_size} must be >= 1")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise TrainError(f"--lr: {self.lr} must be > 0")
        self.scheme()  # raises QuantConfigError for bad bits / w_max

    def scheme(self) -> quant.QuantScheme:
        """normal = per-layer symmetric unsigned truncation; everything else RQuant (+ clipping bound)."""
        return quant.preset("normal" if self.method == "normal" else "rquant", self.bits, self.w_max)

    def as_dict(self) -> dict:
        """The configuration without the activation/fine-tuning keys at their defaults (fingerprint, notes)."""
        d = dataclasses.asdict(self)
        for k, v in _OPTIONAL_DEFAULTS.items():
            if d.get(k) == v:
                del d[k]
        return d

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()[:16]


_OPTIONAL_DEFAULTS = {"p_act": 0.0, "calib_every": 20, "init_from": "", "init_sha256": ""}


# ------------------------------------------------------------------------------------------------ QAT building blocks


def project_(model: torch.nn.Module, cfg: TrainConfig) -> None:
    """Clip the float master weights in place before the forward pass (docs/quantization.md#clipping).

    plclipping (per-layer clipping) uses the WCAT reading, recomputed every step:
    w_max^(l) = max(0.2, k_l) * w_max with k_l = max|w^(l)| / max_l' max|w^(l')| (docs/training.md#per-layer-clipping, one reading).
    """
    if cfg.w_max is None:
        return
    with torch.no_grad():
        params = [p for p in model.parameters() if p.requires_grad]
        if cfg.method == "plclipping":
            maxes = [p.abs().max() for p in params]
            top = torch.stack(maxes).max().clamp_min(1e-12)
            for p, mx in zip(params, maxes):
                b = float(torch.clamp(mx / top, min=0.2)) * cfg.w_max
                p.clamp_(-b, b)
        else:
            for p in params:
                p.clamp_(-cfg.w_max, cfg.w_max)


def quantize_model(model: torch.nn.Module, scheme: quant.QuantScheme) -> dict:
    """name -> (codes, context) for every trainable parameter, contexts from the current (clean) weights."""
    out = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            ctx = quant.context(p.detach(), scheme)
            out[name] = (quant.encode(p.detach(), scheme, ctx), ctx)
    return out


def dequantize(qparams: dict, scheme: quant.QuantScheme, flip_masks: Optional[dict] = None) -> dict:
    """name -> de-quantized float32 tensor, optionally after XOR-ing the stored bits with flip_masks[name]."""
    out = {}
    for name, (codes, ctx) in qparams.items():
        if flip_masks is not None and name in flip_masks:
            codes = quant.flip_bits(codes, flip_masks[name].reshape(codes.shape), scheme)
        out[name] = quant.decode(codes, scheme, ctx)
    return out


def random_masks(qparams: dict, p: float, bits: int, generator: torch.Generator) -> dict:
    """A fresh uniform pattern over all stored bits, sliced per tensor in parameter (memory) order."""
    total = sum(c.numel() for c, _ in qparams.values())
    mask = quant.sparse_flip_mask(total, p, bits, generator)
    out, off = {}, 0
    for name, (codes, _) in qparams.items():
        out[name] = mask[off: off + codes.numel()]
        off += codes.numel()
    return out


def loss_and_grads(model, wq: dict, x, y):
    """Cross-entropy (batch mean) at the given de-quantized weights and its gradient w.r.t. them."""
    leaves = {k: v.detach().clone().requires_grad_(True) for k, v in wq.items()}
    logits = functional_call(model, leaves, (x,))
    loss = F.cross_entropy(logits, y)
    grads = torch.autograd.grad(loss, list(leaves.values()))
    return loss.detach(), dict(zip(leaves.keys(), grads)), logits.detach()


def randbet_gradient(g_clean: dict, g_pert: Optional[dict], grad_clip: float) -> dict:
    """g = (g_c + clamp(g_p, -c, c)) / 2 (docs/training.md#randbet); g_c alone when the iteration had no bit errors."""
    if g_pert is None:
        return g_clean
    return {k: (g_clean[k] + torch.clamp(g_pert[k], -grad_clip, grad_clip)) / 2 for k in g_clean}


def bit_errors_next(loss_clean: float, loss_pert: float, threshold: float) -> bool:
    """Curriculum switch: on iff L_c < 1.15 tau and (L_c + L_p)/2 <= tau (L_p = 0 without bit errors)."""
    return loss_clean < 1.15 * threshold and (loss_clean + loss_pert) / 2 <= threshold


def lr_factor(step: int, total_steps: int) -> float:
    """x0.1 at 2/5, 3/5 and 4/5 of training, stepped per batch."""
    k = sum(step >= int(total_steps * f) for f in (0.4, 0.6, 0.8))
    return 0.1 ** k


def make_optimizer(model, cfg: TrainConfig) -> torch.optim.SGD:
    return torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, momentum=cfg.momentum,
                           nesterov=True, weight_decay=cfg.weight_decay)


def train_step(model, opt, cfg: TrainConfig, scheme, x, y, errors_on: bool, gen: torch.Generator,
               act=None, x_calib=None, recalibrate: bool = False):
    """One QAT / RandBET iteration. Returns (loss_clean, loss_pert or 0, clean logits).

    act: the model's actquant.ActHook when training with activation bit errors; recalibrate: first recompute its
    activation parameters on x_calib with this step's clean de-quantized weights."""
    project_(model, cfg)
    qp = quantize_model(model, scheme)
    wq = dequantize(qp, scheme)
    if act is not None:
        if recalibrate:
            act.calibrate(model, wq, x_calib)
        act.mode = "quant"
    loss_c, g_c, logits = loss_and_grads(model, wq, x, y)
    loss_p, g_p = torch.tensor(0.0), None
    if cfg.method == "randbet" and errors_on:
        masks = random_masks(qp, cfg.p, scheme.bits, gen)
        if act is not None:
            act.mode = "faults"
        loss_p, g_p, _ = loss_and_grads(model, dequantize(qp, scheme, masks), x, y)
        if act is not None:
            act.mode = "quant"
    g = randbet_gradient(g_c, g_p, cfg.grad_clip)
    for name, p in model.named_parameters():
        if name in g:
            p.grad = g[name]
    opt.step()
    opt.zero_grad(set_to_none=True)
    return float(loss_c), float(loss_p), logits


@torch.no_grad()
def quantized_error(model, scheme, x, y, batch: int = 1000, act=None) -> float:
    """Clean test error (percent) of the quantized model (eval mode); with act (an actquant.ActHook, calibrated)
    its activations are fake-quantized as the int8 datapath stores them (no errors)."""
    was, prev = model.training, getattr(model, "act_hook", None)
    model.eval()
    wq = dequantize(quantize_model(model, scheme), scheme)
    wrong = 0
    model.act_hook = act  # None: float activations, also while training with a hook
    if act is not None:
        mode, act.mode = act.mode, "quant"
    try:
        for i in range(0, len(x), batch):
            wrong += int((functional_call(model, wq, (x[i: i + batch],)).argmax(1) != y[i: i + batch]).sum())
    finally:
        if act is not None:
            act.mode = mode
        model.act_hook = prev
        model.train(was)
    return 100.0 * wrong / max(len(x), 1)


def file_sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_init_weights(model, cfg: TrainConfig) -> None:
    """Fine-tuning: copy the float master weights of the model cfg.init_from (NAME.safetensors) into model."""
    from safetensors.torch import load_file

    f = Path(cfg.init_from + ".safetensors") if not cfg.init_from.endswith(".safetensors") else Path(cfg.init_from)
    if not f.exists():
        raise TrainError(f"--init-from: {f} not found")
    if cfg.init_sha256 and file_sha256(f) != cfg.init_sha256:
        raise TrainError(f"--init-from: {f} changed since this run started (sha256 differs)")
    t = load_file(str(f))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name not in t or tuple(t[name].shape) != tuple(p.shape):
                raise TrainError(f"--init-from: {f} has no tensor {name!r} of shape {tuple(p.shape)} "
                                 f"(another architecture?)")
            p.copy_(t[name].to(torch.float32))
        for name, b in model.named_buffers():
            if name in t:
                b.copy_(t[name].to(b.dtype))


# --------------------------------------------------------------------------------------------------- checkpoints


def atomic_save(obj, path: Path) -> None:
    import io

    from .export import write_atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(obj, buf)
    write_atomic(path, buf.getvalue())


def load_checkpoint(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure means the file is unusable
        raise TrainError(f"{path}: not a usable checkpoint ({e})") from None


@dataclass
class TrainResult:
    model: torch.nn.Module
    cfg: TrainConfig
    clean_error_pct: float
    history: list = field(default_factory=list)
    seconds: float = 0.0


def train(cfg: TrainConfig, x_train, y_train, x_test=None, y_test=None, ckpt_path: Optional[Path] = None,
          restart: bool = False, progress: bool = True, log=print, stop_after: Optional[int] = None) -> TrainResult:
    """Train (or resume from ckpt_path, checked against the config fingerprint), checkpointing every epoch.

    stop_after: stop after that many epochs of this call (an interruption, for tests); the schedule is unchanged.
    """
    cfg.validate()
    scheme = cfg.scheme()
    torch.manual_seed(cfg.seed)
    model = models.build(cfg.arch, cfg.norm)
    if cfg.init_from:
        load_init_weights(model, cfg)
    opt = make_optimizer(model, cfg)
    gen_data = torch.Generator().manual_seed(cfg.seed)
    gen_bits = torch.Generator().manual_seed(cfg.seed + 7919)
    act, x_calib, gen_act = None, None, None
    if cfg.p_act > 0.0:
        from . import actquant

        act = actquant.ActHook()
        gen_act = torch.Generator().manual_seed(cfg.seed + 104729)
        act.p, act.generator = cfg.p_act, gen_act
        x_calib = x_train[: actquant.CALIBRATION_IMAGES]  # the simulator's: the first training images
        model.act_hook = act
    if cfg.train_limit:
        x_train, y_train = x_train[: cfg.train_limit], y_train[: cfg.train_limit]
    n = len(x_train)
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    start_epoch, errors_on, history, step = 0, False, [], 0
    if ckpt_path is not None and ckpt_path.exists() and not restart:
        ck = load_checkpoint(ckpt_path)
        if ck.get("fingerprint") != cfg.fingerprint():
            raise TrainError(f"{ckpt_path}: checkpoint was written for another configuration "
                             f"({ck.get('config')}); pass --restart to start over")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        gen_data.set_state(ck["gen_data"])
        gen_bits.set_state(ck["gen_bits"])
        if act is not None:
            gen_act.set_state(ck["gen_act"])
            act.set_ranges([tuple(r) for r in json.loads(ck["act_ranges"])])
        start_epoch, errors_on, history = ck["epoch"], ck["errors_on"], json.loads(ck["history"])
        step = start_epoch * steps_per_epoch
        log(f"resumed from {ckpt_path} after epoch {start_epoch}")
    t0 = time.time()
    model.train()
    last = cfg.epochs if stop_after is None else min(cfg.epochs, start_epoch + stop_after)
    for epoch in range(start_epoch, last):
        perm = torch.randperm(n, generator=gen_data)
        it = range(steps_per_epoch)
        bar = None
        if progress:
            from tqdm import tqdm
            bar = tqdm(it, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, mininterval=2.0)
            it = bar
        sum_loss, sum_pert, wrong, seen, on_steps, on_seen = 0.0, 0.0, 0, 0, 0, 0
        for b in it:
            for g in opt.param_groups:
                g["lr"] = cfg.lr * lr_factor(step, total)
            idx = perm[b * cfg.batch_size: (b + 1) * cfg.batch_size]
            x, y = x_train[idx], y_train[idx]
            had_errors = cfg.method == "randbet" and errors_on
            lc, lp, logits = train_step(model, opt, cfg, scheme, x, y, errors_on, gen_bits, act, x_calib,
                                        recalibrate=act is not None and step % cfg.calib_every == 0)
            if not math.isfinite(lc):
                raise TrainError(f"training diverged at epoch {epoch + 1}, step {b} (loss {lc})")
            errors_on = bit_errors_next(lc, lp if had_errors else 0.0, cfg.threshold)
            step += 1
            sum_loss += lc * len(y)
            sum_pert += lp * len(y) if had_errors else 0.0
            on_steps += had_errors
            on_seen += len(y) if had_errors else 0
            wrong += int((logits.argmax(1) != y).sum())
            seen += len(y)
            if bar is not None and b % 20 == 0:
                bar.set_postfix(loss=f"{sum_loss / seen:.3f}", err=f"{100 * wrong / seen:.2f}%",
                                bet="on" if errors_on else "off")
        if bar is not None:
            bar.close()
        project_(model, cfg)
        rec = {"epoch": epoch + 1, "loss": sum_loss / seen, "train_err_pct": 100.0 * wrong / seen,
               "pert_loss": sum_pert / on_seen if on_seen else None, "bit_error_steps": on_steps,
               "seconds": round(time.time() - t0, 1)}
        if x_test is not None:
            rec["test_err_pct"] = quantized_error(model, scheme, x_test, y_test)
            if act is not None:  # int8-datapath activations, calibrated on this epoch's final weights
                ranges = _act_ranges(act)
                act.calibrate(model, dequantize(quantize_model(model, scheme), scheme), x_calib)
                rec["test_err_int8_act_pct"] = quantized_error(model, scheme, x_test, y_test, act=act)
                act.set_ranges(ranges)  # training continues with its running parameters (exact resume)
        history.append(rec)
        log(json.dumps(rec))
        if ckpt_path is not None:
            extra = {}
            if act is not None:
                extra = {"gen_act": gen_act.get_state(), "act_ranges": json.dumps(_act_ranges(act))}
            atomic_save({"fingerprint": cfg.fingerprint(), "config": json.dumps(dataclasses.asdict(cfg)),
                         "model": model.state_dict(), "optimizer": opt.state_dict(),
                         "gen_data": gen_data.get_state(), "gen_bits": gen_bits.get_state(),
                         "epoch": epoch + 1, "errors_on": errors_on, "history": json.dumps(history)} | extra,
                        ckpt_path)
    project_(model, cfg)
    err = quantized_error(model, scheme, x_test, y_test) if x_test is not None else float("nan")
    model.act_hook = None  # the returned (and exported) model is the plain float network
    return TrainResult(model, cfg, err, history, time.time() - t0)


def _act_ranges(act) -> list:
    """The (min, max) per stored map that reproduce act's current parameters (for checkpoints)."""
    return [list(r) for r in act.ranges]


def model_from_checkpoint(path: Path) -> tuple[torch.nn.Module, TrainConfig, list]:
    ck = load_checkpoint(path)
    cfg = TrainConfig(**json.loads(ck["config"]))
    model = models.build(cfg.arch, cfg.norm)
    model.load_state_dict(ck["model"])
    project_(model, cfg)
    return model, cfg, json.loads(ck["history"])
