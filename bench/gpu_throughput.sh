#!/usr/bin/env bash
# The training-throughput part of bench/gpu_session.sh on its own (same environment and outputs).
set -uo pipefail
WORK=${1:-/root/work}
OUT=$WORK/out
mkdir -p "$OUT"
export PYTHONPATH=$PWD/src:/root/site GEMMA_GGUF=${GEMMA_GGUF:-/root/models/gemma-3-270m-q4_k_m.gguf}
export GEMSQL_CACHE=$WORK/cache HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
echo "=== $(date +%T) train throughput 270M"
python3 bench/train_throughput.py --model gemma-3-270m --tokens 120000 --work "$WORK/tt" --out "$OUT/train_throughput.json" \
  --configs tutorial +sdpa +bfd_padding_free +turn_tokens_answer_loss +no_recompute +microbatch_4x1 +liger gemsql gemsql_mb1x4
echo "=== $(date +%T) train throughput 1B"
python3 bench/train_throughput.py --model gemma-3-1b-random --tokens 80000 --work "$WORK/tt1b" --out "$OUT/train_throughput.json" \
  --configs tutorial gemsql gemsql_mb1x4
echo "=== $(date +%T) train throughput 4B"
python3 bench/train_throughput.py --model gemma-3-4b-random --tokens 60000 --work "$WORK/tt4b" --out "$OUT/train_throughput.json" \
  --configs tutorial gemsql gemsql_mb1x4
echo "=== $(date +%T) done"
