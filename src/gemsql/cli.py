"""The `gemsql` command: one subcommand per pipeline stage, each a thin layer over a Python function.

Every subcommand takes the same config (a YAML file, then flags that override it); `gemsql COMMAND
--help` lists every field with its documentation. A user mistake prints one clear line, no traceback.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

from gemsql.errors import GemsqlError

log = logging.getLogger("gemsql")


@dataclass
class MergeArgs:
    adapter: str | None = field(default=None, metadata={"help": "Adapter folder, or the whole model of `finetuning: "
                                                        "full` (default: RUN/adapter, or RUN/full_model)."})
    merged_output: str | None = field(default=None, metadata={"help": "Where to write the merged model (default: RUN/merged)."})


@dataclass
class GenerateArgs:
    model: str | None = field(default=None, metadata={"help": "Model folder to generate with (default: RUN/merged)."})
    adapter: str | None = field(default=None, metadata={"help": "Optional LoRA adapter folder applied on top of --model."})
    input: str | None = field(
        default=None, metadata={"help": "JSONL/CSV/Parquet of questions and schemas (question_column, context_column)."}
    )
    question: str | None = field(default=None, metadata={"help": "One question (instead of --input)."})
    schema: str | None = field(default=None, metadata={"help": "Schema for --question: CREATE TABLE text or a file path."})
    output: str | None = field(default=None, metadata={"help": "JSONL to write (default: print)."})


@dataclass
class EvalArgs:
    predictions: str = field(default="", metadata={"help": "Predictions JSONL from `gemsql generate` (with gold sql)."})
    eval_output: str | None = field(default=None, metadata={"help": "Folder for verdicts, metrics and report."})
    compare: list[str] | None = field(
        default=None,
        metadata={"help": "Two evaluation (or run) folders, RUN_A RUN_B: side by side, with the examples that flipped."},
    )


@dataclass
class AskArgs:
    model: str | None = field(default=None, metadata={"help": "Model folder (default: RUN/merged)."})
    db: str | None = field(default=None, metadata={"help": "SQLite database file, opened read-only."})
    schema: str | None = field(default=None, metadata={"help": "Instead of --db: a schema (CREATE TABLE text or a file)."})
    dialect: str | None = field(
        default=None, metadata={"help": "Also show the SQL in this dialect (sqlglot): postgres, mysql, bigquery, ..."}
    )
    query_timeout_s: float = field(default=5.0, metadata={"help": "Wall-clock limit for running the SQL."})
    max_rows: int = field(default=1000, metadata={"help": "Most result rows fetched."})


@dataclass
class ServeArgs:
    model: str | None = field(default=None, metadata={"help": "Model folder (default: RUN/merged)."})
    db: list[str] | None = field(
        default=None,
        metadata={"help": "Databases to serve, NAME=PATH each (SQLite files, opened read-only). Clients name them; "
                  "nothing else can be queried."},
    )
    host: str = field(default="127.0.0.1", metadata={"help": "Address to listen on (0.0.0.0: every interface)."})
    port: int = field(default=8000, metadata={"help": "Port to listen on."})
    token: str | None = field(
        default=None,
        metadata={"help": "Require 'Authorization: Bearer TOKEN' on /v1/ (default: the GEMSQL_TOKEN environment "
                  "variable, else no token)."},
    )
    max_body_bytes: int = field(default=16_384, metadata={"help": "Largest request body; larger gets 413."})
    max_question_chars: int = field(default=1_000, metadata={"help": "Longest question; longer gets 422."})
    max_batch: int = field(default=16, metadata={"help": "Most questions generated together in one batch."})
    max_pending: int = field(default=64, metadata={"help": "Most questions waiting or generating; more get 503."})
    query_timeout_s: float = field(default=5.0, metadata={"help": "Wall-clock limit for running one query."})
    max_rows: int = field(default=1000, metadata={"help": "Most result rows returned."})


COMMANDS = {
    "prepare": ("Read, convert, sample and split the dataset into RUN/data.", ()),
    "train": ("QLoRA fine-tune; the adapter lands in RUN/adapter (`--finetuning full`: the whole model in "
              "RUN/full_model; resumes from RUN/checkpoints).", ()),
    "merge": ("Merge the adapter into the full-precision base (or take the fully fine-tuned model); saves RUN/merged.",
              (MergeArgs,)),
    "generate": ("Generate SQL for questions + schemas with a merged (or base + adapter) model.", (GenerateArgs,)),
    "eval": ("Score a predictions file by executing gold and predicted SQL.", (EvalArgs,)),
    "ask": ("Ask your own SQLite database a question: SQL from the model, run read-only.", (AskArgs,)),
    "serve": ("Serve the model and named databases: HTTP API, OpenAPI docs, web page at /.", (ServeArgs,)),
    "run": ("The whole pipeline: prepare, train, merge, generate on the test split, evaluate base vs fine-tuned.", ()),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    rows = "\n".join(f"  {name.ljust(width)}  {desc}" for name, (desc, _) in COMMANDS.items())
    return (
        "usage: gemsql COMMAND [CONFIG.yaml] [--field value ...]\n\n"
        f"Fine-tune Gemma 3 for text-to-SQL and measure it by executing the SQL.\n\ncommands:\n{rows}\n\n"
        "`gemsql COMMAND --help` lists every config field. A YAML config gives defaults; flags override it."
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    command, args = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"gemsql: unknown command '{command}'\n\n{_usage()}", file=sys.stderr)
        return 2
    if args and not args[0].startswith("-") and args[0].endswith((".yaml", ".yml")):
        args = ["--config", args[0], *args[1:]]  # `gemsql run CONFIG` reads like the tutorial's one-liner
    setup_logging()
    try:
        return _dispatch(command, args)
    except GemsqlError as e:
        print(f"gemsql {command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"gemsql {command}: interrupted", file=sys.stderr)
        return 130
    except OSError as e:
        import errno

        if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            print(f"gemsql {command}: error: disk full while writing {e.filename or 'the output'}. Nothing was left "
                  "half-written: outputs are written under a temporary name and renamed when complete, so a previous "
                  "output is intact. Free space or choose another output_dir, then run the same command again "
                  "(training resumes from its last complete checkpoint).", file=sys.stderr)
            return 4
        print(f"gemsql {command}: error: {e}", file=sys.stderr)  # a path that cannot be read or written
        return 2
    except (MemoryError, RuntimeError) as e:  # torch.OutOfMemoryError (CUDA) is a RuntimeError
        if not _is_out_of_memory(e):
            raise
        print(f"gemsql {command}: error: out of memory ({e or 'host memory'}). {OOM_ADVICE}", file=sys.stderr)
        return 3


OOM_ADVICE = (
    "Lower per_device_train_batch_size (raising gradient_accumulation_steps keeps the effective batch), "
    "max_length, or generation_batch_size; turn on gradient_checkpointing, with recompute: full for the least "
    "memory; or use quantization: 4bit."
)


def _is_out_of_memory(e: BaseException) -> bool:
    import torch

    return isinstance(e, (MemoryError, torch.OutOfMemoryError)) or "out of memory" in str(e).lower()


def _dispatch(command: str, args: list[str]) -> int:
    from gemsql.config import parse_config

    description, extra = COMMANDS[command]
    cfg, extras, rest = parse_config(args, prog=f"gemsql {command}", extra=extra, description=description)
    rest_question = None
    if command == "ask" and rest and not rest[0].startswith("-"):
        rest_question, rest = rest[0], rest[1:]  # `gemsql ask --db x.sqlite "question"`
    if rest:
        raise GemsqlError(f"unknown argument(s): {' '.join(rest)} (see gemsql {command} --help)")
    if command == "prepare":
        from gemsql.data import prepare
        from gemsql.distributed import is_main

        prepared = prepare(cfg)
        if not is_main():
            return 0
        print(f"prepared {prepared.stats['train']['rows']} train / {prepared.stats['test']['rows']} test rows in {prepared.dir}")
    elif command == "train":
        from gemsql.train import train

        from gemsql.distributed import is_main

        result = train(cfg)
        if is_main():
            kind = "model" if cfg.model.finetuning == "full" else "adapter"
            print(f"{kind}: {result.trained_dir} (steps {result.steps}, train loss {result.train_loss:.4f})")
    elif command == "merge":
        from gemsql.merge import merge

        (a,) = extras
        print(f"merged model: {merge(cfg, a.adapter, a.merged_output)}")
    elif command == "generate":
        _generate(cfg, extras[0])
    elif command == "eval":
        from gemsql.evaluate import evaluate

        (a,) = extras
        if a.compare:
            from gemsql.evaluate import compare

            if len(a.compare) != 2:
                raise GemsqlError("--compare takes two folders: RUN_A RUN_B", field="compare")
            out = a.eval_output or "comparison"
            compare(a.compare[0], a.compare[1], out)
            print((Path(out) / "comparison.md").read_text())
            print(f"side by side: {Path(out) / 'comparison.html'}")
            return 0
        if not a.predictions:
            raise GemsqlError("--predictions (or --compare RUN_A RUN_B) is required", field="predictions")
        out = a.eval_output or str(Path(a.predictions).with_suffix("")) + "_eval"
        m = evaluate(a.predictions, out)
        print(f"execution accuracy {m['exec_match']:.1%}, exact match {m['exact_match']:.1%}, "
              f"valid SQL {m['valid']:.1%} on {m['examples']} examples; report in {out}")
    elif command == "ask":
        _ask(cfg, extras[0], rest_question)
    elif command == "serve":
        _serve(cfg, extras[0])
    elif command == "run":
        from gemsql.pipeline import run

        report = run(cfg)
        if not report:  # a non-main process of a distributed run: rank 0 reports
            return 0
        print((cfg.run_dir / "report.md").read_text())
        print(f"report: {cfg.run_dir / 'report.json'} ({report['minutes']} minutes)")
    return 0


def _generate(cfg, a: GenerateArgs) -> None:
    import json

    from gemsql.data.prepare import prompt_contexts
    from gemsql.data.sources import load_rows
    from gemsql.generate import generate
    from gemsql.merge import merged_dir

    model = a.model or str(merged_dir(cfg))
    if a.input and a.question:
        raise GemsqlError("give --input or --question, not both")
    if a.question:
        if not a.schema:
            raise GemsqlError("--question needs --schema (CREATE TABLE text or a file)", field="schema")
        pairs, extra = [(a.question, _text_or_file(a.schema))], None
    elif a.input:
        import dataclasses

        # Rows to generate for need no gold SQL; where the file has it, it is kept for `gemsql eval`.
        source = dataclasses.replace(cfg.data, dataset=a.input)
        rows = load_rows(source, seed=cfg.train.seed, require_sql=False)
        pairs = list(zip((r.question for r in rows), prompt_contexts(rows, source)))
        extra = [{"id": r.id, "context": r.context, "sql": r.sql or None, "metadata": r.metadata} for r in rows]
    else:
        raise GemsqlError("give --input FILE or --question TEXT --schema SCHEMA")
    gens = generate(model, adapter=a.adapter, pairs=pairs, output=a.output, extra=extra,
                    max_new_tokens=cfg.generate.max_new_tokens, batch_size=cfg.generate.generation_batch_size,
                    stop_at_statement_end=cfg.generate.stop_at_statement_end, cudnn_attention=cfg.model.cudnn_attention,
                    guided_beams=cfg.generate.execution_guided_beams, vote=cfg.generate.execution_vote,
                    retry_empty=cfg.generate.retry_empty_results, repair=cfg.generate.schema_repair)
    if a.output:
        print(f"wrote {len(gens)} predictions to {a.output}")
    else:
        for (q, _), g in zip(pairs, gens):
            print(json.dumps({"question": q, "sql": g.sql, "stop_reason": g.stop_reason}, ensure_ascii=False))


def _text_or_file(value: str) -> str:
    """A schema given inline or as a path to a file holding it."""
    return Path(value).read_text(encoding="utf-8") if Path(value).is_file() else value


def _ask(cfg, a: AskArgs, question: str | None) -> None:
    from gemsql.ask import ask, print_answer
    from gemsql.evaluate.sandbox import Limits
    from gemsql.merge import merged_dir

    if not question:
        raise GemsqlError('give the question as the last argument: gemsql ask --db FILE "question"')
    schema = _text_or_file(a.schema) if a.schema else None
    answer = ask(a.model or str(merged_dir(cfg)), question, db=a.db, schema=schema, dialect=a.dialect,
                 max_new_tokens=cfg.generate.max_new_tokens, guided_beams=cfg.generate.execution_guided_beams,
                 retry_empty=cfg.generate.retry_empty_results, repair=cfg.generate.schema_repair,
                 limits=Limits(timeout_s=a.query_timeout_s, max_rows=a.max_rows))
    print_answer(answer)


def _serve(cfg, a: ServeArgs) -> None:
    import os

    from gemsql.evaluate.sandbox import Limits
    from gemsql.merge import merged_dir
    from gemsql.serve import ServeLimits, serve

    if not a.db:
        raise GemsqlError("name at least one database: --db NAME=PATH", field="db")
    for name, value in (("max_body_bytes", a.max_body_bytes), ("max_question_chars", a.max_question_chars),
                        ("max_batch", a.max_batch), ("max_pending", a.max_pending), ("max_rows", a.max_rows)):
        if value < 1:
            raise GemsqlError(f"must be >= 1, got {value}", field=name)
    limits = ServeLimits(max_body_bytes=a.max_body_bytes, max_question_chars=a.max_question_chars,
                         max_batch=a.max_batch, max_pending=a.max_pending,
                         query=Limits(timeout_s=a.query_timeout_s, max_rows=a.max_rows))
    serve(a.model or str(merged_dir(cfg)), a.db, host=a.host, port=a.port,
          token=a.token or os.environ.get("GEMSQL_TOKEN") or None,
          max_new_tokens=cfg.generate.max_new_tokens, guided_beams=cfg.generate.execution_guided_beams,
          repair=cfg.generate.schema_repair, limits=limits)


def setup_logging(main: bool | None = None) -> None:
    """Progress on the console; `main`: whether this process logs progress (default: rank 0 of a launch)."""
    from rich.logging import RichHandler

    from gemsql.distributed import is_main

    # Under a launcher every process runs this: only rank 0 logs progress, the others only warnings.
    main = is_main() if main is None else main
    logging.basicConfig(level=logging.INFO if main else logging.WARNING, format="%(message)s", datefmt="[%X]",
                        handlers=[RichHandler(show_path=False, rich_tracebacks=False)])
    for noisy in ("httpx", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
