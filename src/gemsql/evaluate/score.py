"""Scoring one prediction against its gold query by executing both.

- execution match: SELECTs compare result rows as multisets (as lists when the gold has ORDER BY),
  numbers with a tolerance, the prediction's columns in any order (as Spider's test-suite evaluation judges:
  `SELECT b, a` answers `SELECT a, b`); data-changing statements compare the database state they leave.
- exact match: equality after sqlglot normalisation (case, whitespace, quoting, trailing ';').
- valid: the prediction parses and executes on the example's database.
A gold or context that fails is reported as such (`gold_error`), never raised.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections import Counter
from dataclasses import asdict, dataclass

import sqlglot
from sqlglot import exp

from gemsql.evaluate.sandbox import Limits, Result, memory_db, run

FLOAT_TOLERANCE = 1e-6


@dataclass
class Verdict:
    exec_match: bool
    exact_match: bool
    valid: bool
    error: str | None = None  # why the prediction failed, if it did
    gold_error: str | None = None  # the example itself is broken

    def to_dict(self) -> dict:
        return asdict(self)


@functools.lru_cache(maxsize=8192)
def parse_statements(sql: str) -> tuple[exp.Expression, ...] | str:
    """sqlglot's statements for `sql` (SQLite dialect), or why it does not parse.

    Cached, because scoring asks several questions of each prediction and gold (callers must not change the
    trees). A degenerate answer nested too deeply for sqlglot's recursive parser fails to parse; it does not
    crash the evaluation."""
    try:
        return tuple(t for t in sqlglot.parse(sql, read="sqlite") if t is not None)
    except (sqlglot.errors.ParseError, sqlglot.errors.TokenError, ValueError) as e:
        return f"not valid SQL: {(str(e).splitlines() or [type(e).__name__])[0]}"
    except RecursionError:
        return "not valid SQL: nested too deeply"


def _first(sql: str) -> exp.Expression | None:
    trees = parse_statements(sql.strip())
    return trees[0] if isinstance(trees, tuple) and trees else None


def normalize_sql(sql: str) -> str:
    """A canonical form for exact match; unparsable SQL falls back to lower-cased, single-spaced text."""
    text = sql.strip().rstrip(";").strip()
    trees = parse_statements(text)
    if isinstance(trees, tuple) and len(trees) == 1:
        try:
            return trees[0].sql(dialect="sqlite", normalize=True, pretty=False).lower()
        except (ValueError, RecursionError):
            pass
    return " ".join(text.lower().split())


def parses(sql: str) -> bool:
    trees = parse_statements(sql.strip())
    return isinstance(trees, tuple) and len(trees) == 1


def _is_query(sql: str) -> bool:
    tree = _first(sql)
    if tree is None:
        return sql.lstrip().upper().startswith(("SELECT", "WITH", "VALUES"))
    return isinstance(tree, (exp.Query, exp.Values))


def _ordered(sql: str) -> bool:
    tree = _first(sql)
    if tree is None:
        return "order by" in sql.lower()
    return tree.args.get("order") is not None


def _cell(v):
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v)):
        return round(float(v), 6)
    return v


def _same_rows(a: list[tuple], b: list[tuple], ordered: bool) -> bool:
    na = [tuple(_cell(v) for v in r) for r in a]
    nb = [tuple(_cell(v) for v in r) for r in b]
    if len(na) != len(nb):
        return False
    if ordered:
        return all(_close_row(x, y) for x, y in zip(na, nb))
    if Counter(na) == Counter(nb):
        return True
    # Rounding can straddle a boundary; fall back to a tolerant match after sorting.
    key = lambda r: tuple((0, v) if isinstance(v, float) else (1, str(v)) for v in r)  # noqa: E731
    return all(_close_row(x, y) for x, y in zip(sorted(na, key=key), sorted(nb, key=key)))


MAX_COLUMN_ORDERS = 720  # every order of 6 alike columns; a wider result of alike columns past it counts as no match


def _same_result(gold: list[tuple], pred: list[tuple], ordered: bool) -> bool:
    """The gold's rows, with the prediction's columns taken in any order: the same rows, column for column, under
    some one-to-one mapping of the columns. Only columns holding the same values can map onto each other, which keeps
    the orders tried few."""
    if _same_rows(gold, pred, ordered):
        return True
    if len(gold) != len(pred) or not gold or len(gold[0]) != len(pred[0]) or len(gold[0]) < 2:
        return False
    n = len(gold[0])
    values = [Counter(_cell(r[i]) for r in gold) for i in range(n)]
    pred_values = [Counter(_cell(r[j]) for r in pred) for j in range(n)]
    candidates = [[j for j in range(n) if pred_values[j] == values[i]] for i in range(n)]
    same = tuple(range(n))  # the columns as they are: compared above
    orders = (o for o in itertools.product(*candidates) if len(set(o)) == n and o != same)
    for order in itertools.islice(orders, MAX_COLUMN_ORDERS):
        if _same_rows(gold, [tuple(r[j] for j in order) for r in pred], ordered):
            return True
    return False


def _close_row(x: tuple, y: tuple) -> bool:
    if len(x) != len(y):
        return False
    for u, v in zip(x, y):
        if isinstance(u, float) and isinstance(v, float):
            if not math.isclose(u, v, rel_tol=FLOAT_TOLERANCE, abs_tol=FLOAT_TOLERANCE):
                return False
        elif u != v:
            return False
    return True


def _state(con) -> dict[str, list[tuple]]:
    """Every table's rows: what a data-changing statement is judged by."""
    names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    return {n: con.execute(f'SELECT * FROM "{n}"').fetchall() for n in names}


def _execute(context: str, sql: str, limits: Limits) -> tuple[Result, dict | None, str | None]:
    try:
        con = memory_db(context, limits)
    except Exception as e:  # a broken context: sqlite3 errors, interrupts, limits
        return Result(error=str(e)), None, f"context fails: {e}"
    try:
        result = run(con, sql, limits)
        state = _state(con) if result.ok and not _is_query(sql) else None
        return result, state, None
    finally:
        con.close()


# Why an answer is not a match, in the kinds one acts on differently (a schema the model misreads, SQL it cannot
# write, a result it gets wrong), in the order reports list them
FAILURES = ("wrong result", "no such column", "no such table", "syntax error", "time or size limit", "other error",
            "gold fails")


def failure(verdict: dict) -> str | None:
    """The kind of failure a verdict records (FAILURES), or None for a match."""
    if verdict["exec_match"]:
        return None
    if verdict.get("gold_error"):
        return "gold fails"
    if verdict["valid"]:
        return "wrong result"
    error = (verdict.get("error") or "").lower()
    for kind in ("no such column", "no such table"):
        if error.startswith(kind):
            return kind
    if any(s in error for s in ("syntax error", "incomplete", "does not parse")):
        return "syntax error"
    if any(s in error for s in ("time limit", "too big", "too many", "memory")):
        return "time or size limit"
    return "other error"


def score(context: str, gold: str | list[str], prediction: str, limits: Limits = Limits()) -> Verdict:
    """Judge one prediction; `gold` may list alternatives, any of which counts."""
    golds = [gold] if isinstance(gold, str) else list(gold)
    exact = any(normalize_sql(prediction) == normalize_sql(g) for g in golds)
    pred_result, pred_state, context_error = _execute(context, prediction, limits)
    if context_error:
        return Verdict(False, exact, False, error=context_error, gold_error=context_error)
    valid = pred_result.ok and parses(prediction)
    error = pred_result.error if not pred_result.ok else (None if valid else "does not parse as one SQLite statement")
    gold_error = None
    for g in golds:
        gold_result, gold_state, _ = _execute(context, g, limits)
        if not gold_result.ok:
            gold_error = f"gold fails: {gold_result.error}"
            continue
        gold_error = None
        if not valid:
            break
        if _is_query(g):
            if pred_state is None and _same_result(gold_result.rows, pred_result.rows, ordered=_ordered(g)):
                return Verdict(True, exact, valid)
        elif pred_state is not None and gold_state is not None:
            if gold_state.keys() == pred_state.keys() and all(
                _same_rows(gold_state[t], pred_state[t], ordered=False) for t in gold_state
            ):
                return Verdict(True, exact, valid)
    return Verdict(False, exact, valid, error=error, gold_error=gold_error)
