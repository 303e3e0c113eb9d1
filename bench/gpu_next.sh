#!/usr/bin/env bash
# What the next GPU session measures, most valuable first; each piece writes to $WORK/out as it ends
# (collect with bench/gpu_collect.sh). Stage first (../shared/device/README.md), packing the serving
# packages and DeepSpeed too (PyPI has DeepSpeed as source only: build its wheel here with
# `pip wheel --no-deps deepspeed` and copy it into .device/bin/wheels/ after pack.sh):
#   DEVICE_EXTRA="rich peft fastapi uvicorn starlette pydantic pydantic_core annotated-types annotated-doc
#     typing-inspection anyio sniffio h11 click httpx httpcore idna certifi hjson msgpack ninja py-cpuinfo einops
#     opentelemetry-api importlib-metadata zipp" \
#     bash ../shared/device/pack.sh .venv/bin/python
#   setsid nohup bash bench/gpu_next.sh /root/work /root/work/train_real.jsonl.gz > /root/work/job.log 2>&1 &
# Runs that only compare losses or build a model share the GPU (part 1); throughput has it to itself (part 2).
# Keep polling back to back: the machine goes back 30 s after a command returns, and this job with it.
set -uo pipefail
source "$(dirname "$0")/gpu_env.sh" "${1:-/root/work}"
DATA=$(realpath "${2:-.device/data/train_real.jsonl.gz}")
step() { echo "=== $(date +%T) $*"; }
python3 -c "from gemsql.model import resolve_model; print(resolve_model('gemma-3-270m'))" || exit 1

step "part 1 (the GPU shared; losses and models only): gemsql run on the built-in set, 400 steps, beside #8"
python3 -m gemsql run configs/builtin-gpu.yaml --output_dir "$WORK/builtin" --max_steps 400 --eval_rows 200 \
  --evaluate_base false > "$WORK/builtin.log" 2>&1 &
# #8: plain vs FSDP-QLoRA vs ZeRO-3-QLoRA on one GPU, same config and steps
for run in plain fsdp zero3; do
  python3 -m gemsql prepare configs/builtin-gpu.yaml --output_dir "$WORK/$run" --num_rows 4000 --test_size 200 \
    > "$WORK/$run.log" 2>&1
done
TRAIN=(-m gemsql train configs/builtin-gpu.yaml --num_rows 4000 --test_size 200 --max_steps 150 --logging_steps 10
       --save_strategy no --report_to none)
LAUNCH=(python3 -m accelerate.commands.launch --num_processes 1 --config_file)
timeout 400 python3 "${TRAIN[@]}" --output_dir "$WORK/plain" >> "$WORK/plain.log" 2>&1
timeout 400 "${LAUNCH[@]}" configs/accelerate/fsdp_qlora.yaml "${TRAIN[@]}" --output_dir "$WORK/fsdp" >> "$WORK/fsdp.log" 2>&1
# ZeRO-3 trains without the <end_of_turn> rows; its plain twin is the comparison
python3 -m gemsql prepare configs/builtin-gpu.yaml --output_dir "$WORK/plain-none" --num_rows 4000 --test_size 200 \
  > "$WORK/plain-none.log" 2>&1
timeout 400 python3 "${TRAIN[@]}" --output_dir "$WORK/plain-none" --stop_token_training none >> "$WORK/plain-none.log" 2>&1
timeout 400 "${LAUNCH[@]}" configs/accelerate/zero3_qlora.yaml "${TRAIN[@]}" --output_dir "$WORK/zero3" \
  --stop_token_training none >> "$WORK/zero3.log" 2>&1
grep -h "adapter:" "$WORK"/{plain,fsdp,plain-none,zero3}.log > "$OUT/fsdp_vs_plain.txt"
wait

step "part 2 (the GPU to itself), #3: eval throughput (decoding in rounds), batch sizes side by side, the tutorial loop"
timeout 420 python3 bench/eval_throughput.py --model "$WORK/builtin/merged" --rows 1000 --baseline_rows 50 \
  --batch_size 128 512 1000 --note "decoding in rounds" --profile "$OUT/eval_profile.txt" --out "$OUT/eval.json" \
  > "$WORK/eval.log" 2>&1
step "#6: serving load test with the 270M"
timeout 300 python3 bench/serve_load.py --model "$WORK/builtin/merged" --clients 32 --requests 20 \
  --out "$OUT/serve.json" > "$WORK/serve.log" 2>&1
step "#4: larger micro-batches over more tokens (cuDNN's per-shape setup amortised), each config in its own process"
for c in gemsql gemsql_pad128 gemsql_mb16x1_lr4e-4 gemsql_mb16x1_lr4e-4_pad128; do
  timeout 300 python3 bench/train_throughput.py --model gemma-3-270m --tokens 400000 --warmup 10 --work "$WORK/tt-$c" \
    --configs $c --note "400k tokens, 10 untimed steps, one process per config" --out "$OUT/train_throughput.json" \
    >> "$WORK/tt270.log" 2>&1
done
step "#4: random-init 1B, then the tutorial on the 4B"
timeout 300 python3 bench/train_throughput.py --model gemma-3-1b-random --tokens 60000 --work "$WORK/tt1b" \
  --configs gemsql gemsql_mb16x1 tutorial --out "$OUT/train_throughput.json" > "$WORK/tt1b.log" 2>&1
timeout 300 python3 bench/train_throughput.py --model gemma-3-4b-random --tokens 30000 --work "$WORK/tt4b" \
  --configs tutorial --out "$OUT/train_throughput.json" > "$WORK/tt4b.log" 2>&1
rm -rf "$WORK/tt1b" "$WORK/tt4b"

step "#5: the whole Spider training split, one epoch"
python3 -m gemsql run configs/spider.yaml --dataset "$DATA" --output_dir "$WORK/spider-all" --evaluate_base false \
  --generation_batch_size 256 > "$WORK/spider-all.log" 2>&1
step done
