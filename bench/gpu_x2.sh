#!/usr/bin/env bash
# On nvidia-h200-x2: issue #9's scaling pieces first (bench/gpu_scaling.sh, all of them, about 20 minutes; records are
# written launch by launch, so a lease that ends early keeps what finished), then Spider, one job per GPU, if the lease
# lasts. The Spider part is whatever /root/phase2.sh holds when the first ends (a later poll may write it); without
# one, the default below runs.
#   setsid nohup bash bench/gpu_x2.sh /root/work /root/work/train_real.jsonl.gz > /root/work/job.log 2>&1 &
# Collect with bench/gpu_collect.sh /root/work "$OUT" (a command that sources bench/gpu_env.sh still has the device
# tool's $OUT: the records folder is $RECORDS).
set -uo pipefail
source "$(dirname "$0")/gpu_env.sh" "${1:-/root/work}"
DATA=$(realpath "${2:-.device/data/train_real.jsonl.gz}")
bash "$(dirname "$0")/gpu_scaling.sh" "$WORK"

if [ -f /root/phase2.sh ]; then
  step "phase 2 from /root/phase2.sh"
  bash /root/phase2.sh "$WORK" "$DATA"
else
  export OMP_NUM_THREADS=8
  # Tenth session, end to end: configs/spider.yaml with shuffled training tables 42.2 % on its split (39.4 % in order),
  # 31.4 % on the seed-7 split. Here the shipped config trained once more on each split: how far two trainings of it
  # differ
  step "phase 2 (default): Spider as shipped once more on both splits, one job per GPU"
  CUDA_VISIBLE_DEVICES=0 spider spider-s42-again &
  CUDA_VISIBLE_DEVICES=1 spider spider-s7-again --seed 7 &
  wait
fi
step "all done"
