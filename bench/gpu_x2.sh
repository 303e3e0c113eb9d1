#!/usr/bin/env bash
# On nvidia-h200-x2, what the eighteenth session left to measure, most valuable first (records are written config by
# config, so a lease that ends early keeps what finished):
#   1. issue #4 (bench/gpu_compile.sh's defaults): on GPU 0, CUDA graphs with gradient accumulation
#      (bench/cudagraphs_check.py: the accumulated gradients with gemsql's copy, without it and in the default mode),
#      then the built-in epoch with CUDA graphs and as shipped side by side; on GPU 1, the 4B with CUDA graphs again
#      (34.9 % MFU in the eighteenth session), at 32 x 512 with them, and as shipped.
#   2. issue #9 (bench/gpu_scaling.sh): the 270M's DDP pair with CUDA graphs (the eighteenth session's one-GPU launches
#      stopped on the gradient overwrite that gemsql now copies around; two GPUs ran at 202,385 tokens/s), then with
#      two micro-batches a step on two GPUs (the copy under DDP's no_sync).
# About 19 minutes after staging. The eighteenth session's plan is in git at 0a067c3. Poll back to back: a machine
# idle for 30 s is handed back.
#   setsid nohup bash bench/gpu_x2.sh /root/work > /root/work/job.log 2>&1 &
# Collect with bench/gpu_collect.sh /root/work "$OUT".
set -uo pipefail
cd "$(dirname "$0")/.."
source bench/gpu_env.sh "${1:-/root/work}"

bash bench/gpu_compile.sh "$WORK"  # its default configs
bash bench/gpu_scaling.sh "$WORK" ddp_270m16_cudagraphs_repeats ddp_270m16_cudagraphs_accum2
step "all done"
