#!/usr/bin/env bash
# Spider held-out accuracy on one H200: gemsql's default and the tutorial's recipe on the same rows, plus
# variants, trained side by side (one 270M QLoRA run leaves the GPU mostly idle), then the base model;
# afterwards, alone on the GPU, the eval-throughput benchmark and the remaining training-throughput rows.
# Run detached after staging (../shared/device/README.md), the corpus carried in .device/data/:
#   setsid nohup bash bench/gpu_spider.sh /root/work .device/data/train_real.jsonl.gz > /root/work/job.log 2>&1 &
# Each finished piece is copied to $WORK/out at once; `bench/gpu_collect.sh` packs them for the trip back.
set -uo pipefail
source "$(dirname "$0")/gpu_env.sh" "${1:-/root/work}"
DATA=$(realpath "${2:-.device/data/train_real.jsonl.gz}")
export OMP_NUM_THREADS=2  # several processes share 16 cores

step environment
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "
from gemsql.config import ModelConfig
from gemsql.model import load_tokenizer, resolve_model, PROBE_SQL
print('model:', resolve_model('gemma-3-270m'))  # converted once, before the runs below share it
t = load_tokenizer(ModelConfig())
ids = t(PROBE_SQL).input_ids
print('tokenizer: %d tokens, BOS first: %s' % (len(ids), ids[0] == t.bos_token_id))
" || exit 1

run_spider() {  # NAME CONFIG [overrides...]: one fine-tune + evaluation on the held-out databases
  local name=$1; shift
  python3 -m gemsql run "$@" --dataset "$DATA" --output_dir "$WORK/$name" --evaluate_base false \
    > "$WORK/$name.log" 2>&1
  step "$name ended: $?"
}

step "Spider: prepare the shared split, then train side by side"
python3 -m gemsql prepare configs/spider.yaml --dataset "$DATA" --output_dir "$WORK/spider-base" || exit 1
# the recipes compared on the same 1,500 rows (the tutorial's runs ~4x slower), variants on 4,000
# (measured 2026-11-29, with schema_sample_rows 1 then the configs' value; docs/results.md)
run_spider tutorial-1500 configs/spider-tutorial.yaml --max_train_rows 1500 --schema_sample_rows 1 &
run_spider gemsql-1500 configs/spider.yaml --max_train_rows 1500 --schema_sample_rows 1 &
run_spider gemsql-4000 configs/spider.yaml --max_train_rows 4000 --schema_sample_rows 1 &
run_spider gemsql-4000-rows0 configs/spider.yaml --max_train_rows 4000 --schema_sample_rows 0 &
run_spider gemsql-4000-lr5e-4 configs/spider.yaml --max_train_rows 4000 --schema_sample_rows 1 --learning_rate 5e-4 &
python3 -m gemsql run configs/builtin-gpu.yaml --output_dir "$WORK/builtin" --max_steps 400 --eval_rows 200 \
  --evaluate_base false > "$WORK/builtin.log" 2>&1 &
( python3 -m gemsql generate configs/spider.yaml --model gemma-3-270m --input "$WORK/spider-base/data/test.jsonl" \
    --output "$WORK/spider-base/predictions.jsonl" \
  && python3 -m gemsql eval configs/spider.yaml --predictions "$WORK/spider-base/predictions.jsonl" \
    --eval_output "$WORK/spider-base/eval" ) > "$WORK/spider-base.log" 2>&1 &
wait
step "side-by-side runs done"

step "eval throughput (alone on the GPU)"
python3 bench/eval_throughput.py --model "$WORK/builtin/merged" --rows 1000 --baseline_rows 200 --batch_size 128 \
  --out "$RECORDS/eval.json"

step "train throughput: Liger on the 270M default, then random-init 1B and 4B"
python3 bench/train_throughput.py --model gemma-3-270m --tokens 100000 --work "$WORK/tt" \
  --out "$RECORDS/train_throughput.json" --configs gemsql +liger
python3 bench/train_throughput.py --model gemma-3-1b-random --tokens 60000 --work "$WORK/tt1b" \
  --out "$RECORDS/train_throughput.json" --configs gemsql tutorial
python3 bench/train_throughput.py --model gemma-3-4b-random --tokens 40000 --work "$WORK/tt4b" \
  --out "$RECORDS/train_throughput.json" --configs gemsql tutorial
step done
