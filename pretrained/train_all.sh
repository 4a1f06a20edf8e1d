#!/usr/bin/env bash
# Train every shipped checkpoint with the homework presets, in parallel on one GPU, with this project's code.
#   bash pretrained/train_all.sh [OUT_DIR]        (default: pretrained/)
# Each job is `python -m core.pretrain NAME QUESTION DATASET`, which runs the question exactly as a background
# run would and writes OUT_DIR/NAME.safetensors plus its manifest entry (test loss, budget, wall time, device).
# The Q4 token transformers wait for their tokenizers. Logs go to OUT_DIR/logs/NAME.log.
set -u
cd "$(dirname "$0")/.."
OUT=${1:-pretrained}
PY=${PYTHON:-python3}
TOTAL=${ARLAB_TOTAL_S:-480}        # seconds all jobs together may take; a job still running then is stopped
DEADLINE=$(( $(date +%s) + TOTAL ))
mkdir -p "$OUT/logs"
export ARLAB_RUNS_DIR=${ARLAB_RUNS_DIR:-/tmp/arlab-pretrain-runs}

job() {  # NAME QUESTION DATASET [--set k=v ...]
  local name=$1; shift
  local left=$(( DEADLINE - $(date +%s) ))
  if [ "$left" -lt 20 ]; then echo "SKIP $name (out of time)"; return 1; fi
  if timeout "$left" "$PY" -m core.pretrain "$name" "$@" --device auto --out "$OUT" > "$OUT/logs/$name.log" 2>&1; then
    echo "ok   $name"
  else
    echo "FAIL $name (see $OUT/logs/$name.log)"; return 1
  fi
}

JOBS_FILE=${ARLAB_JOBS:-pretrained/jobs.txt}
while read -r line; do
  case "$line" in ''|'#'*) continue ;; esac
  # a line 'A ; B' runs B after A succeeds (a token transformer after its tokenizer)
  ( IFS=';' read -ra chain <<< "$line"; for j in "${chain[@]}"; do job $j || break; done ) &
done < "$JOBS_FILE"
wait
