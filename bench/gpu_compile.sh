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
# What each model runs. Defaults: what the fourteenth session left to measure (issue #4: the default with recompute
# as shipped now, every op of each compiled layer's recompute marked MUST_RECOMPUTE, 1.95 GiB on a short traced run,
# over 200,000 tokens beside the tutorial's recipe and the default; its peak traced again; the built-in set for one
# epoch with it (BUILTIN=1: the accuracy the default would keep if recompute became it); the 4B with and without it).
# Earlier leases, in git: the eleventh's first (4a35a7f)
# CONFIGS_270M="tutorial gemsql_mb16x1_lr4e-4_compile gemsql_mb16x1_lr4e-4 gemsql_compile gemsql"
# CONFIGS_4B="gemsql_mb16x1_compile gemsql_mb32x1_compile gemsql_mb16x1 gemsql_mb32x1" PROFILE_4B=gemsql_mb16x1_compile;
# the twelfth's (8d14d80) CONFIGS_270M="tutorial gemsql gemsql_mb16x1_lr4e-4 gemsql_mb16x1_lr4e-4_compile
# gemsql_compile" CONFIGS_4B="gemsql_mb32x1_compile gemsql_mb16x1" PROFILE_4B=gemsql_mb16x1_compile; the thirteenth's
# (f59ae87) CONFIGS_270M="gemsql_recompute gemsql_no_dropout gemsql tutorial_mb16x1 tutorial"
# CONFIGS_4B="gemsql gemsql_recompute" BUILTIN=0; the fourteenth's (3bd8990) CONFIGS_270M="gemsql_recompute gemsql
# tutorial_mb16x1 tutorial gemsql_1x512" MEMORY_270M="gemsql_recompute gemsql" CONFIGS_4B="gemsql_recompute gemsql".
NOTE=${NOTE:-"fifteenth GPU session: one process per config; recompute marked by gemsql's policy"}
CONFIGS_270M=${CONFIGS_270M:-"gemsql_recompute gemsql tutorial_mb16x1 tutorial"}
CONFIGS_4B=${CONFIGS_4B:-"gemsql_recompute gemsql"}
MEMORY_270M=${MEMORY_270M:-"gemsql_recompute"}  # traced peaks, 40k tokens, after the rows (their own note)
PROFILE_4B=${PROFILE_4B:-}  # a 4B config to profile after the rows (docs/benchmarks/profile_4b_*.txt has two)
BUILTIN=${BUILTIN:-1}
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
  [ -z "$MEMORY_270M" ] || {
    CUDA_VISIBLE_DEVICES=$1 OMP_NUM_THREADS=8 timeout 480 taskset -c "$2" python3 bench/train_throughput.py \
      --model gemma-3-270m --tokens 40000 --warmup 3 --configs $MEMORY_270M --work "$WORK/270m" --memory "$WORK/memory" \
      --note "$NOTE, allocator traced (--memory), 40k tokens" --out "$RECORDS/train_throughput_270m_traced.json" \
      >> "$WORK/tt_270m.log" 2>&1
    step "270m traced: exit $? $(head -1 "$WORK"/memory/memory_*.txt 2>/dev/null | tr '\n' ' ' | cut -c1-400)"
  }
}

builtin_epoch() {  # GPU CPUS: the built-in set end to end for one epoch as shipped but with recompute (inside the
  # compiled layers): the twelfth session's one epoch of the default scored 98.2 % in 2.21 minutes
  # (docs/builtin_gpu_epoch_batches.json)
  [ "$BUILTIN" = 1 ] || return 0
  CUDA_VISIBLE_DEVICES=$1 timeout 600 taskset -c "$2" python3 -m gemsql run configs/builtin-gpu.yaml \
    --output_dir "$WORK/builtin_recompute" --gradient_checkpointing true --evaluate_base false \
    > "$WORK/builtin_recompute.log" 2>&1
  step "builtin_recompute: exit $? $(grep -a -i "execution accuracy\|accuracy" "$WORK/builtin_recompute.log" | tail -2)"
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
  # the built-in epoch follows the 4B's rows on GPU 1 (they end first), not the 270M's longer list on GPU 0
  { rows_4b 1 "$((CORES / 2))-$((CORES - 1))"; builtin_epoch 1 "$((CORES / 2))-$((CORES - 1))"; } &
  wait
else
  step "#4 one after the other on the one GPU"
  rows_270m 0 "0-$((CORES - 1))"
  rows_4b 0 "0-$((CORES - 1))"
  builtin_epoch 0 "0-$((CORES - 1))"
fi
rm -rf "$WORK/4b/gemma-3-4b-random"
step "compile rows done"
