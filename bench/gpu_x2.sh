#!/usr/bin/env bash
# On nvidia-h200-x2 or nvidia-h200: what the twenty-fourth session left to measure (docs/benchmarks.md; its plan, run on
# one H200, is in git at e3c50b8: the fused optimizer on the GPU, 1.01x to 1.03x; turn columns' 4B peak traced; Spider
# as shipped with lean, 38.6 %):
#   bench/gpu_compile.sh's defaults: the tutorial's recipe against the default on the 270M (the 20x target on this
#   lease's machine: the twenty-fourth's ran the default at 0.71x to 0.87x the twenty-third's), the 4B as shipped;
#   configs/spider.yaml as shipped a third time with lean (when the corpus is there: 42.3 and 38.6 % so far);
#   with two GPUs, then: DDP as shipped (lean now, not measured under DDP), the 270M over three launch pairs (1.78x
#   with selective).
# About 4 minutes after staging on one GPU by the twenty-fourth session's rows (a 270M row about a minute, the
# tutorial's about three, a 4B row about one); Spider 8 more.
# Poll back to back: a machine idle for 30 s is handed back.
# The corpus travels in .device/data (carried with the last staging call) and is copied to WORK before the repository
# copy (which leaves .device out):
#   cp .device/data/train_real.jsonl.gz /root/work/ && ... setsid nohup bash bench/gpu_x2.sh /root/work > /root/work/job.log 2>&1 &
# Collect with bench/gpu_collect.sh /root/work "$OUT".
set -uo pipefail
cd "$(dirname "$0")/.."
source bench/gpu_env.sh "${1:-/root/work}"

corpus=$WORK/train_real.jsonl.gz
[ -f "$corpus" ] || { step "no Spider corpus at $corpus: its run is left out"; corpus=; }
SPIDER_DATA=$corpus bash bench/gpu_compile.sh "$WORK"  # its default configs
[ "$(nvidia-smi -L | wc -l)" -lt 2 ] || bash bench/gpu_scaling.sh "$WORK" ddp_270m16_default_accum2
step "all done"
