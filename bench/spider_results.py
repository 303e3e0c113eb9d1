"""Collect the Spider held-out runs of bench/gpu_spider.sh into docs/results/: one JSON and one SVG chart.

    python bench/spider_results.py --work /root/work --base spider-base --tutorial tutorial-1500 \
        --gemsql gemsql-1500 --variants gemsql-4000 gemsql-4000-rows0 gemsql-4000-lr5e-4

Each run folder is a `gemsql run` output (report.json, data/stats.json, eval/finetuned/metrics.json);
the base folder holds the prepared split and eval/metrics.json of the base model's predictions.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from gemsql.evaluate.html import bars


def metrics(run: Path) -> dict:
    path = run / "eval" / "finetuned" / "metrics.json"
    return json.loads((path if path.is_file() else run / "eval" / "metrics.json").read_text())


def summary(run: Path) -> dict:
    m = metrics(run)
    out = {"ex": m["exec_match"], "exact": m["exact_match"], "valid": m["valid"], "examples": m["examples"],
           "by_source": {k: v["exec_match"] for k, v in m.get("by", {}).get("source", {}).items()}}
    stats = run / "data" / "stats.json"
    if (run / "report.json").is_file() and stats.is_file():
        out["train_rows"] = json.loads(stats.read_text())["train"]["rows"]
        out["train_tokens"] = json.loads(stats.read_text())["train"]["tokens"]
    config = run / "adapter" / "gemsql_config.yaml"
    if config.is_file():
        c = yaml.safe_load(config.read_text())
        out["settings"] = {k: c[k] for k in ("schema_sample_rows", "max_train_rows", "learning_rate", "num_train_epochs",
                                             "lora_r", "stop_token_training", "gradient_checkpointing")}
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", required=True)
    p.add_argument("--base", required=True)
    p.add_argument("--tutorial", required=True)
    p.add_argument("--gemsql", required=True)
    p.add_argument("--variants", nargs="*", default=[])
    p.add_argument("--config", default="configs/spider.yaml")
    p.add_argument("--out", default="docs/results")
    a = p.parse_args()
    work, out = Path(a.work), Path(a.out)
    stats = json.loads((work / a.base / "data" / "stats.json").read_text())
    result = {
        "databases": len(stats["test_groups"]),
        "rows": stats["test"]["rows"],
        "test_databases": stats["test_groups"],
        "base": summary(work / a.base),
        "tutorial": summary(work / a.tutorial),
        "gemsql": summary(work / a.gemsql),
        "variants": {name: summary(work / name) for name in a.variants},
        "config": a.config,
        "command": "python bench/spider_results.py " + " ".join(sys.argv[1:]),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "spider_heldout.json").write_text(json.dumps(result, indent=2) + "\n")
    labels = ["base", f"tutorial ({a.tutorial})", f"gemsql ({a.gemsql})", *a.variants]
    runs = [result["base"], result["tutorial"], result["gemsql"], *result["variants"].values()]
    svg = bars(labels, [{"label": "execution accuracy"}, {"label": "valid SQL"}], [[r["ex"], r["valid"]] for r in runs])
    # inline in HTML an <svg> needs no namespace; as a file of its own it does
    (out / "spider_heldout.svg").write_text(svg.replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1) + "\n")
    print(json.dumps({k: result[k] for k in ("databases", "rows")}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
