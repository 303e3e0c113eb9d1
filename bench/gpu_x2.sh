#!/usr/bin/env bash
# On nvidia-h200-x2, what the thirteenth session left to measure, most valuable first (records are written config by
# config, so a lease that ends early keeps what finished):
#   1. issue #4's memory target with recompute now inside the compiled layers (bench/gpu_compile.sh's defaults: the
#      270M's rows against the tutorial's at 16 x 512 a micro-batch, their peaks traced, the built-in set for one
#      epoch with recompute; the 4B's MFU with and without recompute on GPU 1);
#   2. issue #9 (bench/gpu_scaling.sh): the 12B at 16 x 512 a GPU with recompute, the 270M at 32 x 512 a GPU, then
#      the 270M's pair at 16 x 512 profiled (what bounds its 1.46x).
# The thirteenth session's plan is in git at f59ae87.
#   setsid nohup bash bench/gpu_x2.sh /root/work > /root/work/job.log 2>&1 &
# Collect with bench/gpu_collect.sh /root/work "$OUT".
set -uo pipefail
cd "$(dirname "$0")/.."
source bench/gpu_env.sh "${1:-/root/work}"

bash bench/gpu_compile.sh "$WORK"  # its default configs

bash bench/gpu_scaling.sh "$WORK" fsdp2_12b16_recompute ddp_270m32_compile ddp_270m16_compile_profiled
step "all done"
