"""What the peak of GPU memory holds: the CUDA caching allocator's trace of a run, replayed to the moment the most
memory was allocated, and the blocks alive then grouped by the Python line that allocated them.

`torch.cuda.max_memory_allocated()` says how high a run went, not what was there; bench/saved_activations.py counts
what a forward keeps for its backward on the CPU, not the temporaries of the backward, the loss head or the optimizer.
This is the GPU's own answer (bench/train_throughput.py --memory writes one per config).
"""

from __future__ import annotations

import collections
from contextlib import contextmanager
from pathlib import Path

import torch

# Frames from these files say where memory was asked for; torch's own frames (autograd, nn.Module plumbing) do not.
OWNERS = ("gemsql", "/trl/", "/peft/", "/transformers/", "/bitsandbytes/", "torch/utils/checkpoint",
          "torch/_inductor", "torch/optim", "/accelerate/")


def owner(frames: list[dict]) -> str:
    """The innermost frame in a library that asked for the block (or the innermost frame at all)."""
    for f in frames:
        if any(o in f["filename"] for o in OWNERS):
            return f"{f['filename'].split('site-packages/')[-1]}:{f['line']} {f['name']}"
    return f"{frames[0]['filename']}:{frames[0]['line']} {frames[0]['name']}" if frames else "(no Python frame)"


def peak_composition(trace: list[dict], baseline: int) -> tuple[int, str, list[tuple[str, int, int]]]:
    """Replay allocator events (torch.cuda.memory._snapshot()['device_traces'][device]) from `baseline` bytes already
    allocated when recording started: the peak, the owner of the allocation that reached it (the phase of the step
    the peak falls in), and the blocks alive at it as (owner, bytes, blocks), largest first."""
    def replay(events: list[dict]):
        """The blocks alive and the bytes allocated after each event, in order (the same dict, updated)."""
        live: dict[int, dict] = {}
        current = baseline
        for e in events:
            if e["action"] == "alloc":
                live[e["addr"]] = e
                current += e["size"]
            elif e["action"] == "free_requested" and e["addr"] in live:  # the tensor is gone: allocated bytes drop
                current -= live.pop(e["addr"])["size"]
            yield live, current

    # the moment of the peak first, then a replay up to it: no copy of the blocks alive at every new peak
    peak, end = baseline, 0
    for i, (_, current) in enumerate(replay(trace)):
        if current > peak:
            peak, end = current, i + 1
    at_peak: dict[int, dict] = {}
    for at_peak, _ in replay(trace[:end]):
        pass
    reached_by = owner(trace[end - 1].get("frames", [])) if end else "(nothing allocated while recording)"
    groups: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    for e in at_peak.values():
        g = groups[owner(e.get("frames", []))]
        g[0] += e["size"]
        g[1] += 1
    if baseline:
        groups["(allocated before recording: weights, adapter, optimizer state so far)"] = [baseline, 0]
    return peak, reached_by, sorted(((k, b, n) for k, (b, n) in groups.items()), key=lambda r: -r[1])


@contextmanager
def traced(out: Path, max_entries: int = 2_000_000):
    """Record the allocator's events on the current GPU inside the block, then write out the peak's composition."""
    torch.cuda.synchronize()
    baseline = torch.cuda.memory_allocated()
    torch.cuda.memory._record_memory_history(max_entries=max_entries, stacks="python")
    try:
        yield
    finally:
        snapshot = torch.cuda.memory._snapshot()
        torch.cuda.memory._record_memory_history(enabled=None)
        trace = snapshot["device_traces"][torch.cuda.current_device()]
        peak, reached_by, rows = peak_composition(trace, baseline)
        lines = [f"peak allocated (replayed): {peak / 2**30:.2f} GiB; torch.cuda.max_memory_allocated: "
                 f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB; {len(trace)} events"
                 + (" (the ring buffer filled: the earliest are lost)" if len(trace) >= max_entries else ""),
                 f"reached by an allocation at {reached_by}", ""]
        lines += [f"{b / 2**30:8.3f} GiB {n:6d} blocks  {k}" for k, b, n in rows[:30]]
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("\n".join(lines) + "\n")
        print(lines[0], flush=True)
