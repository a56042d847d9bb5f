# accelsim — the two README commands and their helpers.
#   make run   : the user's example on the shipped defaults, then the default sweep into reports/
#   make test  : every check CI runs (format, lint, Rust tests, a sharded sweep on a real one-node Slurm, Python companion
#                and Python API tests)
#   make fuzz  : every file reader on FUZZ_CASES (default 5000) random mutations of the shipped files each
SHELL := /bin/bash
CARGO ?= cargo
PYTHON ?= python3
VENV := training/.venv
VPY := $(VENV)/bin/python
FMNIST_DIR := /usr/share/datasets/fashion-mnist
BIN := target/release/accelsim
PYVENV := python/.venv
PYVPY := $(PYVENV)/bin/python
PYDEPS := $(PYVENV)/.deps-installed

.PHONY: run test deps dataset venv build rust-test py-test python python-test lint models profiles bench fixtures clean test-slurm fuzz

# Fashion-MNIST from Debian (only when root and missing; otherwise explain).
dataset:
	@if [ ! -f $(FMNIST_DIR)/t10k-images-idx3-ubyte.gz ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist) >/dev/null; \
	  else \
	    echo "Fashion-MNIST missing: run 'sudo apt-get install dataset-fashion-mnist' (or pass --data DIR)"; \
	  fi; \
	fi

# Python venv for the PyTorch training companion (torch is ~5 GB; only `make test` and `make models` need it).
$(VPY):
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -e training[dev]

venv: $(VPY)

# The Python API (python/, pyo3 + maturin): its own small venv (numpy, pandas, matplotlib, pytest, maturin; no torch)
# with the package installed in development mode (release build of the extension; python/accelsim/*.py edits apply
# at once). Users install it with `pip install ./python` into any Python >= 3.10 environment.
$(PYDEPS): python/requirements-dev.txt
	$(PYTHON) -m venv $(PYVENV)
	$(PYVPY) -m pip install -q --upgrade pip
	$(PYVPY) -m pip install -q -r python/requirements-dev.txt
	@touch $(PYDEPS)

python: $(PYDEPS)
	VIRTUAL_ENV=$(abspath $(PYVENV)) $(PYVENV)/bin/maturin develop --release -m python/Cargo.toml

# The API against the CLI's output on the same arguments, so the CLI binary is built too.
python-test: build python
	ACCELSIM_BIN=$(abspath $(BIN)) $(PYVPY) -m pytest -q python/tests

build:
	$(CARGO) build --release --bin accelsim

run: dataset build
	$(BIN) run --hw hw_configs/14nm_sram.toml --vdd 0.85
	$(BIN) sweep --out reports

lint:
	$(CARGO) fmt --all -- --check
	@# The repository explains itself: no tracked file cites the team's outside reading (docs/references.md instead).
	@if git grep -n 'domain[.]md' -- . ; then echo "error: tracked files cite a document outside the repository (cite docs/ instead)"; exit 1; fi
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) clippy -p accelsim-python --all-targets -- -D warnings

# Bench binaries are compiled (and linted by clippy) here but only run by `make bench`.
rust-test:
	$(CARGO) build --benches
	$(CARGO) test --lib --bins --tests
	$(CARGO) test --doc

# The companion's tests drive the simulator too (ONNX import and --logits), so the release binary is built first.
py-test: venv build
	cd training && ACCELSIM_BIN=$(abspath $(BIN)) .venv/bin/python -m pytest -q

# A sharded sweep (--emit-slurm) on a throw-away one-node Slurm cluster; see tests/slurm/run.sh and docs/scale-out.md.
# Installs the Debian Slurm/munge packages when root and missing; fails under CI=true when it cannot run.
test-slurm: dataset
	$(CARGO) build --bin accelsim
	bash tests/slurm/run.sh target/debug/accelsim

test: dataset lint rust-test test-slurm py-test python-test

models: dataset venv build
	bash training/scripts/train_all.sh

profiles: build
	bash sram_profiles/generate.sh

bench:
	$(CARGO) bench

# Property-based fuzzing of every file reader (tests/fuzz_parsers.rs): `make test` runs 40 cases per reader,
# this target FUZZ_CASES per reader (overflow checks stay on: the test profile, not --release).
FUZZ_CASES ?= 5000
fuzz: dataset
	ACCELSIM_FUZZ_CASES=$(FUZZ_CASES) $(CARGO) test --test fuzz_parsers -- --nocapture

clean:
	$(CARGO) clean
