"""PostgreSQL faults: jobs that record every run, 4 workers, and while they run
the server is restarted and the workers' connections are killed
(`pg_terminate_backend`) every ~0.7 s; more jobs are enqueued meanwhile, with
retries (`--skip-existing`) when a fault cuts an enqueue off. Afterwards every
job has completed exactly once, and every extra run is explained by a
`lease_expired` rescue.

The restart is of the local cluster (`pg_ctlcluster 15 main restart`): the
test owns the server for that moment (pytest runs tests one at a time), and
makes sure in `finally` that the server is up and accepting connections again.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import time

import pytest

from chaos_util import (Fleet, bulk, check_exactly_once, recording_command, size, summary,
                        wait_until)
from conftest import IN_CI
from e2e_util import counts

pytestmark = [pytest.mark.chaos, pytest.mark.backends("postgres")]

LEASE = 5
CLUSTER = ["15", "main"]


def _pg_ctl(action: str) -> subprocess.CompletedProcess:
    return subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", *CLUSTER, action],
                          capture_output=True, text=True, timeout=120)


def _accepts_connections(url: str) -> bool:
    import psycopg
    try:
        psycopg.connect(url, connect_timeout=2).close()
        return True
    except psycopg.Error:
        return False


def _ensure_server_up(url: str) -> None:
    if not _accepts_connections(url):
        if _pg_ctl("status").returncode != 0:
            _pg_ctl("start")
        wait_until(lambda: _accepts_connections(url), timeout=90, interval=0.2,
                   message="PostgreSQL to accept connections again")


def _terminate_workers(url: str) -> int:
    """pg_terminate_backend on the connections of this test's workers."""
    import psycopg
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=2) as conn:
            names = [f"queuectl worker {w}"[:63] for (w,) in
                     conn.execute("SELECT id FROM queuectl_workers").fetchall()]
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = ANY(%s) AND pid <> pg_backend_pid()",
                (names,)).fetchall()
        return sum(1 for (ok,) in rows if ok)
    except psycopg.Error:
        return 0          # the server is restarting


def _completed(cli) -> int:
    """Completed jobs, or -1 while the server cannot answer."""
    p = cli.run("status", "--json")
    return json.loads(p.stdout)["jobs"]["completed"] if p.returncode == 0 else -1


def _enqueue_with_retries(cli, payloads) -> int:
    """Enqueue a batch through faults: a cut-off enqueue may or may not have
    committed, so retry with --skip-existing (all or nothing, idempotent)."""
    text = "".join(json.dumps(p) + "\n" for p in payloads)
    for tries in range(1, 200):
        p = cli.run("enqueue", "-", "--skip-existing", input=text, timeout=60)
        if p.returncode == 0:
            return tries
        assert p.returncode == 1 and "Traceback" not in p.stderr, (p.returncode, p.stderr)
        time.sleep(0.2)
    raise AssertionError("enqueue never got through")


def test_server_restarts_and_killed_connections_lose_no_job_and_complete_each_once(
        cli, tmp_path, backend, db_url):
    if shutil.which("pg_ctlcluster") is None or _pg_ctl("status").returncode != 0:
        why = "no local PostgreSQL 15 cluster 'main' to restart (pg_ctlcluster)"
        if IN_CI:
            pytest.fail(f"CI=true and the PostgreSQL fault test cannot run: {why}",
                        pytrace=False)
        pytest.skip(f"PostgreSQL fault test skipped: {why}")
    rng = random.Random()
    n = size(200, 1000)
    restarts_wanted = size(1, 2)
    cli.ok("config", "set", "lease_timeout", str(LEASE))
    cli.ok("config", "set", "backoff_base", "1")
    runs = tmp_path / "runs.txt"
    ids = [f"job-{i:04d}" for i in range(n)]
    payloads = [{"id": i, "command": recording_command(runs, 0.1), "max_retries": 100}
                for i in ids]
    first, rest = payloads[: n // 2], payloads[n // 2:]
    bulk(cli, first)
    fleet = Fleet(cli, tmp_path, per_supervisor=2, rng=rng)
    terminated = restarts = enqueue_retries = 0
    t0 = time.monotonic()
    try:
        fleet.start()
        fleet.start()
        restart_at = [t0 + 2 + k * 5 for k in range(restarts_wanted)]
        deadline = t0 + 120
        # Faults until every batch is in, every restart done and 80% completed.
        while (rest or restart_at or _completed(cli) < 0.8 * n) \
                and time.monotonic() < deadline:
            time.sleep(rng.uniform(0.4, 1.0))
            terminated += _terminate_workers(db_url)
            if rest:
                batch, rest = rest[:25], rest[25:]
                enqueue_retries += _enqueue_with_retries(cli, batch) - 1
            if restart_at and time.monotonic() >= restart_at[0]:
                restart_at.pop(0)
                p = _pg_ctl("restart")
                assert p.returncode == 0, p.stderr
                restarts += 1
        _ensure_server_up(db_url)
        wait_until(lambda: counts(cli)["completed"] == n, timeout=60 + n / 10, interval=0.3,
                   message=f"all {n} jobs to complete")
        took = time.monotonic() - t0
        assert restarts == restarts_wanted
        assert [p.poll() for p in fleet.sups] == [None, None], "a supervisor gave up"
        fleet.stop()
        log = fleet.log_text()
        assert "Traceback" not in log, log[-3000:]
        assert "database error (will retry)" in log        # the faults were felt
        dups = check_exactly_once(cli, ids, runs, killed=None)
    finally:
        fleet.cleanup()
        _ensure_server_up(db_url)
    summary("postgres faults [postgres]", jobs=n, server_restarts=restarts,
            connections_killed=terminated, enqueue_retries=enqueue_retries, completed=n,
            lost=0, duplicate_runs=dups["dup_runs"], rescues=dups["rescues"],
            why=dups["reasons"],
            seconds=round(took, 1))
