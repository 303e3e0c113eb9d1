"""Collect the Spider held-out runs of the GPU scripts into docs/results/: one JSON and one SVG chart.

    python bench/spider_results.py --work /root/work --base spider-base --tutorial tutorial-1500 \
        --gemsql gemsql-1500 --variants gemsql-4000 gemsql-4000-rows0 gemsql-4000-lr5e-4
    # later runs on the same split, added to the existing JSON (the earlier runs' folders are not needed):
    python bench/spider_results.py --work /root/work --merge --variants spider-all spider-fast-2ep
    # RUN:DECODING: the run's model scored again with other decoding (RUN/eval/DECODING/metrics.json)
    python bench/spider_results.py --work /root/work --merge --variants spider-3ep:beams8
    # a run on another split (another seed) into a file of its own
    python bench/spider_results.py --work /root/work --merge --variants spider-seed7 --out docs/results/seed7
    # --shipped RUN: RUN (one of --variants) is configs/spider.yaml as shipped, trained and decoded end to end; its
    # figures also go under "shipped" (what a user of the config gets; "gemsql" stays the same-rows comparison)
    python bench/spider_results.py --work /root/work --merge --variants spider-s42 --shipped spider-s42

Each run folder is a `gemsql run` output (report.json, data/stats.json, eval/finetuned/metrics.json);
the base folder holds the prepared split and eval/metrics.json of the base model's predictions. A run scored
with execution-guided decoding also gets its greedy answers' scores ("greedy").
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from gemsql.evaluate.html import bars


SETTINGS = ("schema_sample_rows", "max_train_rows", "learning_rate", "num_train_epochs", "per_device_train_batch_size",
            "quantization", "lora_r", "lora_alpha", "stop_token_training", "gradient_checkpointing",
            "execution_guided_beams", "retry_empty_results", "schema_repair", "schema_shuffle", "finetuning",
            "lr_scheduler_type", "seed", "recompute", "torch_compile_mode")


def metrics(run: Path, decoding: str = "finetuned") -> dict:
    path = run / "eval" / decoding / "metrics.json"
    return json.loads((path if path.is_file() else run / "eval" / "metrics.json").read_text())


def summary(spec: Path) -> dict:
    """RUN, or RUN:DECODING for the same model scored again with other decoding (RUN/eval/DECODING)."""
    run, _, decoding = str(spec).partition(":")
    run = Path(run)
    m = metrics(run, decoding or "finetuned")
    out = {"ex": m["exec_match"], "exact": m["exact_match"], "valid": m["valid"], "examples": m["examples"],
           "by_source": {k: v["exec_match"] for k, v in m.get("by", {}).get("source", {}).items()}}
    if "greedy" in m:
        g = m["greedy"]
        out["greedy"] = {"ex": g["exec_match"], "exact": g["exact_match"], "valid": g["valid"]}
        out["replaced"] = m["replaced"]
    if "repaired" in m:  # answers schema repair rewrote (counted in "replaced" too)
        out["repaired"] = m["repaired"]
    stats = run / "data" / "stats.json"
    if (run / "report.json").is_file() and stats.is_file():
        out["train_rows"] = json.loads(stats.read_text())["train"]["rows"]
        out["train_tokens"] = json.loads(stats.read_text())["train"]["tokens"]
    # the trained folder keeps the run's whole config: RUN/adapter (LoRA) or RUN/full_model (finetuning: full)
    config = next((c for c in (run / d / "gemsql_config.yaml" for d in ("adapter", "full_model")) if c.is_file()), None)
    if config is not None:
        c = yaml.safe_load(config.read_text())
        # a setting the config leaves to the machine (recompute, torch_compile_mode) as the run decided it, where its
        # train_metrics.json says (gemsql.train.as_run; runs before it keep the config's null)
        metrics_file = config.with_name("train_metrics.json")
        as_run = json.loads(metrics_file.read_text()).get("as_run", {}) if metrics_file.is_file() else {}
        out["settings"] = {k: as_run.get(k) if c[k] is None else c[k] for k in SETTINGS if k in c}
    if decoding:  # the training settings hold, the decoding is this one's (the eval folder's name says which)
        out["decoding"] = decoding
        out.get("settings", {}).pop("execution_guided_beams", None)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", required=True)
    p.add_argument("--base", help="the base model's folder (with the prepared split)")
    p.add_argument("--tutorial", help="the tutorial recipe's run")
    p.add_argument("--gemsql", help="gemsql's run on the same rows as the tutorial's")
    p.add_argument("--variants", nargs="*", default=[])
    p.add_argument("--merge", action="store_true",
                   help="add --variants to the JSON already in --out (same split) instead of starting anew")
    p.add_argument("--shipped", help="the one of --variants that is --config as shipped, end to end: recorded again "
                   "under \"shipped\" with its name")
    p.add_argument("--config", default="configs/spider.yaml")
    p.add_argument("--out", default="docs/results")
    a = p.parse_args()
    if a.shipped and a.shipped not in a.variants:
        p.error("--shipped names one of --variants")
    work, out = Path(a.work), Path(a.out)
    command = "python bench/spider_results.py " + " ".join(sys.argv[1:])
    if a.merge:
        path = out / "spider_heldout.json"
        result = json.loads(path.read_text()) if path.is_file() else None
        for name in a.variants:
            stats = json.loads((work / name.partition(":")[0] / "data" / "stats.json").read_text())
            if result is None:  # another split (another seed): a file of its own, its runs as variants
                result = {"databases": len(stats["test_groups"]), "rows": stats["test"]["rows"],
                          "test_databases": stats["test_groups"], "variants": {}, "commands": []}
            if sorted(stats["test_groups"]) != sorted(result["test_databases"]) or stats["test"]["rows"] != result["rows"]:
                sys.exit(f"{work / name}: not the held-out split of {path}")
            result["variants"][name] = summary(work / name)
        result["config"] = a.config
        earlier = result.pop("commands", [result.pop("command", None)])
        result["commands"] = earlier + [command] * (command not in earlier)  # the same merge again adds nothing
    else:
        if not (a.base and a.tutorial and a.gemsql):
            p.error("--base, --tutorial and --gemsql are needed without --merge")
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
            "commands": [command],
        }
    if a.shipped:
        result["shipped"] = {"run": a.shipped, **result["variants"][a.shipped]}
    out.mkdir(parents=True, exist_ok=True)
    (out / "spider_heldout.json").write_text(json.dumps(result, indent=2) + "\n")
    compared = [(k, label) for k, label in (("base", "base"), ("tutorial", "tutorial's recipe"),
                                            ("gemsql", "gemsql (same rows)")) if k in result]
    labels = [label for _, label in compared] + list(result["variants"])
    runs = [result[k] for k, _ in compared] + list(result["variants"].values())
    # per run: execution accuracy as scored, valid SQL, and the greedy answers' execution accuracy (the same as the
    # first for a run without execution-guided decoding)
    svg = bars(labels, [{"label": "execution accuracy"}, {"label": "valid SQL"}, {"label": "greedy"}],
               [[r["ex"], r["valid"], r.get("greedy", r)["ex"]] for r in runs])
    # inline in HTML an <svg> needs no namespace; as a file of its own it does
    (out / "spider_heldout.svg").write_text(svg.replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1) + "\n")
    print(json.dumps({k: result[k] for k in ("databases", "rows")}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
