"""`gemsql ask`: a question to your own SQLite database, answered with SQL the model writes.

The schema the model sees is read from the database itself (CREATE statements plus a few sample
rows per table, fewer as needed to fit the model's prompt budget). The SQL it writes must parse as
one read-only statement (sqlglot), then runs read-only in the sandbox with time and row limits.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

import sqlglot
from sqlglot import exp

from gemsql.data.schema import read_schema
from gemsql.errors import GemsqlError
from gemsql.evaluate.sandbox import Limits, Result, open_readonly, run
from gemsql.evaluate.score import parse_statements

READ_ONLY = (exp.Query, exp.Values)


@dataclass
class Answer:
    question: str
    sql: str
    result: Result | None = None
    transpiled: str | None = None
    refused: str | None = None  # why the SQL was not run
    schema_rows: int = 0  # sample rows per table that fitted the prompt
    candidate: int = 0  # 0: the greedy answer; k: the greedy answer did not run, the k-th beam did
    repaired: bool = False  # the answer named a table or column its database lacks; this is its schema repair (gemsql.repair)


def fit_schema(con: sqlite3.Connection, tokenizer, budget_tokens: int) -> tuple[str, int]:
    """The richest schema (3, 1, then 0 sample rows per table) that fits `budget_tokens`."""
    for rows in (3, 1, 0):
        schema = read_schema(con, rows)
        if len(tokenizer(schema, add_special_tokens=False).input_ids) <= budget_tokens:
            return schema, rows
    raise GemsqlError(f"the database schema alone is longer than the prompt budget ({budget_tokens} tokens)")


def check_read_only(sql: str) -> str | None:
    """Why `sql` must not run, or None: it must parse as exactly one SELECT/WITH/VALUES statement."""
    trees = parse_statements(sql)
    if isinstance(trees, str):
        return trees
    if len(trees) != 1:
        return f"expected one statement, got {len(trees)}"
    if not isinstance(trees[0], READ_ONLY):
        return f"only read-only queries run here, not {trees[0].key.upper()}"
    return None


def schema_runner(schemas: list[str]):
    """`runs` for execution-guided decoding without the user's data: pair i's SQL is one read-only statement and
    runs on a sandboxed in-memory copy of schemas[i] (its CREATE statements and any sample rows)."""
    from gemsql.generate import context_runner

    on_schema = context_runner(schemas)
    return lambda i, sql: check_read_only(sql) is None and on_schema(i, sql)


def ask(
    model: str,
    question: str,
    *,
    db: str | Path | None = None,
    schema: str | None = None,
    dialect: str | None = None,
    max_new_tokens: int = 256,
    prompt_budget: int = 3072,
    limits: Limits = Limits(),
    guided_beams: int = 0,
    retry_empty: bool = False,
    repair: bool = False,
) -> Answer:
    """Answer one question: generate SQL for the database (or a given schema) and, with a database, run it.
    `guided_beams` >= 2: SQL that is refused or fails on the database (or on the empty tables of the schema) is
    decoded again with that many beams, and the most likely candidate that runs is taken; with `retry_empty` and a
    database, SQL that returns no rows there is decoded again too. `repair`: SQL that still fails gets a schema
    repair where one runs (`gemsql.generate.repaired`)."""
    from gemsql.generate import context_schemas, generate_sql, load_for_generation, passes, repaired, runnable
    from gemsql.repair import database_schema

    if not question.strip():
        raise GemsqlError("the question is empty")
    if (db is None) == (schema is None):
        raise GemsqlError("give a database (--db) or a schema (--schema), one of them")
    m, tok = load_for_generation(model)
    con = None
    rows_in_prompt = 0
    if db is not None:
        try:
            con = open_readonly(db, limits)
        except (FileNotFoundError, sqlite3.Error) as e:
            raise GemsqlError(f"cannot open the database read-only: {e}", file=str(db)) from None
        schema, rows_in_prompt = fit_schema(con, tok, prompt_budget)
    try:
        pairs = [(question, schema)]
        gens = generate_sql(m, tok, pairs, max_new_tokens=max_new_tokens, progress=False)
        # checked on the user's database when there is one (read-only), else on a sandboxed copy of the schema
        runs = schema_runner([schema]) if con is None else (
            lambda _, sql: check_read_only(sql) is None and passes(run(con, sql, limits), retry_empty))
        if guided_beams >= 2:
            gens = runnable(m, tok, pairs, gens, runs, beams=guided_beams, max_new_tokens=max_new_tokens)
        if repair:  # the schema is read only for an answer that fails: from the database, or the schema given
            gens = repaired(gens, runs, context_schemas([schema]) if con is None else lambda _: database_schema(con))
        (gen,) = gens
        answer = Answer(question, gen.sql, schema_rows=rows_in_prompt, candidate=gen.candidate, repaired=gen.repaired)
        answer.refused = check_read_only(gen.sql)
        if dialect and not answer.refused:
            answer.transpiled = sqlglot.transpile(gen.sql, read="sqlite", write=dialect)[0]
        if con is not None and not answer.refused:
            answer.result = run(con, gen.sql, limits)
        return answer
    finally:
        if con is not None:
            con.close()


def print_answer(answer: Answer, max_rows: int = 50) -> None:
    from rich.console import Console
    from rich.syntax import Syntax
    from rich.table import Table

    console = Console()
    if answer.candidate:
        console.print(f"[dim]the first answer did not run; this is beam {answer.candidate} of the retry[/dim]")
    if answer.repaired:
        console.print("[dim]the answer named a table or column its database lacks; this is its schema repair[/dim]")
    console.print(Syntax(answer.sql or "(no SQL)", "sql", word_wrap=True))
    if answer.transpiled:
        console.print(Syntax(answer.transpiled, "sql", word_wrap=True))
    if answer.refused:
        console.print(f"[yellow]not run: {answer.refused}[/yellow]")
        return
    r = answer.result
    if r is None:
        return
    if r.error:
        console.print(f"[red]error: {r.error}[/red]")
        return
    table = Table(*r.columns) if r.columns else Table("(no columns)")
    for row in r.rows[:max_rows]:
        table.add_row(*("NULL" if v is None else str(v) for v in row))
    console.print(table)
    more = " (more rows exist)" if r.truncated or len(r.rows) > max_rows else ""
    console.print(f"{min(len(r.rows), max_rows)} row(s) shown{more}, {r.seconds * 1000:.0f} ms")
