#!/usr/bin/env bash
# One GPU session's measurements, in order of importance; each writes its JSON as soon as it ends.
# Run detached on the GPU machine after staging (../shared/device/README.md), from a copy of the repo:
#   setsid nohup bash bench/gpu_session.sh /root/work > /root/work/job.log 2>&1 &
set -uo pipefail
source "$(dirname "$0")/gpu_env.sh" "${1:-/root/work}"

step environment
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import torch, transformers, trl, peft, bitsandbytes; print(torch.__version__, transformers.__version__, trl.__version__, peft.__version__, bitsandbytes.__version__)"
python3 -c "
from gemsql.config import ModelConfig
from gemsql.model import load_tokenizer, PROBE_SQL
t = load_tokenizer(ModelConfig())
ids = t(PROBE_SQL).input_ids
print('tokenizer: %d tokens, %.2f chars/token, BOS first: %s' % (len(ids), len(PROBE_SQL) / (len(ids) - 1), ids[0] == t.bos_token_id))
"

step "gemsql run on the built-in set (QLoRA, one epoch)"
python3 -m gemsql run configs/builtin-gpu.yaml --output_dir "$WORK/builtin-gpu" && cp "$WORK/builtin-gpu/report.json" "$RECORDS/builtin_gpu_report.json"

step "eval throughput"
python3 bench/eval_throughput.py --model "$WORK/builtin-gpu/merged" --rows 1000 --baseline_rows 200 --batch_size 128 \
  --out "$RECORDS/eval.json"

step "train throughput: 270M levers, then random-init 1B and 4B"
bash bench/gpu_throughput.sh "$WORK"
step done
