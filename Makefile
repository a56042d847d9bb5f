# accelsim — the two README commands and their helpers.
#   make run   : the user's example on the shipped defaults, then the default sweep into reports/
#   make test  : every check CI runs (format, lint, Rust tests, Python companion tests)
SHELL := /bin/bash
CARGO ?= cargo
PYTHON ?= python3
VENV := training/.venv
VPY := $(VENV)/bin/python
FMNIST_DIR := /usr/share/datasets/fashion-mnist
BIN := target/release/accelsim

.PHONY: run test deps dataset venv build rust-test py-test lint models profiles bench fixtures clean

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

# Bench binaries are compiled (and linted by clippy) here but only run by `make bench`.
rust-test:
	$(CARGO) build --benches
	$(CARGO) test --lib --bins --tests
	$(CARGO) test --doc

py-test: venv
	cd training && .venv/bin/python -m pytest -q

test: dataset lint rust-test py-test

models: dataset venv build
	bash training/scripts/train_all.sh

profiles: build
	bash sram_profiles/generate.sh

bench:
	$(CARGO) bench

clean:
	$(CARGO) clean
