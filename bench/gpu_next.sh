#!/usr/bin/env bash
# What the next GPU session should measure, most valuable first; each piece writes to $WORK/out as it
# ends (collect with bench/gpu_collect.sh). Stage first (../shared/device/README.md), packing the serving
# packages too:  DEVICE_EXTRA="rich peft fastapi uvicorn starlette pydantic httpx" bash ../shared/device/pack.sh .venv/bin/python
#   setsid nohup bash bench/gpu_next.sh /root/work /root/work/train_real.jsonl.gz > /root/work/job.log 2>&1 &
set -uo pipefail
source "$(dirname "$0")/gpu_env.sh" "${1:-/root/work}"
DATA=$(realpath "${2:-.device/data/train_real.jsonl.gz}")
step() { echo "=== $(date +%T) $*"; }
python3 -c "from gemsql.model import resolve_model; print(resolve_model('gemma-3-270m'))" || exit 1

step "#8: FSDP-QLoRA through accelerate on one GPU vs the plain run (same config, same steps)"
python3 -m gemsql prepare configs/builtin-gpu.yaml --output_dir "$WORK/plain" --num_rows 4000 --test_size 200
python3 -m gemsql prepare configs/builtin-gpu.yaml --output_dir "$WORK/fsdp" --num_rows 4000 --test_size 200
python3 -m gemsql train configs/builtin-gpu.yaml --output_dir "$WORK/plain" --num_rows 4000 --test_size 200 \
  --max_steps 150 --logging_steps 10 --save_strategy no > "$WORK/plain.log" 2>&1
accelerate launch --config_file configs/accelerate/fsdp_qlora.yaml --num_processes 1 -m gemsql train \
  configs/builtin-gpu.yaml --output_dir "$WORK/fsdp" --num_rows 4000 --test_size 200 --max_steps 150 \
  --logging_steps 10 --save_strategy no > "$WORK/fsdp.log" 2>&1
grep -h "adapter:" "$WORK/plain.log" "$WORK/fsdp.log" | tee "$OUT/fsdp_vs_plain.txt"

step "#3: eval throughput, one model, batch sizes side by side"
python3 -m gemsql run configs/builtin-gpu.yaml --output_dir "$WORK/builtin" --max_steps 400 --eval_rows 200 \
  --evaluate_base false > "$WORK/builtin.log" 2>&1
for bs in 128 512 1000; do
  python3 bench/eval_throughput.py --model "$WORK/builtin/merged" --rows 1000 --baseline_rows 100 --batch_size $bs \
    --out "$OUT/eval.json"
done

step "#6: serving load test with the 270M"
python3 bench/serve_load.py --model "$WORK/builtin/merged" --clients 32 --requests 20 --out "$OUT/serve.json"

step "#5: the whole Spider training split, one epoch, then two"
python3 -m gemsql run configs/spider.yaml --dataset "$DATA" --output_dir "$WORK/gemsql-all" --evaluate_base false \
  > "$WORK/gemsql-all.log" 2>&1 &
python3 -m gemsql run configs/spider.yaml --dataset "$DATA" --output_dir "$WORK/gemsql-all-2ep" --num_train_epochs 2 \
  --evaluate_base false > "$WORK/gemsql-all-2ep.log" 2>&1 &
wait

step "#4: random-init 1B and 4B"
python3 bench/train_throughput.py --model gemma-3-1b-random --tokens 60000 --work "$WORK/tt1b" \
  --out "$OUT/train_throughput.json" --configs gemsql tutorial
python3 bench/train_throughput.py --model gemma-3-4b-random --tokens 40000 --work "$WORK/tt4b" \
  --out "$OUT/train_throughput.json" --configs gemsql tutorial
step done
