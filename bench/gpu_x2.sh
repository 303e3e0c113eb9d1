#!/usr/bin/env bash
# On nvidia-h200-x2: issue #9 first (bench/gpu_scaling.sh, both GPUs), then one job per GPU side by side.
# The second part is whatever /root/phase2.sh holds when the first ends (a later poll may write it, with a
# newer copy of the repository); without one, the default below runs.
#   setsid nohup bash bench/gpu_x2.sh /root/work /root/work/train_real.jsonl.gz > /root/work/job.log 2>&1 &
set -uo pipefail
WORK=${1:-/root/work}
DATA=$(realpath "${2:-.device/data/train_real.jsonl.gz}")
step() { echo "=== $(date +%T) $*"; }
bash "$(dirname "$0")/gpu_scaling.sh" "$WORK"

if [ -f /root/phase2.sh ]; then
  step "phase 2 from /root/phase2.sh"
  bash /root/phase2.sh "$WORK" "$DATA"
else
  step "phase 2 (default): Spider three epochs on GPU 0, lr 2e-4 at two epochs on GPU 1"
  source "$(dirname "$0")/gpu_env.sh" "$WORK"
  export OMP_NUM_THREADS=8
  for job in "0 spider-3ep --num_train_epochs 3" "1 spider-2ep-lr2e-4 --learning_rate 2e-4"; do
    set -- $job
    gpu=$1 name=$2; shift 2
    ( CUDA_VISIBLE_DEVICES=$gpu timeout 1080 python3 -m gemsql run configs/spider.yaml --dataset "$DATA" \
        --output_dir "$WORK/$name" --evaluate_base false "$@" > "$WORK/$name.log" 2>&1; step "$name ended: $?" ) &
  done
  wait
  tar czf "$OUT/spider-3ep-adapter.tgz" -C "$WORK/spider-3ep" adapter
  step "the three-epoch model: execution vote on GPU 0, an 8-beam retry on GPU 1"
  for job in "0 vote4 --execution_vote true" "1 beams8 --execution_guided_beams 8"; do
    set -- $job
    gpu=$1 name=$2; shift 2
    ( export CUDA_VISIBLE_DEVICES=$gpu; m=$WORK/spider-3ep
      python3 -m gemsql generate configs/spider.yaml --model "$m/merged" --input "$m/data/test.jsonl" \
        --output "$m/eval/$name/predictions.jsonl" "$@" > "$WORK/spider-3ep-$name.log" 2>&1 \
      && python3 -m gemsql eval configs/spider.yaml --predictions "$m/eval/$name/predictions.jsonl" \
        --eval_output "$m/eval/$name" >> "$WORK/spider-3ep-$name.log" 2>&1; step "$name ended: $?" ) &
  done
  wait
fi
step "all done"
