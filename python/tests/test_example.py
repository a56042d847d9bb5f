"""examples/voltage_tradeoff.py runs end to end (few test images) and writes its table and figure."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import REPO


def test_voltage_tradeoff_example(tmp_path):
    pytest.importorskip("pandas")
    pytest.importorskip("matplotlib")
    env = {**os.environ, "ACCELSIM_LIMIT": "200", "ACCELSIM_OUT": str(tmp_path), "MPLBACKEND": "Agg"}
    p = subprocess.run([sys.executable, "examples/voltage_tradeoff.py"], cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert any(line.startswith("chip1 ") for line in lines) and any(line.startswith("chip2 ") for line in lines)
    header = next(line for line in lines if "normal-8b" in line and "RandBET-8b" in line)
    assert header.split() == ["normal-8b", "rquant-8b", "clipping-8b", "clipping-4b", "clipping-2b", "RandBET-8b",
                              "RandBET-6b", "RandBET-4b", "RandBET-3b", "RandBET-2b"]
    assert (tmp_path / "error_vs_voltage_matplotlib.png").stat().st_size > 10_000
    assert (tmp_path / "sweep.csv").is_file() and (tmp_path / "report.md").is_file()
