"""Would execution-guided decoding gain by also retrying answers that run but return no rows
(`retry_empty_results`)?

Takes an evaluated run's answers that run on their database and return no rows, retries them as `gemsql
generate --retry_empty_results true` would (`runnable` with `context_runner(..., rows_needed=True)`: the likeliest of
`--beams` beams that returns rows replaces the answer, else it stays) and scores them as `gemsql eval` does. The
run's other answers would not change, so the run's execution accuracy moves by (fixed - broken) / its rows.

    python bench/empty_retry.py --model RUN/merged --verdicts RUN/eval/beams8/verdicts.jsonl \\
        --test RUN/data/test.jsonl --beams 8 --out empty_retry.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from gemsql.evaluate.score import score
from gemsql.files import read_jsonl
from gemsql.generate import Generation, context_outcomes, context_runner, load_for_generation, runnable


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="the run's merged model")
    p.add_argument("--verdicts", required=True, help="verdicts.jsonl of `gemsql eval` on that model's predictions")
    p.add_argument("--test", required=True, help="the prepared test split (RUN/data/test.jsonl): prompts, contexts")
    p.add_argument("--beams", type=int, default=8)
    p.add_argument("--max_new_tokens", type=int, default=192)
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--out", default="empty_retry.json")
    a = p.parse_args()
    test = {r["id"]: r for r in read_jsonl(a.test)}
    verdicts = [v for v in read_jsonl(a.verdicts) if v["valid"]]
    contexts = [test[v["id"]]["context"] for v in verdicts]
    outcome, returns_rows = context_outcomes(contexts), context_runner(contexts, rows_needed=True)
    empty = [i for i, v in enumerate(verdicts) if outcome(i, v["prediction"]) == ()]  # ran, no rows
    print(len(empty), "of", len(verdicts), "running answers return no rows", flush=True)
    pairs = [(test[verdicts[i]["id"]]["question"], test[verdicts[i]["id"]]["prompt_context"]) for i in empty]
    greedy = [Generation(verdicts[i]["prediction"], verdicts[i]["prediction"], 0, "as evaluated") for i in empty]
    model, tok = load_for_generation(a.model)
    started = time.time()
    retried = runnable(model, tok, pairs, greedy, lambda j, sql: returns_rows(empty[j], sql), beams=a.beams,
                       max_new_tokens=a.max_new_tokens, batch_size=a.batch_size)
    rows = []
    for i, g in zip(empty, retried):
        v = verdicts[i]
        rows.append({"id": v["id"], "was": v["prediction"], "now": g.sql, "beam": g.candidate or None,
                     "was_right": v["exec_match"], "now_right": score(contexts[i], v["gold"], g.sql).exec_match})
    summary = {"answers": len(rows), "replaced": sum(r["beam"] is not None for r in rows),
               "fixed": sum(r["now_right"] and not r["was_right"] for r in rows),
               "broken": sum(r["was_right"] and not r["now_right"] for r in rows),
               "seconds": round(time.time() - started), "beams": a.beams, "command": " ".join(sys.argv)}
    with open(a.out, "w") as f:
        json.dump({"summary": summary, "rows": rows}, f, indent=1)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
