"""The HTTP API and page of `gemsql serve` (FastAPI on uvicorn)."""

from __future__ import annotations

import hmac
import sqlite3
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from gemsql.data.schema import quote_identifier
from gemsql.errors import GemsqlError
from gemsql.evaluate.sandbox import Limits, open_readonly, run
from gemsql.serve.batcher import Batcher, Busy


@dataclass(frozen=True)
class ServeLimits:
    max_body_bytes: int = 16_384
    max_question_chars: int = 1_000
    max_batch: int = 16
    max_pending: int = 64
    batch_wait_s: float = 0.01
    query: Limits = Limits(timeout_s=5.0, max_rows=1_000)


@dataclass
class Database:
    """A database the server may query: its path stays on the server, clients name it."""

    name: str
    path: Path
    schema: str  # what the model sees: CREATE statements and sample rows, fitted to the prompt budget
    tables: list[dict]


def load_databases(specs: list[str], tokenizer, prompt_budget: int = 3072) -> dict[str, Database]:
    """NAME=PATH specs -> databases, each opened read-only once to read its schema."""
    from gemsql.ask import fit_schema

    databases: dict[str, Database] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        name, path = name.strip(), path.strip()
        if not sep or not name or not path:
            raise GemsqlError(f"expected NAME=PATH, got '{spec}'", field="db")
        if name in databases:
            raise GemsqlError(f"database name '{name}' is given twice", field="db")
        try:
            con = open_readonly(path)
        except (FileNotFoundError, sqlite3.Error) as e:
            raise GemsqlError(f"cannot open the database read-only: {e}", file=path, field="db") from None
        try:
            schema, _ = fit_schema(con, tokenizer, prompt_budget)
            con.set_authorizer(None)  # our own catalogue queries below, not model SQL
            tables = _tables(con)
        except sqlite3.DatabaseError as e:
            raise GemsqlError(f"not a readable SQLite database: {e}", file=path, field="db") from None
        finally:
            con.close()
        databases[name] = Database(name, Path(path).resolve(), schema, tables)
    return databases


def _tables(con: sqlite3.Connection) -> list[dict]:
    names = [r[0] for r in con.execute(
        "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    return [
        {"name": n, "columns": [{"name": c[1], "type": c[2]} for c in con.execute(f"PRAGMA table_info({quote_identifier(n)})")]}
        for n in names
    ]


class SqlRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    question: str = Field(description="The question, in plain language.")
    db: str | None = Field(None, description="Name of a served database (GET /v1/databases).")
    schema_: str | None = Field(None, alias="schema", description="Instead of db: CREATE TABLE text; "
                                "the SQL is then returned, not run.")


def create_app(generate: Callable[[list[tuple[str, str]]], list[str]], databases: dict[str, Database], *,
               limits: ServeLimits = ServeLimits(), token: str | None = None, model_name: str = "model"):
    """The ASGI app. `generate` maps (question, schema) pairs to SQL, one batch per call."""
    from gemsql.ask import check_read_only

    batcher = Batcher(generate, max_batch=limits.max_batch, max_pending=limits.max_pending, wait_s=limits.batch_wait_s)

    @asynccontextmanager
    async def lifespan(app):
        await batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title="gemsql", summary="Questions in, SQL and results out, read-only.", lifespan=lifespan)
    app.state.batcher = batcher
    app.add_middleware(BodyGuard, max_bytes=limits.max_body_bytes)

    def authorize(request: Request) -> None:
        if token is None:
            return
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise HTTPException(401, "missing or wrong bearer token (Authorization: Bearer TOKEN)",
                                headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(RequestValidationError)
    async def plain_validation_error(request, exc: RequestValidationError):
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            problems.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
        return JSONResponse({"detail": "; ".join(problems) or "invalid request body"}, status_code=422)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return resources.files("gemsql.serve").joinpath("index.html").read_text(encoding="utf-8")

    @app.get("/health")
    def health() -> dict:
        if token is not None:  # open to load balancers, so it tells nothing a token guards
            return {"status": "ok", "auth": True}
        return {"status": "ok", "model": model_name, "databases": sorted(databases),
                "pending": batcher.pending, "auth": False}

    @app.get("/v1/databases", dependencies=[Depends(authorize)])
    def list_databases() -> dict:
        return {"databases": [{"name": d.name, "tables": d.tables} for d in databases.values()]}

    @app.post("/v1/sql", dependencies=[Depends(authorize)])
    async def sql(body: SqlRequest) -> dict:
        started = time.perf_counter()
        question = body.question.strip()
        if not question:
            raise HTTPException(422, "question: is empty")
        if len(question) > limits.max_question_chars:
            raise HTTPException(422, f"question: longer than {limits.max_question_chars} characters")
        if (body.db is None) == (body.schema_ is None):
            raise HTTPException(422, "give db (a served database's name) or schema, one of them")
        if body.db is not None and body.db not in databases:
            known = ", ".join(sorted(databases)) or "none"
            raise HTTPException(404, f"unknown database '{body.db}' (served: {known})")
        db = databases.get(body.db) if body.db else None
        schema = db.schema if db else body.schema_
        try:
            generated = await batcher.submit(question, schema)
        except Busy as e:
            raise HTTPException(503, str(e), headers={"Retry-After": "1"}) from None
        generated_at = time.perf_counter()
        answer = {"sql": generated, "db": body.db, "columns": None, "rows": None, "truncated": False}
        refused = check_read_only(generated)
        if db is not None and refused:
            return JSONResponse({"detail": f"the model's SQL was not run: {refused}", **answer}, status_code=422)
        if db is not None:
            from starlette.concurrency import run_in_threadpool

            result = await run_in_threadpool(_execute, db.path, generated, limits.query)
            if result.error:
                return JSONResponse({"detail": f"the model's SQL failed: {result.error}", **answer}, status_code=422)
            answer.update(columns=result.columns, rows=[[_json_value(v) for v in r] for r in result.rows],
                          truncated=result.truncated)
        answer["timings"] = {"generate_ms": round((generated_at - started) * 1000, 1),
                             "execute_ms": round((time.perf_counter() - generated_at) * 1000, 1),
                             "total_ms": round((time.perf_counter() - started) * 1000, 1)}
        return answer

    return app


def _execute(path: Path, sql: str, limits: Limits):
    con = open_readonly(path, limits)
    try:
        return run(con, sql, limits)
    finally:
        con.close()


def _json_value(v):
    return v.hex() if isinstance(v, (bytes, bytearray)) else v


class BodyGuard:
    """ASGI middleware: reads a request body (small by design) before the app sees it. Over max_bytes:
    413, stopped as soon as it is too long, whether or not it declared its length. Not UTF-8: 400."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            return await _reply(send, 413, f"request body over {self.max_bytes} bytes")
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                return await _reply(send, 413, f"request body over {self.max_bytes} bytes")
            if not message.get("more_body"):
                break
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as e:
            return await _reply(send, 400, f"request body is not valid UTF-8 (byte {e.start})")
        sent = False

        async def replay():
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


async def _reply(send, status: int, detail: str) -> None:
    await JSONResponse({"detail": detail}, status_code=status)({"type": "http"}, None, send)


def model_generator(model: str, max_new_tokens: int = 256, guided_beams: int = 0, repair: bool = False):
    """(generate, tokenizer): `generate` maps a batch of (question, schema) pairs to greedy SQL. With
    `guided_beams` >= 2, SQL that is not one read-only statement or fails on its schema (the served database's
    CREATE statements and sample rows, in a sandboxed in-memory copy) is decoded again with beams; with `repair`,
    SQL that still fails there gets a schema repair where one runs (`gemsql.generate.repaired`)."""
    from gemsql.ask import schema_runner
    from gemsql.generate import context_schemas, generate_sql, load_for_generation, repaired, runnable

    m, tok = load_for_generation(model)

    def generate(pairs: list[tuple[str, str]]) -> list[str]:
        gens = generate_sql(m, tok, pairs, max_new_tokens=max_new_tokens, batch_size=len(pairs), progress=False)
        schemas = [schema for _, schema in pairs]
        runs = schema_runner(schemas)
        if guided_beams >= 2:
            gens = runnable(m, tok, pairs, gens, runs, beams=guided_beams, max_new_tokens=max_new_tokens,
                            batch_size=len(pairs))
        if repair:
            gens = repaired(gens, runs, context_schemas(schemas))
        return [g.sql for g in gens]

    return generate, tok


def serve(model: str, dbs: list[str], *, host: str = "127.0.0.1", port: int = 8000, token: str | None = None,
          max_new_tokens: int = 256, guided_beams: int = 0, repair: bool = False,
          limits: ServeLimits = ServeLimits()) -> None:
    """Load the model once, read the databases' schemas, then serve until interrupted."""
    import uvicorn

    generate, tok = model_generator(model, max_new_tokens, guided_beams, repair)
    app = create_app(generate, load_databases(dbs, tok), limits=limits, token=token, model_name=str(model))
    uvicorn.run(app, host=host, port=port, log_level="info")
