"""`gemsql run CONFIG`: prepare -> train -> merge -> generate on the test split -> evaluate, base vs fine-tuned."""

from __future__ import annotations

import logging
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor

from gemsql.config import Config
from gemsql.files import atomic_file, write_json

log = logging.getLogger(__name__)


def run(cfg: Config) -> dict:
    """The whole pipeline; returns (and writes to run_dir/report.json) the headline figures."""
    from gemsql.data import prepare
    from gemsql.distributed import is_main
    from gemsql.train import train

    started = time.perf_counter()
    prepared = prepare(cfg)  # under a launcher: rank 0 prepares, the others wait and read its files
    train(cfg)
    if not is_main():  # merging, generation and scoring happen once, on rank 0
        return {}
    if not training_patches_models(cfg):
        return evaluate_run(cfg, prepared, time.perf_counter() - started)
    # Liger swaps Gemma 3's RMSNorm and MLP classes and its rotary function process-wide when it trains; a model
    # loaded afterwards in the same process generated garbage on the H200 (0.5 % execution accuracy, against
    # 77.7 % for the same merged model in a fresh process). So the rest runs in a fresh interpreter.
    log.info("merging and evaluating in a fresh process (Liger's kernels stay with training)")
    _release_gpu_memory()  # the fresh process needs the memory this one cached while training
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=_child_logging) as pool:
        return pool.submit(evaluate_run, cfg, prepared, time.perf_counter() - started).result()


def training_patches_models(cfg: Config) -> bool:
    """Whether training swapped library code in this process that a model loaded later would inherit."""
    from gemsql.train import use_liger

    return use_liger(cfg)


def _release_gpu_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _child_logging() -> None:
    from gemsql.cli import setup_logging

    setup_logging(main=True)  # only rank 0 gets here


def evaluate_run(cfg: Config, prepared, elapsed_s: float = 0.0) -> dict:
    """After training: merge, generate on the test split with the base and the fine-tuned model, score both,
    and write the report (its minutes count `elapsed_s`, the run's time before this step)."""
    from gemsql.evaluate import compare, evaluate
    from gemsql.evaluate.report import markdown
    from gemsql.files import read_jsonl
    from gemsql.generate import generate
    from gemsql.merge import merge
    from gemsql.model import resolve_model

    started = time.perf_counter() - elapsed_s
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
        finetuned = label == "finetuned"  # the base model greedy only (see GenerateConfig.evaluate_base)
        generate(model, pairs=pairs, output=out / "predictions.jsonl", extra=test,
                 max_new_tokens=cfg.generate.max_new_tokens, batch_size=cfg.generate.generation_batch_size,
                 stop_at_statement_end=cfg.generate.stop_at_statement_end, cudnn_attention=cfg.model.cudnn_attention,
                 guided_beams=cfg.generate.execution_guided_beams if finetuned else 0,
                 vote=cfg.generate.execution_vote and finetuned, retry_empty=cfg.generate.retry_empty_results,
                 repair=cfg.generate.schema_repair and finetuned)
        results[label] = evaluate(out / "predictions.jsonl", out, label=label)
    report = {
        "minutes": round((time.perf_counter() - started) / 60, 2),
        "rows_train": prepared.stats["train"]["rows"],
        "rows_test": len(test),
        # with execution-guided decoding also the greedy answers' own scores, before the retry
        **{label: {**_rates(m), **({"greedy": _rates(m["greedy"])} if "greedy" in m else {})}
           for label, m in results.items()},
        **_as_run(cfg),
    }
    write_json(cfg.run_dir / "report.json", report)
    if cfg.generate.evaluate_base:
        compare(cfg.run_dir / "eval" / "base", cfg.run_dir / "eval" / "finetuned", cfg.run_dir,
                labels=("base", "finetuned"))
    with atomic_file(cfg.run_dir / "report.md") as f:
        as_run = report.get("as_run")
        trained_with = (f"Trained with {', '.join(f'{k} {v}' for k, v in as_run.items())} (the settings the config "
                        "left to the machine, as it decided them).\n\n" if as_run else "")
        f.write(f"# gemsql run: {cfg.run_dir}\n\n{report['rows_train']} training rows, {report['rows_test']} test rows, "
                f"{report['minutes']} minutes.\n\n{trained_with}" + markdown(list(results.values())))
    log.info("report: %s", report)
    return report


def _as_run(cfg: Config) -> dict:
    """{"as_run": ...}: what training decided for the settings the config left unset (train_metrics.json, written
    beside the adapter), or nothing for a trained folder from before it was recorded."""
    import json

    from gemsql.train import trained_dir

    metrics = trained_dir(cfg) / "train_metrics.json"
    as_run = json.loads(metrics.read_text()).get("as_run") if metrics.is_file() else None
    return {"as_run": as_run} if as_run else {}


def _rates(metrics: dict) -> dict:
    """The report's three rates from an evaluation's metrics."""
    return {"exact_match": metrics["exact_match"], "valid_sql": metrics["valid"], "exec_match": metrics["exec_match"]}
