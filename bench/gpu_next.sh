#!/usr/bin/env bash
# What the next GPU session measures, most valuable first; each piece writes to $WORK/out as it ends
# (collect with bench/gpu_collect.sh). Stage first (../shared/device/README.md), packing the serving
# packages and DeepSpeed too (PyPI has DeepSpeed as source only: build its wheel here with
# `pip wheel --no-deps deepspeed` and copy it into .device/bin/wheels/ after pack.sh):
#   DEVICE_EXTRA="rich peft fastapi uvicorn starlette pydantic pydantic_core annotated-types annotated-doc
#     typing-inspection anyio sniffio h11 click httpx httpcore idna certifi hjson msgpack ninja py-cpuinfo einops
#     opentelemetry-api" \
#     bash ../shared/device/pack.sh .venv/bin/python
#   setsid nohup bash bench/gpu_next.sh /root/work /root/work/train_real.jsonl.gz > /root/work/job.log 2>&1 &
# Part 1 trains side by side (a 270M QLoRA run leaves the GPU mostly idle): Spider variants on the whole
# training split. Part 2 runs one thing at a time: each
# throughput figure has the GPU to itself.
# Two GPUs lent (nvidia-h200-x2)? Run bench/gpu_scaling.sh there first (issue #9).
# Keep polling back to back: the machine goes back 30 s after a command returns, and this job with it.
set -uo pipefail
source "$(dirname "$0")/gpu_env.sh" "${1:-/root/work}"
DATA=$(realpath "${2:-.device/data/train_real.jsonl.gz}")
export OMP_NUM_THREADS=2  # part 1: four processes share 16 cores
step() { echo "=== $(date +%T) $*"; }
python3 -c "from gemsql.model import resolve_model; print(resolve_model('gemma-3-270m'))" || exit 1

spider() {  # NAME [overrides...]: configs/spider.yaml on the whole training split, scored greedy and guided
  local name=$1; shift
  timeout 1020 python3 -m gemsql run configs/spider.yaml --dataset "$DATA" --output_dir "$WORK/$name" \
    --evaluate_base false --generation_batch_size 256 --execution_guided_beams 4 "$@" > "$WORK/$name.log" 2>&1
  step "$name ended: $?"
}

step "part 1 (the GPU shared): #5 Spider on the whole training split; the eval scores greedy and 4-beam guided"
spider spider-all &                                                          # the shipped config, one epoch
spider spider-fast --per_device_train_batch_size 8 --learning_rate 4e-4 &   # #4's fast config: as accurate?
spider spider-fast-2ep --per_device_train_batch_size 8 --learning_rate 4e-4 --num_train_epochs 2 &
spider spider-fast-2ep-lora64 --per_device_train_batch_size 8 --learning_rate 4e-4 --num_train_epochs 2 \
  --quantization none --lora_r 64 --lora_alpha 64 &                         # more capacity, no 4-bit base
wait
export OMP_NUM_THREADS=8

step "part 2 (the GPU to itself): #4 training levers, 100k tokens each in its own process, the tutorial in the same run"
for c in tutorial gemsql gemsql_no_cudnn gemsql_mb16x1_lr4e-4 gemsql_mb16x1_lr4e-4_no_cudnn; do
  timeout 240 python3 bench/train_throughput.py --model gemma-3-270m --tokens 100000 --warmup 10 --work "$WORK/tt-$c" \
    --configs $c --note "100k tokens, 10 untimed steps, one process per config" --out "$OUT/train_throughput.json" \
    >> "$WORK/tt270.log" 2>&1
  rm -rf "$WORK/tt-$c"
done
step "#4: the 4B with and without cuDNN attention"
for c in gemsql_mb16x1 gemsql_mb16x1_no_cudnn; do
  timeout 240 python3 bench/train_throughput.py --model gemma-3-4b-random --tokens 60000 --work "$WORK/tt4b" \
    --configs $c --note "one process per config" --out "$OUT/train_throughput.json" >> "$WORK/tt4b.log" 2>&1
done
rm -rf "$WORK/tt4b"
step "#3/#4: evaluation with and without cuDNN's attention kernels (decoding builds a cuDNN plan per cache length)"
timeout 300 python3 bench/eval_throughput.py --model "$WORK/spider-fast/merged" --rows 512 --baseline_rows 20 \
  --batch_size 128 --cudnn_attention on off --max_new_tokens 128 --note "fifth GPU session, a Spider model on built-in rows" \
  --out "$OUT/eval.json" > "$WORK/eval.log" 2>&1

step done
