#!/usr/bin/env bash
# On nvidia-h200-x2: issue #9's scaling runs on both GPUs first (bench/gpu_scaling.sh, about 25 minutes; its records
# are written launch by launch, so a lease that ends early keeps the launches that finished), then one Spider job
# per GPU side by side (about 13 minutes) if the lease lasts. The eighth session ran Spider first (the shipped config
# end to end); the Spider runs left (bench/gpu_next.sh part 1) fit a one-GPU lease, the scaling runs do not.
# The second part is whatever /root/phase2.sh holds when the first ends (a later poll may write it); without one,
# the default below runs.
#   setsid nohup bash bench/gpu_x2.sh /root/work /root/work/train_real.jsonl.gz > /root/work/job.log 2>&1 &
set -uo pipefail
source "$(dirname "$0")/gpu_env.sh" "${1:-/root/work}"
DATA=$(realpath "${2:-.device/data/train_real.jsonl.gz}")
bash "$(dirname "$0")/gpu_scaling.sh" "$WORK"

if [ -f /root/phase2.sh ]; then
  step "phase 2 from /root/phase2.sh"
  bash /root/phase2.sh "$WORK" "$DATA"
else
  export OMP_NUM_THREADS=8
  # Eighth session: the shipped config end to end 38.1 % (seed-7 split 34.3 %). GPU 0: the same config trained once
  # more (how far two trainings of one config differ); GPU 1: the tables of each training prompt shuffled
  step "phase 2 (default): Spider as shipped again on GPU 0, with shuffled tables on GPU 1"
  CUDA_VISIBLE_DEVICES=0 spider spider-shipped2 &
  CUDA_VISIBLE_DEVICES=1 spider spider-shuffle --schema_shuffle true &
  wait
fi
step "all done"
