"""Do compiled layers replayed as CUDA graphs (torch_compile_mode reduce-overhead) train right with gradient
accumulation, and with selective recompute, on this machine?

Autograd takes a backward's first gradient as the weight's .grad; replayed as a CUDA graph, that gradient lives in the
graphs' memory pool, and the next micro-batch's replay writes over it (pytorch/pytorch#169545). gemsql copies each
gradient out as it lands (gemsql.model.copy_grads_out_of_graphs). Three checks:

1. upstream's case: a compiled Linear, two micro-batches a step, three steps, without the copy and with it: the error,
   or the largest relative difference of its accumulated gradients from the same steps run eagerly.
2. gemsql: the model's adapter gradients accumulated over two micro-batches, three rounds on unchanged weights, with
   reduce-overhead (the copy on, and off) and with torch_compile_mode default (no dropout, no recompute, all
   compiled): the error, or the relative difference from default's gradients and between rounds of one run.
3. CUDA graphs with selective recompute (both models' bench runs stopped on the H200 in the seventeenth session, one
   micro-batch a step; setup refused the pairing until the nineteenth, when this check and the bench trained with
   it), trained `--steps` steps with LoRA dropout 0.05 and 0: the error or the losses. Does the recompute's dropout
   (its random state handed from the forward graph to the backward) make a difference? Set up by gemsql's setup
   (until the twentieth session the check compiled the layers itself, as written while setup refused the pairing).

    python bench/cudagraphs_check.py --model gemma-3-270m --out docs/benchmarks/cudagraphs_check.json --note "..."

Without a GPU no CUDA graphs are made (torch.compile leaves them to CUDA): the checks run, and say so in "device".
The first version (git f0eded3) trained four steps in each mode instead: on the H200 upstream's case ran without the
copy too, and the 270M trained with it; its trained adapters differed by 13 % after four Adam steps, with no run to
say how far two runs of one mode differ. Gradients on unchanged weights have that measure (the rounds).
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

from recompute_check import fresh_trainer  # noqa: E402
from results_file import record  # noqa: E402

from gemsql.model import copy_grads_out_of_graphs  # noqa: E402


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


def accumulated_grads(work: Path, name: str, base: dict, rounds: int = 3, **overrides) -> dict:
    """The trainable weights' gradients, summed over the first two micro-batches as the trainer accumulates them, in
    each of `rounds` rounds on unchanged weights (CUDA graph trees warm up on the first call, record on the second,
    replay from the third): {"grads": the last round's, flattened, float64; "round_difference": the largest relative
    difference between rounds (nondeterminism)}, or {"error": ...}."""
    trainer, _ = fresh_trainer(work, name, base, **overrides)
    model = trainer.model
    model.train()
    batches = [b for _, b in zip(range(2), trainer.get_train_dataloader())]  # on the device (accelerate's loader)
    weights = [p for p in model.parameters() if p.requires_grad]
    seen = []
    try:
        for _ in range(rounds):
            model.zero_grad(set_to_none=True)  # as the trainer does after each step
            for batch in batches:
                (trainer.compute_loss(model, batch) / len(batches)).backward()
            seen.append(torch.cat([w.grad.detach().double().flatten().cpu() for w in weights]))
    except RuntimeError as e:
        return {"error": str(e)[:300]}
    spread = max(float((g - seen[-1]).norm() / seen[-1].norm()) for g in seen[1:]) if len(seen) > 1 else 0.0
    return {"grads": seen[-1], "round_difference": spread}


def graphs_with_recompute(work: Path, name: str, base: dict, steps: int, **overrides) -> dict:
    """Train `steps` steps with each layer compiled as CUDA graphs that recompute selectively, set up by gemsql's own
    setup as a run asks for it: {"losses"} or {"error"}."""
    trainer, _ = fresh_trainer(work, name, {**base, "gradient_checkpointing": True, "recompute": "selective",
                                            "torch_compile_mode": "reduce-overhead", "max_steps": steps,
                                            "logging_steps": 1, "save_strategy": "no", **overrides})
    try:
        trainer.train()
    except RuntimeError as e:
        return {"error": str(e)[:300]}
    return {"losses": [round(h["loss"], 5) for h in trainer.state.log_history if "loss" in h]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="gemma-3-270m", help="gemma-3-270m or a model folder")
    p.add_argument("--micro_batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=6, help="training steps of the third check")
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
    # no dropout (the compiled graphs draw their own masks) and no recompute (refused with CUDA graphs when written;
    # the third check asks for it)
    base = dict(model_name_or_path=resolve_model(args.model), dataset="builtin", num_rows=256, test_size=16,
                report_to="none", torch_compile=True, gradient_checkpointing=False, lora_dropout=0.0,
                per_device_train_batch_size=args.micro_batch, stop_token_training="none")
    # gradient_accumulation_steps 1 in the config leaves the copy out (setup adds it only when the trainer
    # accumulates); the rounds accumulate two micro-batches either way
    runs = {
        "reduce-overhead, gradient copy on": dict(torch_compile_mode="reduce-overhead", gradient_accumulation_steps=2),
        "reduce-overhead, gradient copy off": dict(torch_compile_mode="reduce-overhead", gradient_accumulation_steps=1),
        "default": dict(torch_compile_mode="default", gradient_accumulation_steps=2),
    }
    got = {name: accumulated_grads(work, f"run{i}", base, **o) for i, (name, o) in enumerate(runs.items())}
    reference = got["default"].get("grads")
    for name, g in got.items():
        r = {**common, "check": f"gemsql, 2 x {args.micro_batch} micro-batches accumulated, 3 rounds: {name}"}
        if "error" in g:
            r["error"] = g["error"]
        else:
            r["round_difference"] = round(g["round_difference"], 6)
            if reference is not None and name != "default":
                r["relative_difference_from_default"] = round(float((g["grads"] - reference).norm() / reference.norm()), 6)
        print(json.dumps(r), flush=True)
        record(Path(args.out), r, key=("model", "check", "device", "note"))
    for dropout in (0.05, 0.0):
        r = {**common, "check": f"CUDA graphs with selective recompute, LoRA dropout {dropout}, {args.steps} steps of "
                                f"{args.micro_batch} x 512",
             **graphs_with_recompute(work, f"recompute-{dropout}", base, args.steps, lora_dropout=dropout,
                                     quantization="4bit")}
        print(json.dumps(r), flush=True)
        record(Path(args.out), r, key=("model", "check", "device", "note"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
