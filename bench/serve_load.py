"""Load test of `gemsql serve` on loopback: N concurrent clients, each sending a bounded number of questions.

Starts the real server (uvicorn, the CLI) on a free 127.0.0.1 port with one built-in database, waits
for /health, runs the clients, stops the server, and records p50/p95 latency, requests/s and errors
(connection failures and 5xx; a 422 is an answer: the model's SQL failed or was refused, said plainly).

    python bench/serve_load.py --tiny --clients 8 --requests 25            # CPU: the tiny random test model
    python3 bench/serve_load.py --model RUN/merged --clients 32 --requests 20   # GPU: a fine-tuned 270M
"""

from __future__ import annotations

import argparse
import json
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

from results_file import record

QUESTIONS = ["How many employees are there?", "List the names of all departments.",
             "What is the average salary per department?", "Who earns the most?",
             "How many employees joined after 2020?", "Which department has the most employees?"]


def make_db(path: Path) -> None:
    """A small HR database (the built-in generator's employees domain shape), written once."""
    con = sqlite3.connect(path)
    con.executescript("""
        CREATE TABLE departments (id INTEGER PRIMARY KEY, name TEXT);
        CREATE TABLE employees (id INTEGER PRIMARY KEY, name TEXT, department_id INTEGER, salary REAL, hired TEXT);
    """)
    con.executemany("INSERT INTO departments VALUES (?, ?)", [(i, f"dept {i}") for i in range(1, 6)])
    con.executemany("INSERT INTO employees VALUES (?, ?, ?, ?, ?)",
                    [(i, f"person {i}", 1 + i % 5, 40000 + 137 * i, f"{2015 + i % 10}-01-01") for i in range(1, 501)])
    con.commit()
    con.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, payload: dict, timeout: float) -> tuple[int | None, float, str]:
    """(status, seconds, detail): detail is the server's message for an answer other than 200."""
    data = json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": "application/json"})
    started = time.perf_counter()
    detail = ""
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            r.read()
            status = r.status
    except urllib.error.HTTPError as e:
        status = e.code
        try:
            detail = str(json.loads(e.read()).get("detail", ""))
        except (ValueError, AttributeError, OSError):
            detail = "(no JSON body)"
    except OSError as e:
        status, detail = None, f"{type(e).__name__}: {e}"
    return status, time.perf_counter() - started, detail


def not_answered(results: list[tuple[str, int | None, float, str]]) -> list[dict]:
    """Why requests got no table, per question and message, most frequent first: a 422 is the model's
    SQL failing or being refused, so this says which questions the served model gets wrong."""
    counts = Counter((question, str(status), detail) for question, status, _, detail in results if status != 200)
    return [{"question": q, "status": s, "detail": d, "count": n} for (q, s, d), n in counts.most_common()]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="model folder to serve")
    p.add_argument("--tiny", action="store_true", help="build and serve the tiny random test model instead")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--requests", type=int, default=25, help="per client")
    p.add_argument("--max_new_tokens", type=int, default=64)
    p.add_argument("--timeout", type=float, default=120.0, help="per request, seconds")
    p.add_argument("--execution_guided_beams", type=int, default=4,
                   help="the server re-decodes SQL that fails on the database's schema with this many beams (0: off; "
                   "4: gemsql serve's default since the fifth session; the recorded rows before it ran with 0)")
    p.add_argument("--out", default="docs/benchmarks/serve.json")
    a = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gemsql-serve-load-"))
    model = a.model
    if a.tiny:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
        from tiny import make_tiny_model

        model = str(make_tiny_model(work / "tiny"))
    if not model:
        p.error("give --model DIR or --tiny")
    make_db(work / "hr.sqlite")
    port = free_port()
    log = (work / "server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "gemsql", "serve", "--model", model, "--db", f"hr={work / 'hr.sqlite'}",
         "--port", str(port), "--max_new_tokens", str(a.max_new_tokens), "--max_pending", str(4 * a.clients),
         "--execution_guided_beams", str(a.execution_guided_beams)],
        stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 300
        while True:
            try:
                with urllib.request.urlopen(base + "/health", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.time() > deadline:
                    print((work / "server.log").read_text()[-3000:], file=sys.stderr)
                    return 1
                time.sleep(0.5)
        post(base + "/v1/sql", {"question": QUESTIONS[0], "db": "hr"}, a.timeout)  # warm-up
        results: list[tuple[str, int | None, float, str]] = []
        lock = threading.Lock()

        def client(c: int) -> None:
            for i in range(a.requests):
                question = QUESTIONS[(c + i) % len(QUESTIONS)]
                out = post(base + "/v1/sql", {"question": question, "db": "hr"}, a.timeout)
                with lock:
                    results.append((question, *out))

        started = time.perf_counter()
        threads = [threading.Thread(target=client, args=(c,)) for c in range(a.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(timeout=60)
    latencies = sorted(s for _, _, s, _ in results)
    statuses = Counter(str(code) for _, code, _, _ in results)
    import torch

    result = {
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "model": "tiny random Gemma 3 (hidden 64, 2 layers)" if a.tiny else model,
        "clients": a.clients, "requests": len(results),
        "p50_ms": round(1000 * statistics.median(latencies), 1),
        "p95_ms": round(1000 * latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))], 1),
        "rps": round(len(results) / elapsed, 2),
        "errors": sum(n for code, n in statuses.items() if code == "None" or code.startswith("5")),
        "statuses": dict(statuses), "not_answered": not_answered(results), "max_new_tokens": a.max_new_tokens,
        "execution_guided_beams": a.execution_guided_beams,
        "command": "python bench/serve_load.py " + " ".join(sys.argv[1:]),
    }
    print(json.dumps({k: v for k, v in result.items() if k != "not_answered"}), flush=True)
    for row in result["not_answered"]:
        print(f"{row['count']:5d} x {row['status']} {row['question']!r}: {row['detail'][:160]}")
    record(a.out, result, key=("device", "model", "clients", "execution_guided_beams"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
