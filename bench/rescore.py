"""An evaluated run's answers as a predictions file again, for `gemsql eval` to score with today's scorer: each
recorded verdict's answer joined by id with its row of the prepared split (the full context and the gold SQL).

    python bench/rescore.py --verdicts RUN/eval/finetuned/verdicts.jsonl --test RUN/data/test.jsonl \\
        --out RUN/eval/any-column-order/predictions.jsonl
    gemsql eval configs/spider.yaml --predictions RUN/eval/any-column-order/predictions.jsonl \\
        --eval_output RUN/eval/any-column-order
"""

from __future__ import annotations

import argparse
import sys

from gemsql.files import read_jsonl, write_jsonl


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--verdicts", required=True, help="verdicts.jsonl of `gemsql eval` on the run's predictions")
    p.add_argument("--test", required=True, help="the prepared test split the run was scored on (RUN/data/test.jsonl)")
    p.add_argument("--out", required=True, help="predictions JSONL to write")
    a = p.parse_args()
    rows = {r["id"]: r for r in read_jsonl(a.test)}
    verdicts = read_jsonl(a.verdicts)
    missing = [v["id"] for v in verdicts if v["id"] not in rows]
    if missing:
        sys.exit(f"{a.verdicts}: {len(missing)} answers are not rows of {a.test} (first: {missing[0]})")
    write_jsonl(a.out, [{"id": v["id"], "question": rows[v["id"]]["question"], "context": rows[v["id"]]["context"],
                         "sql": rows[v["id"]]["sql"], "prediction": v["prediction"],
                         "metadata": rows[v["id"]].get("metadata", {})} for v in verdicts])
    print(f"{len(verdicts)} answers -> {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
