# %% [markdown]
# # Accuracy against weight-SRAM voltage, from Python
#
# Reproduces the README's trade-off table (each shipped model's lowest weight-SRAM voltage that keeps the test
# error within 1 point of the normal model at nominal voltage, on the 14nm chips chip1 and chip2) and draws the
# error-vs-voltage figure with matplotlib. A notebook-style script: run it whole (`python
# examples/voltage_tradeoff.py` from the repository root) or cell by cell (`# %%`) in VS Code, Jupyter (jupytext)
# or Spyder. Needs `pip install ./python pandas matplotlib` (or `make python`).
#
# The full sweep is the one `make run` does (the 10 shipped CNN models x 2 chips x 13 voltages x 3 mapping
# offsets, all 10,000 test images; several minutes on 2 cores). It is resumable: rerunning this script, or a cell, reuses the finished
# work in `reports/python/`. For a quick look set ACCELSIM_LIMIT=1000 (fewer test images, noisier numbers).

# %%
import os
from pathlib import Path

import matplotlib

if os.environ.get("MPLBACKEND") is None and not os.environ.get("DISPLAY"):
    matplotlib.use("Agg")  # no screen: write the figure to a file only
import matplotlib.pyplot as plt
import matplotlib.ticker
import pandas as pd

import accelsim

limit = int(os.environ["ACCELSIM_LIMIT"]) if os.environ.get("ACCELSIM_LIMIT") else None  # None: all test images
out = Path(os.environ.get("ACCELSIM_OUT", "reports/python"))
tolerance_pts = 1.0

# %% [markdown]
# ## The sweep
# `accelsim.sweep` with the CLI's defaults: every shipped model, profiles chip1 and chip2, the grid
# 1.15, 1.1, 1.05 V, then 1.0 V down to 0.8 V in 25 mV steps, 3 mapping offsets. With `out=` it also writes the
# CLI's bundle (sweep.csv, plots, report.md) into that folder. The result is a DataFrame with sweep.csv's columns.

# %%
df = accelsim.sweep(out=out, limit=limit, tolerance=tolerance_pts)
df.head()

# %% [markdown]
# ## The trade-off table
# Reference: the normal model's error at the highest swept voltage (nominal, 1.15 V: no faults), plus the
# tolerance. A model's lowest safe voltage is the lowest voltage at which its mean error, and the error at every
# voltage above it, stays within that threshold (the same rule as report.md).

# %%
normal = df[df.method == "normal"]
reference_pct = normal[normal.vdd_v == normal.vdd_v.max()].faulty_error_pct.mean()
threshold_pct = reference_pct + tolerance_pts


def lowest_safe_v(series: pd.DataFrame) -> float:
    safe = float("nan")
    for _, row in series.sort_values("vdd_v", ascending=False).iterrows():
        if row.faulty_error_pct > threshold_pct:
            break
        safe = row.vdd_v
    return safe


short = {
    "fmnist-cnn-normal-8b": "normal-8b",
    "fmnist-cnn-rquant-8b": "rquant-8b",
    "fmnist-cnn-clipping-8b": "clipping-8b",
    "fmnist-cnn-clipping-4b": "clipping-4b",
    "fmnist-cnn-clipping-2b": "clipping-2b",
    "fmnist-cnn-randbet-8b": "RandBET-8b",
    "fmnist-cnn-randbet-6b": "RandBET-6b",
    "fmnist-cnn-randbet-4b": "RandBET-4b",
    "fmnist-cnn-randbet-3b": "RandBET-3b",
    "fmnist-cnn-randbet-2b": "RandBET-2b",
}
safe = (
    df.groupby(["profile", "model"])[["vdd_v", "faulty_error_pct"]]
    .apply(lowest_safe_v)
    .unstack("model")
)
safe = safe[[m for m in short if m in safe.columns] + [m for m in safe.columns if m not in short]]
safe.columns = [short.get(m, m) for m in safe.columns]
print(f"error threshold {threshold_pct:.2f}% = normal model at nominal voltage {reference_pct:.2f}% "
      f"+ {tolerance_pts:g} point; {int(df.test_images.iloc[0])} test images, {int(df.samples.iloc[0])} offsets")
print("lowest safe weight-SRAM voltage (V):")
print(safe.to_string(float_format=lambda v: f"{v:.3f}"))

# %% [markdown]
# What that saves: the weight-SRAM energy and the total energy per inference at each model's lowest safe voltage.

# %%
savings = []
for (profile, model), series in df.groupby(["profile", "model"]):
    v = lowest_safe_v(series)
    row = series[series.vdd_v == v].iloc[0] if v == v else None
    savings.append({
        "profile": profile,
        "model": short.get(model, model),
        "vdd_v": v,
        "faulty_error_pct": None if row is None else row.faulty_error_pct,
        "weight_sram_saving_pct": None if row is None else row.weight_sram_saving_pct,
        "energy_saving_pct": None if row is None else row.energy_saving_pct,
    })
print(pd.DataFrame(savings).to_string(index=False, formatters={"vdd_v": "{:.3f}".format},
                                     float_format=lambda v: f"{v:.2f}"))

# %% [markdown]
# ## Error against voltage
# Mean faulty error over the mapping offsets (shaded: ± one standard deviation), one colour per model, solid for
# chip1 and dashed for chip2; the dotted line is the threshold.

# %%
fig, ax = plt.subplots(figsize=(7.5, 4.5))
colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
models = [m for m in short if m in set(df.model)] + [m for m in df.model.unique() if m not in short]
for i, model in enumerate(models):
    for profile, style in zip(sorted(df.profile.unique()), ["-", "--", ":", "-."]):
        s = df[(df.model == model) & (df.profile == profile)].sort_values("vdd_v")
        ax.plot(s.vdd_v, s.faulty_error_pct, style, marker="o", ms=3, color=colors[i % len(colors)],
                label=f"{short.get(model, model)} / {profile}")
        ax.fill_between(s.vdd_v, s.faulty_error_pct - s.faulty_error_std_pct,
                        s.faulty_error_pct + s.faulty_error_std_pct, color=colors[i % len(colors)], alpha=0.12)
ax.axhline(threshold_pct, color="black", ls=":", lw=1, label=f"threshold {threshold_pct:.2f}%")
ax.set_xlabel("weight-SRAM supply voltage vdd_v (V)")
ax.set_ylabel("test error (%, clean or faulty wrong)")
ax.set_yscale("log")
ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
ax.set_yticks([5, 10, 20, 50, 100])
ax.invert_xaxis()
ax.grid(True, which="both", alpha=0.3)
ax.legend(fontsize=7, ncol=2)
ax.set_title("accelsim: error against weight-SRAM voltage (14nm-sram)")
fig.tight_layout()
figure = out / "error_vs_voltage_matplotlib.png"
fig.savefig(figure, dpi=150)
print(f"figure -> {figure}")
