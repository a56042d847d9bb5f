"""accelsim.run against `accelsim run --json`: the same keys in the same order and identical numbers."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
import threading
import time

import pytest

import accelsim
from conftest import REPO

LIMIT = "300"


@pytest.mark.parametrize(
    "kwargs, flags",
    [
        (dict(vdd=0.85, offsets=2), ["--vdd", "0.85", "--offsets", "2"]),
        (
            dict(vdd=0.9, model="fmnist-cnn-clipping-8b", profile="chip2", seeds=2, offsets=1, skip=100),
            ["--vdd", "0.9", "--model", "fmnist-cnn-clipping-8b", "--profile", "chip2", "--seeds", "2",
             "--offsets", "1", "--skip", "100"],
        ),
        (dict(vdd=1.0, ber=0.01, seeds=3, offsets=1), ["--vdd", "1.0", "--ber", "0.01", "--seeds", "3", "--offsets", "1"]),
        (dict(hw="hw_configs/14nm_sram.toml", vdd=0.875, profile="uniform"),
         ["--hw", "hw_configs/14nm_sram.toml", "--vdd", "0.875", "--profile", "uniform"]),
        (dict(vdd=0.8, ecc="secded", offsets=1), ["--vdd", "0.8", "--ecc", "secded", "--offsets", "1"]),
    ],
)
def test_run_equals_cli_json(cli, kwargs, flags):
    got = accelsim.run(limit=int(LIMIT), **kwargs)
    want = cli.json("run", *flags, "--limit", LIMIT, "--json")
    assert got == want
    assert list(got) == list(want), "same key order as the CLI"
    assert list(got["energy_breakdown_pj"]) == list(want["energy_breakdown_pj"])
    assert type(got["cycles"]) is int and type(got["ber"]) is float
    # A result that really ran: faulty samples as asked, and errors in percent.
    assert len(got["faulty_error_per_sample_pct"]) == got["samples"]
    assert 0 < got["clean_error_pct"] < 100


def test_type_stub_lists_the_keys_run_returns():
    """The RunReport TypedDict in the shipped stub names exactly the keys, in order, that run() returns."""
    import ast
    from pathlib import Path

    tree = ast.parse((Path(accelsim.__file__).parent / "_accelsim.pyi").read_text())
    fields = {
        node.name: [n.target.id for n in node.body if isinstance(n, ast.AnnAssign)]
        for node in tree.body
        if isinstance(node, ast.ClassDef)
    }
    r = accelsim.run(vdd=0.9, limit=50, offsets=1)
    assert fields["RunReport"] == list(r)
    assert fields["EnergyBreakdown"] == list(r["energy_breakdown_pj"])


def test_signature_defaults_are_the_clis():
    defaults = accelsim._cli_defaults("run")
    sig = inspect.signature(accelsim.run)
    for name in ["hw", "offsets", "seeds", "skip"]:
        assert str(sig.parameters[name].default) == defaults[name], name
    for name in ["vdd", "model", "profile", "ber", "data", "limit", "ecc", "image_out"]:
        assert sig.parameters[name].default is None, name
        assert name not in defaults, f"{name} has a CLI default the signature does not show"


def test_help_is_useful():
    doc = accelsim.run.__doc__
    assert "accelsim run --json" in doc and "offsets" in doc and "UserError" in doc
    assert list(inspect.signature(accelsim.run).parameters)[:3] == ["hw", "vdd", "model"]
    for f in [accelsim.sweep, accelsim.quantize, accelsim.inject, accelsim.cycles, accelsim.Model.load,
              accelsim.Model.eval]:
        assert f.__doc__ and len(f.__doc__) > 80, f
        inspect.signature(f)  # every function has a signature help() can show


@pytest.mark.parametrize(
    "kwargs, flags",
    [
        (dict(vdd=0.5), ["--vdd", "0.5"]),  # below the profile's range
        (dict(vdd=0.85, offsets=0), ["--vdd", "0.85", "--offsets", "0"]),
        (dict(vdd=0.85, model="no-such-model"), ["--vdd", "0.85", "--model", "no-such-model"]),
        (dict(vdd=0.85, ber=5.0), ["--vdd", "0.85", "--ber", "5"]),
        (dict(vdd=0.85, hw="no_such_hw"), ["--vdd", "0.85", "--hw", "no_such_hw"]),
        (dict(), []),
        (dict(vdd=0.85, ecc="hamming"), ["--vdd", "0.85", "--ecc", "hamming"]),
    ],
)
def test_user_errors_carry_the_cli_message(cli, kwargs, flags):
    with pytest.raises(accelsim.UserError) as e:
        accelsim.run(limit=10, **kwargs)
    assert isinstance(e.value, ValueError)
    assert str(e.value) == cli.error("run", *flags, "--limit", "10")


def test_parser_errors_are_user_errors(cli):
    """Values the CLI's parser rejects (here a negative count) are UserErrors with the parser's message."""
    with pytest.raises(accelsim.UserError) as e:
        accelsim.run(vdd=0.85, offsets=-1)
    assert "-1" in str(e.value)
    assert cli.error("run", "--json", "--vdd=0.85", "--offsets=-1") == str(e.value)


def test_shipped_files_found_from_another_folder(tmp_path, monkeypatch):
    """Names resolve as the CLI resolves them: the current folder's models/, else the source tree's."""
    monkeypatch.chdir(tmp_path)
    r = accelsim.run(vdd=0.85, model="fmnist-cnn-rquant-8b", profile="chip1", limit=100, offsets=1)
    assert r["model"] == "fmnist-cnn-rquant-8b" and r["faults"] == "chip1"
    assert any(h["name"] == "14nm-sram" for h in accelsim.list_hw())


def test_run_releases_the_gil():
    """While one thread is inside accelsim.run, another keeps running Python code."""
    done = threading.Event()
    result = {}

    def work():
        result["r"] = accelsim.run(vdd=0.8, offsets=8, limit=2000)
        done.set()

    gaps, last = [], time.perf_counter()
    t = threading.Thread(target=work)
    start = time.perf_counter()
    t.start()
    while not done.is_set():
        time.sleep(0.002)
        now = time.perf_counter()
        gaps.append(now - last)
        last = now
    t.join()
    elapsed = time.perf_counter() - start
    assert result["r"]["samples"] == 8
    # Holding the GIL would stall this loop for the whole call; released, it wakes every few milliseconds.
    assert len(gaps) >= 10 and max(gaps) < 0.5 * elapsed, (len(gaps), max(gaps), elapsed)


def test_ctrl_c_interrupts_a_run():
    code = (
        "import accelsim, sys, time\n"
        # A launcher without job control (`cmd &` in a script) starts children with SIGINT ignored, and Python
        # then never raises KeyboardInterrupt; give the child the default handler the test is about.
        "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "print('start', flush=True)\n"
        "t = time.perf_counter()\n"
        "try:\n"
        "    accelsim.run(vdd=0.8, ber=0.01, offsets=1, seeds=400)\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted after %.2f s' % (time.perf_counter() - t), flush=True)\n"
        "    sys.exit(7)\n"
    )
    p = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    assert p.stdout.readline().strip() == "start"
    time.sleep(1.5)
    assert p.poll() is None, "the run should still be going (400 samples on 10000 images)"
    p.send_signal(2)  # SIGINT, as Ctrl-C
    sent = time.monotonic()
    out, err = p.communicate(timeout=120)
    assert p.returncode == 7, (out, err)
    # Interrupted inside the call (after running for a while), and soon after the signal: the whole run would
    # take minutes.
    assert float(out.split("interrupted after ")[1].split()[0]) >= 1.0, out
    assert time.monotonic() - sent < 30


def test_bits_picks_a_trained_member_or_quantizes_the_float_weights(cli):
    trained = accelsim.run(vdd=0.9, model="fmnist-cnn-randbet", bits=4, limit=50, offsets=1)
    assert (trained["model"], trained["bits"], trained["weights_source"]) == ("fmnist-cnn-randbet-4b", 4, "trained")
    ptq = accelsim.run(vdd=0.9, model="fmnist-cnn-randbet", bits=5, limit=50, offsets=1)
    assert (ptq["bits"], ptq["weights_source"], ptq["family"]) == (5, "ptq", "fmnist-cnn-randbet")
    want = cli.json("run", "--vdd", "0.9", "--model", "fmnist-cnn-randbet", "--bits", "5", "--limit", "50",
                    "--offsets", "1", "--json")
    assert ptq == want
    with pytest.raises(accelsim.UserError, match="--model fmnist-cnn-randbet is a family"):
        accelsim.run(vdd=0.9, model="fmnist-cnn-randbet", limit=50)


def test_int8_datapath_with_failing_activation_buffers_equals_the_cli(cli):
    got = accelsim.run(vdd=0.8, datapath="int8", rails=["weight_sram", "activation_sram"], limit=100, offsets=1)
    want = cli.json("run", "--vdd", "0.8", "--datapath", "int8", "--rails", "weight_sram,activation_sram",
                    "--limit", "100", "--offsets", "1", "--json")
    assert got == want
    assert got["datapath"] == "int8" and got["activation_ber"] > 0
    with pytest.raises(accelsim.UserError, match="float activations have no stored bits"):
        accelsim.run(vdd=0.8, rails=["weight_sram", "activation_sram"], limit=10)
