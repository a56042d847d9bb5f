"""Does training against activation bit errors buy voltage headroom on the activation rail? (README, "Training
against activation faults"; docs/training.md#activation-bit-errors)

Runs the simulator on the int8 datapath for the activation-fault model and the model it was fine-tuned from, and
writes OUT.md (tables) and OUT.json (every number, every sample):

A. Both SRAM rails scaled (`accelsim run --datapath int8 --rails weight_sram,activation_sram --vdd V`): weight
   faults from the chip profile, activation faults from the activation map derived in its style
   (docs/activation-faults.md); per profile and voltage, mean ± std over the mapping offsets, all test images, and
   the paired difference (same samples, same faulty cells); and per model the lowest voltage of the grid down to
   which the error stays within TOLERANCE points of the Normal model's clean int8 error (the README's criterion).
B. Random activation bit errors only (`--vdd 1.15 --act-ber P`: weights at nominal, fault-free): per rate, mean ±
   std over CHIPS random activation chips (one per sample), and the paired difference.

Robust errors on the first LIMIT (9000) test images, the paper's protocol; clean errors on all 10,000.

Choosing among candidates (`--validate A.toml,B.toml`, what `make models` does for the values of p_act): each
candidate's robust error with both rails scaled at VALIDATE_VDD (0.9 V: the weight SRAM alone stays within the
tolerance there, and the activation rail, partial sums included, is at the edge of collapse) on the validation images (the last 1000 test images, which no reported number uses), mean over the
profiles' samples; prints the path of the lowest (the first on ties) and writes OUT-validation.json, which the
report run then includes.

Usage: python training/scripts/eval_act.py [--accelsim BIN] [--models DIR] [--out models/robustness-act] ...
Only the standard library; the simulator does all the work (about 10 min on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path

# The simulator's activation fault model this script's numbers come from (2: the partial sums of folded reductions
# fail too, docs/activation-faults.md#partial-sums); a validation file from an older model is flagged in the report.
ACT_FAULT_MODEL = 2

# two-sided 95% t quantiles by degrees of freedom
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093,
        20: 2.086, 21: 2.080, 22: 2.074, 23: 2.069, 24: 2.064, 25: 2.060, 29: 2.045, 39: 2.023, 49: 2.010}


def t95(df: int) -> float:
    if df in _T95:
        return _T95[df]
    below = [k for k in _T95 if k <= df]
    return _T95[max(below)] if below else 1.96


def paired(a: list[float], b: list[float]) -> dict:
    d = [x - y for x, y in zip(a, b)]
    m = statistics.fmean(d)
    if len(d) < 2:
        return {"mean": m, "ci95": [m, m], "n": len(d)}
    h = t95(len(d) - 1) * statistics.stdev(d) / math.sqrt(len(d))
    return {"mean": m, "ci95": [m - h, m + h], "n": len(d)}


def sim(binary: str, *args: str) -> dict:
    out = subprocess.run([binary, *args, "--json"], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--accelsim", default="target/release/accelsim")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--models", default="models", help="folder of the models")
    ap.add_argument("--model", default="fmnist-cnn-randbet-act-8b")
    ap.add_argument("--base", default="fmnist-cnn-randbet-8b")
    ap.add_argument("--normal", default="fmnist-cnn-normal-8b", help="the tolerance's reference (clean int8 error)")
    ap.add_argument("--hw", default="14nm_sram")
    ap.add_argument("--profiles", default="chip1,chip2,chip3")
    ap.add_argument("--grid", default="1.0,0.975,0.95,0.9375,0.925,0.9125,0.9,0.8875,0.875,0.85,0.825,0.8")
    ap.add_argument("--offsets", type=int, default=4, help="fault samples per profile and voltage (part A)")
    ap.add_argument("--rates", default="0.00001,0.0001,0.001,0.01")
    ap.add_argument("--chips", type=int, default=25, help="random activation chips per rate (part B)")
    ap.add_argument("--tolerance", type=float, default=1.0)
    ap.add_argument("--limit", type=int, default=9000, help="robust errors on the first N test images")
    ap.add_argument("--extra", default="", metavar="A.toml,...", help="more models to evaluate alongside (manifests)")
    ap.add_argument("--budgets", default="10,12,15,20,25", help="error budgets (%%) for the lowest-voltage lines")
    ap.add_argument("--report-only", action="store_true", help="rewrite OUT.md from OUT.json without simulating")
    ap.add_argument("--out", default="models/robustness-act")
    ap.add_argument("--validate", default=None, metavar="A.toml,B.toml", help="choose among candidates (see above)")
    ap.add_argument("--validate-vdd", type=float, default=0.9)
    a = ap.parse_args()
    if a.validate:
        return validate(a)
    t0 = time.time()
    mdir = Path(a.models)
    path = {"normal": str(mdir / f"{a.normal}.toml"), "base": str(mdir / f"{a.base}.toml"),
            "act": str(mdir / f"{a.model}.toml")}
    keys = ["base", "act"]
    for i, e in enumerate(x for x in (a.extra or "").split(",") if x):
        path[f"extra{i}"] = e
        keys.append(f"extra{i}")
    name = {k: Path(p).stem for k, p in path.items()}
    data = ["--data", a.data]
    budgets = [float(x) for x in a.budgets.split(",") if x]
    if a.report_only:  # rewrite OUT.md (and the lowest-voltage lines) from OUT.json, no simulation
        doc = json.loads(Path(a.out + ".json").read_text())
        keys = ["base", "act"] + sorted(k for k in doc["models"] if k.startswith("extra"))
        name, path = doc["models"], {k: doc.get("paths", {}).get(k, "") for k in doc["models"]}
        clean, threshold = doc["clean_error_pct"], doc["threshold_pct"]
        for d in doc["voltage"].values():
            d["lowest_vdd_v"] = {k: _lowest(d["rows"], k, threshold) for k in keys}
            d["lowest_vdd_v_within_budget"] = {str(b): {k: _lowest(d["rows"], k, b) for k in keys} for b in budgets}
        return _report(a, doc, keys, name, path, clean, threshold)
    clean = {}
    for k, p in path.items():
        clean[k] = {dp: sim(a.accelsim, "eval", "--model", p, "--datapath", dp, *data)["clean_error_pct"]
                    for dp in ("float", "int8")}
    # the tolerance's reference on the images the robust errors are measured on
    normal_ref = sim(a.accelsim, "eval", "--model", path["normal"], "--datapath", "int8", "--limit", str(a.limit),
                     *data)["clean_error_pct"]
    threshold = normal_ref + a.tolerance
    grid = [float(v) for v in a.grid.split(",")]
    doc = {"models": name, "paths": path, "clean_error_pct": clean, "normal_int8_clean_limit_pct": normal_ref,
           "threshold_pct": threshold, "hw": a.hw, "limit": a.limit,
           "offsets": a.offsets, "chips": a.chips, "voltage": {}, "act_ber": {}}

    def entry(r):
        return {"faulty_error_pct": r["faulty_error_pct"], "faulty_error_std_pct": r["faulty_error_std_pct"],
                "per_sample_pct": r["faulty_error_per_sample_pct"], "activation_ber": r["activation_ber"],
                "energy_saving_pct": r["energy_saving_pct"]}

    def deltas(r):
        return {k: paired(r[k]["faulty_error_per_sample_pct"], r["base"]["faulty_error_per_sample_pct"])
                for k in keys if k != "base"}

    lowest = _lowest
    for prof in a.profiles.split(","):
        rows = []
        for v in grid:
            r = {k: sim(a.accelsim, "run", "--hw", a.hw, "--model", path[k], "--profile", prof, "--vdd", f"{v}",
                        "--datapath", "int8", "--rails", "weight_sram,activation_sram", "--offsets",
                        str(a.offsets), "--limit", str(a.limit), *data) for k in keys}
            rows.append({"vdd_v": v, "ber": r["base"]["ber"], "activation_ber": r["base"]["activation_ber"],
                         "energy_saving_pct": r["base"]["energy_saving_pct"], **{k: entry(r[k]) for k in keys},
                         "paired_minus_base": deltas(r)})
            print(f"{prof} {v:.3f} V: " + "  ".join(f"{name[k]} {r[k]['faulty_error_pct']:.2f}" for k in keys)
                  + f"  (act BER {r['base']['activation_ber']:.2e})  {time.time() - t0:.0f} s", flush=True)
        doc["voltage"][prof] = {"rows": rows, "lowest_vdd_v": {k: lowest(rows, k, threshold) for k in keys},
                                "lowest_vdd_v_within_budget": {str(b): {k: lowest(rows, k, b) for k in keys}
                                                               for b in budgets}}
    for p in [float(x) for x in a.rates.split(",")]:
        r = {k: sim(a.accelsim, "run", "--hw", a.hw, "--model", path[k], "--vdd", "1.15", "--datapath", "int8",
                    "--act-ber", f"{p}", "--offsets", str(a.chips), "--limit", str(a.limit), *data) for k in keys}
        doc["act_ber"][str(p)] = {**{k: entry(r[k]) for k in keys}, "paired_minus_base": deltas(r)}
        print(f"act-ber {p:g}: " + "  ".join(f"{name[k]} {r[k]['faulty_error_pct']:.2f}" for k in keys)
              + f"  {time.time() - t0:.0f} s", flush=True)
    doc["seconds"] = round(time.time() - t0)
    return _report(a, doc, keys, name, path, clean, threshold)


def _lowest(rows, k, limit):
    """The lowest voltage of the grid down to which (from the top) the error stays within limit."""
    lo = None
    for row in rows:
        if row[k]["faulty_error_pct"] <= limit:
            lo = row["vdd_v"]
        else:
            break
    return lo


def _report(a, doc, keys, name, path, clean, threshold) -> int:
    B = name["base"]
    others = [k for k in keys if k != "base"]
    fmt_v = lambda v: "—" if v is None else f"{v:.3f} V"  # noqa: E731
    cell = lambda e: f"{e['faulty_error_pct']:.2f} ± {e['faulty_error_std_pct']:.2f}"  # noqa: E731
    dcell = lambda d: f"{d['mean']:+.2f} [{d['ci95'][0]:+.2f}, {d['ci95'][1]:+.2f}]"  # noqa: E731
    L = [f"# Activation faults on the int8 datapath: {', '.join(name[k] for k in others)} against {B}", "",
         f"Simulator (`accelsim`), `{a.hw}`, int8 datapath, the first {a.limit} test images (clean errors: all "
         "10000); robust error (clean or faulty prediction wrong), mean ± std over the fault samples; "
         f"Δ = the model minus {B} on the same samples (same faulty cells), mean [95% t-interval], points. "
         "Written by `training/scripts/eval_act.py` (`make models`).", "",
         "Clean error (%):", "", "| model | p_act | float | int8 |", "|---|---|---|---|"]
    for k in ["normal"] + keys:
        L.append(f"| {name[k]} | {_p_act(path[k]) if path.get(k) else 0:g} | {clean[k]['float']:.2f} | {clean[k]['int8']:.2f} |")
    L += ["", f"**A. Both SRAM rails scaled** (`run --vdd V --datapath int8 --rails weight_sram,activation_sram "
          f"--profile P --offsets {a.offsets} --limit {a.limit}`): weight faults from the chip profile, activation "
          f"faults from the map derived in its style; {a.offsets} samples (mapping offsets) per point. Energy saved: "
          f"the whole accelerator's, against nominal voltage. Threshold: {a.normal}'s clean int8 error on the "
          f"same {a.limit} images + {a.tolerance:g} = {threshold:.2f}%.", ""]
    for prof, d in doc["voltage"].items():
        L += [f"{prof}:", "", "| V | weight BER | act. BER | energy saved | " + " | ".join(name[k] for k in keys)
              + " | " + " | ".join(f"Δ {name[k]}" for k in others) + " |", "|---" * (4 + len(keys) + len(others))
              + "|"]
        for row in d["rows"]:
            L.append(f"| {row['vdd_v']:.3f} | {row['ber']:.1e} | {row['activation_ber']:.1e} | "
                     f"{row['energy_saving_pct']:.1f}% | " + " | ".join(cell(row[k]) for k in keys) + " | "
                     + " | ".join(dcell(row["paired_minus_base"][k]) for k in others) + " |")
        L += ["", f"Lowest voltage within {threshold:.2f}%: "
              + ", ".join(f"{name[k]} {fmt_v(d['lowest_vdd_v'][k])}" for k in keys) + "."]
        for b, lo in d["lowest_vdd_v_within_budget"].items():
            L.append(f"Within {float(b):g}%: " + ", ".join(f"{name[k]} {fmt_v(lo[k])}" for k in keys) + ".")
        L.append("")
    L += [f"**B. Random activation bit errors only** (`run --vdd 1.15 --act-ber P --datapath int8 --offsets "
          f"{a.chips} --limit {a.limit}`: fault-free weights, {a.chips} random activation chips per rate, every "
          "cell a persistent flipping cell with probability P):", "",
          "| P | " + " | ".join(name[k] for k in keys) + " | " + " | ".join(f"Δ {name[k]}" for k in others) + " |",
          "|---" * (1 + len(keys) + len(others)) + "|"]
    for p, d in doc["act_ber"].items():
        L.append(f"| {float(p):g} | " + " | ".join(cell(d[k]) for k in keys) + " | "
                 + " | ".join(dcell(d["paired_minus_base"][k]) for k in others) + " |")
    vf = Path(a.out + "-validation.json")
    if vf.exists():
        v = json.loads(vf.read_text())
        doc["validation"] = v
        L += ["", f"**Choice of p_act** (the rule of `make models`, fixed before these numbers): validation robust "
              f"error (the last 1000 test images) with both rails at {v['vdd_v']:g} V, mean over {v['samples']} "
              f"samples ({v['profiles']} profiles × {v['offsets']} offsets); the lowest is shipped.", "",
              "| candidate | p_act | clean error % (val.) | RErr % (val.) | shipped |", "|---|---|---|---|---|"]
        if v.get("act_fault_model", 1) < ACT_FAULT_MODEL:
            L[-4] += (" This choice was made under an earlier activation fault model of the simulator, in which the "
                      "partial sums of folded reductions could not fail, and was not rerun (the candidates' "
                      "checkpoints are not shipped); the numbers above are from the current model.")
        for c in v["candidates"]:
            L.append(f"| {Path(c['path']).stem} | {c['p_act']:g} | {c['clean_error_pct']:.2f} | "
                     f"{c['robust_error_pct']:.2f} | {'yes' if c['path'] == v['pick'] else ''} |")
    L += ["", f"Wall time {doc['seconds']} s."]
    Path(a.out + ".md").write_text("\n".join(L) + "\n")
    Path(a.out + ".json").write_text(json.dumps(doc, indent=1) + "\n")
    print("\n".join(L))
    return 0


def _p_act(manifest: str) -> float:
    import tomllib

    with open(manifest, "rb") as f:
        return float(tomllib.load(f).get("training", {}).get("p_act", 0.0))


def validate(a) -> int:
    import tomllib

    cands = []
    for p in a.validate.split(","):
        per = []
        clean = None
        for prof in a.profiles.split(","):
            r = sim(a.accelsim, "run", "--hw", a.hw, "--model", p, "--profile", prof, "--vdd", f"{a.validate_vdd}",
                    "--datapath", "int8", "--rails", "weight_sram,activation_sram", "--offsets", str(a.offsets),
                    "--skip", "9000", "--limit", "1000", "--data", a.data)
            per += r["faulty_error_per_sample_pct"]
            clean = r["clean_error_pct"]
        with open(p, "rb") as f:
            p_act = tomllib.load(f).get("training", {}).get("p_act", 0.0)
        cands.append({"path": p, "p_act": p_act, "clean_error_pct": clean, "robust_error_pct": statistics.fmean(per),
                      "per_sample_pct": per})
        print(f"{p}: validation RErr {cands[-1]['robust_error_pct']:.2f} (clean {clean:.2f})", file=sys.stderr)
    pick = min(cands, key=lambda c: c["robust_error_pct"])["path"]  # min keeps the first on ties
    doc = {"act_fault_model": ACT_FAULT_MODEL, "vdd_v": a.validate_vdd, "profiles": len(a.profiles.split(",")), "offsets": a.offsets,
           "samples": len(cands[0]["per_sample_pct"]), "candidates": cands, "pick": pick}
    Path(a.out + "-validation.json").write_text(json.dumps(doc, indent=1) + "\n")
    print(pick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
