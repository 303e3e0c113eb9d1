"""`gemsql run CONFIG`: prepare -> train -> merge -> generate on the test split -> evaluate, base vs fine-tuned."""

from __future__ import annotations

import logging
import time

from gemsql.config import Config
from gemsql.files import atomic_file, write_json

log = logging.getLogger(__name__)


def run(cfg: Config) -> dict:
    """The whole pipeline; returns (and writes to run_dir/report.json) the headline figures."""
    from gemsql.data import prepare
    from gemsql.evaluate import compare, evaluate
    from gemsql.evaluate.report import markdown
    from gemsql.files import read_jsonl
    from gemsql.generate import generate
    from gemsql.merge import merge
    from gemsql.model import resolve_model
    from gemsql.train import train

    from gemsql.distributed import is_main

    started = time.perf_counter()
    prepared = prepare(cfg)  # under a launcher: rank 0 prepares, the others wait and read its files
    train(cfg)
    if not is_main():  # merging, generation and scoring happen once, on rank 0
        return {}
    merged = merge(cfg)
    test = read_jsonl(prepared.test)
    if cfg.generate.eval_rows:
        test = test[: cfg.generate.eval_rows]
    # The prompt shows prompt_context (maybe a few rows per table); scoring executes the full context.
    pairs = [(r["question"], r.get("prompt_context", r["context"])) for r in test]
    results = {}
    models = [("base", resolve_model(cfg.model.model_name_or_path))] if cfg.generate.evaluate_base else []
    for label, model in [*models, ("finetuned", str(merged))]:
        out = cfg.run_dir / "eval" / label
        generate(model, pairs=pairs, output=out / "predictions.jsonl", extra=test,
                 max_new_tokens=cfg.generate.max_new_tokens, batch_size=cfg.generate.generation_batch_size,
                 stop_at_statement_end=cfg.generate.stop_at_statement_end)
        results[label] = evaluate(out / "predictions.jsonl", out, label=label)
    report = {
        "minutes": round((time.perf_counter() - started) / 60, 2),
        "rows_train": prepared.stats["train"]["rows"],
        "rows_test": len(test),
        **{label: {"exact_match": m["exact_match"], "valid_sql": m["valid"], "exec_match": m["exec_match"]}
           for label, m in results.items()},
    }
    write_json(cfg.run_dir / "report.json", report)
    if cfg.generate.evaluate_base:
        compare(cfg.run_dir / "eval" / "base", cfg.run_dir / "eval" / "finetuned", cfg.run_dir,
                labels=("base", "finetuned"))
    with atomic_file(cfg.run_dir / "report.md") as f:
        f.write(f"# gemsql run: {cfg.run_dir}\n\n{report['rows_train']} training rows, {report['rows_test']} test rows, "
                f"{report['minutes']} minutes.\n\n" + markdown(list(results.values())))
    log.info("report: %s", report)
    return report
