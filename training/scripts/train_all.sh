#!/usr/bin/env bash
# Trains the shipped Fashion-MNIST models into models/ and writes their robustness table (what `make models` runs).
# Two streams of about equal cost run side by side with one torch thread each (RandBET costs 2x per step).
# Environment: EPOCHS (default 15), DATA (Fashion-MNIST IDX dir), PY (python), SEEDS (eval chips, default 100-124).
# Resumable: rerunning continues every model from its last epoch checkpoint in training/runs/NAME/ckpt.pt.
set -uo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-training/.venv/bin/python}
EPOCHS=${EPOCHS:-15}
DATA=${DATA:-/usr/share/datasets/fashion-mnist}
SEEDS=${SEEDS:-100-124}
LOGS=training/runs
mkdir -p "$LOGS" models
export PYTHONPATH=training${PYTHONPATH:+:$PYTHONPATH}

run() {
  local name=$1
  shift
  echo "$(date +%T) start $name (log $LOGS/$name.log)"
  if "$PY" -m accelsim_train train --epochs "$EPOCHS" --data "$DATA" --out "models/$name" --no-progress "$@" \
    >"$LOGS/$name.log" 2>&1; then
    echo "$(date +%T) done  $name: $(tail -n 2 "$LOGS/$name.log" | head -n 1)"
  else
    echo "$(date +%T) FAILED $name: see $LOGS/$name.log" >&2
    return 1
  fi
}

start=$(date +%s)
(
  run fmnist-cnn-randbet-8b --method randbet --bits 8 --w-max 0.1 --p 0.01 &&
    run fmnist-cnn-normal-8b --method normal --bits 8 &&
    run fmnist-cnn-clipping-8b --method clipping --bits 8 --w-max 0.1
) &
a=$!
(
  run fmnist-cnn-randbet-4b --method randbet --bits 4 --w-max 0.1 --p 0.01 &&
    run fmnist-cnn-rquant-8b --method rquant --bits 8
) &
b=$!
status=0
wait $a || status=1
wait $b || status=1
echo "training wall time: $(($(date +%s) - start)) s"
[ $status -eq 0 ] || exit $status

if [ "${SKIP_EVAL:-0}" != 1 ]; then
  "$PY" -m accelsim_train table --data "$DATA" --seeds "$SEEDS" --threads 2 --cache training/runs/eval --out models/robustness.md \
    models/fmnist-cnn-normal-8b models/fmnist-cnn-rquant-8b models/fmnist-cnn-clipping-8b \
    models/fmnist-cnn-randbet-8b models/fmnist-cnn-randbet-4b
fi
