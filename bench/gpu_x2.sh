#!/usr/bin/env bash
# On nvidia-h200-x2, what the nineteenth session left to measure, most valuable first (records are written config by
# config, so a lease that ends early keeps what finished):
#   1. issue #4 (bench/gpu_compile.sh's defaults), CUDA graphs with selective recompute the default since the
#      nineteenth session: on GPU 0, bench/recompute_check.py on the 270M (the recompute's dropout masks under the
#      graphs), then the 270M's new default and old one (gemsql_no_graphs) twice each with the tutorial in the same
#      run, then the built-in epoch as shipped; on GPU 1, the 4B's new default, old one, and without the turn tokens,
#      then its new default's host syncs and profile.
#   2. issue #9 (bench/gpu_scaling.sh): the 270M's DDP pair with CUDA graphs and selective recompute (the nineteenth
#      session's one-GPU launch ran, the two-GPU one was not reached), then CUDA graphs without recompute at two
#      micro-batches a step on two GPUs (the gradient copy under DDP's no_sync; not reached either).
# About 22 minutes after staging. The nineteenth session's plan is in git at 04ea8a2. Poll back to back: a machine
# idle for 30 s is handed back.
#   setsid nohup bash bench/gpu_x2.sh /root/work > /root/work/job.log 2>&1 &
# Collect with bench/gpu_collect.sh /root/work "$OUT".
set -uo pipefail
cd "$(dirname "$0")/.."
source bench/gpu_env.sh "${1:-/root/work}"

bash bench/gpu_compile.sh "$WORK"  # its default configs
bash bench/gpu_scaling.sh "$WORK" ddp_270m16_graphs_selective_repeats ddp_270m16_cudagraphs_accum2
step "all done"
