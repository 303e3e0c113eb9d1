#!/usr/bin/env bash
# On nvidia-h200-x2, what the twentieth session left to measure, most valuable first (records are written config by
# config, so a lease that ends early keeps what finished):
#   1. issue #4 (bench/gpu_compile.sh's defaults): on GPU 0, bench/recompute_check.py on the 270M (its dropout check
#      with CUDA graphs too), then configs/spider.yaml as shipped on the Spider corpus (CUDA graphs with selective
#      recompute, never run on it); on GPU 1, the 1B against the tutorial with today's levers, then the tutorial's
#      recipe on the 4B at 16 x 512 tokens a micro-batch beside the 4B's default (the memory target's comparison).
#   2. bench/gpu_scaling.sh: the 270M's DDP pair as shipped now (CUDA graphs with selective recompute, the DDP default
#      since the twentieth session) at two micro-batches a step, median of three (one launch each in the twentieth).
# About 22 minutes after staging. The twentieth session's plan is in git at 657f9db. Poll back to back: a machine
# idle for 30 s is handed back. The corpus travels in .device/data (carried with the last staging call) and is copied
# to WORK before the repository copy (which leaves .device out):
#   cp .device/data/train_real.jsonl.gz /root/work/ && ... setsid nohup bash bench/gpu_x2.sh /root/work > /root/work/job.log 2>&1 &
# Collect with bench/gpu_collect.sh /root/work "$OUT".
set -uo pipefail
cd "$(dirname "$0")/.."
source bench/gpu_env.sh "${1:-/root/work}"

corpus=$WORK/train_real.jsonl.gz
[ -f "$corpus" ] || { step "no Spider corpus at $corpus: its run is left out"; corpus=; }
SPIDER_DATA=$corpus bash bench/gpu_compile.sh "$WORK"  # its default configs
bash bench/gpu_scaling.sh "$WORK" ddp_270m16_default_accum2
step "all done"
