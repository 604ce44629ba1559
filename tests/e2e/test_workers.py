"""End-to-end: parallel workers, exactly-once under contention, graceful stop
(`worker stop`, SIGTERM), the second SIGTERM, and responsiveness while jobs run."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections import Counter

import pytest

from e2e_util import (QUEUECTL, counts, events, history, pgroup_gone, read_pid, start_logged, timed,
                      wait_exit, wait_until, worker_log)

pytestmark = pytest.mark.e2e


def _wait_processing(cli, job_id, log=None, timeout=10.0):
    try:
        return cli.wait_state(job_id, "processing", timeout=timeout)
    except AssertionError as e:
        raise AssertionError(f"{e}; job: {cli.job(job_id)}; worker log:\n"
                             f"{worker_log(log) if log else '(none)'}") from None


def test_four_sleeping_jobs_on_four_workers_take_about_one_job(cli):
    cli.ok("enqueue", "-", input="".join(
        json.dumps({"id": f"s{i}", "command": "sleep 2"}) + "\n" for i in range(4)))
    t0 = time.monotonic()
    p = cli.run("worker", "start", "--count", "4", "--burst", timeout=30)
    wall = time.monotonic() - t0
    assert p.returncode == 0, p.stderr
    assert 2.0 <= wall < 3.5, f"4 x sleep 2 on 4 workers took {wall:.2f}s"
    jobs = [cli.job(f"s{i}") for i in range(4)]
    assert {j["state"] for j in jobs} == {"completed"}
    assert len({j["worker_id"] for j in jobs}) == 4, "each job on its own worker"
    assert all(j["attempts"] == 1 for j in jobs)
    assert cli.active_workers() == 0


def test_many_workers_many_jobs_each_ran_exactly_once(cli, tmp_path):
    out = tmp_path / "ran.txt"
    n = 300
    ids = [f"job-{i:04d}" for i in range(n)]
    payload = "".join(json.dumps({"id": i, "command": f'echo "$QUEUECTL_JOB_ID" >> {out}'})
                      + "\n" for i in ids)
    assert cli.ok("enqueue", "-", input=payload) == f"enqueued {n} jobs\n"
    # Three independent supervisors (4 worker processes) race for the same jobs.
    procs = [start_logged(cli, tmp_path / f"w{k}.log", "--count", c, "--burst", "--quiet")
             for k, c in enumerate((2, 1, 1))]
    for p in procs:
        assert wait_exit(p, 60) == 0
    lines = out.read_text().splitlines()
    dupes = [i for i, c in Counter(lines).items() if c > 1]
    assert not dupes, f"ran more than once: {dupes[:10]}"
    assert sorted(lines) == ids
    assert counts(cli)["completed"] == n
    hist = history(cli)
    assert Counter(e["job_id"] for e in hist if e["event"] == "processing") == Counter(ids)
    workers = {e.get("worker_id") for e in hist if e["event"] == "processing"}
    assert len(workers) >= 2, "the work should have been shared between workers"


def test_worker_stop_finishes_running_job_then_exits(cli, tmp_path):
    log = tmp_path / "w.log"
    p = start_logged(cli, log)
    wait_until(lambda: cli.active_workers() == 1, message="worker registered")
    cli.enqueue(id="long", command="sleep 2; echo finished")
    _wait_processing(cli, "long", log)
    out = cli.ok("worker", "stop")
    assert out == "signalled 1 workers\n"
    # A job enqueued after the stop must not be started by the stopping worker.
    cli.enqueue(id="after", command="true")
    assert wait_exit(p, 10) == 0, worker_log(log)
    job = cli.job("long")
    assert job["state"] == "completed", job
    assert job["attempts"] == 1
    assert job["output"] == "finished\n"
    after = cli.job("after")
    assert after["state"] == "pending" and after["attempts"] == 0
    assert cli.active_workers() == 0       # deregistered at once
    assert cli.ok("worker", "stop") == "signalled 0 workers\n"


def test_worker_stop_wait_and_count(cli, tmp_path):
    p = start_logged(cli, tmp_path / "w.log", "--count", "3")
    wait_until(lambda: cli.active_workers() == 3, message="3 workers registered")
    assert len(cli.json("worker", "list")) == 3
    (out, took) = timed(cli.ok, "worker", "stop", "--wait")
    assert out.splitlines() == ["signalled 3 workers", "stopped 3 workers"]
    assert took < 2.5, f"idle workers took {took:.2f}s to notice the stop request"
    assert wait_exit(p, 10) == 0
    assert cli.active_workers() == 0


def test_worker_stop_does_not_affect_a_worker_started_later(cli, tmp_path):
    first = start_logged(cli, tmp_path / "first.log")
    wait_until(lambda: cli.active_workers() == 1, message="first worker registered")
    assert cli.ok("worker", "stop") == "signalled 1 workers\n"
    assert wait_exit(first, 10) == 0

    log = tmp_path / "second.log"
    second = start_logged(cli, log)
    wait_until(lambda: cli.active_workers() == 1, message="second worker registered")
    # The second worker runs jobs and keeps running through several stop-flag checks.
    cli.enqueue(id="j1", command="sleep 1.5")
    cli.wait_state("j1", "completed", timeout=15)
    cli.enqueue(id="j2", command="true")
    cli.wait_state("j2", "completed", timeout=10)
    assert second.poll() is None, f"second worker exited: {worker_log(log)}"
    assert cli.active_workers() == 1
    # And it can itself be stopped.
    assert cli.ok("worker", "stop") == "signalled 1 workers\n"
    assert wait_exit(second, 10) == 0


def test_sigterm_and_sigint_finish_running_jobs_and_exit_0(cli, tmp_path):
    # Two supervisors with two workers each: one gets SIGTERM, the other SIGINT (Ctrl+C).
    procs = {}
    for sig, name in ((signal.SIGTERM, "term"), (signal.SIGINT, "int")):
        log = tmp_path / f"{name}.log"
        procs[name] = (start_logged(cli, log, "--count", "2"), sig, log)
        for k in (1, 2):
            cli.enqueue(id=f"{name}{k}", command=f"sleep 2; echo done-{name}{k}")
        for k in (1, 2):
            _wait_processing(cli, f"{name}{k}", log)
    for p, sig, _ in procs.values():
        p.send_signal(sig)
    for name, (p, sig, log) in procs.items():
        assert wait_exit(p, 10) == 0, (sig, worker_log(log))
        for k in (1, 2):
            job = cli.job(f"{name}{k}")
            assert job["state"] == "completed", job
            assert job["attempts"] == 1
            assert job["output"] == f"done-{name}{k}\n"
    assert cli.active_workers() == 0


def test_sigterm_on_idle_worker_exits_promptly(cli, tmp_path):
    p = start_logged(cli, tmp_path / "w.log")
    wait_until(lambda: cli.active_workers() == 1, message="worker registered")
    p.send_signal(signal.SIGTERM)
    assert wait_exit(p, 3) == 0
    assert cli.active_workers() == 0


def test_second_sigterm_kills_job_and_hands_it_back(cli, tmp_path):
    log = tmp_path / "w.log"
    pidfile = tmp_path / "job.pid"
    # Attempt 1 hangs (its shell is its process group leader); attempt 2 succeeds.
    cli.enqueue(id="hang", max_retries=3,
                command=f'if [ "$QUEUECTL_ATTEMPT" = 1 ]; then echo $$ > {pidfile}; '
                        f'sleep 60; sleep 60; fi; echo ok-$QUEUECTL_ATTEMPT')
    p = start_logged(cli, log)
    _wait_processing(cli, "hang", log)
    pgid = read_pid(pidfile)
    p.send_signal(signal.SIGTERM)
    # Wait until the worker has taken the first signal before sending the second
    # (two signals sent back to back may be merged into one by the kernel).
    wait_until(lambda: "stopping after job hang" in worker_log(log),
               message="the worker to acknowledge the first SIGTERM")
    assert p.poll() is None, "the first SIGTERM must not end a worker with a running job"
    assert cli.job("hang")["state"] == "processing"
    time.sleep(0.6)     # a separate signal: one within 0.5 s is the same stop
    p.send_signal(signal.SIGTERM)
    wait_exit(p, 10)
    wait_until(lambda: pgroup_gone(pgid), timeout=5, message="the job's process group to die")
    job = cli.job("hang")
    assert job["state"] in ("failed", "pending"), job
    assert job["attempts"] == 1
    assert events(cli, "hang") == ["enqueued", "processing", "retry_scheduled"]
    assert cli.active_workers() == 0
    # Handed back for retry: the next worker runs it again and it succeeds.
    cli.run("worker", "start", "--burst", check=0, timeout=30)
    job = cli.job("hang")
    assert job["state"] == "completed", job
    assert job["attempts"] == 2
    assert job["output"] == "ok-2\n"


@pytest.mark.backends("sqlite")   # about SQLite's write lock; PostgreSQL readers never wait for writers
def test_status_and_enqueue_answer_within_a_second_while_jobs_run(cli, tmp_path):
    log = tmp_path / "w.log"
    p = start_logged(cli, log, "--count", "2")
    # Long enough for 15 CLI calls (each ~0.4 s on PostgreSQL: importing psycopg).
    busy = "sleep 12" if cli.db.startswith("postgres") else "sleep 4"
    cli.enqueue(id="busy1", command=busy)
    cli.enqueue(id="busy2", command=busy)
    _wait_processing(cli, "busy1", log)
    _wait_processing(cli, "busy2", log)
    for _ in range(3):
        st, took = timed(cli.json, "status")
        assert took < 1.0, f"status took {took:.2f}s"
        assert st["jobs"]["processing"] == 2
        assert st["workers"]["active"] == 2
        out, took = timed(cli.ok, "enqueue", json.dumps({"command": "true", "delay": 3600}))
        assert took < 1.0, f"enqueue took {took:.2f}s"
        assert out.startswith("enqueued ")
        for args in (("list", "--json"), ("show", "busy1", "--json"), ("history",)):
            _, took = timed(cli.ok, *args)
            assert took < 1.0, (args, took)
    assert cli.job("busy1")["state"] == "processing", "the checks ran while the jobs ran"
    p.send_signal(signal.SIGTERM)
    assert wait_exit(p, 20) == 0
    assert counts(cli)["pending"] == 3


def test_concurrent_enqueuers_readers_and_workers(cli, tmp_path):
    """Many processes at once: no 'database is locked', every job runs exactly once."""
    out = tmp_path / "ran.txt"
    workers = start_logged(cli, tmp_path / "w.log", "--count", "2", "--quiet")
    batches, per = 6, 50
    ids = [f"c{b}-{i}" for b in range(batches) for i in range(per)]
    procs = []
    for b in range(batches):
        text = "".join(json.dumps({"id": f"c{b}-{i}", "command": f'echo "$QUEUECTL_JOB_ID" >> {out}'})
                       + "\n" for i in range(per))
        pr = subprocess.Popen(QUEUECTL + ["enqueue", "-"], stdin=subprocess.PIPE, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli.env)
        procs.append((pr, text))
    readers = [subprocess.Popen(QUEUECTL + [cmd, "--json"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=cli.env)
               for cmd in ("status", "list", "status", "list")]
    for pr, text in procs:
        o, e = pr.communicate(text, timeout=30)
        assert pr.returncode == 0, e
        assert o == f"enqueued {per} jobs\n"
    for r in readers:
        o, e = r.communicate(timeout=30)
        assert r.returncode == 0, e
        json.loads(o)
    wait_until(lambda: counts(cli)["completed"] == len(ids), timeout=30,
               message="every job to complete")
    lines = out.read_text().splitlines()
    assert sorted(lines) == sorted(ids), "each job ran exactly once"
    assert cli.ok("worker", "stop") == "signalled 2 workers\n"
    assert wait_exit(workers, 10) == 0
    assert "locked" not in (tmp_path / "w.log").read_text()


def test_hangup_with_the_terminal_gone_still_finishes_the_job(cli):
    """SIGHUP after the terminal vanished (writes to it fail with EIO): the
    running job still completes and `worker start` exits 0."""
    import os
    import pty

    master, slave = pty.openpty()
    p = subprocess.Popen(QUEUECTL + ["worker", "start", "--count", "2"], env=cli.env,
                         cwd=cli.cwd, stdin=slave, stdout=slave, stderr=slave)
    cli.procs.append(p)
    os.close(slave)
    try:
        cli.enqueue(id="hup", command="sleep 1.5; echo survived")
        _wait_processing(cli, "hup")
    finally:
        os.close(master)            # the terminal is gone: writes to it now fail
    p.send_signal(signal.SIGHUP)
    assert wait_exit(p, 15) == 0
    job = cli.job("hup")
    assert job["state"] == "completed", job
    assert job["output"] == "survived\n"
    assert cli.active_workers() == 0
