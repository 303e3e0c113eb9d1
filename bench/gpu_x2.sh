#!/usr/bin/env bash
# On nvidia-h200-x2, what the fifteenth session left to measure, most valuable first (records are written config by
# config, so a lease that ends early keeps what finished):
#   1. issue #4 (bench/gpu_compile.sh's defaults): recompute selective (the attention's and every other 4-bit
#      matmul's output kept) over 200,000 tokens beside full recompute, no recompute and the tutorial, its peak
#      traced, the 4B with it; the built-in set for one epoch with no, full and selective recompute (does recompute
#      cost accuracy? 95.9 % against 99.1 %, one run each, in the fifteenth session);
#   2. issue #9 (bench/gpu_scaling.sh): the 270M's 16 x 512 DDP pair unprofiled, three launches each over 800,000
#      tokens (1.46x, 1.63x and 1.96x so far, one pair each, under different conditions).
# The fifteenth session's plan is in git at be8e759. Poll back to back: a machine idle for 30 s is handed back.
#   setsid nohup bash bench/gpu_x2.sh /root/work > /root/work/job.log 2>&1 &
# Collect with bench/gpu_collect.sh /root/work "$OUT".
set -uo pipefail
cd "$(dirname "$0")/.."
source bench/gpu_env.sh "${1:-/root/work}"

bash bench/gpu_compile.sh "$WORK"  # its default configs

bash bench/gpu_scaling.sh "$WORK" ddp_270m16_compile_repeats
step "all done"
