"""`gemsql eval`: score a predictions file and write per-example verdicts, metrics and a report."""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path

from gemsql.errors import GemsqlError
from gemsql.evaluate.score import score
from gemsql.files import atomic_file, read_jsonl, write_json, write_jsonl

log = logging.getLogger(__name__)
METRICS = ("exec_match", "exact_match", "valid")


def summarize(verdicts: list[dict], breakdown: list[str] = ()) -> dict:
    """Rates over all examples, and per value of each breakdown column."""
    def rates(rows: list[dict]) -> dict:
        n = len(rows)
        out = {"examples": n}
        for m in METRICS:
            out[m] = round(sum(bool(r[m]) for r in rows) / n, 4) if n else 0.0
        out["gold_errors"] = sum(1 for r in rows if r.get("gold_error"))
        return out

    summary = rates(verdicts)
    for column in breakdown:
        groups: dict[str, list[dict]] = defaultdict(list)
        for r in verdicts:
            groups[str(r.get("metadata", {}).get(column, "unknown"))].append(r)
        summary.setdefault("by", {})[column] = {k: rates(v) for k, v in sorted(groups.items())}
    return summary


def evaluate(predictions: str | Path, output_dir: str | Path, *, label: str = "model") -> dict:
    """Score every row of a predictions JSONL (context, sql = gold, prediction); returns the metrics."""
    rows = read_jsonl(predictions)
    if not rows:
        raise GemsqlError("no predictions to score", file=str(predictions))
    verdicts = []
    for i, r in enumerate(rows, start=1):
        for key in ("context", "sql", "prediction"):
            if not isinstance(r.get(key), (str, list)):
                raise GemsqlError("missing or not text", file=str(predictions), row=i, field=key)
        v = score(r["context"], r["sql"], r["prediction"]).to_dict()
        verdicts.append({"id": r.get("id", f"row-{i}"), "question": r.get("question"), "gold": r["sql"],
                         "prediction": r["prediction"], "metadata": r.get("metadata", {}), **v})
    breakdown = sorted({k for r in rows for k in (r.get("metadata") or {})})
    metrics = {"label": label, **summarize(verdicts, breakdown)}
    out = Path(output_dir)
    write_jsonl(out / "verdicts.jsonl", verdicts)
    write_json(out / "metrics.json", metrics)
    with atomic_file(out / "report.md") as f:
        f.write(markdown([metrics]))
    log.info("%s: execution accuracy %.1f%%, exact match %.1f%%, valid SQL %.1f%% on %d examples", label,
             100 * metrics["exec_match"], 100 * metrics["exact_match"], 100 * metrics["valid"], metrics["examples"])
    return metrics


def markdown(runs: list[dict]) -> str:
    """A table of the headline rates per run, then per category."""
    lines = ["| model | examples | execution accuracy | exact match | valid SQL |", "|---|---:|---:|---:|---:|"]
    for m in runs:
        lines.append(f"| {m['label']} | {m['examples']} | {m['exec_match']:.1%} | {m['exact_match']:.1%} | {m['valid']:.1%} |")
    columns = sorted({c for m in runs for c in m.get("by", {})})
    for column in columns:
        lines += ["", f"### Execution accuracy by {column}", "",
                  "| " + column + " | " + " | ".join(m["label"] for m in runs) + " |",
                  "|---|" + "---:|" * len(runs)]
        values = sorted({v for m in runs for v in m.get("by", {}).get(column, {})})
        for v in values:
            cells = []
            for m in runs:
                g = m.get("by", {}).get(column, {}).get(v)
                cells.append(f"{g['exec_match']:.1%} (n={g['examples']})" if g else "-")
            lines.append(f"| {v} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
