"""Running SQL a model wrote, where it cannot touch anything it should not.

Layers, each enough on its own for what it guards:
- in-memory databases for evaluation; a user's file opened read-only (URI mode=ro);
- an authorizer that denies ATTACH/DETACH, PRAGMA, loading extensions and (read-only) every write;
- one statement per call (sqlite3 refuses more), checked before it runs;
- a wall-clock limit enforced by a progress handler, a cap on rows fetched, and per-connection
  limits on string/blob length and database size, so a recursive CTE, a cross join or a
  randomblob flood ends with an error instead of a hung or swollen process.
"""

from __future__ import annotations

import re
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

_READ_ACTIONS = {
    sqlite3.SQLITE_SELECT,
    sqlite3.SQLITE_READ,
    sqlite3.SQLITE_FUNCTION,
    sqlite3.SQLITE_RECURSIVE,
}
_WRITE_ACTIONS = {
    sqlite3.SQLITE_INSERT,
    sqlite3.SQLITE_UPDATE,
    sqlite3.SQLITE_DELETE,
    sqlite3.SQLITE_CREATE_TABLE,
    sqlite3.SQLITE_CREATE_INDEX,
    sqlite3.SQLITE_CREATE_VIEW,
    sqlite3.SQLITE_CREATE_TRIGGER,
    sqlite3.SQLITE_DROP_TABLE,
    sqlite3.SQLITE_DROP_INDEX,
    sqlite3.SQLITE_DROP_VIEW,
    sqlite3.SQLITE_DROP_TRIGGER,
    sqlite3.SQLITE_ALTER_TABLE,
    sqlite3.SQLITE_TRANSACTION,
    sqlite3.SQLITE_SAVEPOINT,
    sqlite3.SQLITE_ANALYZE,
    sqlite3.SQLITE_REINDEX,
    sqlite3.SQLITE_CREATE_TEMP_TABLE,
    sqlite3.SQLITE_CREATE_TEMP_INDEX,
    sqlite3.SQLITE_CREATE_TEMP_VIEW,
    sqlite3.SQLITE_CREATE_TEMP_TRIGGER,
    sqlite3.SQLITE_DROP_TEMP_TABLE,
    sqlite3.SQLITE_DROP_TEMP_INDEX,
    sqlite3.SQLITE_DROP_TEMP_VIEW,
    sqlite3.SQLITE_DROP_TEMP_TRIGGER,
}
_DENIED_FUNCTIONS = {"load_extension", "readfile", "writefile", "edit", "fts3_tokenizer"}


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 2.0  # wall clock per statement
    max_rows: int = 10_000  # rows fetched; more marks the result truncated
    max_value_bytes: int = 1_000_000  # longest string or blob a statement may build
    max_db_pages: int = 16_384  # 64 MiB at 4 KiB pages: what writes may grow a database to
    max_sql_chars: int = 100_000
    # SQLite's heap, process-wide and only ever lowered: a single huge allocation (printf('%.*c', 2e9, 'x'))
    # runs no progress handler, so only a failing malloc stops it quickly.
    max_memory_bytes: int = 512 * 1024 * 1024


@dataclass
class Result:
    columns: list[str] = field(default_factory=list)
    rows: list[tuple] = field(default_factory=list)
    error: str | None = None
    truncated: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


def _authorizer(allow_writes: bool):
    def check(action, arg1, arg2, db_name, trigger):
        if action in _READ_ACTIONS:
            if action == sqlite3.SQLITE_FUNCTION and arg2 and arg2.lower() in _DENIED_FUNCTIONS:
                return sqlite3.SQLITE_DENY
            return sqlite3.SQLITE_OK
        if action in _WRITE_ACTIONS and allow_writes and db_name in (None, "main", "temp"):
            return sqlite3.SQLITE_OK
        return sqlite3.SQLITE_DENY  # ATTACH, DETACH, PRAGMA, VACUUM and anything unknown

    return check


def _harden(con: sqlite3.Connection, limits: Limits) -> None:
    con.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, limits.max_value_bytes)
    con.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, limits.max_sql_chars)
    con.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
    con.execute(f"PRAGMA max_page_count = {limits.max_db_pages}")
    con.execute("PRAGMA trusted_schema = OFF")
    con.execute(f"PRAGMA hard_heap_limit = {limits.max_memory_bytes}")


def memory_db(context: str, limits: Limits = Limits()) -> sqlite3.Connection:
    """A fresh in-memory database built from a dataset context (CREATE + INSERT), hardened for what runs next."""
    con = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    _harden(con, limits)
    # The context comes from the dataset, not the model, but it is text too: it gets the same guards.
    con.set_authorizer(_authorizer(allow_writes=True))
    _with_deadline(con, limits.timeout_s * 5, lambda: con.executescript(context))
    return con


def open_readonly(path: str | Path, limits: Limits = Limits()) -> sqlite3.Connection:
    """A user's database file, read-only twice over: the OS-level open mode and the authorizer."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(path)
    con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
    _harden(con, limits)
    con.set_authorizer(_authorizer(allow_writes=False))
    return con


def _with_deadline(con: sqlite3.Connection, seconds: float, fn):
    deadline = time.monotonic() + seconds
    con.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 1000)
    try:
        return fn()
    finally:
        con.set_progress_handler(None, 0)


_PRINTF = re.compile(r"\b(printf|format)\s*\(", re.I)
_NUMBER = re.compile(r"\d+")


def _refuse(sql: str, limits: Limits) -> str | None:
    """Reasons to not even start a statement: what SQLite's own limits cannot stop in time."""
    if len(sql) > limits.max_sql_chars:
        return "statement too long"
    if "\x00" in sql:
        return "statement contains a NUL character"
    try:
        sql.encode("utf-8")
    except UnicodeEncodeError:
        return "statement is not valid UTF-8 text"
    if not sqlite3.complete_statement(sql.rstrip().rstrip(";") + ";"):
        return "incomplete statement"
    # printf('%.*c', 2000000000, 'x') builds its string inside one function call, where neither the progress
    # handler nor an interrupt is consulted (measured: 10-17 s). Width and precision are its only way to grow.
    if _PRINTF.search(sql) and any(int(n) > limits.max_value_bytes for n in _NUMBER.findall(sql)):
        return "printf/format width or precision over the value size limit"
    return None


def run(con: sqlite3.Connection, sql: str, limits: Limits = Limits()) -> Result:
    """Run one statement under the limits; every failure becomes `Result.error`, never an exception."""
    started = time.perf_counter()
    refusal = _refuse(sql, limits)
    if refusal:
        return Result(error=refusal)

    def execute() -> Result:
        cur = con.execute(sql)
        cols = [d[0] for d in cur.description] if cur.description else []
        rows = cur.fetchmany(limits.max_rows + 1) if cur.description else []
        truncated = len(rows) > limits.max_rows
        return Result(cols, rows[: limits.max_rows], truncated=truncated)

    try:
        result = _with_deadline(con, limits.timeout_s, execute)
    except sqlite3.OperationalError as e:
        msg = str(e)
        result = Result(error="time limit exceeded" if msg == "interrupted" else msg)
    except (sqlite3.Error, sqlite3.Warning, ValueError, OverflowError, MemoryError) as e:
        result = Result(error=f"{type(e).__name__}: {e}")
    finally:
        if con.in_transaction:
            try:
                con.rollback()
            except sqlite3.Error:
                pass
    result.seconds = time.perf_counter() - started
    return result
