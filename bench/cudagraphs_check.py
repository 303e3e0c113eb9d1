"""Do compiled layers replayed as CUDA graphs (torch_compile_mode reduce-overhead, no recompute) train right with
gradient accumulation, on this machine?

Autograd takes a backward's first gradient as the weight's .grad; replayed as a CUDA graph, that gradient lives in the
graphs' memory pool, and the next micro-batch's replay writes over it (pytorch/pytorch#169545). gemsql copies each
gradient out as it lands (gemsql.model.copy_grads_out_of_graphs). Two checks:

1. upstream's case: a compiled Linear, two micro-batches a step, three steps, without the copy and with it: the error,
   or the largest relative difference of its accumulated gradients from the same steps run eagerly.
2. gemsql: the model trained `--steps` steps of two micro-batches with reduce-overhead and the same with
   torch_compile_mode default (no dropout, no recompute, both compiled): each step's loss and the relative
   difference of the two trained adapters.

    python bench/cudagraphs_check.py --model gemma-3-270m --out docs/benchmarks/cudagraphs_check.json --note "..."

Without a GPU no CUDA graphs are made (torch.compile leaves them to CUDA): the checks run, and say so in "device".
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from results_file import record  # noqa: E402

from gemsql.config import load_config  # noqa: E402
from gemsql.data import prepare  # noqa: E402
from gemsql.model import copy_grads_out_of_graphs  # noqa: E402
from gemsql.train import setup  # noqa: E402


def upstream_case(with_copy: bool, steps: int = 3, micro_batches: int = 2) -> dict:
    """pytorch/pytorch#169545's pattern: the largest relative gradient difference against eager, or the error."""
    import torch._dynamo

    torch._dynamo.reset()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    graphed = torch.nn.Linear(256, 256, device=device)
    eager = copy.deepcopy(graphed)
    if with_copy:
        copy_grads_out_of_graphs(graphed)
    graphed.compile(mode="reduce-overhead")
    worst = 0.0
    try:
        for _ in range(steps):
            for _ in range(micro_batches):
                x = torch.randn(32, 256, device=device)
                for m in (graphed, eager):
                    m(x).square().mean().backward()
            for a, b in zip(graphed.parameters(), eager.parameters()):
                worst = max(worst, float((a.grad - b.grad).norm() / b.grad.norm()))
            with torch.no_grad():
                for m in (graphed, eager):
                    for p in m.parameters():
                        p.sub_(0.1 * p.grad)
                        p.grad = None
    except RuntimeError as e:
        return {"error": str(e)[:300]}
    return {"max_relative_grad_difference": worst}


def train_losses(work: Path, mode: str, base: dict) -> tuple[list[float], torch.Tensor]:
    """Each step's logged loss and the adapter's change in training (flattened, float64) of a short run in `mode`."""
    import torch._dynamo

    cfg = load_config(None, **base, output_dir=str(work / mode), torch_compile_mode=mode)
    prepare(cfg)
    torch._dynamo.reset()
    trainer, _ = setup(cfg)

    def adapter() -> torch.Tensor:
        return torch.cat([p.detach().double().flatten().cpu() for p in trainer.model.parameters() if p.requires_grad])

    before = adapter()
    trainer.train()
    return [h["loss"] for h in trainer.state.log_history if "loss" in h], adapter() - before


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="gemma-3-270m", help="gemma-3-270m or a model folder")
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--micro_batch", type=int, default=4)
    p.add_argument("--work", default=None)
    p.add_argument("--out", default="docs/benchmarks/cudagraphs_check.json")
    p.add_argument("--note", default="")
    args = p.parse_args()

    from gemsql.model import resolve_model

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu (no CUDA graphs)"
    common = {"model": args.model, "device": device, "torch": torch.__version__, "note": args.note}
    for with_copy in (False, True):
        r = {**common, "check": f"compiled Linear, 2 micro-batches a step, gradient copy {'on' if with_copy else 'off'}",
             **upstream_case(with_copy)}
        print(json.dumps(r), flush=True)
        record(Path(args.out), r, key=("model", "check", "device", "note"))

    work = Path(args.work or tempfile.mkdtemp(prefix="gemsql-cudagraphs-"))
    base = dict(model_name_or_path=resolve_model(args.model), dataset="builtin", num_rows=256, test_size=16,
                report_to="none", torch_compile=True, gradient_checkpointing=False, lora_dropout=0.0,
                per_device_train_batch_size=args.micro_batch, gradient_accumulation_steps=2, max_steps=args.steps,
                logging_steps=1, save_strategy="no", stop_token_training="none")
    runs = {}
    for mode in ("reduce-overhead", "default"):
        try:
            runs[mode] = train_losses(work, mode, base)
        except RuntimeError as e:
            runs[mode] = None
            print(json.dumps({"mode": mode, "error": str(e)[:300]}), flush=True)
    r = {**common, "check": f"gemsql, {args.steps} steps of 2 x {args.micro_batch} micro-batches: reduce-overhead "
                            "against default"}
    for mode, run in runs.items():
        r[f"losses_{mode}"] = [round(x, 5) for x in run[0]] if run else None
    if all(runs.values()):
        a, b = runs["reduce-overhead"][1], runs["default"][1]
        r["adapter_update_relative_difference"] = round(float((a - b).norm() / b.norm()), 6)
    print(json.dumps(r), flush=True)
    record(Path(args.out), r, key=("model", "check", "device", "note"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
