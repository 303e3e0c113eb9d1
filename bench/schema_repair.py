"""What schema repair (`schema_repair`) does to an evaluated run: the run's answers as `gemsql generate --schema_repair
true` would leave them (`gemsql.generate.repaired`, after whatever decoding the run used), scored as `gemsql eval` does.

Repair needs no model: it rewrites answers that fail on their database from the database's schema. So a run evaluated
without it is measured with it by re-running only this step on its answers.

    python bench/schema_repair.py --verdicts RUN/eval/finetuned/verdicts.jsonl --test RUN/data/test.jsonl \\
        --rows_needed --name RUN --out docs/results/schema_repair.json --predictions RUN/eval/repair/predictions.jsonl
    gemsql eval configs/spider.yaml --predictions RUN/eval/repair/predictions.jsonl --eval_output RUN/eval/repair

--rows_needed: as with retry_empty_results, a repair must return rows to be kept (the answer being repaired fails
either way: repair only rewrites columns a query's tables lack).
--extract: first take each recorded answer's SQL again with today's `gemsql.generate.extract_sql` (answers recorded
before it started at the first word a statement can start with kept the stray text before the SQL).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from results_file import record

from gemsql.evaluate.score import score
from gemsql.files import read_jsonl, write_jsonl
from gemsql.generate import Generation, context_runner, context_schemas, extract_sql, repaired


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--verdicts", required=True, help="verdicts.jsonl of `gemsql eval` on the run's predictions")
    p.add_argument("--test", required=True, help="the prepared test split (RUN/data/test.jsonl): the full contexts")
    p.add_argument("--rows_needed", action="store_true", help="keep a repair only if it returns rows")
    p.add_argument("--name", required=True, help="the run (and decoding) the verdicts are of, kept in the record")
    p.add_argument("--out", default="schema_repair.json", help="records, one per --name")
    p.add_argument("--predictions", help="also write the repaired answers here, for `gemsql eval`")
    p.add_argument("--extract", action="store_true", help="take each answer's SQL again with today's extract_sql first")
    a = p.parse_args()
    started = time.perf_counter()
    test = {r["id"]: r for r in read_jsonl(a.test)}
    verdicts = list(read_jsonl(a.verdicts))
    rows = [test[v["id"]] for v in verdicts]
    contexts = [r["context"] for r in rows]
    answers = [extract_sql(v["prediction"]) if a.extract else v["prediction"] for v in verdicts]
    gens = [Generation(sql=sql, raw=v["prediction"], new_tokens=0, stop_reason="") for sql, v in zip(answers, verdicts)]
    gens = repaired(gens, context_runner(contexts, rows_needed=a.rows_needed), context_schemas(contexts))
    fixed = broken = 0
    for v, g, context in zip(verdicts, gens, contexts):
        if g.repaired or g.sql != v["prediction"]:
            right = score(context, v["gold"], g.sql).exec_match
            fixed += right and not v["exec_match"]
            broken += v["exec_match"] and not right  # cannot happen (a failing answer is never right); counted anyway
    before = sum(v["exec_match"] for v in verdicts)
    result = {"name": a.name, "rows": len(verdicts), "rows_needed": a.rows_needed,
              "failing": sum(1 for v in verdicts if not v["valid"]), "repaired": sum(g.repaired for g in gens),
              **({"extracted": sum(sql != v["prediction"] for sql, v in zip(answers, verdicts))} if a.extract else {}),
              "fixed": fixed, "broken": broken, "ex_before": round(before / len(verdicts), 4),
              "ex_after": round((before + fixed - broken) / len(verdicts), 4),
              "seconds": round(time.perf_counter() - started, 1), "command": "python bench/schema_repair.py " +
              " ".join(sys.argv[1:])}
    print(json.dumps(result), flush=True)
    record(a.out, result, key=("name", "rows_needed"))
    if a.predictions:
        write_jsonl(a.predictions, ({"id": r["id"], "question": r["question"], "context": r["context"], "sql": r["sql"],
                                     "metadata": r.get("metadata", {}), "prompt_context": r.get("prompt_context"),
                                     "prediction": g.sql, "candidate": v.get("candidate", 0),
                                     **({"repaired": True} if g.repaired else {})}
                                    for r, g, v in zip(rows, gens, verdicts)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
