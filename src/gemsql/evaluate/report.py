"""`gemsql eval`: score a predictions file and write per-example verdicts, metrics and a report."""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from pathlib import Path

from gemsql.errors import GemsqlError
from gemsql.evaluate.html import page
from gemsql.evaluate.score import FAILURES, failure, score
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
    kinds = Counter(failure(v) for v in verdicts)
    summary["failures"] = {k: kinds[k] for k in FAILURES if kinds[k]}
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
                         "prediction": r["prediction"], "metadata": r.get("metadata", {}), **v,
                         **({"candidate": r["candidate"]} if "candidate" in r else {}),
                         **({"repaired": True} if r.get("repaired") else {})})
    breakdown = sorted({k for r in rows for k in (r.get("metadata") or {})})
    metrics = {"label": label, **summarize(verdicts, breakdown)}
    greedy = _greedy_verdicts(rows, verdicts, predictions)
    if greedy is not None:
        # execution-guided decoding replaced some answers: the greedy answers are scored too, so one run
        # measures what the retry is worth on the same model and rows
        metrics["greedy"] = summarize(greedy, breakdown)
        metrics["replaced"] = sum(1 for r in rows if r.get("greedy_prediction") is not None)
        metrics["repaired"] = sum(1 for r in rows if r.get("repaired"))  # of those, by schema repair
    out = Path(output_dir)
    # metrics.json is the commit mark of the folder: removed first, written last, so when it is there the
    # verdicts and reports beside it are whole and from the same evaluation (the folder also holds the
    # predictions, so it is not replaced as one).
    (out / "metrics.json").unlink(missing_ok=True)
    write_jsonl(out / "verdicts.jsonl", verdicts)
    with atomic_file(out / "report.md") as f:
        f.write(markdown([metrics]))
    with atomic_file(out / "report.html") as f:
        f.write(page([metrics], title=f"gemsql evaluation: {label}"))
    write_json(out / "metrics.json", metrics)
    log.info("%s: execution accuracy %.1f%%, exact match %.1f%%, valid SQL %.1f%% on %d examples", label,
             100 * metrics["exec_match"], 100 * metrics["exact_match"], 100 * metrics["valid"], metrics["examples"])
    if greedy is not None:
        log.info("%s before %s replaced %d answers: execution accuracy %.1f%%, valid SQL %.1f%%", label,
                 _replacers(metrics), metrics["replaced"], 100 * metrics["greedy"]["exec_match"],
                 100 * metrics["greedy"]["valid"])
    return metrics


def _replacers(m: dict) -> str:
    """What replaced greedy answers in a run: the beam retry (or vote), and schema repair where it did."""
    return "the beam retry and schema repair" if m.get("repaired") else "the beam retry"


def _greedy_verdicts(rows: list[dict], verdicts: list[dict], predictions: str | Path) -> list[dict] | None:
    """The verdicts of the greedy answers, where `greedy_prediction` keeps those a beam replaced; None if none was."""
    if not any("greedy_prediction" in r for r in rows):
        return None
    out = []
    for i, (r, v) in enumerate(zip(rows, verdicts), start=1):
        greedy_sql = r.get("greedy_prediction")
        if greedy_sql is None:
            out.append(v)
            continue
        if not isinstance(greedy_sql, str):
            raise GemsqlError("not text", file=str(predictions), row=i, field="greedy_prediction")
        out.append({**v, "prediction": greedy_sql, **score(r["context"], r["sql"], greedy_sql).to_dict()})
    return out


def markdown(runs: list[dict]) -> str:
    """A table of the headline rates per run, then per category."""
    lines = ["| model | examples | execution accuracy | exact match | valid SQL |", "|---|---:|---:|---:|---:|"]
    for m in runs:
        lines.append(f"| {m['label']} | {m['examples']} | {m['exec_match']:.1%} | {m['exact_match']:.1%} | {m['valid']:.1%} |")
        if "greedy" in m:
            g = m["greedy"]
            lines.append(f"| {m['label']}, greedy (before {_replacers(m)} replaced {m['replaced']}) | {g['examples']} | "
                         f"{g['exec_match']:.1%} | {g['exact_match']:.1%} | {g['valid']:.1%} |")
    kinds = [k for k in FAILURES if any(m.get("failures", {}).get(k) for m in runs)]
    if kinds:
        lines += ["", "### Why answers fail", "", "| failure | " + " | ".join(m["label"] for m in runs) + " |",
                  "|---|" + "---:|" * len(runs)]
        lines += [f"| {k} | " + " | ".join(str(m["failures"].get(k, 0)) if "failures" in m else "-" for m in runs) + " |"
                  for k in kinds]
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


def _eval_dir(path: str | Path) -> Path:
    """An evaluation folder, or a run folder whose fine-tuned evaluation to use."""
    path = Path(path)
    for candidate in (path, path / "eval" / "finetuned"):
        if (candidate / "metrics.json").is_file() and (candidate / "verdicts.jsonl").is_file():
            return candidate
    raise GemsqlError("no evaluation here (metrics.json and verdicts.jsonl); run `gemsql eval` first", file=str(path))


def compare(a: str | Path, b: str | Path, output_dir: str | Path, labels: tuple[str, str] | None = None) -> dict:
    """Two evaluations side by side, and the examples whose execution verdict flipped between them."""
    import json

    da, db = _eval_dir(a), _eval_dir(b)
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (da, db))
    if labels:
        ma["label"], mb["label"] = labels
    elif ma["label"] == mb["label"]:
        ma["label"], mb["label"] = str(a), str(b)
    va = {v["id"]: v for v in read_jsonl(da / "verdicts.jsonl")}
    vb = {v["id"]: v for v in read_jsonl(db / "verdicts.jsonl")}
    flipped = []
    for key in sorted(va.keys() & vb.keys(), key=str):
        x, y = va[key], vb[key]
        if bool(x["exec_match"]) != bool(y["exec_match"]):
            flipped.append({"id": key, "question": x.get("question"), "gold": x["gold"], "a": x["prediction"],
                            "b": y["prediction"], "direction": "fixed" if y["exec_match"] else "broken"})
    result = {"a": ma, "b": mb, "common_examples": len(va.keys() & vb.keys()),
              "fixed": sum(f["direction"] == "fixed" for f in flipped),
              "broken": sum(f["direction"] == "broken" for f in flipped), "flipped": flipped}
    out = Path(output_dir)
    write_json(out / "comparison.json", result)
    with atomic_file(out / "comparison.md") as f:
        f.write(markdown([ma, mb]) + f"\n{result['fixed']} examples fixed and {result['broken']} broken "
                f"from {ma['label']} to {mb['label']} (of {result['common_examples']} in both).\n")
    with atomic_file(out / "comparison.html") as f:
        f.write(page([ma, mb], title=f"{ma['label']} vs {mb['label']}", flipped=flipped))
    return result
