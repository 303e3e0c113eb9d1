#!/usr/bin/env bash
# On nvidia-h200-x2, what the eleventh session left to measure, most valuable first (records are written config by
# config, so a lease that ends early keeps what finished):
#   1. issue #4, side by side (bench/gpu_compile.sh: the 270M on GPU 0, the 4B on GPU 1): packed rows against the
#      flattened layout on the 270M, with and without compiled layers, the tutorial in the same run; the 4B at 16 x 512
#      with packed rows, compiled or not, and 32 x 512 compiled (attention no longer grows with the square of it);
#   2. the built-in set end to end at the default batch with compiled layers and without, one per GPU (whether
#      torch_compile can become the GPU default: the eleventh session measured its speed only);
#   3. issue #9 (bench/gpu_scaling.sh): the 12B under FSDP2 at 8 x 512 compiled, then the 4B and the 270M at 16 x 512
#      compiled again, now with packed rows.
#   setsid nohup bash bench/gpu_x2.sh /root/work > /root/work/job.log 2>&1 &
# Collect with bench/gpu_collect.sh /root/work "$OUT".
set -uo pipefail
cd "$(dirname "$0")/.."
source bench/gpu_env.sh "${1:-/root/work}"

bash bench/gpu_compile.sh "$WORK"  # its default configs

step "the built-in set end to end, 400 steps at the default 4 x 512, compiled layers on GPU 0, not on GPU 1"
for g in 0 1; do
  compiled=$([ $g = 0 ] && echo true || echo false)
  ( CUDA_VISIBLE_DEVICES=$g timeout 900 python3 -m gemsql run configs/builtin-gpu.yaml --output_dir "$WORK/builtin-$compiled" \
      --torch_compile $compiled --max_steps 400 --eval_rows 200 --evaluate_base false > "$WORK/builtin-$compiled.log" 2>&1
    step "builtin compiled=$compiled: exit $?" ) &
done
wait

bash bench/gpu_scaling.sh "$WORK" fsdp2_12b8_compile fsdp2_4b16_compile ddp_270m16_compile
step "all done"
