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
# Everything runs one at a time: each throughput figure has the GPU to itself.
# Two GPUs lent (nvidia-h200-x2)? Run bench/gpu_scaling.sh there first (issue #9).
# Keep polling back to back: the machine goes back 30 s after a command returns, and this job with it.
set -uo pipefail
source "$(dirname "$0")/gpu_env.sh" "${1:-/root/work}"
DATA=$(realpath "${2:-.device/data/train_real.jsonl.gz}")
step() { echo "=== $(date +%T) $*"; }
python3 -c "from gemsql.model import resolve_model; print(resolve_model('gemma-3-270m'))" || exit 1

step "a model to evaluate and serve: gemsql run on the built-in set, 400 steps (the GPU to itself from here on)"
python3 -m gemsql run configs/builtin-gpu.yaml --output_dir "$WORK/builtin" --max_steps 400 --eval_rows 200 \
  --evaluate_base false > "$WORK/builtin.log" 2>&1

step "#3/#4: evaluation with and without cuDNN's attention kernels (decoding builds a cuDNN plan per cache length)"
timeout 420 python3 bench/eval_throughput.py --model "$WORK/builtin/merged" --rows 1000 --baseline_rows 20 \
  --batch_size 1000 128 --cudnn_attention on off --note "fifth GPU session" --out "$OUT/eval.json" > "$WORK/eval.log" 2>&1

step "#4: training levers, 200k tokens each in its own process, with the tutorial in the same run"
for c in gemsql gemsql_no_cudnn gemsql_nopad_no_cudnn gemsql_mb16x1_lr4e-4 gemsql_mb16x1_lr4e-4_no_cudnn tutorial; do
  timeout 300 python3 bench/train_throughput.py --model gemma-3-270m --tokens 200000 --warmup 10 --work "$WORK/tt-$c" \
    --configs $c --note "200k tokens, 10 untimed steps, one process per config" --out "$OUT/train_throughput.json" \
    >> "$WORK/tt270.log" 2>&1
  rm -rf "$WORK/tt-$c"
done
for c in gemsql_mb16x1 gemsql_mb16x1_no_cudnn; do
  timeout 300 python3 bench/train_throughput.py --model gemma-3-4b-random --tokens 60000 --work "$WORK/tt4b" \
    --configs $c --note "one process per config" --out "$OUT/train_throughput.json" >> "$WORK/tt4b.log" 2>&1
done
rm -rf "$WORK/tt4b"

step "#5: the whole Spider training split, one epoch, shipped config"
python3 -m gemsql run configs/spider.yaml --dataset "$DATA" --output_dir "$WORK/spider-all" --evaluate_base false \
  --generation_batch_size 256 > "$WORK/spider-all.log" 2>&1
step "#5: the same model with execution-guided decoding (4 beams for answers that do not run)"
python3 -m gemsql generate configs/spider.yaml --model "$WORK/spider-all/merged" --input "$WORK/spider-all/data/test.jsonl" \
  --output "$WORK/spider-all/guided/predictions.jsonl" --execution_guided_beams 4 --generation_batch_size 256 \
  > "$WORK/spider-all-guided.log" 2>&1
python3 -m gemsql eval configs/spider.yaml --predictions "$WORK/spider-all/guided/predictions.jsonl" \
  --eval_output "$WORK/spider-all/eval/guided" >> "$WORK/spider-all-guided.log" 2>&1
step "#4/#5: the same with the fast config (8 x 1024 tokens a micro-batch = 16 x 512, lr 4e-4): is its accuracy as good?"
python3 -m gemsql run configs/spider.yaml --dataset "$DATA" --output_dir "$WORK/spider-all-mb16" --evaluate_base false \
  --generation_batch_size 256 --per_device_train_batch_size 8 --learning_rate 4e-4 > "$WORK/spider-all-mb16.log" 2>&1
step "#6: serving load test with the 270M (why answers were refused: not_answered)"
for beams in 0 4; do
  timeout 300 python3 bench/serve_load.py --model "$WORK/builtin/merged" --clients 32 --requests 20 \
    --execution_guided_beams $beams --out "$OUT/serve.json" >> "$WORK/serve.log" 2>&1
done

step done
