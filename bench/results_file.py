"""Benchmark results files: a JSON list of records, one per key; a new record replaces its old one."""

from __future__ import annotations

import json
from pathlib import Path


def record(out: str | Path, result: dict, key: tuple[str, ...]) -> None:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(out.read_text()) if out.is_file() else []
    previous = previous if isinstance(previous, list) else [previous]
    keep = [r for r in previous if tuple(r.get(k) for k in key) != tuple(result.get(k) for k in key)]
    out.write_text(json.dumps(keep + [result], indent=2) + "\n")
