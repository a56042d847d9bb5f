#!/usr/bin/env bash
# Regenerates the shipped synthetic chip profiles byte for byte (`make profiles` runs this after building).
# Sizes follow the paper's profiled maps (docs/sram-profiles.md): chip 1 is 2048x128 bits = 8 arrays of 512x64,
# chips 2 and 3 are 8192x128 bits = 32 arrays of 512x64. Seeds are recorded here and in each file's header.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${ACCELSIM:-target/release/accelsim}"
if [ ! -x "$BIN" ]; then
  echo "generate.sh: $BIN not found; run 'cargo build --release' (or 'make profiles') first" >&2
  exit 2
fi
"$BIN" profile generate --style chip1 --arrays 8 --seed 1 --out sram_profiles/chip1.sramprof.gz
"$BIN" profile generate --style chip2 --arrays 32 --seed 2 --out sram_profiles/chip2.sramprof.gz
"$BIN" profile generate --style chip3 --arrays 32 --seed 3 --out sram_profiles/chip3.sramprof.gz
