"""Where a training step makes the CPU wait for the GPU (a host sync), and how often: used by bench/train_throughput.py
--syncs. Every sync drains the GPU's queue, so the CPU can no longer launch ahead of it; in a step whose CPU launch
time is about its GPU time (the 4B as shipped on the H200, seventeenth session: 22 stream synchronisations a step in
its profile), each one leaves the GPU idle while the CPU catches up.

On a CUDA GPU, PyTorch's sync debug mode warns at every synchronising call, and the warning's Python stack says who
made it. On the CPU nothing synchronises, so the Python calls that would on a GPU are counted instead (`.item()`,
`bool()` of a tensor, `.tolist()`, ...), through a torch function mode; calls inside C++ (an op that synchronises
internally) are then not seen."""

from __future__ import annotations

import collections
import traceback
import warnings
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode

# Tensor methods that copy a value to the host (and so wait for the GPU), or whose output size depends on values.
SYNCING = {"item", "tolist", "__bool__", "__int__", "__float__", "__index__", "cpu", "numpy", "nonzero",
           "masked_select", "unique", "repeat_interleave"}
FRAMES = 4  # callers kept per sync, innermost first


def callers(skip: int) -> str:
    """The innermost FRAMES Python frames that are not PyTorch's or this file's, innermost first."""
    frames = [f for f in traceback.extract_stack()[:-skip]
              if "/torch/" not in f.filename and not f.filename.endswith("host_syncs.py")]
    return " <- ".join(f"{f.filename.split('site-packages/')[-1]}:{f.lineno} {f.name}"
                       for f in reversed(frames[-FRAMES:])) or "(no Python frame)"


class _Calls(TorchFunctionMode):
    """Counts the calls in SYNCING, and indexing by a boolean tensor, into `seen` by caller."""

    def __init__(self, seen: collections.Counter):
        super().__init__()
        self.seen = seen

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in SYNCING:
            self.seen[name, callers(2)] += 1
        elif (name in ("__getitem__", "__setitem__") and len(args) > 1 and isinstance(args[1], torch.Tensor)
              and args[1].dtype == torch.bool):
            self.seen[f"{name} by mask", callers(2)] += 1
        return func(*args, **(kwargs or {}))


class SyncCounter:
    """Counts host syncs between start() and stop(), by caller: on a CUDA GPU every synchronising call (sync debug
    mode), on the CPU the Python calls that would synchronise on a GPU."""

    def __init__(self):
        self.seen: collections.Counter = collections.Counter()
        self.cuda = torch.cuda.is_available()
        self._mode = None
        self._warnings = None

    def start(self) -> None:
        if self.cuda:
            self._warnings = warnings.catch_warnings()
            self._warnings.__enter__()
            warnings.simplefilter("always")
            shown = warnings.showwarning

            def record(message, category, filename, lineno, file=None, line=None):
                if "synchronizing" in str(message).lower():
                    self.seen["sync", callers(2)] += 1
                else:
                    shown(message, category, filename, lineno, file, line)

            warnings.showwarning = record  # restored by catch_warnings on stop()
            torch.cuda.set_sync_debug_mode("warn")
        else:
            self._mode = _Calls(self.seen)
            self._mode.__enter__()

    def stop(self) -> None:
        if self.cuda:
            torch.cuda.set_sync_debug_mode("default")
            self._warnings.__exit__(None, None, None)
        else:
            self._mode.__exit__(None, None, None)

    def report(self, steps: int) -> str:
        total = sum(self.seen.values())
        how = ("CUDA sync debug mode: every synchronising call" if self.cuda else
               "CPU: the Python calls that synchronise on a GPU (.item(), bool(), .tolist(), ...)")
        lines = [f"host syncs per step: {total / steps:.1f} over {steps} steps ({how})", ""]
        lines += [f"{n / steps:6.1f}  {kind:20s} {where}" for (kind, where), n in self.seen.most_common()]
        return "\n".join(lines) + "\n"


def sync_callback(warmup: int, steps: int, out: Path):
    """A trainer callback counting host syncs over the `steps` optimizer steps after the first `warmup` (compiling and
    the first calls' set-up left out) and writing the report to `out` when they end."""
    from transformers import TrainerCallback

    class Syncs(TrainerCallback):
        def __init__(self):
            self.counter = SyncCounter()
            self.on = False

        def on_step_begin(self, args, state, control, **kw):
            if not self.on and state.global_step == warmup:
                self.counter.start()
                self.on = True

        def on_step_end(self, args, state, control, **kw):
            if self.on and state.global_step >= warmup + steps:
                self.finish(state.global_step - warmup)

        def on_train_end(self, args, state, control, **kw):
            if self.on:  # training ended inside the window
                self.finish(state.global_step - warmup)

        def finish(self, counted: int) -> None:
            self.counter.stop()
            self.on = False
            report = self.counter.report(max(1, counted))
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(report)
            print(report.splitlines()[0], flush=True)

    return Syncs()
