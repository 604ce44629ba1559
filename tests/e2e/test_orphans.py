"""End-to-end: no orphan, ever, on the host of the run. A worker that dies
(SIGKILL) while its job runs: the job's whole process group is killed and the
job handed back within 2 s (`lease_expired`, the worker died), before it runs
again. The whole `worker start` tree killed with the job surviving: the next
worker on the host kills the survivor before the re-run. Markers written by
the job show that the two attempts never overlap."""

from __future__ import annotations

import os
import signal
import time

import pytest

from e2e_util import events, history, pgroup_gone, read_pid, start_logged, wait_exit, wait_until

pytestmark = pytest.mark.e2e


def _job(d) -> str:
    """Attempt 1 notes its process group, starts a background loop that stamps
    `alive` every 20 ms (in the job's process group) and hangs; each attempt
    notes when it started."""
    return (f'date +%s.%N > {d}/start.$QUEUECTL_ATTEMPT; '
            f'if [ "$QUEUECTL_ATTEMPT" = 1 ]; then echo $$ > {d}/pgid; '
            f'(i=0; while [ $i -lt 1000 ]; do i=$((i+1)); date +%s.%N > {d}/alive.tmp; mv {d}/alive.tmp {d}/alive; sleep 0.02; done) & '
            f'sleep 60; fi; echo ran-$QUEUECTL_ATTEMPT')


@pytest.fixture(autouse=True)
def _no_leftovers(tmp_path):
    """However the test ends, the job's first run does not outlive it."""
    yield
    try:
        pgid = int((tmp_path / "pgid").read_text())
    except (OSError, ValueError):
        return
    if not pgroup_gone(pgid):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except OSError:
            pass


def _setup(cli):
    cli.ok("config", "set", "lease_timeout", "30")   # no help from the lease
    cli.ok("config", "set", "backoff_base", "1")     # a rescued job retries after ~1 s


def _worker_pid(job: dict) -> int:
    return int(job["worker_id"].split(":")[-2])


def _assert_no_overlap(cli, d, pgid, started_kill):
    # The old run's processes are gone within 2 s of the kill ...
    wait_until(lambda: pgroup_gone(pgid), timeout=2.0,
               message="the dead worker's job process group to die")
    gone_at = time.monotonic()
    assert gone_at - started_kill < 2.0
    # ... the job is handed back within 2 s, as a failed attempt whose
    # lease_expired event says the worker died ...
    def rescued():
        return [e for e in history(cli, "orphan") if e["event"] == "lease_expired"]
    lost = wait_until(rescued, timeout=3.0, message="the job to be handed back")
    assert time.monotonic() - started_kill < 2.5
    assert "died" in lost[0]["error"], lost
    assert lost[0]["attempt"] == 1
    # ... and runs again, after the old run's last sign of life.
    job = cli.wait_state("orphan", "completed", timeout=10)
    assert job["attempts"] == 2 and job["output"] == "ran-2\n", job
    last_alive = float((d / "alive").read_text())
    second = float((d / "start.2").read_text())
    assert last_alive < second, (last_alive, second)
    evs = events(cli, "orphan")
    assert evs.count("processing") == 2 and evs[-1] == "completed", evs


def test_a_killed_worker_s_job_dies_with_it_and_is_handed_back_at_once(cli, tmp_path):
    _setup(cli)
    d = tmp_path
    sup = start_logged(cli, tmp_path / "w.log", "--count", "1")
    cli.enqueue(id="orphan", command=_job(d))
    job = cli.wait_state("orphan", "processing")
    pgid = read_pid(d / "pgid")
    wait_until(lambda: (d / "alive").exists(), message="the job's background loop")
    t0 = time.monotonic()
    os.kill(_worker_pid(job), signal.SIGKILL)     # the worker alone
    _assert_no_overlap(cli, d, pgid, t0)
    assert sup.poll() is None
    sup.send_signal(signal.SIGTERM)
    assert wait_exit(sup, 10) == 0, (tmp_path / "w.log").read_text()


def test_the_next_worker_on_the_host_kills_a_survivor_of_a_dead_tree(cli, tmp_path):
    _setup(cli)
    d = tmp_path
    sup = start_logged(cli, tmp_path / "w1.log", "--count", "1")
    cli.enqueue(id="orphan", command=_job(d))
    job = cli.wait_state("orphan", "processing")
    pgid = read_pid(d / "pgid")
    wait_until(lambda: (d / "alive").exists(), message="the job's background loop")
    # kill -9 of the supervisor and its worker at once: the job (its own
    # session) survives them.
    os.kill(sup.pid, signal.SIGKILL)
    os.kill(_worker_pid(job), signal.SIGKILL)
    sup.wait(5)
    time.sleep(0.3)
    assert not pgroup_gone(pgid), "the job should have outlived its worker tree"
    t0 = time.monotonic()
    nxt = start_logged(cli, tmp_path / "w2.log", "--count", "1")
    _assert_no_overlap(cli, d, pgid, t0)
    nxt.send_signal(signal.SIGTERM)
    assert wait_exit(nxt, 10) == 0, (tmp_path / "w2.log").read_text()
