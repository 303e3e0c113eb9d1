# Sourced by the GPU scripts: where the staged packages, model and outputs are on the GPU machine.
WORK=${1:-/root/work}
RECORDS=$WORK/out  # not OUT: the device tool's folder of files to bring back is $OUT there
mkdir -p "$RECORDS"
export PYTHONPATH=$PWD/src:/root/site GEMMA_GGUF=${GEMMA_GGUF:-/root/models/gemma-3-270m-q4_k_m.gguf}
export GEMSQL_CACHE=$WORK/cache HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
step() { echo "=== $(date +%T) $*"; }

spider() {  # NAME [overrides...]: configs/spider.yaml as shipped (8 x 1,024, lr 4e-4, 3 epochs, 8-beam retry) on the
  # whole training split ($DATA) into $WORK/NAME; the evaluation scores the greedy answers and the retry's
  local name=$1; shift
  timeout 1500 python3 -m gemsql run configs/spider.yaml --dataset "$DATA" --output_dir "$WORK/$name" \
    --evaluate_base false "$@" > "$WORK/$name.log" 2>&1
  step "$name ended: $?"
}

decode() {  # RUN NAME [overrides...]: RUN's merged model decodes its held-out split again into RUN/eval/NAME, scored there
  # (`bench/spider_results.py --variants RUN:NAME` collects it)
  local run=$WORK/$1 name=$2; shift 2
  timeout 900 python3 -m gemsql generate configs/spider.yaml --model "$run/merged" --input "$run/data/test.jsonl" \
    --output "$run/eval/$name/predictions.jsonl" "$@" > "$run-$name.log" 2>&1 &&
    timeout 300 python3 -m gemsql eval configs/spider.yaml --predictions "$run/eval/$name/predictions.jsonl" \
      --eval_output "$run/eval/$name" >> "$run-$name.log" 2>&1
  step "$(basename "$run"):$name ended: $?"
}
