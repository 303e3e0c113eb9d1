"""`gemsql serve`: the API over a real (tiny, trained) model, bad input, limits, auth, and the page in Chromium."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request

import pytest
from conftest import CharTokenizer, free_port

from gemsql.errors import GemsqlError


def _db(path, *ddl: str) -> str:
    con = sqlite3.connect(path)
    for statement in ddl:
        con.execute(statement)  # empty tables: the schema the model sees is exactly its training prompt
    con.commit()
    con.close()
    return str(path)


def _served_answer(model: str, name: str, path: str, question: str, **generator):
    """The reply of a server of one database to one question, its model wrapped by model_generator(**generator)."""
    from fastapi.testclient import TestClient

    from gemsql.serve import create_app, load_databases, model_generator

    generate, tok = model_generator(model, max_new_tokens=24, **generator)
    with TestClient(create_app(generate, load_databases([f"{name}={path}"], tok), model_name="tiny")) as client:
        return client.post("/v1/sql", json={"question": question, "db": name})


@pytest.fixture(scope="module")
def served(tmp_path_factory, stop_trained):
    """(model folder, {name: db path}) with two databases the trained tiny model knows."""
    tmp = tmp_path_factory.mktemp("serve")
    merged, _ = stop_trained
    return str(merged), {"pets": _db(tmp / "pets.sqlite", "CREATE TABLE cats (id INT)"),
                         "zoo": _db(tmp / "zoo.sqlite", "CREATE TABLE birds (age INT)")}


@pytest.fixture(scope="module")
def model_app(served):
    from fastapi.testclient import TestClient

    from gemsql.serve import create_app, load_databases, model_generator

    model, dbs = served
    generate, tok = model_generator(model, max_new_tokens=24)
    app = create_app(generate, load_databases([f"{k}={v}" for k, v in dbs.items()], tok), model_name="tiny")
    with TestClient(app) as client:
        yield client, app


def test_questions_are_answered_from_the_model_and_run_read_only(model_app, served):
    client, app = model_app
    _, dbs = served
    before = {k: open(v, "rb").read() for k, v in dbs.items()}
    assert client.get("/health").json()["status"] == "ok"
    listed = client.get("/v1/databases").json()["databases"]
    assert {d["name"]: d["tables"] for d in listed}["pets"] == [{"name": "cats", "columns": [{"name": "id", "type": "INT"}]}]
    r = client.post("/v1/sql", json={"question": "How many cats?", "db": "pets"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["sql"] == "SELECT COUNT(*) FROM cats;" and body["columns"] == ["COUNT(*)"] and body["rows"] == [[0]]
    assert set(body["timings"]) == {"generate_ms", "execute_ms", "total_ms"}
    # a schema instead of a database: the SQL comes back, nothing runs
    r = client.post("/v1/sql", json={"question": "List dog names.", "schema": "CREATE TABLE dogs (name TEXT);"})
    assert r.status_code == 200 and r.json()["sql"] == "SELECT name FROM dogs;" and r.json()["rows"] is None
    assert {k: open(v, "rb").read() for k, v in dbs.items()} == before


def test_guided_serving_retries_sql_that_fails_on_the_served_schema(served, tmp_path):
    model, _ = served
    shelter = _db(tmp_path / "shelter.sqlite", "CREATE TABLE fish (name TEXT)", "CREATE TABLE birds (age INT)")
    for beams, status in ((0, 422), (4, 200)):  # no cats table: the greedy answer fails, a beam that runs does not
        r = _served_answer(model, "shelter", shelter, "How many cats?", guided_beams=beams)
        assert r.status_code == status, r.text
        if beams == 0:
            assert r.json()["sql"] == "SELECT COUNT(*) FROM cats;" and "no such table: cats" in r.json()["detail"]
        else:
            assert r.json()["sql"] != "SELECT COUNT(*) FROM cats;" and r.json()["columns"]


def test_served_sql_naming_a_column_one_foreign_key_away_is_repaired(served, tmp_path):
    model, _ = served
    aviary = _db(tmp_path / "aviary.sqlite", "CREATE TABLE birds (id INT)",
                 "CREATE TABLE ages (bird_id INT REFERENCES birds(id), age INT)")
    before = open(aviary, "rb").read()
    for repair, status in ((False, 422), (True, 200)):  # the memorized answer asks birds for an age they lack
        r = _served_answer(model, "aviary", aviary, "Oldest bird?", repair=repair)
        assert r.status_code == status, r.text
        if repair:
            assert "JOIN ages AS J1 ON J1.bird_id = birds.id" in r.json()["sql"] and r.json()["rows"] == [[None]]
        else:
            assert r.json()["sql"] == "SELECT MAX(age) FROM birds;" and "no such column: age" in r.json()["detail"]
    assert open(aviary, "rb").read() == before


def test_concurrent_requests_share_batches(model_app):
    client, app = model_app
    batcher = app.state.batcher
    batcher.batch_sizes.clear()
    questions = [("How many cats?", "pets", [[0]]), ("Oldest bird?", "zoo", [[None]])] * 4
    results = [None] * len(questions)

    def ask(i, q, db):
        results[i] = client.post("/v1/sql", json={"question": q, "db": db})

    threads = [threading.Thread(target=ask, args=(i, q, db)) for i, (q, db, _) in enumerate(questions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status_code for r in results] == [200] * len(questions)
    assert [r.json()["rows"] for r in results] == [rows for *_, rows in questions]
    assert max(batcher.batch_sizes) > 1 and sum(batcher.batch_sizes) == len(questions)


def _scripted_app(dbs: dict, sql: str, **kw):
    """The server with a generator that always writes `sql`: to check what the server does with SQL a
    model could write (hostile or slow), which the tiny model cannot be made to write on cue."""
    from gemsql.serve import create_app, load_databases

    delay = kw.pop("delay", 0.0)

    def generate(pairs):
        time.sleep(delay)
        return [sql] * len(pairs)

    return create_app(generate, load_databases([f"{k}={v}" for k, v in dbs.items()], CharTokenizer()), **kw)


def test_bad_input_gets_a_clear_4xx_and_the_server_keeps_serving(served):
    from fastapi.testclient import TestClient

    from gemsql.serve import ServeLimits

    _, dbs = served
    before = open(dbs["pets"], "rb").read()
    app = _scripted_app(dbs, "DELETE FROM cats;", limits=ServeLimits(max_body_bytes=2048, max_question_chars=100))
    with TestClient(app) as client:
        cases = [
            ({"json": {"question": "How many cats?", "db": "nope"}}, 404, "unknown database 'nope' (served: pets, zoo)"),
            ({"json": {"question": "   ", "db": "pets"}}, 422, "question: is empty"),
            ({"json": {"question": "x" * 101, "db": "pets"}}, 422, "longer than 100 characters"),
            ({"json": {"db": "pets"}}, 422, "question: Field required"),
            ({"json": {"question": 5, "db": "pets"}}, 422, "question: Input should be a valid string"),
            ({"json": {"question": "q", "db": "pets", "path": "/etc/passwd"}}, 422, "path: Extra inputs"),
            ({"json": {"question": "q", "db": "pets", "schema": "CREATE TABLE t (a INT);"}}, 422, "one of them"),
            ({"json": {"question": "q"}}, 422, "one of them"),
            ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 422, "JSON"),
            ({"content": b'{"question": "caf\xe9", "db": "pets"}', "headers": {"content-type": "application/json"}},
             400, "not valid UTF-8"),
            ({"content": b"x" * 4096, "headers": {"content-type": "application/json"}}, 413, "over 2048 bytes"),
            ({"json": {"question": "How many cats?", "db": "pets"}}, 422, "not run: only read-only queries"),
        ]
        for kwargs, status, message in cases:
            r = client.post("/v1/sql", **kwargs)
            assert r.status_code == status and message in r.json()["detail"], (kwargs, r.status_code, r.text)
        assert r.json()["sql"] == "DELETE FROM cats;"  # the refused SQL is shown, never run
        # a body that does not declare its length is cut off at the limit too
        chunks = (b"x" * 512 for _ in range(8))
        r = client.post("/v1/sql", content=chunks, headers={"content-type": "application/json"})
        assert r.status_code == 413
        assert client.get("/health").status_code == 200
    assert open(dbs["pets"], "rb").read() == before


def test_a_failing_query_is_a_422_with_its_sql(served):
    from fastapi.testclient import TestClient

    _, dbs = served
    with TestClient(_scripted_app(dbs, "SELECT nope FROM cats;")) as client:
        r = client.post("/v1/sql", json={"question": "q", "db": "pets"})
    assert r.status_code == 422 and "no such column: nope" in r.json()["detail"]


def test_bearer_token_and_the_pending_limit(served):
    from fastapi.testclient import TestClient

    from gemsql.serve import ServeLimits

    _, dbs = served
    app = _scripted_app(dbs, "SELECT 1;", token="s3cret", delay=0.5,
                        limits=ServeLimits(max_pending=1, batch_wait_s=0.0))
    with TestClient(app) as client:
        health = client.get("/health")  # open for load balancers, but without the database names
        assert health.status_code == 200 and health.json() == {"status": "ok", "auth": True}
        assert client.get("/v1/databases").status_code == 401
        assert client.get("/v1/databases", headers={"Authorization": "Bearer wrong"}).status_code == 401
        auth = {"Authorization": "Bearer s3cret"}
        assert client.get("/v1/databases", headers=auth).status_code == 200
        results = []

        def ask():
            results.append(client.post("/v1/sql", json={"question": "q", "db": "pets"}, headers=auth))

        threads = [threading.Thread(target=ask) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        codes = sorted(r.status_code for r in results)
        assert codes[0] == 200 and 503 in codes
        busy = next(r for r in results if r.status_code == 503)
        assert "already waiting" in busy.json()["detail"] and busy.headers["retry-after"] == "1"


def test_database_specs_are_checked(tmp_path):
    from gemsql.serve import load_databases

    good = _db(tmp_path / "a.sqlite", "CREATE TABLE t (a INT)")
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database" * 100)
    tok = CharTokenizer()
    for specs, message in [
        (["a"], "expected NAME=PATH"),
        ([f"a={good}", f"a={good}"], "given twice"),
        ([f"a={tmp_path / 'missing.sqlite'}"], "cannot open the database read-only"),
        ([f"a={junk}"], "file is not a database"),
    ]:
        with pytest.raises(GemsqlError, match=message):
            load_databases(specs, tok)


@pytest.fixture(scope="module")
def live_server(served, tmp_path_factory):
    """`gemsql serve` as a user starts it: a real uvicorn process on a loopback port."""
    model, dbs = served
    port = free_port()
    log = tmp_path_factory.mktemp("serve-log") / "server.log"
    cmd = [sys.executable, "-m", "gemsql", "serve", "--model", model, "--port", str(port), "--max_new_tokens", "24",
           "--db", *(f"{k}={v}" for k, v in dbs.items())]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while True:
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail(f"server did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    yield url
    proc.terminate()
    proc.wait(timeout=30)


def test_the_served_api_and_its_openapi_docs(live_server):
    request = urllib.request.Request(live_server + "/v1/sql", method="POST",
                                     data=json.dumps({"question": "Oldest bird?", "db": "zoo"}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as r:
        body = json.loads(r.read())
    assert body["sql"] == "SELECT MAX(age) FROM birds;" and body["rows"] == [[None]]
    with urllib.request.urlopen(live_server + "/openapi.json", timeout=10) as r:
        spec = json.loads(r.read())
    assert {"/v1/sql", "/v1/databases", "/health"} <= set(spec["paths"])


def _chromium():
    for browser in ("/usr/bin/chromium", shutil.which("chromium") or "", shutil.which("chromium-browser") or ""):
        driver = shutil.which("chromedriver") or "/usr/bin/chromedriver"
        if browser and os.path.exists(browser) and os.path.exists(driver):
            return browser, driver
    if os.environ.get("CI"):  # CI installs Debian's chromium (Makefile: browser): its absence is a failure there
        pytest.fail("chromium and chromedriver are not installed (make browser)")
    pytest.skip("chromium and chromedriver are not installed (make browser)")


def test_the_web_page_in_headless_chromium(live_server, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import Select, WebDriverWait

    browser, driver_path = _chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        wait = WebDriverWait(driver, 60)
        driver.get(live_server + "/")
        wait.until(lambda d: len(Select(d.find_element(By.ID, "db")).options) == 2)
        Select(driver.find_element(By.ID, "db")).select_by_visible_text("pets")
        assert "cats (id INT)" in driver.find_element(By.ID, "tables").text
        driver.find_element(By.ID, "ask").click()  # no question yet: said plainly
        wait.until(EC.visibility_of_element_located((By.ID, "error")))
        assert "Type a question first" in driver.find_element(By.ID, "error").text
        driver.find_element(By.ID, "question").send_keys("How many cats?")
        driver.find_element(By.ID, "ask").click()
        wait.until(EC.visibility_of_element_located((By.ID, "answer")))
        assert driver.find_element(By.ID, "sql").text == "SELECT COUNT(*) FROM cats;"
        assert driver.find_elements(By.CSS_SELECTOR, "#sql .kw")  # highlighted
        cells = [c.text for c in driver.find_elements(By.CSS_SELECTOR, "#result td")]
        assert cells == ["0"] and not driver.find_element(By.ID, "error").is_displayed()
        driver.save_screenshot(str(tmp_path / "page.png"))
    finally:
        driver.quit()
