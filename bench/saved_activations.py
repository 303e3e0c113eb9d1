"""Where a training step's activation memory goes, without a GPU: the bytes of the tensors one training forward keeps
for its backward, per config, counted on the CPU: with eager layers, or (--compiled) with the layers compiled as
gemsql compiles them, where each compiled layer's own choice of what to keep is counted, recompute inside it included.

Every tensor autograd saves passes through a saved-tensors hook; one storage saved twice counts once, and the model's
own weights (saved by reference) count not at all. It answers "what would this lever free?" before a GPU run measures
the peak (bench/train_throughput.py); it is not a peak itself (no gradients, optimizer state or temporaries).

    python bench/saved_activations.py --model gemma-3-270m --configs gemsql gemsql_no_dropout gemsql_4x512
    python bench/saved_activations.py --compiled --configs gemsql gemsql_recompute
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
from train_throughput import CONFIGS  # noqa: E402

from gemsql.config import load_config  # noqa: E402
from gemsql.data import prepare  # noqa: E402
from gemsql.model import compute_dtype  # noqa: E402
from gemsql.train import recompute_mode, setup  # noqa: E402


def saved_bytes(overrides: dict, model: str, work: Path, rows: int, compiled: bool = False) -> dict:
    """One micro-batch of the config, forward only: the bytes autograd keeps, and the batch's real tokens. Eager
    layers count what PEFT and transformers themselves keep; compiled layers (`compiled`) what each compiled layer
    hands autograd to keep, which is where its recompute shows."""
    values = {**overrides, "torch_compile": compiled}
    cfg = load_config(None, model_name_or_path=model, dataset="builtin", num_rows=rows, test_size=16,
                      output_dir=str(work), report_to="none", **values)
    if recompute_mode(cfg) is not None and not compiled:
        # non-reentrant checkpointing installs saved-tensor hooks of its own inside each layer, which hide from these
        raise SystemExit("saved_activations: configs with gradient_checkpointing are counted only with --compiled "
                         "(eager layers keep tensors through checkpoint's own hooks, which this count does not see)")
    prepare(cfg)
    trainer, _ = setup(cfg)
    model_ = trainer.model
    model_.train()
    weights = {p.untyped_storage().data_ptr() for p in model_.parameters()}
    kept: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        ptr = t.untyped_storage().data_ptr()
        if ptr not in weights:
            kept[ptr] = t.untyped_storage().nbytes()
        return t

    batch = next(iter(trainer.get_train_dataloader()))  # on the CPU, where the model is
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        trainer.compute_loss(model_, batch)
    tokens = int((batch["labels"] != -100).sum()) if "labels" in batch else None
    return {"saved_gib": round(sum(kept.values()) / 2**30, 3), "saved_bytes": sum(kept.values()), "tensors": len(kept),
            "layers": "compiled" if compiled else "eager",
            "compute_dtype": str(compute_dtype(cfg.model)).removeprefix("torch."),
            "batch_shape": list(batch["input_ids"].shape), "loss_tokens": tokens}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="gemma-3-270m", help="model id or path (the embedded Gemma 3 270M by default)")
    p.add_argument("--configs", nargs="+", default=["gemsql", "gemsql_no_dropout"],
                   help="rows of bench/train_throughput.py's CONFIGS")
    p.add_argument("--rows", type=int, default=1000, help="built-in rows prepared (enough to fill a micro-batch)")
    p.add_argument("--compiled", action="store_true", help="compile the layers as gemsql does on a GPU (on the CPU: "
                   "a minute or more a config)")
    p.add_argument("--out", help="append the results to this JSON list (key: model, config, layers)")
    args = p.parse_args()
    for name in args.configs:
        with tempfile.TemporaryDirectory(prefix="gemsql-saved-") as work:
            r = {"model": args.model, "config": name, "device": "cpu",
                 **saved_bytes(CONFIGS[name], args.model, Path(work), args.rows, args.compiled)}
        print(json.dumps(r), flush=True)
        if args.out:
            record(args.out, r, key=("model", "config", "layers"))


if __name__ == "__main__":
    main()
