"""Command line: python -m accelsim_train {train,export,eval,replay} ... (see docs/training.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

RUNS_DIR = Path(__file__).resolve().parent.parent / "runs"


def _prob(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{s}' is not a number (a per-bit probability such as 0.01)") from None
    if not 0.0 <= v < 1.0:
        raise argparse.ArgumentTypeError(f"{v} is not a per-bit probability in [0, 1) (write 0.01 for 1%)")
    return v


def _pos_float(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{s}' is not a number") from None
    if not v > 0.0:
        raise argparse.ArgumentTypeError(f"{v} must be > 0")
    return v


def _probs(s: str) -> list[float]:
    return [_prob(t) for t in s.split(",") if t.strip()]


def _seeds(s: str) -> list[int]:
    """'100-149' or '1,2,3'."""
    try:
        if "-" in s and "," not in s:
            a, b = (int(t) for t in s.split("-", 1))
            if b < a:
                raise ValueError
            return list(range(a, b + 1))
        return [int(t) for t in s.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{s}' is not a seed list (e.g. 100-149 or 1,2,3)") from None


def _add_train(sub):
    from .models import ARCHS
    from .train import METHODS

    t = sub.add_parser("train", help="train a model (QAT, clipping, RandBET) and export it to models/")
    t.add_argument("--arch", default="cnn-small", choices=ARCHS)
    t.add_argument("--norm", default="gn", choices=("gn", "bn"), help="reparameterized GroupNorm or BatchNorm")
    t.add_argument("--method", required=True, choices=METHODS)
    t.add_argument("--bits", type=int, default=8, help="m: 2..8 (unsigned codes)")
    t.add_argument("--w-max", type=_pos_float, default=None, help="clipping bound (clipping, plclipping, randbet)")
    t.add_argument("--p", type=_prob, default=0.0, help="per-bit error probability for randbet (0.01 = 1%%)")
    t.add_argument("--p-act", type=_prob, default=0.0,
                   help="randbet, cnn-small: per-bit error probability of the stored activations (int8 datapath "
                        "format, fake-quantized in training; 0 = float activations, the default)")
    t.add_argument("--calib-every", type=int, default=20,
                   help="with --p-act: recalibrate the activation ranges every N steps (default 20)")
    t.add_argument("--init-from", default=None, metavar="MODEL",
                   help="fine-tune: start from this model's float master weights (e.g. models/fmnist-cnn-randbet-8b)")
    t.add_argument("--epochs", type=int, default=15)
    t.add_argument("--batch-size", type=int, default=128)
    t.add_argument("--lr", type=_pos_float, default=0.05)
    t.add_argument("--threshold", type=_pos_float, default=1.75, help="RandBET loss threshold tau")
    t.add_argument("--seed", type=int, default=1)
    t.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    t.add_argument("--train-limit", type=int, default=0, help="use only the first N training images (0 = all)")
    t.add_argument("--data", default=None, help="Fashion-MNIST IDX directory")
    t.add_argument("--out", required=True, help="output stem, e.g. models/fmnist-cnn-randbet-8b")
    t.add_argument("--ckpt", default=None, help="checkpoint file (default training/runs/NAME/ckpt.pt)")
    t.add_argument("--restart", action="store_true", help="ignore an existing checkpoint")
    t.add_argument("--no-progress", action="store_true")


def cmd_train(a) -> int:
    import torch

    from . import data
    from .train import TrainConfig, train

    torch.set_num_threads(max(1, a.threads))
    cfg = TrainConfig(arch=a.arch, norm=a.norm, method=a.method, bits=a.bits, w_max=a.w_max, p=a.p, epochs=a.epochs,
                      batch_size=a.batch_size, lr=a.lr, threshold=a.threshold, seed=a.seed, train_limit=a.train_limit,
                      p_act=a.p_act, calib_every=a.calib_every)
    if a.init_from:
        from .train import TrainError, file_sha256

        stem = a.init_from[: -len(".toml")] if a.init_from.endswith(".toml") else a.init_from
        f = Path(stem + ".safetensors")
        if not f.exists():
            raise TrainError(f"--init-from: {f} not found")
        cfg.init_from, cfg.init_sha256 = stem, file_sha256(f)
    cfg.validate()
    out = Path(a.out)
    name = out.name
    ckpt = Path(a.ckpt) if a.ckpt else RUNS_DIR / name / "ckpt.pt"
    data_dir = a.data or data.DEFAULT_DIR
    x_tr, y_tr = data.load_split(data_dir, train=True)
    x_te, y_te = data.load_split(data_dir, train=False)
    print(f"training {name}: {cfg}  checkpoint {ckpt}", flush=True)
    res = train(cfg, x_tr, y_tr, x_te, y_te, ckpt_path=ckpt, restart=a.restart, progress=not a.no_progress,
                log=lambda s: print(s, flush=True))
    print(f"done in {res.seconds:.0f} s: clean error {res.clean_error_pct:.2f}% (quantized, 10k test images)",
          flush=True)
    from .modelio import export_trained

    try:
        paths = export_trained(res.model, cfg, res.clean_error_pct, len(y_te), out, res.history)
    except ImportError as e:
        print(f"error: cannot export yet ({e}); the checkpoint {ckpt} is kept: run "
              f"'python -m accelsim_train export --ckpt {ckpt} --out {out}'", file=sys.stderr)
        return 1
    print("wrote " + " ".join(str(p) for p in paths), flush=True)
    return 0


def _add_eval(sub):
    e = sub.add_parser("eval", help="clean and robust error of an exported model under random bit errors")
    e.add_argument("model", help="model stem or manifest, e.g. models/fmnist-cnn-randbet-8b")
    e.add_argument("--p", type=_probs, default=[0.001, 0.01, 0.02, 0.05],
                   help="comma-separated per-bit probabilities (default 0.001,0.01,0.02,0.05)")
    e.add_argument("--seeds", type=_seeds, default=list(range(100, 150)), help="chips, e.g. 100-149 (default)")
    e.add_argument("--limit", type=int, default=9000, help="RErr on the first N test images (default 9000)")
    e.add_argument("--data", default=None)
    e.add_argument("--threads", type=int, default=1)
    e.add_argument("--json", default=None, help="also write the full result (every chip) to this JSON file")
    e.add_argument("--cache", default=None, help="reuse/store results in DIR (keyed by model files, p, seeds, limit)")
    e.add_argument("--jobs", type=int, default=1, help="evaluate the chips in N processes (same result)")

    t = sub.add_parser("table", help="the README robustness table for several models (markdown)")
    t.add_argument("models", nargs="+")
    t.add_argument("--p", type=_probs, default=[0.001, 0.01, 0.02, 0.05])
    t.add_argument("--seeds", type=_seeds, default=list(range(100, 150)))
    t.add_argument("--limit", type=int, default=9000)
    t.add_argument("--data", default=None)
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--out", default=None, help="write the markdown table (and NAME.json beside it) here")
    t.add_argument("--cache", default=None, help="reuse/store per-model results in DIR (see eval --cache)")
    t.add_argument("--jobs", type=int, default=1, help="evaluate the chips in N processes (same result)")
    t.add_argument("--paired-ref", default=None, metavar="MODEL",
                   help="also tabulate every model's RErr minus this model's (one of MODELS) on the same chips")

    r = sub.add_parser("replay", help="apply a fault-pattern file written by the simulator and report the errors")
    r.add_argument("model")
    r.add_argument("pattern", help="safetensors with I64 index, U32 flip, set0, set1")
    r.add_argument("--limit", type=int, default=10000, help="evaluate on the first N test images (default 10000)")
    r.add_argument("--data", default=None)
    r.add_argument("--threads", type=int, default=1)

    x = sub.add_parser("export", help="export a training checkpoint to the model file format")
    x.add_argument("--ckpt", required=True)
    x.add_argument("--out", required=True, help="output stem, e.g. models/fmnist-cnn-randbet-8b")
    x.add_argument("--data", default=None)
    x.add_argument("--threads", type=int, default=1)


def _test_set(a, limit=None):
    from . import data

    x, y = data.load_split(a.data or data.DEFAULT_DIR, train=False)
    if limit is not None:
        if limit < 1:
            raise ValueError(f"--limit: {limit} must be >= 1")
        x, y = x[:limit], y[:limit]
    return x, y


def _evaluate_cached(a, m, x, y):
    """(clean error, robust results) of a loaded model, reusing a cached result for identical inputs."""
    import hashlib
    import json

    from . import evaluate as ev
    from .export import canonical_safetensors, write_atomic

    key = None
    if a.cache:  # keyed by the model's content: the manifest and the weights with their header in canonical form
        h = hashlib.sha256()
        h.update(m.path.read_bytes())
        h.update(canonical_safetensors((m.path.parent / m.manifest.get("weights", "")).read_bytes()))
        h.update(json.dumps([a.p, a.seeds, a.limit, len(y)]).encode())
        key = h.hexdigest()
        f = Path(a.cache) / f"{m.path.stem}.rerr.json"
        if f.exists():
            doc = json.loads(f.read_text())
            if doc.get("key") == key:
                return doc["clean_error_pct"], {float(p): s for p, s in doc["robust_error_pct"].items()}
    clean = ev.clean_error(m, x, y)
    res = ev.robust_errors(m, x[: a.limit], y[: a.limit], a.p, a.seeds, progress=True, jobs=max(1, a.jobs))
    if key is not None:
        Path(a.cache).mkdir(parents=True, exist_ok=True)
        write_atomic(f, json.dumps({"key": key, "clean_error_pct": clean,
                                    "robust_error_pct": {str(p): s for p, s in res.items()}}).encode())
    return clean, res


def cmd_eval(a) -> int:
    import json

    from . import evaluate as ev
    from .export import write_atomic

    m = ev.load_model(a.model)
    x, y = _test_set(a)
    clean, res = _evaluate_cached(a, m, x, y)
    print(f"{m.path.stem}: clean error {clean:.2f}% ({len(y)} images); RErr on {min(a.limit, len(y))} images, "
          f"{len(a.seeds)} chips")
    for p, s in res.items():
        print(f"  p={p:g}: {s['mean']:.2f} +- {s['std']:.2f} %  (95% CI of the mean {s['ci95'][0]:.2f}..{s['ci95'][1]:.2f})")
    if a.json:
        out = {"model": str(m.path), "clean_error_pct": clean, "seeds": a.seeds,
               "robust_error_pct": {str(p): s for p, s in res.items()}}
        write_atomic(a.json, json.dumps(out, indent=1).encode())
    return 0


def cmd_table(a) -> int:
    import json

    from . import evaluate as ev
    from .export import write_atomic

    x, y = _test_set(a)
    if a.paired_ref is not None and a.paired_ref not in a.models:
        raise ValueError(f"--paired-ref: '{a.paired_ref}' is not one of the listed models")
    rows, full, per_chip, doc_extra = [], {}, {}, {}
    head = "| model | bits | method | w_max | p_train | Err % | " + " | ".join(
        f"RErr p={100 * p:g}% " for p in a.p) + "|"
    rows += [head, "|" + "---|" * (6 + len(a.p))]
    for stem in a.models:
        m = ev.load_model(stem)
        clean, res = _evaluate_cached(a, m, x, y)
        tr = m.manifest.get("training", {})
        w_max = m.scheme.w_max if m.scheme.w_max is not None else "-"
        cells = " | ".join(f"{s['mean']:.2f} ± {s['std']:.2f}" for s in res.values())
        rows.append(f"| {m.path.stem} | {m.scheme.bits} | {tr.get('method', '?')} | {w_max} | "
                    f"{tr.get('p_train', 0):g} | {clean:.2f} | {cells} |")
        full[m.path.stem] = {"clean_error_pct": clean, "robust_error_pct": {str(p): s for p, s in res.items()}}
        per_chip[stem] = (m.path.stem, res)
        print(rows[-1], flush=True)
    note = (f"Err on all {len(y)} test images; RErr = clean or faulty prediction wrong, first {min(a.limit, len(y))} "
            f"test images, mean ± std over {len(a.seeds)} chips (seeds {a.seeds[0]}..{a.seeds[-1]}), "
            "uniform random bit errors on the stored bits (PyTorch companion, `python -m accelsim_train table`).")
    text = "\n".join(rows) + "\n\n" + note + "\n"
    if a.paired_ref is not None:
        ref_name, ref = per_chip[a.paired_ref]
        prow = ["| model | " + " | ".join(f"ΔRErr p={100 * p:g}% " for p in a.p) + "|", "|" + "---|" * (1 + len(a.p))]
        paired = {}
        for stem in a.models:
            name, res = per_chip[stem]
            if stem == a.paired_ref:
                continue
            d = {p: ev.paired_difference(res[p]["values"], ref[p]["values"]) for p in a.p}
            paired[name] = {str(p): s for p, s in d.items()}
            prow.append(f"| {name} | " + " | ".join(
                f"{s['mean']:+.2f} [{s['ci95'][0]:+.2f}, {s['ci95'][1]:+.2f}]" for s in d.values()) + " |")
        text += ("\n" + "\n".join(prow) + "\n\n" + f"ΔRErr = the model's RErr minus {ref_name}'s on the same chip, "
                 f"mean [95% interval of the mean] over the {len(a.seeds)} chips, in percentage points; "
                 f"negative = more robust than {ref_name}.\n")
        doc_extra = {"paired_ref": ref_name, "paired_difference_pct": paired}
    print()
    print(text)
    if a.out:
        write_atomic(a.out, text.encode())
        doc = {"seeds": a.seeds, "models": full} | doc_extra
        write_atomic(str(Path(a.out).with_suffix(".json")), json.dumps(doc, indent=1).encode())
    return 0


def cmd_replay(a) -> int:
    import json

    from . import evaluate as ev

    m = ev.load_model(a.model)
    x, y = _test_set(a, a.limit)
    print(json.dumps(ev.replay(m, a.pattern, x, y)))
    return 0


def cmd_export(a) -> int:
    from . import train as tr
    from .modelio import export_trained

    model, cfg, hist = tr.model_from_checkpoint(Path(a.ckpt))
    x, y = _test_set(a)
    err = tr.quantized_error(model, cfg.scheme(), x, y)
    paths = export_trained(model, cfg, err, len(y), Path(a.out), hist)
    print(f"clean error {err:.2f}%; wrote " + " ".join(str(p) for p in paths))
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m accelsim_train",
                                 description="accelsim training companion: QAT, clipping, RandBET, export, evaluation")
    sub = ap.add_subparsers(dest="cmd", required=True)
    _add_train(sub)
    _add_eval(sub)
    a = ap.parse_args(argv)
    from .data import DataError
    from .evaluate import ModelFileError
    from .quant import QuantConfigError
    from .train import TrainError

    import torch

    torch.set_num_threads(max(1, getattr(a, "threads", 1)))
    cmds = {"train": cmd_train, "eval": cmd_eval, "table": cmd_table, "replay": cmd_replay, "export": cmd_export}
    try:
        return cmds[a.cmd](a)
    except (TrainError, QuantConfigError, DataError, ModelFileError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted (the last epoch checkpoint is kept; rerun the same command to resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
