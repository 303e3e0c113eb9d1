#!/usr/bin/env bash
# On nvidia-h200-x2: one Spider job per GPU side by side (about 13 minutes), then issue #9's scaling runs on both
# GPUs (bench/gpu_scaling.sh, about 20 minutes; its records are written launch by launch, so a lease that ends
# early keeps the launches that finished). Spider goes first: a whole run of it fits, a cut scaling run keeps its records.
# The first part is whatever /root/phase1.sh holds when the job starts; without one, the default below runs.
#   setsid nohup bash bench/gpu_x2.sh /root/work /root/work/train_real.jsonl.gz > /root/work/job.log 2>&1 &
set -uo pipefail
source "$(dirname "$0")/gpu_env.sh" "${1:-/root/work}"
DATA=$(realpath "${2:-.device/data/train_real.jsonl.gz}")

if [ -f /root/phase1.sh ]; then
  step "phase 1 from /root/phase1.sh"
  bash /root/phase1.sh "$WORK" "$DATA"
else
  export OMP_NUM_THREADS=8
  # Eighth session: the shipped config end to end 38.1 % (seed-7 split 34.3 %). GPU 0: the same config trained once
  # more (how far two trainings of one config differ); GPU 1: the tables of each training prompt shuffled
  step "phase 1 (default): Spider as shipped again on GPU 0, with shuffled tables on GPU 1"
  CUDA_VISIBLE_DEVICES=0 spider spider-shipped2 &
  CUDA_VISIBLE_DEVICES=1 spider spider-shuffle --schema_shuffle true &
  wait
fi
bash "$(dirname "$0")/gpu_scaling.sh" "$WORK"
step "all done"
