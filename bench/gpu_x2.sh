#!/usr/bin/env bash
# On nvidia-h200-x2 or nvidia-h200: what the twenty-second session left to measure for issue #4 (lean recompute became
# the default there: every model under the tutorial's peak at 16 x 512, at 0.93x to 0.97x selective's tokens/s):
#   bench/gpu_compile.sh's defaults: the 4B with turn_rows_as_columns (the turn rows' head gradient gone) against
#   the default; the 270M's tutorial row and the default (lean) against the turn columns and selective in one job;
#   the built-in epoch as shipped and with the turn columns; configs/spider.yaml as shipped a second time with lean
#   (when the corpus is there); with two GPUs the 4B's rows on GPU 1 beside the 270M's on GPU 0;
#   with two GPUs, then: DDP as shipped (lean now), the 270M over three launch pairs (1.78x with selective).
# About 17 minutes after staging on one GPU without the corpus (Spider: 5.5 more; leave it out there), 21 on two.
# The twenty-second session's plan is in git at 1af3576. Poll back to back: a machine idle for 30 s is handed back.
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
