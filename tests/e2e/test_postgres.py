"""End-to-end on PostgreSQL only: many hosts on one database, dropped
connections, the database clock, NOTIFY wake-ups, connection errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from e2e_util import (QUEUECTL, assert_one_error_line, counts, events, history, wait_exit,
                      wait_until, worker_log)

pytestmark = [pytest.mark.e2e, pytest.mark.backends("postgres")]


def _pg():
    import psycopg
    from conftest import PG_URL
    return psycopg.connect(PG_URL, autocommit=True)


def _schema(cli) -> str:
    return cli.db.rsplit("%3D", 1)[1]


def _host_workers(cli, host: str, log, count: int = 1, *args):
    return cli.start("--count", count, *args, stderr=log,
                     env={"QUEUECTL_HOSTNAME": host})


def _lines(path) -> list[str]:
    try:
        return path.read_text().split()
    except FileNotFoundError:
        return []


def test_many_hosts_run_2000_jobs_exactly_once_and_rescue_a_killed_worker(cli, tmp_path):
    out = tmp_path / "ran.txt"
    cli.ok("config", "set", "lease_timeout", "2")
    # The victim goes first (priority) and runs long enough to be killed mid-run.
    cli.enqueue(id="victim", command=f'sleep 4 && echo "$QUEUECTL_JOB_ID" >> {out}',
                priority=10)
    ids = [f"m{i:04d}" for i in range(2000)]
    cli.ok("enqueue", "-", input="".join(
        json.dumps({"id": i, "command": f'echo "$QUEUECTL_JOB_ID" >> {out}'}) + "\n"
        for i in ids))
    logs = {h: open(tmp_path / f"{h}.log", "w") for h in ("hostA", "hostB", "hostC")}
    sups = {h: _host_workers(cli, h, f, 2, "--quiet") for h, f in logs.items()}
    held = cli.wait_state("victim", "processing", timeout=20)
    host, pid, _ = held["worker_id"].split(":")
    assert host in sups
    # The host "dies": its worker and the job's whole process group, at once.
    children = [int(c) for c in open(f"/proc/{pid}/task/{pid}/children").read().split()]
    os.kill(int(pid), signal.SIGKILL)
    for child in children:
        try:
            os.killpg(child, signal.SIGKILL)
        except ProcessLookupError:
            pass
    wait_until(lambda: counts(cli)["completed"] == len(ids) + 1, timeout=120,
               message="every job to complete")
    ran = Counter(_lines(out))
    assert [i for i in ids + ["victim"] if ran[i] != 1] == [], "each job ran exactly once"
    assert sum(ran.values()) == len(ids) + 1
    victim = cli.job("victim")
    assert victim["attempts"] == 2
    assert "lease_expired" in events(cli, "victim")
    # Every host did some of the work.
    done_by = Counter(e["worker_id"].split(":")[0] for e in history(cli)
                      if e["event"] == "completed")
    assert set(done_by) == {"hostA", "hostB", "hostC"}, done_by
    completions = Counter(e["job_id"] for e in history(cli) if e["event"] == "completed")
    assert [i for i, n in completions.items() if n != 1] == []
    assert cli.ok("worker", "stop") == "signalled 6 workers\n", [(h, worker_log(tmp_path / f"{h}.log")) for h in logs]
    for p in sups.values():
        assert wait_exit(p, 15) == 0
    for f in logs.values():
        f.close()


def test_killed_database_connections_lose_no_job_and_no_worker(cli, tmp_path):
    out = tmp_path / "ran.txt"
    ids = [f"k{i:03d}" for i in range(300)]
    cli.ok("enqueue", "-", input="".join(
        json.dumps({"id": i, "command": f'sleep 0.02; echo "$QUEUECTL_JOB_ID" >> {out}'})
        + "\n" for i in ids))
    log = tmp_path / "w.log"
    with open(log, "w") as f:
        sups = [_host_workers(cli, h, f, 2) for h in ("cutA", "cutB")]
        wait_until(lambda: len(_lines(out)) >= 20, timeout=20, message="jobs under way")
        killed = 0
        with _pg() as conn:
            for _ in range(6):
                killed += sum(1 for (ok,) in conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name LIKE 'queuectl worker cut%'") if ok)
                time.sleep(0.4)
        assert killed >= 4, "the test really cut connections"
        wait_until(lambda: counts(cli)["completed"] == len(ids), timeout=90,
                   message=f"every job to complete; log:\n{worker_log(log)}")
        assert all(p.poll() is None for p in sups), "no worker process died"
        assert cli.active_workers() == 4
        ran = Counter(_lines(out))
        assert [i for i in ids if ran[i] != 1] == [], "each job ran exactly once"
        text = worker_log(log)
        assert "Traceback" not in text
        assert "database error (will retry)" in text
        assert cli.ok("worker", "stop") == "signalled 4 workers\n"
        for p in sups:
            assert wait_exit(p, 15) == 0


def test_worker_stop_reaches_every_host(cli, tmp_path):
    log = open(tmp_path / "w.log", "w")
    sups = [_host_workers(cli, h, log) for h in ("east", "west")]
    wait_until(lambda: cli.active_workers() == 2, message="both hosts' workers")
    hosts = {w["host"] for w in cli.json("worker", "list")}
    assert hosts == {"east", "west"}
    t0 = time.monotonic()
    assert cli.ok("worker", "stop") == "signalled 2 workers\n"
    for p in sups:
        assert wait_exit(p, 10) == 0
    # NOTIFY wakes them: far sooner than their 5 s idle poll.
    assert time.monotonic() - t0 < 4.0
    log.close()


def test_idle_worker_starts_a_new_job_within_milliseconds(cli, tmp_path):
    log = open(tmp_path / "w.log", "w")
    _host_workers(cli, "idle", log)
    wait_until(lambda: cli.active_workers() == 1, message="worker registered")
    delays = []
    for n in range(5):
        time.sleep(0.3)       # let the worker go idle between jobs
        job_id = cli.enqueue(id=f"ping{n}", command="true")
        job = cli.wait_state(job_id, "completed")
        from e2e_util import parse_at
        delays.append(parse_at(job["started_at"]) - parse_at(job["created_at"]))
    # An idle worker wakes for its own timers about once a second; polling
    # alone would give delays spread over that second. LISTEN/NOTIFY does not.
    assert sorted(delays)[2] < 0.1 and max(delays) < 0.5, delays
    log.close()


SKEW = """
import sys, time
shift = float(sys.argv[1])
real_ns, real = time.time_ns, time.time
time.time_ns = lambda: real_ns() + int(shift * 1e9)
time.time = lambda: real() + shift
from queuectl.cli.main import main
sys.exit(main(sys.argv[2:]))
"""


def test_workers_with_skewed_host_clocks_use_the_database_clock(cli, tmp_path):
    """A host two hours ahead and one two hours behind: delays, leases and
    rescue all follow the database's clock, so both behave."""
    env = {**cli.env}
    logs = open(tmp_path / "w.log", "w")
    procs = [subprocess.Popen([sys.executable, "-c", SKEW, str(shift), "worker", "start"],
                              env=env, stderr=logs, stdout=subprocess.DEVNULL)
             for shift in (7200, -7200)]
    cli.procs.extend(procs)
    wait_until(lambda: cli.active_workers() == 2, message="both workers registered")
    t0 = time.monotonic()
    cli.enqueue(id="later", command="true", delay=2)
    for n in range(4):
        cli.enqueue(id=f"now{n}", command="sleep 0.2")
    job = cli.wait_state("later", "completed", timeout=20)
    # Not early (a fast host clock would have run it at once) ...
    assert time.monotonic() - t0 >= 1.9
    from e2e_util import parse_at
    waited = parse_at(job["started_at"]) - parse_at(job["created_at"])
    assert 1.9 <= waited < 6, waited
    for n in range(4):
        cli.wait_state(f"now{n}", "completed")
    # ... and no lease looked expired to the slow host: nothing was rescued.
    assert all(e["event"] != "lease_expired" for e in history(cli))
    heartbeat_ages = [w["heartbeat_age"] for w in cli.json("worker", "list")]
    assert all(abs(a) < 10 for a in heartbeat_ages), heartbeat_ages
    for p in procs:
        p.send_signal(signal.SIGTERM)
        assert wait_exit(p, 10) == 0
    logs.close()


def test_read_commands_on_an_empty_database_create_no_tables(cli):
    for args in (["status"], ["list"], ["history"], ["worker", "list"], ["dlq", "list"],
                 ["config", "list"], ["worker", "stop"]):
        cli.ok(*args)
    with _pg() as conn:
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = %s",
                              (_schema(cli),)).fetchone()[0]
    assert tables == 0
    from queuectl.store.postgres import SCHEMA_VERSION
    assert cli.ok("migrate").startswith(f"schema version {SCHEMA_VERSION}: postgresql://")
    with _pg() as conn:
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = %s",
                              (_schema(cli),)).fetchone()[0]
    assert tables == 8      # meta jobs events workers config queues job_deps schedules


def test_racing_first_commands_migrate_once(cli):
    procs = [subprocess.Popen(QUEUECTL + ["enqueue", json.dumps({"id": f"r{i}",
                                                                 "command": "true"})],
                              env=cli.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for i in range(6)]
    results = [p.communicate(timeout=60) + (p.returncode,) for p in procs]
    assert [r[2] for r in results] == [0] * 6, results
    assert counts(cli)["pending"] == 6


@pytest.mark.parametrize("url, word", [
    ("postgresql://postgres@127.0.0.1:1/test", "refused"),
    ("postgresql://postgres@127.0.0.1:5432/no_such_db_qctl", "no_such_db_qctl"),
    ("postgresql://no_such_role_qctl:s3cret@127.0.0.1:5432/test", "no_such_role_qctl"),
    ("postgresql://postgres@127.0.0.1:5432/test?nonsense=1", "nonsense"),
])
def test_connection_errors_are_one_line(cli, url, word):
    for args in (["status"], ["enqueue", '{"command": "true"}'], ["worker", "start"]):
        p = cli.run("--db", url, *args, timeout=30)
        line = assert_one_error_line(p, 2 if "nonsense" in url else 1)
        assert word in line, line
        assert "s3cret" not in line


def test_postgres_url_without_the_extra_names_it():
    code = ("import sys; sys.modules['psycopg'] = None\n"
            "from queuectl.cli.main import main\n"
            "sys.exit(main(['--db', 'postgresql://localhost/x', 'status']))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=30)
    line = assert_one_error_line(p, 1)
    assert "pip install 'psycopg[binary]>=3.2'" in line, line
