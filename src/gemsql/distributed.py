"""What gemsql needs to run unchanged under `accelerate launch` or `torchrun`: who is the main process,
"main process first" for work done once (preparing data, converting the embedded model), and FSDP2's units.

Without a launcher (WORLD_SIZE unset or 1) every helper is a no-op, so single-process runs never
initialise torch.distributed.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main() -> bool:
    """Rank 0 of all processes (of all nodes): the one that writes outputs and reports."""
    return int(os.environ.get("RANK", "0")) == 0


@contextlib.contextmanager
def main_first() -> Iterator[None]:
    """The main process runs the block first; the others wait for it, then run it (and find its work done)."""
    if world_size() == 1:
        yield
        return
    with _state().main_process_first():
        yield


def wait_for_everyone() -> None:
    if world_size() > 1:
        _state().wait_for_everyone()


def _state():
    """accelerate's per-process state; on machines without CUDA it must be told to use the CPU (gloo), or
    it sees a single process and its barriers do nothing."""
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def env_flag(name: str, default: str = "false") -> bool:
    return os.environ.get(name, default).lower() == "true"


def fsdp2_launch() -> bool:
    """Launched by accelerate with FSDP2 (configs/accelerate/fsdp2_qlora.yaml)."""
    return env_flag("ACCELERATE_USE_FSDP") and os.environ.get("FSDP_VERSION", "1") == "2"


def sharded_launch() -> bool:
    """Launched by accelerate with FSDP (either version) or DeepSpeed: the weights are sharded across processes.
    Otherwise a launch of several processes is plain DDP (torchrun, or accelerate's multi-GPU launch)."""
    return env_flag("ACCELERATE_USE_FSDP") or env_flag("ACCELERATE_USE_DEEPSPEED")


def layer_units(layers: list, per_unit: int) -> list[list]:
    """`layers` (children before parents, as fully_shard needs them) cut into units of at most `per_unit` neighbours
    of one class: a unit never mixes, say, a vision tower's layers with the text decoder's."""
    units: list[list] = []
    for layer in layers:
        last = units[-1] if units else None
        if last and len(last) < per_unit and type(last[-1]) is type(layer):
            last.append(layer)
        else:
            units.append([layer])
    return units


def shard_fsdp2(model, layers_per_unit: int = 1) -> int:
    """Shard `model` with FSDP2 once the trainer is built, before it trains: a unit per `layers_per_unit` neighbouring
    decoder layers (of the classes the model names as not to be split), the root unit for the rest. Returns the number
    of layer units.

    Left to accelerate, the embedding and the output head get units of their own unless it sees that they share
    their weight, which it cannot through PEFT's trainable-token wrappers (their `weight` is a merged copy): the
    shared weight then lands in two units and fully_shard fails (seen on the H200). Sharded here, accelerate
    finds an FSDP module and leaves it be. The root unit (embedding, head, final norm, the turn-token rows) stays
    gathered from forward to backward, as accelerate's own unit for the head does. The launch config's
    fsdp_reshard_after_forward and fsdp_offload_params apply."""
    from torch.distributed.fsdp import CPUOffloadPolicy, OffloadPolicy, fully_shard

    from gemsql.model import decoder_layers

    kwargs = {"reshard_after_forward": env_flag("FSDP_RESHARD_AFTER_FORWARD", "true"),
              "offload_policy": CPUOffloadPolicy() if env_flag("FSDP_OFFLOAD_PARAMS") else OffloadPolicy()}
    # children before parents (a reversed pre-order walk), as fully_shard needs
    layers = list(reversed(decoder_layers(model)))
    units = layer_units(layers, layers_per_unit)
    for unit in units:
        fully_shard(unit if len(unit) > 1 else unit[0], **kwargs)  # a list: one group, gathered and reduced at once
    fully_shard(model, **kwargs)
    return len(units)
