"""Shared helpers: the repository root and the CLI binary the Python API is compared with."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _binary() -> Path:
    env = os.environ.get("ACCELSIM_BIN")
    path = Path(env) if env else REPO / "target" / "release" / "accelsim"
    if not path.is_file():
        raise RuntimeError(
            f"the accelsim CLI binary {path} does not exist: run `cargo build --release --bin accelsim` "
            "(or `make python-test`, which builds it), or set ACCELSIM_BIN"
        )
    return path


class Cli:
    """Runs `accelsim ARGS` in the repository root."""

    def __init__(self) -> None:
        self.bin = _binary()

    def __call__(self, *args: str, check: bool = True, cwd: Path = REPO) -> subprocess.CompletedProcess:
        p = subprocess.run([str(self.bin), *args], cwd=cwd, capture_output=True, text=True, timeout=300)
        if check and p.returncode != 0:
            raise AssertionError(f"accelsim {' '.join(args)} failed ({p.returncode}): {p.stderr}")
        return p

    def json(self, *args: str) -> object:
        return json.loads(self(*args).stdout)

    def error(self, *args: str) -> str:
        """The one-line message of a failing command (exit code 2), without the `error: ` prefix."""
        p = self(*args, check=False)
        assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1, p.stderr
        assert lines[0].startswith("error: ")
        return lines[0][len("error: ") :]


@pytest.fixture(scope="session")
def cli() -> Cli:
    return Cli()


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run from the repository root, as the CLI calls do (a test that needs another folder changes it)."""
    monkeypatch.chdir(REPO)
