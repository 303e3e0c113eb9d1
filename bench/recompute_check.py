"""Does a compiled layer's recompute give the gradient of the loss its forward computed, on this machine?

With torch_compile and gradient_checkpointing each decoder layer recomputes its forward in the backward inside its
compiled region (gemsql.model.compile_layers), dropout included: PyTorch's partitioner must hand the backward the
forward's random state, through a different path on a GPU (graph-safe RNG) than on a CPU. Two checks, one micro-batch
of the built-in set each:

1. dropout: with LoRA dropout at 0.5, in float32, the gradient's directional derivative against central finite
   differences of the loss (the same seed in every forward, so the same masks). A recompute drawing new masks is off
   by tens of percent (3.6 against 5.8 on the CPU, tests/test_bench_tools.py); float32 rounding by well under 1 %.
2. numerics: the as-shipped dtype and quantization without dropout, the recomputed layers' gradients against the
   same compiled layers' gradients without recompute: the relative difference of the whole gradient.
3. on a CUDA GPU, check 1 again with the layers replayed as CUDA graphs (torch_compile_mode reduce-overhead, asked
   for: LoRA without quantization gets torch.compile's default mode by default, so check 1 runs without them), where
   the graphs must replay each forward's and recompute's random state too.
Each record names its torch_compile_mode.

    python bench/recompute_check.py --model gemma-3-270m --out docs/benchmarks/recompute_check.json --note "..."
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from results_file import record  # noqa: E402

from gemsql.config import load_config  # noqa: E402
from gemsql.data import prepare  # noqa: E402
from gemsql.train import compile_mode, setup  # noqa: E402


def directional_check(trainer, batch: dict, eps: float = 1e-3, seed: int = 7) -> tuple[float, float]:
    """(finite-difference slope, gradient norm) of the trainer's loss on `batch` along its own gradient: equal when
    the backward differentiates the loss the forward computed. Every forward draws its dropout masks from `seed`."""
    model = trainer.model
    lora = [p for p in model.parameters() if p.requires_grad]

    def loss() -> torch.Tensor:
        torch.manual_seed(seed)  # the same masks in every forward (CUDA's generators too)
        return trainer.compute_loss(model, batch)

    grads = _grads(trainer, batch, seed)
    norm = torch.sqrt(sum((g.double() ** 2).sum() for g in grads))
    values = []
    for sign in (1, -1):
        with torch.no_grad():
            for p, g in zip(lora, grads):
                p.add_(sign * eps * g / norm.to(g.dtype))
        values.append(float(loss().detach()))  # with grad on, as in training: the same compiled graph, the same masks
        with torch.no_grad():
            for p, g in zip(lora, grads):
                p.sub_(sign * eps * g / norm.to(g.dtype))
    return (values[0] - values[1]) / (2 * eps), float(norm)


def fresh_trainer(work: Path, name: str, base: dict, **overrides):
    """A trainer set up from `base` and `overrides` in work/name, its data prepared, and its first micro-batch."""
    import torch._dynamo

    cfg = load_config(None, **base, output_dir=str(work / name), **overrides)
    prepare(cfg)
    torch._dynamo.reset()  # each check compiles its own layers
    trainer, _ = setup(cfg)
    return trainer, next(iter(trainer.get_train_dataloader()))


def _grads(trainer, batch: dict, seed: int) -> list[torch.Tensor]:
    """The trainable parameters' gradients on `batch` (copies), the forward's dropout masks drawn from `seed`."""
    model = trainer.model
    model.train()
    model.zero_grad()
    torch.manual_seed(seed)
    trainer.compute_loss(model, batch).backward()
    return [p.grad.detach().clone() for p in model.parameters() if p.requires_grad]


def gradient(trainer, batch: dict, seed: int = 7) -> torch.Tensor:
    """The trainable parameters' gradient on `batch`, flattened, in float64."""
    return torch.cat([g.double().flatten() for g in _grads(trainer, batch, seed)])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="gemma-3-270m", help="gemma-3-270m or a model folder")
    p.add_argument("--work", default=None)
    p.add_argument("--out", default="docs/benchmarks/recompute_check.json")
    p.add_argument("--note", default="")
    args = p.parse_args()

    from gemsql.model import resolve_model

    work = Path(args.work or tempfile.mkdtemp(prefix="gemsql-recompute-"))
    base = dict(model_name_or_path=resolve_model(args.model), dataset="builtin", num_rows=256, test_size=16,
                report_to="none", torch_compile=True, stop_token_training="none")
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    common = {"model": args.model, "device": device, "torch": torch.__version__, "note": args.note}

    def dropout_check(mode: str, check: str) -> None:
        trainer, batch = fresh_trainer(work, f"dropout-{mode}", base, gradient_checkpointing=True, dtype="float32",
                                  quantization="none", lora_dropout=0.5, torch_compile_mode=mode)
        slope, norm = directional_check(trainer, batch)
        r = {**common, "check": check, "torch_compile_mode": mode,
             "slope": round(slope, 6), "norm": round(norm, 6), "ratio": round(slope / norm, 5)}
        print(json.dumps(r), flush=True)
        record(Path(args.out), r, key=("model", "check", "device", "note"))

    dropout_check("default", "dropout 0.5, float32: finite-difference slope / gradient norm")

    grads = {}
    for recompute in (False, True):
        trainer, batch = fresh_trainer(work, f"numerics-{recompute}", base, gradient_checkpointing=recompute,
                                  lora_dropout=0.0)
        grads[recompute] = gradient(trainer, batch)
        del trainer
    diff = float((grads[True] - grads[False]).norm() / grads[False].norm())
    mode = compile_mode(load_config(None, **base, lora_dropout=0.0))  # the shipped default's, for both sides
    r = {**common, "check": "as shipped, no dropout: |g_recompute - g| / |g|", "torch_compile_mode": mode,
         "relative_difference": round(diff, 6)}
    print(json.dumps(r), flush=True)
    record(Path(args.out), r, key=("model", "check", "device", "note"))

    if torch.cuda.is_available():  # last: a failure here keeps the two records above
        dropout_check("reduce-overhead", "dropout 0.5, float32, CUDA graphs: finite-difference slope / gradient norm")
    return 0


if __name__ == "__main__":
    sys.exit(main())
