#!/usr/bin/env bash
# On nvidia-h200-x2, what the fourteenth session left to measure, most valuable first (records are written config by
# config, so a lease that ends early keeps what finished):
#   1. issue #4 (bench/gpu_compile.sh's defaults): the default with recompute as shipped now (every op of each
#      compiled layer's recompute marked MUST_RECOMPUTE) over 200,000 tokens beside the tutorial's recipe and the
#      default, its peak traced, the built-in set for one epoch with it; the 4B with and without it;
#   2. issue #9 (bench/gpu_scaling.sh): the 270M at 32 x 512 a GPU (its two-GPU half was lost with the fourteenth
#      session's lease), its 16 x 512 pair profiled (what bounds its 1.46x), then the 12B's 1.86x pair again with the
#      shipped recompute.
# The fourteenth session's plan is in git at 3bd8990. Poll back to back: a machine idle for 30 s is handed back.
#   setsid nohup bash bench/gpu_x2.sh /root/work > /root/work/job.log 2>&1 &
# Collect with bench/gpu_collect.sh /root/work "$OUT".
set -uo pipefail
cd "$(dirname "$0")/.."
source bench/gpu_env.sh "${1:-/root/work}"

bash bench/gpu_compile.sh "$WORK"  # its default configs

bash bench/gpu_scaling.sh "$WORK" ddp_270m32_compile ddp_270m16_compile_profiled fsdp2_12b16_recompute
step "all done"
