"""accelsim.sweep: rows with the columns and values of sweep.csv, as a DataFrame or a list of dicts; with out=,
the CLI's folder (resumable)."""

from __future__ import annotations

import csv
import inspect
import json
import signal
import subprocess
import sys
import time

import pytest

import accelsim
from conftest import REPO

SMALL = dict(models=["fmnist-cnn-randbet-8b", "fmnist-cnn-normal-8b"], profiles=["chip1"], grid="1.0:0.85:0.05",
             offsets=2, limit=200)
SMALL_FLAGS = ["--models", "fmnist-cnn-randbet-8b,fmnist-cnn-normal-8b", "--profiles", "chip1",
               "--grid", "1.0:0.85:0.05", "--offsets", "2", "--limit", "200"]


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def as_text(rows):
    """Rows (dicts of numbers and strings) in the CSV's text form, to compare with what the CLI wrote."""
    def fmt(v):
        return repr(v) if isinstance(v, float) else str(v)

    return [{k: fmt(v) for k, v in r.items()} for r in rows]


# sweep.csv's text columns; every other column is a number.
TEXT_COLUMNS = ("model", "family", "method", "weights_source", "profile", "ecc", "rails")


def test_sweep_to_dataframe_equals_cli_csv(cli, tmp_path):
    pd = pytest.importorskip("pandas")
    df = accelsim.sweep(progress=False, **SMALL)
    assert isinstance(df, pd.DataFrame)
    cli("sweep", *SMALL_FLAGS, "--out", str(tmp_path / "cli"), "--quiet")
    want = read_csv(tmp_path / "cli" / "sweep.csv")
    assert list(df.columns) == list(want[0])
    assert len(df) == 2 * 1 * 4 == len(want)
    got = as_text(df.to_dict("records"))
    for g, w in zip(got, want):
        assert {k: float(v) if k not in TEXT_COLUMNS else v for k, v in g.items()} == {
            k: float(v) if k not in TEXT_COLUMNS else v for k, v in w.items()
        }
    assert df["vdd_v"].tolist() == [1.0, 0.95, 0.9, 0.85] * 2
    assert df["ber"].is_monotonic_increasing is False  # two models, each ascending
    for _, g in df.groupby("model"):
        assert g["ber"].is_monotonic_increasing and g["energy_pj"].is_monotonic_decreasing


def test_sweep_without_pandas_gives_dicts(monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # `import pandas` now raises ImportError
    rows = accelsim.sweep(models="fmnist-cnn-randbet-8b", profiles="uniform", grid=[1.0, 0.9], offsets=1, limit=100,
                          progress=False)
    assert isinstance(rows, list) and len(rows) == 2
    assert rows[0]["profile"] == "uniform" and rows[1]["vdd_v"] == 0.9
    assert isinstance(rows[0]["cycles"], int) and isinstance(rows[0]["ber"], float)
    # The docstring lists exactly these columns.
    doc = " ".join(accelsim.sweep.__doc__.split())
    listed = doc.split("units in the names (docs/run-and-sweep.md): ")[1].split(". Raises")[0]
    assert [c.strip() for c in listed.split(",")] == list(rows[0])


def test_sweep_to_a_folder_is_the_clis_and_resumes(cli, tmp_path):
    out = tmp_path / "py"
    first = accelsim.sweep(out=out, progress=False, **SMALL)
    for f in ["sweep.csv", "report.md", "error_vs_voltage.png", "energy_vs_voltage.svg", "tradeoff.png"]:
        assert (out / f).is_file(), f
    cli("sweep", *SMALL_FLAGS, "--out", str(tmp_path / "cli"), "--quiet")
    assert read_csv(out / "sweep.csv") == read_csv(tmp_path / "cli" / "sweep.csv")
    # The report quotes the equivalent command line, so both ways of running the sweep write the same report.
    assert (out / "report.md").read_text() == (tmp_path / "cli" / "report.md").read_text()
    assert "accelsim sweep --models fmnist-cnn-randbet-8b,fmnist-cnn-normal-8b" in (out / "report.md").read_text()
    # Resume: the second call finds every unit done; the CLI resumes the Python folder too.
    state = (out / "sweep-state.json").read_text()
    again = accelsim.sweep(out=out, progress=False, **SMALL)
    assert (out / "sweep-state.json").read_text() == state
    assert as_text(_records(again)) == as_text(_records(first))
    p = cli("sweep", *SMALL_FLAGS, "--out", str(out), "--quiet")
    assert "0 units computed, 4 resumed" in p.stderr
    # Another configuration in the same folder is refused, as on the command line.
    with pytest.raises(accelsim.UserError, match="fresh"):
        accelsim.sweep(out=out, progress=False, **{**SMALL, "offsets": 1})
    assert len(_records(accelsim.sweep(out=out, fresh=True, progress=False, **{**SMALL, "offsets": 1}))) == 8


def _records(x):
    return x.to_dict("records") if hasattr(x, "to_dict") else x


def test_sweep_defaults_are_the_clis():
    defaults = accelsim._cli_defaults("sweep")
    sig = inspect.signature(accelsim.sweep)
    for name in ["hw", "offsets", "seeds", "skip", "seed"]:
        assert str(sig.parameters[name].default) == defaults[name], name
    assert sig.parameters["tolerance"].default == float(defaults["tolerance"])
    assert defaults["grid"] == accelsim.DEFAULT_GRID and defaults["profiles"] == accelsim.DEFAULT_PROFILES
    assert sig.parameters["out"].default is None and sig.parameters["limit"].default is None


def flags_of(kwargs):
    """The CLI flags of sweep keyword arguments."""
    out = []
    for k, v in kwargs.items():
        if isinstance(v, list):
            v = ",".join(map(str, v))
        out += [f"--{k}", str(v)]
    return out


def test_sweep_user_errors(cli):
    for change in [dict(grid="1.0:0.9"), dict(grid="0.5"), dict(models=["nope"]), dict(offsets=0),
                   dict(profiles=["chip9"]), dict(limit=0)]:
        kwargs = {**SMALL, **change}
        with pytest.raises(accelsim.UserError) as e:
            accelsim.sweep(**kwargs, progress=False)
        assert str(e.value) == cli.error("sweep", *flags_of(kwargs), "--out", "/nonexistent/never-written")
    with pytest.raises(accelsim.UserError, match="--grid"):
        accelsim.sweep(grid=["high"])


def test_ctrl_c_stops_a_sweep_and_keeps_finished_units(tmp_path):
    out = tmp_path / "s"
    code = (
        "import accelsim, sys\n"
        # A launcher without job control (`cmd &` in a script) starts children with SIGINT ignored, and Python
        # then never raises KeyboardInterrupt; give the child the default handler the test is about.
        "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "print('start', flush=True)\n"
        "try:\n"
        f"    accelsim.sweep(models=['fmnist-cnn-randbet-8b'], profiles=['uniform'], grid='1.0:0.8:0.01',\n"
        f"                   offsets=200, limit=2000, out={str(out)!r}, progress=False)\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted', flush=True)\n"
        "    sys.exit(7)\n"
    )
    p = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    assert p.stdout.readline().strip() == "start"
    state = out / "sweep-state.json"

    def units_done():
        try:
            return len(json.loads(state.read_text())["units"])
        except (FileNotFoundError, ValueError):
            return 0  # not written yet (the state file is replaced atomically, never seen half-written)

    deadline = time.monotonic() + 120
    while units_done() == 0 and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.1)
    assert units_done() >= 1, "a first unit should finish"
    p.send_signal(signal.SIGINT)
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 7, (stdout, stderr)
    assert not (out / "sweep.csv").exists(), "interrupted before the end: no bundle"
    units = json.loads(state.read_text())["units"]
    assert 1 <= len(units) < 200, "finished units are kept, the rest was not computed"


def test_sweep_bits_is_the_precision_axis():
    rows = accelsim.sweep(models="fmnist-cnn-clipping", bits=[8, 3], profiles="uniform", grid=[1.0], offsets=1,
                          limit=100, progress=False)
    got = [(r["model"], r["bits"], r["weights_source"]) for r in (rows.to_dict("records") if hasattr(rows, "to_dict")
                                                                  else rows)]
    assert got == [("fmnist-cnn-clipping-8b", 8, "trained"), ("fmnist-cnn-clipping-8b-ptq3b", 3, "ptq")]
    with pytest.raises(accelsim.UserError, match="--bits"):
        accelsim.sweep(models="fmnist-cnn-clipping", bits=["8"], progress=False)


def test_sweep_takes_a_list_of_rail_sets(cli, tmp_path):
    """rails=[set, set] is the CLI's --rails A --rails B: the same rows, a rails column, the report's section."""
    small = dict(models=["fmnist-cnn-randbet-8b"], profiles=["chip1"], grid=[1.0, 0.8], offsets=1, limit=100,
                 datapath="int8")
    out = tmp_path / "py"
    rows = _records(accelsim.sweep(rails=[["weight_sram"], "weight_sram,activation_sram"], out=out, progress=False,
                                   **small))
    assert [r["rails"] for r in rows] == ["weight_sram"] * 2 + ["weight_sram+activation_sram"] * 2
    flags = ["--models", "fmnist-cnn-randbet-8b", "--profiles", "chip1", "--grid", "1.0,0.8", "--offsets", "1",
             "--limit", "100", "--datapath", "int8"]
    cli("sweep", *flags, "--rails", "weight_sram", "--rails", "weight_sram,activation_sram",
        "--out", str(tmp_path / "cli"), "--quiet")
    assert read_csv(out / "sweep.csv") == read_csv(tmp_path / "cli" / "sweep.csv")
    assert "## Weights only vs weights and activations" in (out / "report.md").read_text()
    # One set, as run's: a list of names; the float datapath refuses a scaled activation rail in any set.
    one = _records(accelsim.sweep(rails=["weight_sram", "activation_sram"], progress=False, **small))
    assert [r["rails"] for r in one] == ["weight_sram+activation_sram"] * 2
    with pytest.raises(accelsim.UserError, match="float activations have no stored bits"):
        accelsim.sweep(rails=[["weight_sram"], ["weight_sram", "activation_sram"]], progress=False,
                       **{**small, "datapath": "float"})
    with pytest.raises(accelsim.UserError, match="not a rail set"):
        accelsim.sweep(rails=[["weight_sram"], [1]], progress=False, **small)
