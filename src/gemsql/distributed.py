"""What gemsql needs to run unchanged under `accelerate launch` or `torchrun`: who is the main process,
and "main process first" for work done once (preparing data, converting the embedded model).

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
