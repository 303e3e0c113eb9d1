#!/usr/bin/env bash
# The training-throughput part of bench/gpu_session.sh on its own (same environment and outputs).
set -uo pipefail
source "$(dirname "$0")/gpu_env.sh" "${1:-/root/work}"
echo "=== $(date +%T) train throughput 270M"
python3 bench/train_throughput.py --model gemma-3-270m --tokens 100000 --work "$WORK/tt" --out "$RECORDS/train_throughput.json" \
  --configs tutorial +sdpa +bfd_padding_free +turn_tokens_answer_loss +no_recompute +microbatch_4x1 +liger gemsql gemsql_mb1x4
echo "=== $(date +%T) train throughput 1B"
python3 bench/train_throughput.py --model gemma-3-1b-random --tokens 80000 --work "$WORK/tt1b" --out "$RECORDS/train_throughput.json" \
  --configs tutorial gemsql gemsql_mb1x4
echo "=== $(date +%T) train throughput 4B"
python3 bench/train_throughput.py --model gemma-3-4b-random --tokens 60000 --work "$WORK/tt4b" --out "$RECORDS/train_throughput.json" \
  --configs tutorial gemsql gemsql_mb1x4
echo "=== $(date +%T) done"
