"""Shared fixtures: a fresh database per test, a store per backend, the real CLI.

Backends: every test that uses `backend`, `db_url`, `store`, `make_store` or
`cli` runs once per backend in BACKENDS (mark a test or module
`@pytest.mark.backends("sqlite")` to narrow that). PostgreSQL tests get a fresh
schema on $QUEUECTL_TEST_PG (default: postgresql://postgres@127.0.0.1:5432/test).
Without a reachable server they skip with the reason, except under CI=true,
where they fail.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from queuectl.clock import FakeClock
from queuectl.store import open_store

BIN = Path(sys.executable).parent
QUEUECTL = [str(BIN / "queuectl")] if (BIN / "queuectl").exists() else [sys.executable, "-m", "queuectl"]

BACKENDS = ["sqlite", "postgres"]
PG_URL = os.environ.get("QUEUECTL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
_pg_problem: "list[str | None]" = []


def postgres_problem() -> "str | None":
    """Why PostgreSQL tests cannot run here (None if they can); checked once."""
    if not _pg_problem:
        try:
            import psycopg
            psycopg.connect(PG_URL, connect_timeout=5).close()
            _pg_problem.append(None)
        except ImportError:
            _pg_problem.append("psycopg is not installed (pip install 'psycopg[binary]>=3.2')")
        except Exception as e:
            _pg_problem.append(f"PostgreSQL at {PG_URL} is not reachable: "
                               f"{' '.join(str(e).split())}")
    return _pg_problem[0]


def require_postgres() -> None:
    problem = postgres_problem()
    if problem:
        if IN_CI:
            pytest.fail(f"CI=true and PostgreSQL tests cannot run: {problem}", pytrace=False)
        pytest.skip(f"PostgreSQL tests skipped: {problem}")


def pg_schema_url(schema: str) -> str:
    """PG_URL with its search_path set to `schema`."""
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}options=-csearch_path%3D{schema}"


def pytest_generate_tests(metafunc):
    if "backend" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("backends")
        names = list(marker.args) if marker else BACKENDS
        metafunc.parametrize("backend", names, indirect=True)


def wait_until(predicate, timeout=10.0, interval=0.02, message="condition"):
    """Poll `predicate` until it returns a truthy value or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


@pytest.fixture
def backend(request) -> str:
    if request.param == "postgres":
        require_postgres()
    return request.param


@pytest.fixture
def db_url(backend, tmp_path) -> str:
    """This test's own empty database: a file, or a fresh PostgreSQL schema."""
    if backend == "sqlite":
        yield str(tmp_path / "queuectl.db")
        return
    import psycopg
    schema = "qt_" + os.urandom(6).hex()
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield pg_schema_url(schema)
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute("SET lock_timeout = '20s'")
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_store(db_url, clock):
    """make_store() -> a new connection to this test's fresh database (fake clock)."""
    opened = []
    url = db_url

    def make(worker: bool = False, clock_=None):
        store = open_store(url, clock=clock_ or clock, worker=worker)
        opened.append(store)
        return store

    yield make
    for s in opened:
        try:
            s.close()
        except Exception:
            pass


@pytest.fixture
def store(make_store):
    return make_store()


class CLI:
    """Runs the real `queuectl` console script against one database."""

    def __init__(self, db: str, cwd: Path):
        self.db = db
        self.cwd = cwd
        self.env = {**os.environ, "QUEUECTL_DB": db}
        # Let the CLI processes cache their bytecode (this machine's environment
        # turns that off): a thousand CLI runs would otherwise each compile queuectl.
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.procs: list[subprocess.Popen] = []

    def run(self, *args, input=None, timeout=30, check=None) -> subprocess.CompletedProcess:
        p = subprocess.run(QUEUECTL + [str(a) for a in args], input=input, text=True,
                           capture_output=True, env=self.env, cwd=self.cwd, timeout=timeout)
        if check is not None:
            assert p.returncode == check, (args, p.returncode, p.stdout, p.stderr)
        return p

    def ok(self, *args, **kw) -> str:
        return self.run(*args, check=0, **kw).stdout

    def json(self, *args):
        return json.loads(self.ok(*args, "--json"))

    def enqueue(self, **payload) -> str:
        out = self.ok("enqueue", json.dumps(payload))
        assert out.startswith("enqueued "), out
        return out.split()[1]

    def job(self, job_id: str) -> dict:
        return self.json("show", job_id)

    def start(self, *args, stderr=None, env=None) -> subprocess.Popen:
        """Start `queuectl worker start ARGS` in the background (`env`: extra variables)."""
        p = subprocess.Popen(QUEUECTL + ["worker", "start", *map(str, args)],
                             env={**self.env, **(env or {})},
                             cwd=self.cwd, stdout=subprocess.PIPE,
                             stderr=stderr if stderr is not None else subprocess.PIPE, text=True)
        self.procs.append(p)
        return p

    def wait_state(self, job_id: str, state: str, timeout=20.0) -> dict:
        return wait_until(lambda: (lambda j: j if j["state"] == state else None)(self.job(job_id)),
                          timeout=timeout, message=f"job {job_id} to be {state}")

    def active_workers(self) -> int:
        return self.json("status")["workers"]["active"]

    def cleanup(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    pass
            for f in (p.stdout, p.stderr):
                if f:
                    f.close()


@pytest.fixture
def cli(tmp_path, db_url):
    c = CLI(db_url, tmp_path)
    yield c
    c.cleanup()
