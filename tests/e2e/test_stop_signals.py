"""End-to-end: one stop signal is one graceful stop, however many processes
got it; a job that dies of the stop's own signal is handed back, never buried
and never charged an attempt; a second, separate signal is a hard stop."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from e2e_util import QUEUECTL, events, history, wait_exit, wait_until

pytestmark = pytest.mark.e2e


def _start_group(cli, log, *args) -> subprocess.Popen:
    """`worker start` as the leader of its own process group (as under a
    service manager or in a terminal), its log in `log`."""
    with open(log, "a") as f:
        p = subprocess.Popen(QUEUECTL + ["worker", "start", *args], env=cli.env, cwd=cli.cwd,
                             stdout=subprocess.DEVNULL, stderr=f, start_new_session=True)
    cli.procs.append(p)
    return p


def _running(cli, ids):
    wait_until(lambda: all(cli.job(i)["state"] == "processing" for i in ids), timeout=15,
               message=f"{ids} to run")


def _job_pids(d, ids):
    return [int((d / f"{i}.pid").read_text()) for i in ids]


def _descendants_of_jobs(pgids) -> list:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z" and int(fields[2]) in pgids:
                out.append(int(entry))
    return out


def test_one_sigterm_to_the_process_group_is_one_graceful_stop(cli, tmp_path):
    ids = ["a", "b"]
    for i in ids:
        cli.enqueue(id=i, command=f"echo $$ > {tmp_path}/{i}.pid; sleep 1.5; echo done-{i}",
                    max_retries=0)
    sup = _start_group(cli, tmp_path / "w.log", "--count", "2")
    _running(cli, ids)
    os.killpg(sup.pid, signal.SIGTERM)     # what `kill -TERM -- -PGID` does
    assert wait_exit(sup, 20) == 0, (tmp_path / "w.log").read_text()
    for i in ids:
        job = cli.job(i)
        assert job["state"] == "completed", ((tmp_path / "w.log").read_text(), job)
        assert job["attempts"] == 1 and job["output"] == f"done-{i}\n"


def test_sigterm_to_every_process_loses_no_job_buries_none_and_burns_no_retry(cli, tmp_path):
    # systemd's KillMode=control-group: SIGTERM to the supervisor, its workers
    # and every process of the jobs, all at once. The jobs (max_retries 0)
    # die of it: interrupted by the stop, not failed.
    ids = ["a", "b"]
    for i in ids:
        cli.enqueue(id=i, max_retries=0, command=(
            f"if [ -e {tmp_path}/{i}.ran ]; then echo second-run; exit 0; fi; "
            f"touch {tmp_path}/{i}.ran; echo $$ > {tmp_path}/{i}.pid; sleep 30"))
    sup = _start_group(cli, tmp_path / "w.log", "--count", "2")
    _running(cli, ids)
    wait_until(lambda: all((tmp_path / f"{i}.pid").exists() for i in ids))
    workers = [w["pid"] for w in cli.json("worker", "list")]
    everyone = [sup.pid, *workers, *_descendants_of_jobs(set(_job_pids(tmp_path, ids)))]
    for pid in everyone:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    assert wait_exit(sup, 20) == 0, (tmp_path / "w.log").read_text()
    for i in ids:
        job = cli.job(i)
        assert job["state"] == "failed", ((tmp_path / "w.log").read_text(), job)
        # The interrupted attempt is not charged: one more retry.
        assert job["attempts"] == 1 and job["max_retries"] == 1, job
        ev = [e for e in history(cli, i) if e["event"] == "retry_scheduled"]
        assert ev and ev[-1].get("interrupted") is True, ev
    # Retried at once: the next worker runs them to completion.
    p = cli.run("worker", "start", "--burst", timeout=60, check=0)
    for i in ids:
        job = cli.job(i)
        assert job["state"] == "completed", (p.stderr, job)
        assert job["output"] == "second-run\n" and job["attempts"] == 2, job
        assert "dead" not in events(cli, i)
    assert cli.json("status")["jobs"]["dead"] == 0


def test_a_second_separate_signal_kills_the_jobs_and_hands_them_back(cli, tmp_path):
    ids = ["a"]
    cli.enqueue(id="a", max_retries=0, command=f"echo $$ > {tmp_path}/a.pid; sleep 30")
    sup = _start_group(cli, tmp_path / "w.log", "--count", "1")
    _running(cli, ids)
    os.killpg(sup.pid, signal.SIGTERM)
    time.sleep(0.7)                                    # a separate, second signal
    assert sup.poll() is None, "a graceful stop waits for the running job"
    t0 = time.monotonic()
    os.killpg(sup.pid, signal.SIGTERM)
    assert wait_exit(sup, 10) == 130, (tmp_path / "w.log").read_text()
    assert time.monotonic() - t0 < 5
    job = cli.job("a")
    assert job["state"] == "failed" and job["attempts"] == 1 and job["max_retries"] == 1, job
    assert "dead" not in events(cli, "a")
