"""A corpus of hostile SQL, and an audit that runs it through the sandbox.

The audit proves, for every case, against both an in-memory evaluation database and a user's
database file opened read-only: no file is created or changed anywhere under the watched folders,
every statement ends within its time limit (plus slack), and the process survives. The tests run it;
`bench/sandbox_audit.py` writes its figures to docs/sandbox.json.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from gemsql.evaluate.sandbox import Limits, memory_db, open_readonly, run

SCHEMA = (
    "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, email TEXT, balance REAL);"
    "CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INT, total REAL);"
    "INSERT INTO users VALUES (1,'ann','a@x.io',10.5),(2,'bo','b@x.io',3.0),(3,'cy','c@x.io',0);"
    "INSERT INTO orders VALUES (1,1,9.99),(2,1,5.0),(3,2,42.0);"
)


def corpus(victim_dir: str) -> list[tuple[str, str]]:
    """(category, sql) pairs; `victim_dir` is where file-creating attacks aim."""
    d = victim_dir.rstrip("/")
    cases: list[tuple[str, str]] = []

    def add(category: str, *sqls: str) -> None:
        cases.extend((category, s) for s in sqls)

    # recursive CTE bombs: unbounded, huge bounded, nested, string-growing
    add("recursive_cte",
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c",
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT x FROM c",
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c LIMIT 1000000000000) SELECT max(x) FROM c",
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x FROM c) SELECT sum(x) FROM c",
        "WITH RECURSIVE c(s) AS (SELECT 'a' UNION ALL SELECT s||s FROM c) SELECT length(s) FROM c",
        "WITH RECURSIVE c(s) AS (SELECT 'x' UNION ALL SELECT s||s||s FROM c) SELECT max(length(s)) FROM c",
        "WITH RECURSIVE a(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM a), b(y) AS (SELECT x FROM a) SELECT count(*) FROM b",
        "WITH RECURSIVE c(x,y) AS (SELECT 1,1 UNION ALL SELECT x+1, y*2 FROM c) SELECT count(*) FROM c WHERE y < 0",
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION SELECT x+1 FROM c) SELECT count(*) FROM c",
        "WITH RECURSIVE c(x) AS (VALUES(1) UNION ALL SELECT x+1 FROM c) SELECT group_concat(x) FROM c",
        "SELECT * FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT x FROM c) ORDER BY x DESC",
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT x FROM c ORDER BY random() LIMIT 1",
        "WITH RECURSIVE f(n, a, b) AS (SELECT 0, 0, 1 UNION ALL SELECT n+1, b, a+b FROM f) SELECT count(*) FROM f",
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c, users) SELECT count(*) FROM c",
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(DISTINCT x) FROM c",
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT avg(x) FROM c GROUP BY x % 7",
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT * FROM users WHERE id IN (SELECT x FROM c)",
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT x FROM c WHERE x = -1",
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT zeroblob(1000) FROM c",
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT printf('%.*c', 1000, 'x') FROM c",
    )
    # huge cross joins and quadratic work
    big = "(WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c LIMIT 100000) SELECT x FROM c)"
    add("cross_join",
        f"SELECT count(*) FROM {big} a, {big} b",
        f"SELECT count(*) FROM {big} a, {big} b, {big} c",
        f"SELECT a.x FROM {big} a, {big} b ORDER BY a.x * b.x DESC LIMIT 1",
        f"SELECT sum(a.x * b.x) FROM {big} a JOIN {big} b ON a.x <> b.x",
        f"SELECT count(*) FROM {big} a WHERE a.x NOT IN {big}",
        f"SELECT * FROM {big} a, {big} b",
        f"SELECT group_concat(a.x) FROM {big} a, {big} b",
        f"SELECT count(*) FROM {big} a LEFT JOIN {big} b ON a.x % 2 = b.x % 2",
        f"SELECT DISTINCT a.x + b.x FROM {big} a, {big} b",
        f"SELECT max(a.x) FROM {big} a, {big} b GROUP BY a.x % 1000, b.x % 1000",
        "SELECT count(*) FROM users a, users b, users c, users d, users e, users f, users g, users h, users i, users j, "
        "users k, users l, users m, users n, users o, users p, users q, users r, users s, users t",
        "SELECT count(*) FROM orders a, orders b, orders c, orders d, orders e, orders f, orders g, orders h, orders i, "
        "orders j, orders k, orders l, orders m, orders n, orders o, orders p, orders q, orders r, orders s, orders t, orders u",
        f"SELECT a.x FROM {big} a WHERE (SELECT count(*) FROM {big} b WHERE b.x < a.x) > 5",
        f"SELECT count(*) FROM {big} a, {big} b WHERE a.x LIKE '%' || b.x || '%'",
        f"SELECT * FROM {big} ORDER BY (SELECT count(*) FROM {big})",
    )
    # ATTACH: a new file, the user's own folder, URIs, memory, weird names
    add("attach",
        f"ATTACH DATABASE '{d}/evil.db' AS evil",
        f"ATTACH '{d}/evil2.sqlite' AS e",
        f"ATTACH 'file:{d}/evil3.db?mode=rwc' AS e",
        f"ATTACH 'file:{d}/evil4.db' AS e",
        "ATTACH ':memory:' AS m",
        "ATTACH '' AS t",
        f"ATTACH '{d}/../evil5.db' AS e",
        f"ATTACH DATABASE '{d}/evil6.db' AS main2",
        f"attach database '{d}/evil7.db' as x",
        f"ATTACH\n'{d}/evil8.db'\nAS\ny",
        f"/* hi */ ATTACH '{d}/evil9.db' AS z",
        f"ATTACH '{d}/' || 'evil10.db' AS e",
        f"ATTACH (SELECT '{d}/evil11.db') AS e",
        f"ATTACH '{d}/evil12.db' AS e KEY 'x'",
        "DETACH DATABASE main",
        "DETACH temp",
        f"SELECT * FROM users; ATTACH '{d}/evil13.db' AS e",
        f"ATTACH '{d}/evil14.db' AS \"main\"",
        f"ATTACH 'file:{d}/evil15.db?vfs=unix-none' AS e",
        f"ATTACH 'file:{d}/evil16.db?mode=memory&cache=shared' AS e",
    )
    # writes and schema changes (must fail on a read-only user database)
    add("write",
        "INSERT INTO users VALUES (9,'eve','e@x.io',1e9)",
        "INSERT INTO users SELECT id+100, name, email, balance FROM users",
        "INSERT OR REPLACE INTO users VALUES (1,'pwned','p@x.io',0)",
        "REPLACE INTO users VALUES (2,'pwned','p@x.io',0)",
        "UPDATE users SET balance = balance + 1000000",
        "UPDATE users SET email = 'attacker@evil.io' WHERE id = 1",
        "DELETE FROM users",
        "DELETE FROM orders WHERE 1=1",
        "DROP TABLE users",
        "DROP TABLE IF EXISTS orders",
        "ALTER TABLE users ADD COLUMN pwned TEXT",
        "ALTER TABLE users RENAME TO users_old",
        "ALTER TABLE users RENAME COLUMN email TO mail",
        "ALTER TABLE users DROP COLUMN email",
        "CREATE TABLE evil (x)",
        "CREATE TABLE evil AS SELECT * FROM users",
        "CREATE INDEX idx_evil ON users(name)",
        "CREATE VIEW v AS SELECT * FROM users",
        "CREATE TRIGGER t AFTER INSERT ON users BEGIN DELETE FROM orders; END",
        "CREATE TEMP TABLE t AS SELECT * FROM users",
        "CREATE TEMP TRIGGER tt AFTER UPDATE ON users BEGIN DELETE FROM users; END",
        "DROP INDEX IF EXISTS sqlite_autoindex_users_1",
        "INSERT INTO users(id, name) VALUES (1, 'x') ON CONFLICT(id) DO UPDATE SET name = 'pwned'",
        "UPDATE orders SET total = 0 RETURNING *",
        "DELETE FROM users RETURNING *",
        "WITH x AS (SELECT 1) DELETE FROM users",
        "WITH x AS (SELECT 1) INSERT INTO users SELECT 50, 'a', 'b', 1 FROM x",
        "BEGIN IMMEDIATE",
        "BEGIN EXCLUSIVE",
        "SAVEPOINT s1",
        "REINDEX",
        "ANALYZE",
        "VACUUM",
        "CREATE VIRTUAL TABLE f USING fts5(x)",
        "CREATE VIRTUAL TABLE r USING rtree(id, a, b)",
    )
    # PRAGMA changes and reads of internals
    add("pragma",
        "PRAGMA writable_schema = ON",
        "PRAGMA journal_mode = WAL",
        "PRAGMA journal_mode = DELETE",
        "PRAGMA synchronous = OFF",
        "PRAGMA foreign_keys = OFF",
        "PRAGMA query_only = OFF",
        "PRAGMA max_page_count = 2147483646",
        "PRAGMA temp_store_directory = '/tmp'",
        "PRAGMA cache_size = -1000000",
        "PRAGMA mmap_size = 268435456",
        "PRAGMA locking_mode = EXCLUSIVE",
        "PRAGMA user_version = 99",
        "PRAGMA application_id = 1",
        "PRAGMA secure_delete = OFF",
        "PRAGMA trusted_schema = ON",
        "PRAGMA main.page_size = 512",
        "PRAGMA wal_checkpoint(TRUNCATE)",
        "PRAGMA integrity_check",
        "PRAGMA database_list",
        "SELECT * FROM pragma_database_list",
        "PRAGMA hard_heap_limit = 0",
        "PRAGMA soft_heap_limit = 0",
    )
    # extension loading and file functions
    add("extension",
        "SELECT load_extension('/tmp/evil.so')",
        "SELECT load_extension('libc.so.6', 'system')",
        "SELECT LOAD_EXTENSION('x')",
        f"SELECT readfile('{d}/../secret')",
        f"SELECT writefile('{d}/evil17.txt', 'x')",
        "SELECT fts3_tokenizer('simple')",
        "SELECT edit('x')",
        "SELECT sqlite_compileoption_used('ENABLE_LOAD_EXTENSION')",
    )
    add("vacuum_backup",
        f"VACUUM INTO '{d}/copy.db'",
        f"VACUUM main INTO '{d}/copy2.db'",
        f"VACUUM INTO 'file:{d}/copy3.db'",
        f"VACUUM INTO '{d}/' || 'copy4.db'",
        "VACUUM temp",
        f"vacuum into '{d}/copy5.db'",
    )
    # memory and size floods
    add("flood",
        "SELECT randomblob(2000000000)",
        "SELECT length(randomblob(1000000000))",
        "SELECT zeroblob(2000000000)",
        "SELECT hex(randomblob(600000))",
        "SELECT replace(hex(zeroblob(500000)), '00', 'abcdefgh')",
        "SELECT printf('%.*c', 2000000000, 'x')",
        "SELECT printf('%2000000000d', 1)",
        "SELECT substr(hex(zeroblob(999999)), 1, 10)",
        "SELECT group_concat(hex(randomblob(100000))) FROM users, users AS b, users AS c, orders",
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c LIMIT 10000) SELECT group_concat(hex(randomblob(1000))) FROM c",
        "SELECT char(" + ",".join(["65"] * 2000) + ")",
        "SELECT " + " || ".join(["'aaaaaaaaaa'"] * 500),
        "SELECT upper(hex(randomblob(700000)))",
        "SELECT json_group_array(hex(randomblob(100000))) FROM orders a, orders b, orders c",
        "SELECT quote(randomblob(900000))",
        "SELECT zeroblob(1e12)",
        "SELECT randomblob(-1)",
        "SELECT abs(-9223372036854775808)",
        "SELECT 9223372036854775807 + 1",
        "SELECT 1e308 * 10",
    )
    # several statements in one string
    add("multi_statement",
        "SELECT 1; DROP TABLE users",
        "SELECT * FROM users; DELETE FROM users;",
        "SELECT 1;; DROP TABLE orders",
        "SELECT 1; SELECT 2",
        "SELECT 1;\nUPDATE users SET balance = 0",
        "SELECT 1; PRAGMA writable_schema = ON",
        f"SELECT 1; ATTACH '{d}/evil18.db' AS e",
        "SELECT name FROM users WHERE id = 1; INSERT INTO users VALUES (77,'x','y',0)",
        "BEGIN; DELETE FROM users; COMMIT;",
        "SELECT 1 ; ; ; DROP TABLE users",
        "SELECT 1;/* */DELETE FROM orders",
        "SELECT ';' ; DELETE FROM users",
        "SELECT 1 -- \n; DELETE FROM users",
        "; DELETE FROM users",
        "SELECT 1\r\n;\r\nDROP TABLE users",
    )
    # comment tricks
    add("comment",
        "SELECT 1 /* ; DROP TABLE users; */",
        "SELECT 1 -- ; DROP TABLE users",
        "/* SELECT */ DELETE FROM users",
        "SELECT * FROM users /* unterminated",
        "SELECT * FROM users WHERE id = 1 --",
        "SELECT 1 /*/ DROP TABLE users /*/",
        "SELECT 1 /**/;/**/ DROP TABLE users",
        "-- comment only",
        "/* comment only */",
        "SELECT/**/name/**/FROM/**/users",
        "DE/**/LETE FROM users",
        "SELECT 1 -- \x00 DROP TABLE users",
        "SELECT '/*' ; DELETE FROM users -- */",
        "SELECT \"/*\" FROM users",
        "UPDATE/* x */users SET name='p'",
    )
    # unicode tricks: fullwidth, homoglyphs, direction overrides, zero-width, NUL
    add("unicode",
        "SELECT 1\uff1b DROP TABLE users",
        "SELECT 1\u037e DROP TABLE users",
        "\u0410TTACH 'x.db' AS e",
        "SELECT name FROM users WHERE name = 'ann\u202e'",
        "SELECT * FROM users\u200b; DELETE FROM users",
        "DEL\u200bETE FROM users",
        "SELECT 'a\x00'; DROP TABLE users",
        "SELECT\x00 1",
        "SELECT * FROM \"users\u0000\"",
        "SELECT * FROM users WHERE name = '\ud83d\ude00'",
        "SELECT '\u2028'; DELETE FROM users",
        "SELECT 1 \u00a0; DELETE FROM orders",
        "SELECT * FROM \uff55sers",
        "\ufeffDELETE FROM users",
        "SELECT char(0x202e) || name FROM users",
        "UPDATE users SET name = '\u202eevil'",
        "SELECT 'x' \u2014 'y'",
        f"ATTACH '{d}/\u202eevil19.db' AS e",
        f"ATTACH '{d}/e\u0301vil20.db' AS e",
        "SELECT * FROM users WHERE name LIKE '%\u0000%'",
    )
    # tricky but legitimate reads: must work, and still change nothing
    add("benign",
        "SELECT * FROM users",
        "SELECT name, total FROM users JOIN orders ON orders.user_id = users.id ORDER BY total DESC",
        "SELECT count(*), sum(total) FROM orders",
        "SELECT * FROM sqlite_master",
        "SELECT json_object('a', 1)",
        "SELECT name FROM users WHERE id IN (SELECT user_id FROM orders GROUP BY user_id HAVING count(*) > 1)",
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c LIMIT 5) SELECT x FROM c",
        "SELECT upper(name) FROM users ORDER BY 1",
        "SELECT random() FROM users",
        "EXPLAIN SELECT * FROM users",
        "EXPLAIN QUERY PLAN SELECT * FROM users",
        "SELECT * FROM users LIMIT 1 OFFSET 1",
    )
    return cases


@dataclass
class AuditResult:
    hostile_cases: int = 0
    runs: int = 0
    files_changed: int = 0
    over_limit: int = 0
    crashes: int = 0
    refused: int = 0
    details: list[dict] = field(default_factory=list)

    def summary(self) -> dict:
        return {"hostile_cases": self.hostile_cases, "files_changed": self.files_changed,
                "over_limit": self.over_limit, "crashes": self.crashes}


def _snapshot(folders: list[Path]) -> dict[str, str]:
    """Path -> content hash of every file under the folders (a new, changed or missing file shows up)."""
    snap = {}
    for folder in folders:
        for root, _, files in os.walk(folder):
            for name in files:
                p = Path(root) / name
                try:
                    snap[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
                except OSError:
                    snap[str(p)] = "unreadable"
    return snap


def audit(workdir: Path, limits: Limits = Limits(timeout_s=0.5), slack_s: float = 0.5) -> AuditResult:
    """Run every case against a fresh in-memory database and a read-only user database file."""
    victim = workdir / "victim"
    victim.mkdir(parents=True, exist_ok=True)
    user_db = victim / "user.sqlite"
    con = sqlite3.connect(user_db)
    con.executescript(SCHEMA)
    con.close()
    result = AuditResult()
    cases = corpus(str(victim))
    result.hostile_cases = len(cases)
    cwd_before = _snapshot([Path.cwd()]) if Path.cwd() != workdir else {}
    before = _snapshot([workdir])
    for category, sql in cases:
        for target in ("memory", "user_file"):

            def note(**finding) -> None:
                result.details.append({"category": category, "sql": sql[:200], "target": target, **finding})

            try:
                db = memory_db(SCHEMA, limits) if target == "memory" else open_readonly(user_db, limits)
            except Exception as e:  # the harness itself failing counts as a crash
                result.crashes += 1
                note(crash=repr(e))
                continue
            started = time.monotonic()
            try:
                r = run(db, sql, limits)
            except BaseException as e:  # run() promises never to raise
                result.crashes += 1
                note(crash=repr(e))
                continue
            finally:
                db.close()
            elapsed = time.monotonic() - started
            result.runs += 1
            result.refused += r.error is not None
            if elapsed > limits.timeout_s + slack_s:
                result.over_limit += 1
                note(seconds=elapsed)
            after = _snapshot([workdir])
            if after != before:
                result.files_changed += 1
                note(changed=sorted(set(after.items()) ^ set(before.items()))[:5])
                before = after
    if cwd_before and _snapshot([Path.cwd()]) != cwd_before:
        result.files_changed += 1
        result.details.append({"changed": "current directory"})
    return result
