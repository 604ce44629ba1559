"""End-to-end: a SIGKILLed worker's job is rescued by lease (by an idle worker,
by a busy one, by the next one started); stale workers stop counting; a timeout
kills the job's whole process group."""

from __future__ import annotations

import os
import signal
import time

import pytest

from e2e_util import (events, history, parse_at, pgroup_gone, pid_gone, read_pid,
                      start_logged, wait_exit, wait_until, worker_log)

pytestmark = pytest.mark.e2e

LEASE = 2


def _crashy(pidfile) -> str:
    """Attempt 1 writes its process-group id and hangs; later attempts succeed."""
    return (f'if [ "$QUEUECTL_ATTEMPT" = 1 ]; then echo $$ > {pidfile}; sleep 60; fi; '
            f'echo survived-$QUEUECTL_ATTEMPT')


def _setup(cli):
    cli.ok("config", "set", "lease_timeout", str(LEASE))
    cli.ok("config", "set", "backoff_base", "1")     # rescued jobs retry after 1 s


def _wait_held_by(cli, job_id, timeout=10.0):
    job = cli.wait_state(job_id, "processing", timeout=timeout)
    assert job["worker_id"]
    return job


def _assert_rescued_and_completed(cli, job_id, crashed_worker, timeout):
    job = cli.wait_state(job_id, "completed", timeout=timeout)
    assert job["attempts"] == 2, job
    assert job["worker_id"] != crashed_worker
    assert job["output"] == "survived-2\n"
    evs = events(cli, job_id)
    assert "lease_expired" in evs, evs
    assert evs.index("lease_expired") > evs.index("processing")
    assert evs.count("processing") == 2 and evs[-1] == "completed"
    return job


def test_sigkill_mid_job_is_rescued_by_idle_worker(cli, tmp_path):
    _setup(cli)
    pidfile = tmp_path / "job.pid"
    doomed = start_logged(cli, tmp_path / "doomed.log", "--count", "1")
    wait_until(lambda: cli.active_workers() == 1, message="first worker registered")
    cli.enqueue(id="crash", command=_crashy(pidfile))
    crashed = _wait_held_by(cli, "crash")["worker_id"]
    pgid = read_pid(pidfile)

    survivor = start_logged(cli, tmp_path / "survivor.log", "--count", "1")
    wait_until(lambda: cli.active_workers() == 2, message="second worker registered")

    killed_at = time.monotonic()
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(5)
    # The orphaned worker kills its job (no child of the job survives it).
    wait_until(lambda: pgroup_gone(pgid), timeout=5, message="the crashed job's process group to die")

    _assert_rescued_and_completed(cli, "crash", crashed, timeout=LEASE + 8)
    took = time.monotonic() - killed_at
    assert took < LEASE + 6, f"rescue + rerun took {took:.1f}s"
    lost = [e for e in history(cli, "crash") if e["event"] == "lease_expired"]
    assert len(lost) == 1 and lost[0]["attempt"] == 1

    # The killed worker stops counting once its heartbeat is stale; the survivor counts.
    wait_until(lambda: cli.active_workers() == 1, timeout=LEASE + 5,
               message="the crashed worker to stop counting")
    assert [w["id"] for w in cli.json("worker", "list")] != [crashed]
    assert survivor.poll() is None
    survivor.send_signal(signal.SIGTERM)
    assert wait_exit(survivor, 10) == 0
    assert cli.active_workers() == 0


def test_sigkill_mid_job_is_rescued_while_the_survivor_is_busy(cli, tmp_path):
    """Two crashes while the only surviving worker is busy with a long job:
    `sup` has its supervisor SIGKILLed (the brief's crash), `power` loses both
    supervisor and worker at once (nothing deregisters; only the lease tells)."""
    _setup(cli)
    # The survivor takes a long job first ...
    busy_log = tmp_path / "busy.log"
    # (It runs until the test lets it end, however slowly the machine goes.)
    release = tmp_path / "release-long"
    cli.enqueue(id="long", command=f"while [ ! -e {release} ]; do sleep 0.05; done; "
                                   "echo long-done")
    busy = start_logged(cli, busy_log, "--count", "1")
    busy_id = _wait_held_by(cli, "long")["worker_id"]
    # ... then two more supervisors each take a job that will crash.
    doomed, crashed, pgids = {}, {}, {}
    for name in ("sup", "power"):
        doomed[name] = start_logged(cli, tmp_path / f"{name}.log", "--count", "1")
        cli.enqueue(id=name, command=_crashy(tmp_path / f"{name}.pid"))
        crashed[name] = _wait_held_by(cli, name)["worker_id"]
        pgids[name] = read_pid(tmp_path / f"{name}.pid")
    assert len({busy_id, *crashed.values()}) == 3
    power_pid = next(w["pid"] for w in cli.json("worker", "list") if w["id"] == crashed["power"])
    try:
        doomed["sup"].send_signal(signal.SIGKILL)
        doomed["power"].send_signal(signal.SIGSTOP)
        os.kill(power_pid, signal.SIGKILL)
        doomed["power"].send_signal(signal.SIGKILL)
        for p in doomed.values():
            p.wait(5)
        # The orphaned worker of `sup` kills its job's whole process group.
        wait_until(lambda: pgroup_gone(pgids["sup"]), timeout=5,
                   message="the crashed job's process group to die")

        # The busy worker's heartbeat loop rescues both while its own job still runs.
        for name in ("sup", "power"):
            wait_until(lambda: "lease_expired" in events(cli, name), timeout=LEASE + 4,
                       message=f"job {name} to be rescued")
        assert cli.job("long")["state"] == "processing", "rescued only after the busy job ended"
        for name in ("sup", "power"):
            rescued = cli.job(name)
            assert rescued["state"] in ("failed", "pending"), rescued
            assert rescued["attempts"] == 1

        # When the long job ends, the same worker runs the rescued jobs to completion.
        release.touch()
        long = cli.wait_state("long", "completed", timeout=10)
        assert long["attempts"] == 1 and long["output"] == "long-done\n"
        for name in ("sup", "power"):
            job = _assert_rescued_and_completed(cli, name, crashed[name], timeout=10)
            assert job["worker_id"] == busy_id
            assert parse_at(job["started_at"]) >= parse_at(long["finished_at"])
        assert busy.poll() is None, worker_log(busy_log)
    finally:
        try:
            os.killpg(pgids["power"], signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_sigkill_mid_job_is_rescued_by_the_next_worker_started(cli, tmp_path):
    _setup(cli)
    pidfile = tmp_path / "job.pid"
    cli.enqueue(id="crash", command=_crashy(pidfile))
    doomed = start_logged(cli, tmp_path / "doomed.log", "--count", "1")
    crashed = _wait_held_by(cli, "crash")["worker_id"]
    pgid = read_pid(pidfile)
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(5)
    wait_until(lambda: pgroup_gone(pgid), timeout=5, message="the crashed job's process group to die")
    # A burst worker must wait for the processing job, rescue it, and run it.
    p = cli.run("worker", "start", "--burst", timeout=LEASE + 15)
    assert p.returncode == 0, p.stderr
    _assert_rescued_and_completed(cli, "crash", crashed, timeout=1)


def test_power_loss_of_worker_and_supervisor_is_rescued_by_lease(cli, tmp_path):
    """Supervisor and worker both SIGKILLed: nobody deregisters, nobody kills the job.
    Only the lease and the heartbeat tell the survivor what happened."""
    _setup(cli)
    pidfile = tmp_path / "job.pid"
    doomed = start_logged(cli, tmp_path / "doomed.log", "--count", "1")
    wait_until(lambda: cli.active_workers() == 1, message="first worker registered")
    (victim,) = cli.json("worker", "list")
    cli.enqueue(id="crash", command=_crashy(pidfile))
    crashed = _wait_held_by(cli, "crash")["worker_id"]
    assert crashed == victim["id"]
    pgid = read_pid(pidfile)
    survivor = start_logged(cli, tmp_path / "survivor.log", "--count", "1")
    wait_until(lambda: cli.active_workers() == 2, message="second worker registered")
    try:
        # Freeze the supervisor so it can neither replace its worker nor be noticed
        # gone, kill the worker, then the supervisor.
        doomed.send_signal(signal.SIGSTOP)
        os.kill(victim["pid"], signal.SIGKILL)
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(5)
        killed_at = time.monotonic()

        wait_until(lambda: "lease_expired" in events(cli, "crash"), timeout=LEASE + 5,
                   message="the expired lease to be rescued")
        _assert_rescued_and_completed(cli, "crash", crashed, timeout=LEASE + 5)
        # The dead worker stops counting once its heartbeat is stale.
        wait_until(lambda: cli.active_workers() == 1, timeout=LEASE + 3,
                   message="the killed worker to stop counting")
        assert time.monotonic() - killed_at < LEASE + 8
        assert [w["id"] for w in cli.json("worker", "list")] != [crashed]
        assert survivor.poll() is None
    finally:
        # The first attempt's shell was orphaned with its worker; clean it up.
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    survivor.send_signal(signal.SIGTERM)
    assert wait_exit(survivor, 10) == 0


@pytest.mark.backends("sqlite")   # the runner's behaviour, the same on every backend
@pytest.mark.parametrize("prefix", ["", "trap '' TERM; "], ids=["plain", "ignores-SIGTERM"])
def test_timeout_kills_the_whole_process_group(cli, tmp_path, prefix):
    # With TERM ignored (inherited by the children), only the SIGKILL that follows
    # shortly after can end the group.
    bgpid = tmp_path / "bg.pid"
    cli.enqueue(id="slow", timeout=1, max_retries=0,
                command=f"{prefix}sleep 60 & echo $! > {bgpid}; sleep 60")
    t0 = time.monotonic()
    p = cli.run("worker", "start", "--burst", timeout=30)
    took = time.monotonic() - t0
    assert p.returncode == 0, p.stderr
    assert took < 8, f"a 1 s timeout took {took:.1f}s to enforce"
    job = cli.job("slow")
    assert job["state"] in ("failed", "dead"), job
    assert job["state"] == "dead"          # max_retries 0
    assert job["last_error"] == "timed out after 1s"
    assert job["attempts"] == 1
    pid = read_pid(bgpid, timeout=1)
    wait_until(lambda: pid_gone(pid), timeout=5, message=f"background child {pid} to die")
