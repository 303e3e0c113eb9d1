#!/usr/bin/env bash
# Issue #4's throughput rows (since the eleventh session): the 270M against the tutorial's recipe in the same run, the
# random-init 4B (MFU), each config in its own process. With two GPUs (nvidia-h200-x2) the 270M rows run on GPU 0 and the 4B rows on GPU 1 side by side, each process
# bound to its GPU's half of the cores, each model's rows compared only among themselves; with one, one after the other.
# Stage as for bench/gpu_next.sh, then, detached, polling back to back:
#   setsid nohup bash bench/gpu_compile.sh /root/work > /root/work/job.log 2>&1 &
# Records: $RECORDS/train_throughput_270m.json and train_throughput_4b.json (one file per model: two writers).
set -uo pipefail
source "$(dirname "$0")/gpu_env.sh" "${1:-/root/work}"
python3 -c "from gemsql.model import resolve_model; print(resolve_model('gemma-3-270m'))" || exit 1
# What each model runs. Defaults: what the twelfth session left to measure (issue #4's memory target for the default
# of 16 x 512, lr 4e-4, compiled: the default with recompute or without LoRA dropout beside the default, the tutorial's
# recipe at 16 x 512 a micro-batch and as written; the 4B as shipped and with recompute, what recompute would cost
# its MFU if it became the default). Earlier leases, in git: the eleventh's first
# (4a35a7f) CONFIGS_270M="tutorial gemsql_mb16x1_lr4e-4_compile gemsql_mb16x1_lr4e-4 gemsql_compile gemsql"
# CONFIGS_4B="gemsql_mb16x1_compile gemsql_mb32x1_compile gemsql_mb16x1 gemsql_mb32x1" BUILTIN=1 PROFILE_4B=
# gemsql_mb16x1_compile (BUILTIN=1 adds the built-in set end to end at 16 x 512); the twelfth's (8d14d80)
# CONFIGS_270M="tutorial gemsql gemsql_mb16x1_lr4e-4 gemsql_mb16x1_lr4e-4_compile gemsql_compile" (gemsql then 4 x 512)
# CONFIGS_4B="gemsql_mb32x1_compile gemsql_mb16x1" PROFILE_4B=gemsql_mb16x1_compile.
NOTE=${NOTE:-"thirteenth GPU session: one process per config"}
CONFIGS_270M=${CONFIGS_270M:-"gemsql_recompute gemsql_no_dropout gemsql tutorial_mb16x1 tutorial"}
CONFIGS_4B=${CONFIGS_4B:-"gemsql gemsql_recompute"}
PROFILE_4B=${PROFILE_4B:-}  # a 4B config to profile after the rows (docs/benchmarks/profile_4b_*.txt has two)
BUILTIN=${BUILTIN:-0}
CORES=$(nproc)
GPUS=$(nvidia-smi -L | wc -l)

tt() {  # GPU CPUS NAME MODEL TOKENS WARMUP CONFIG [more bench flags]: one config in its own process
  local gpu=$1 cpus=$2 name=$3 model=$4 tokens=$5 warmup=$6 config=$7; shift 7
  CUDA_VISIBLE_DEVICES=$gpu OMP_NUM_THREADS=8 timeout 480 taskset -c "$cpus" python3 bench/train_throughput.py \
    --model "$model" --tokens "$tokens" --warmup "$warmup" --configs "$config" --work "$WORK/$name" \
    --note "$NOTE" --out "$RECORDS/train_throughput_$name.json" "$@" >> "$WORK/tt_$name.log" 2>&1
  step "$name $config: exit $? $(tail -1 "$WORK/tt_$name.log" | cut -c1-300)"
}

rows_270m() {  # GPU CPUS: 200,000 tokens a config (the loss compares there), 10 untimed steps (compiles included)
  local c
  for c in $CONFIGS_270M; do
    tt "$1" "$2" 270m gemma-3-270m 200000 10 $c
  done
  [ "$BUILTIN" = 1 ] || return 0
  # the built-in set end to end at 16 x 512, lr 4e-4, compiled: 100 steps are the tokens of the fourth session's 400
  # steps at 4 x 512 (87.0 % on 200 test rows, docs/builtin_gpu_400_steps.json)
  CUDA_VISIBLE_DEVICES=$1 timeout 600 taskset -c "$2" python3 -m gemsql run configs/builtin-gpu.yaml \
    --output_dir "$WORK/builtin16c" --per_device_train_batch_size 16 --learning_rate 4e-4 --torch_compile true \
    --max_steps 100 --eval_rows 200 --evaluate_base false > "$WORK/builtin16c.log" 2>&1
  step "builtin16c: exit $? $(grep -a -i "execution accuracy\|accuracy" "$WORK/builtin16c.log" | tail -2)"
}

rows_4b() {  # GPU CPUS: the 4B's MFU, then (PROFILE_4B) what bounds a config
  local c
  for c in $CONFIGS_4B; do
    tt "$1" "$2" 4b gemma-3-4b-random 120000 3 $c
  done
  [ -n "$PROFILE_4B" ] || return 0
  CUDA_VISIBLE_DEVICES=$1 timeout 300 taskset -c "$2" python3 bench/train_throughput.py --model gemma-3-4b-random \
    --tokens 60000 --warmup 3 --configs "$PROFILE_4B" --work "$WORK/4b" --profile "$WORK/tt4b-profile" \
    --note "profiled" --out "$RECORDS/tt4b_profiled.json" >> "$WORK/tt_4b.log" 2>&1
  step "4b profiled: exit $?"
}

if [ "$GPUS" -ge 2 ]; then
  step "#4 side by side: the 270M on GPU 0, the 4B on GPU 1"
  rows_270m 0 "0-$((CORES / 2 - 1))" &
  rows_4b 1 "$((CORES / 2))-$((CORES - 1))" &
  wait
else
  step "#4 one after the other on the one GPU"
  rows_270m 0 "0-$((CORES - 1))"
  rows_4b 0 "0-$((CORES - 1))"
fi
rm -rf "$WORK/4b/gemma-3-4b-random"
step "compile rows done"
