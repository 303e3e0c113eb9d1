"""One process of tests/test_distributed.py's FSDP2 check (run under torchrun, gloo): gemsql's QLoRA trainer (4-bit
base stored in the compute dtype, LoRA on all linear layers, trainable turn-token rows, the adapter cast by TRL)
loses and learns the same whether whole or sharded by gemsql's FSDP2 units (gemsql.distributed.shard_fsdp2: one per
decoder layer, or two layers a unit with fsdp_layers_per_unit: 2, the root unit holding the embedding tied to the
output head), one optimizer step included, and rank 0 saves the whole adapter; with torch_compile too (its layers
compiled in place after sharding), with and without recompute inside them, to within bf16 rounding.

    torchrun --nproc_per_node 2 tests/fsdp2_worker.py CONFIG.yaml RESULT.json
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import replace

import torch
import torch._dynamo
import torch.distributed as dist

from gemsql.config import load_config
from gemsql.train import recompute_mode, setup

FSDP2_LAUNCH = {"ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "2"}  # what accelerate launch sets for fsdp2_qlora.yaml


def local(t: torch.Tensor) -> torch.Tensor:
    return (t.full_tensor() if hasattr(t, "full_tensor") else t).detach().float().clone()


def adapter(model) -> dict[str, torch.Tensor]:
    """The adapter as the trainer saves it under FSDP2 (accelerate's get_state_dict: the whole model gathered on
    rank 0, then PEFT's selection); rank 0's."""
    from peft import get_peft_model_state_dict
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    if not any(hasattr(p, "full_tensor") for p in model.parameters()):
        return get_peft_model_state_dict(model)
    whole = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return get_peft_model_state_dict(model, state_dict=whole) if dist.get_rank() == 0 else {}


def one_step(trainer) -> tuple[float, dict, dict, dict]:
    """Loss, gradients, weights and the saved adapter after one optimizer step, on the same rows whole or
    sharded."""
    model = trainer.model
    model.train()  # bitsandbytes repacks 4-bit weights for CPU inference in eval mode
    with torch.no_grad():  # LoRA starts as a no-op (B = 0); a trained adapter's B is not, and A's gradient needs it
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.copy_(torch.full_like(p, 0.01))
    ids = torch.randint(4, 200, (2, 48), generator=torch.Generator().manual_seed(1))
    optimizer = trainer.create_optimizer()
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    grads = {n: local(p.grad) for n, p in model.named_parameters() if p.requires_grad}
    optimizer.step()
    return loss.item(), grads, {n: local(p) for n, p in model.named_parameters() if p.requires_grad}, adapter(model)


def sharded(cfg, whole: tuple) -> dict:
    """One optimizer step with the model sharded as `cfg` says, against the whole model's `whole` step."""
    whole_loss, whole_grads, whole_after, whole_adapter = whole
    trainer = setup(cfg)[0]
    dtypes = sorted({str(p.dtype) for p in trainer.model.parameters() if p.requires_grad})
    sharded_loss, grads, after, saved = one_step(trainer)
    base = next(p for n, p in trainer.model.named_parameters() if n.endswith("q_proj.base_layer.weight"))
    # the units gemsql made of the decoder layers: modules sharded together share one FSDP state
    layers = [m for m in trainer.model.modules() if type(m).__name__ == "FSDPGemma3DecoderLayer"]
    close = lambda a, b: torch.allclose(a, b, rtol=1e-2, atol=1e-5)  # noqa: E731  (bf16 adapter weights)
    # the largest relative error of one trainable tensor (compiled layers round bf16 differently: on this CPU 1.5 %
    # off a float32 run's gradients, eager 2.4 %)
    worst = lambda a, b: max(((a[n] - b[n]).norm() / b[n].norm().clamp_min(1e-12)).item() for n in b)  # noqa: E731
    return {"whole_loss": whole_loss, "sharded_loss": sharded_loss, "trainable": sorted(whole_grads),
            "adapter_dtypes": dtypes,
            "grads_differing": sorted(n for n in whole_grads if not close(whole_grads[n], grads[n])),
            "steps_differing": sorted(n for n in whole_after if not close(whole_after[n], after[n])),
            "grads_worst": worst(grads, whole_grads),
            "adapter_keys_equal": sorted(saved) == sorted(whole_adapter) if dist.get_rank() == 0 else None,
            "adapter_differing": sorted(k for k in saved if not close(saved[k].float(), whole_adapter[k].float())),
            "base_weight": type(base).__name__, "base_local_rows": base.to_local().shape[0],
            "base_rows": base.shape[0], "fsdp_layers": len(layers),
            "compiled_layers": sum(m._compiled_call_impl is not None for m in layers),
            "graphs": torch._dynamo.utils.counters["stats"]["unique_graphs"],  # so far in this process
            "units": len({id(m._get_fsdp_state()) for m in layers}), "recompute": recompute_mode(cfg)}


def main(config: str, result: str) -> None:
    cfg = load_config(config)
    whole = one_step(setup(cfg)[0])
    os.environ.update(FSDP2_LAUNCH)
    # one unit per decoder layer (the default), then both of the tiny model's layers in one unit
    out = {"per_layer": sharded(cfg, whole),
           "two_layers_a_unit": sharded(replace(cfg, train=replace(cfg.train, fsdp_layers_per_unit=2)), whole),
           # the layers compiled in place after sharding: FSDP2's hooks (gather, reshard) still run on each
           "compiled": sharded(replace(cfg, train=replace(cfg.train, torch_compile=True,
                                                           gradient_checkpointing=False)), whole),
           # and recomputing inside each compiled layer as by default there (leanly; the FSDP2 gathers again
           # for the backward's recompute)
           "compiled_recompute": sharded(replace(cfg, train=replace(cfg.train, torch_compile=True)), whole)}
    if dist.get_rank() == 0:
        with open(result, "w") as f:
            json.dump(out, f)


if __name__ == "__main__":
    main(*sys.argv[1:3])
