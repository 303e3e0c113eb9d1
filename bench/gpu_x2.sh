#!/usr/bin/env bash
# On nvidia-h200-x2, twelfth session, most valuable first (records are written config by config, so a lease that ends
# early keeps what finished):
#   1. whether a larger micro-batch can be the GPU default (issue #4's 20x at equal loss): the built-in set end to end,
#      one full epoch of configs/builtin-gpu.yaml as shipped (4 x 512, lr 2e-4) on GPU 1, against 16 x 512 at lr 4e-4,
#      then the same compiled, on GPU 0 (the eleventh session compared them at 100 steps only);
#   2. issue #4's rows with packed rows (the default since the eleventh session): bench/gpu_compile.sh, the 270M beside
#      the tutorial on GPU 0 and the 4B on GPU 1;
#   3. issue #9: the 12B under FSDP2 at 8 x 512 compiled, 1 GPU vs 2 (bench/gpu_scaling.sh).
#   setsid nohup bash bench/gpu_x2.sh /root/work > /root/work/job.log 2>&1 &
# Collect with bench/gpu_collect.sh /root/work "$OUT".
set -uo pipefail
cd "$(dirname "$0")/.."
source bench/gpu_env.sh "${1:-/root/work}"
python3 -c "from gemsql.model import resolve_model; print(resolve_model('gemma-3-270m'))" || exit 1  # converted once
CORES=$(nproc)
HALF0="0-$((CORES / 2 - 1))" HALF1="$((CORES / 2))-$((CORES - 1))"

e2e() {  # GPU CPUS NAME [overrides...]: configs/builtin-gpu.yaml, one epoch, 1,000 test rows, into $WORK/NAME
  local gpu=$1 cpus=$2 name=$3; shift 3
  CUDA_VISIBLE_DEVICES=$gpu timeout 900 taskset -c "$cpus" python3 -m gemsql run configs/builtin-gpu.yaml \
    --output_dir "$WORK/$name" --evaluate_base false "$@" > "$WORK/$name.log" 2>&1
  step "$name: exit $? $(grep -a -i "accuracy" "$WORK/$name.log" | tail -2 | tr '\n' ' ')"
}

step "the built-in set end to end: 16 x 512 at lr 4e-4 on GPU 0 (eager, then compiled), the shipped 4 x 512 on GPU 1"
( e2e 0 "$HALF0" e2e-16x512 --per_device_train_batch_size 16 --learning_rate 4e-4
  e2e 0 "$HALF0" e2e-16x512-compiled --per_device_train_batch_size 16 --learning_rate 4e-4 --torch_compile true ) &
e2e 1 "$HALF1" e2e-4x512 &
wait

CONFIGS_270M="tutorial gemsql gemsql_mb16x1_lr4e-4 gemsql_mb16x1_lr4e-4_compile gemsql_compile" \
  CONFIGS_4B="gemsql_mb32x1_compile gemsql_mb16x1" bash bench/gpu_compile.sh "$WORK"

bash bench/gpu_scaling.sh "$WORK" fsdp2_12b8_compile
step "all done"
