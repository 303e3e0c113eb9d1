#!/usr/bin/env bash
# On nvidia-h200-x2, what the twelfth session left to measure, most valuable first (records are written config by
# config, so a lease that ends early keeps what finished):
#   1. issue #4's memory target: the tutorial's recipe at 16 x 512 a micro-batch peaked at 3.76 GiB, the new default
#      (16 x 512, lr 4e-4, compiled) at 7.28 (twelfth session, 40k tokens): the default with activation recompute
#      (gemsql_recompute) and without LoRA dropout (gemsql_no_dropout) beside the default, the tutorial at 16 x 512
#      and the tutorial as written (speed, loss and memory after 200k tokens), the 270M on GPU 0; the 4B at the
#      default on GPU 1 (its MFU as shipped);
#   2. issue #9 (bench/gpu_scaling.sh) with packed rows and compiled layers: the 270M under DDP and the 4B under FSDP2 at
#      16 x 512, then the 12B under FSDP2 at 8 x 512 over 200,000 tokens (the twelfth session timed six steps).
# The twelfth session's plan (the built-in set for one epoch at 4 x 512 and 16 x 512, eager and compiled, the
# throughput rows with packed rows, the 12B's first pair) is in git at 8d14d80.
#   setsid nohup bash bench/gpu_x2.sh /root/work > /root/work/job.log 2>&1 &
# Collect with bench/gpu_collect.sh /root/work "$OUT".
set -uo pipefail
cd "$(dirname "$0")/.."
source bench/gpu_env.sh "${1:-/root/work}"

bash bench/gpu_compile.sh "$WORK"  # its default configs

bash bench/gpu_scaling.sh "$WORK" ddp_270m16_compile fsdp2_4b16_compile fsdp2_12b8_compile_long
step "all done"
