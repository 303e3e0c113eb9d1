#!/usr/bin/env bash
# On nvidia-h200-x2 or nvidia-h200: what the twenty-third session left to measure (docs/benchmarks.md; its plan, run on
# one H200, is in git at 474965a: the 270M's lean default against the tutorial in one job, 66x and 61x):
#   bench/gpu_compile.sh's defaults: the fused optimizer as a lever of its own (torch's unfused AdamW against the
#   default's fused one: two 4B rows, two 270M pairs); the 4B with turn_rows_as_columns traced by the allocator (its
#   peak fell 1.49 GiB where about 2.5 was predicted); configs/spider.yaml as shipped a second time with lean (when
#   the corpus is there);
#   with two GPUs, then: DDP as shipped (lean now), the 270M over three launch pairs (1.78x with selective).
# About 7 minutes after staging on one GPU by the twenty-third session's rows (a 270M row under a minute, a 4B row
# about one, the 4B's trace under one); Spider 5.5 more.
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
