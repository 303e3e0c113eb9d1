"""The schema a model is shown: CREATE statements plus a few sample rows per table.

Read from a live SQLite connection (a user's database in `gemsql ask`) or from a dataset context
script, which is executed in a sandboxed in-memory database first. Real contexts (Spider) carry
dozens of INSERT rows per table; the prompt needs the shape of the data, not all of it, while
evaluation still executes against the full context.
"""

from __future__ import annotations

import sqlite3


def read_schema(con: sqlite3.Connection, sample_rows: int = 3) -> str:
    """CREATE statements of every table and view in creation order, each table followed by up to
    `sample_rows` rows as one INSERT."""
    return "\n".join(schema_blocks(con, sample_rows))


def schema_blocks(con: sqlite3.Connection, sample_rows: int = 3) -> list[str]:
    """`read_schema` one object at a time: a table's CREATE statement with its sample INSERT, or a view's."""
    blocks = []
    objects = con.execute(
        "SELECT type, name, sql FROM sqlite_master WHERE type IN ('table', 'view') AND sql IS NOT NULL "
        "AND name NOT LIKE 'sqlite_%' ORDER BY type DESC, rowid"
    ).fetchall()
    for kind, name, ddl in objects:
        block = ddl.strip().rstrip(";") + ";"
        if kind == "table" and sample_rows > 0:
            quoted = quote_identifier(name)
            rows = con.execute(f"SELECT * FROM {quoted} LIMIT {int(sample_rows)}").fetchall()
            if rows:
                values = ", ".join("(" + ", ".join(_literal(v) for v in r) + ")" for r in rows)
                block += f"\nINSERT INTO {quoted} VALUES {values};"
        blocks.append(block)
    return blocks


def quote_identifier(name: str) -> str:
    """A table or column name as a double-quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def context_blocks(context: str, sample_rows: int) -> list[str]:
    """`schema_blocks` of the database a context script builds (run in the evaluation sandbox)."""
    from gemsql.evaluate.sandbox import memory_db

    con = memory_db(context)
    try:
        return schema_blocks(con, sample_rows)
    finally:
        con.close()


def _literal(v) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, (bytes, bytearray)):
        return "X'" + bytes(v[:32]).hex() + "'"
    if isinstance(v, str):
        v = v if len(v) <= 80 else v[:77] + "..."
        return "'" + v.replace("'", "''") + "'"
    return repr(v)
