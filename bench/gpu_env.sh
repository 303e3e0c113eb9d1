# Sourced by the GPU scripts: where the staged packages, model and outputs are on the GPU machine.
WORK=${1:-/root/work}
OUT=$WORK/out
mkdir -p "$OUT"
export PYTHONPATH=$PWD/src:/root/site GEMMA_GGUF=${GEMMA_GGUF:-/root/models/gemma-3-270m-q4_k_m.gguf}
export GEMSQL_CACHE=$WORK/cache HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
