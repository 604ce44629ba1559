"""End-to-end: a job's command runs as it would in a terminal. Default signal
dispositions, nothing blocked, only fds 0-2 (even when the worker inherited
more), its own session, and QUEUECTL_DB naming the worker's database."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from e2e_util import QUEUECTL

pytestmark = pytest.mark.e2e

# glibc reserves signals 32 and 33 (for threads and cancellation); posix_spawn
# itself leaves them ignored in the child.
GLIBC_RESERVED = (1 << 31) | (1 << 32)


def _status_field(text: str, name: str) -> int:
    for line in text.splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1], 16)
    raise AssertionError(f"no {name} in {text!r}")


def test_pipelines_end_as_in_a_terminal(cli):
    cli.ok("config", "set", "job_timeout", "3")     # (the endless loop, if it is endless)
    cli.enqueue(id="yes", command="yes | head -n1", max_retries=0)
    cli.enqueue(id="loop", command="while :; do echo y; done | head -n1", max_retries=0)
    p = cli.run("worker", "start", "--burst", timeout=60, check=0)
    for job_id in ("yes", "loop"):
        job = cli.job(job_id)
        assert job["state"] == "completed", (job, p.stderr)
        assert job["output"] == "y\n", job
    # Each took well under a second (not until the timeout).
    took = [e["duration"] for e in map(json.loads, cli.ok("history").splitlines())
            if e["event"] == "completed"]
    assert len(took) == 2 and max(took) < 0.5, took


def test_a_job_starts_with_default_signals_only_fds_0_to_2_and_its_own_session(cli, tmp_path):
    cli.enqueue(id="probe", command=(
        "cat /proc/self/status > status.txt; ls /proc/self/fd > fds.txt; "
        "ps -o sid= -p $$ > sid.txt 2>/dev/null || true; echo $$ > pid.txt; "
        "echo \"$QUEUECTL_DB\" > db.txt"), cwd=str(tmp_path))
    # The worker inherits extra descriptors (one readable, one not close-on-exec)
    # from whatever started it.
    r, w = os.pipe()
    extra = os.open(os.devnull, os.O_RDONLY)
    os.set_inheritable(r, True)
    os.set_inheritable(extra, True)
    try:
        p = subprocess.run(QUEUECTL + ["worker", "start", "--burst"], env=cli.env,
                           cwd=tmp_path / "..", capture_output=True, text=True,
                           timeout=60, pass_fds=(r, extra))
    finally:
        for fd in (r, w, extra):
            os.close(fd)
    assert p.returncode == 0, p.stderr
    assert cli.job("probe")["state"] == "completed"
    status = (tmp_path / "status.txt").read_text()
    assert _status_field(status, "SigBlk") == 0, status
    assert _status_field(status, "SigIgn") & ~GLIBC_RESERVED == 0, status
    fds = sorted(int(x) for x in (tmp_path / "fds.txt").read_text().split())
    # `ls` itself opens one directory fd to list /proc/self/fd.
    assert fds[:3] == [0, 1, 2] and len(fds) <= 4, fds
    pid = int((tmp_path / "pid.txt").read_text())
    sid = (tmp_path / "sid.txt").read_text().strip()
    if sid:
        assert int(sid) == pid
    # QUEUECTL_DB names the worker's database; a relative SQLite path is made
    # absolute (the worker ran from the parent directory of the job's cwd).
    db = (tmp_path / "db.txt").read_text().strip()
    if cli.db.startswith("postgres"):
        assert db == cli.db
    else:
        assert os.path.isabs(db) and os.path.samefile(db, cli.db), db


def test_a_job_can_enqueue_into_its_own_queue_from_any_cwd(cli, tmp_path):
    qc = " ".join(QUEUECTL)
    sub = tmp_path / "elsewhere"
    sub.mkdir()
    cli.enqueue(id="parent", cwd=str(sub), command=(
        f"{qc} enqueue '{{\"id\":\"child\",\"command\":\"echo child\"}}'"))
    env = {**cli.env}
    if not cli.db.startswith("postgres"):
        # The worker is given a relative path: the job's cwd differs from its own.
        env["QUEUECTL_DB"] = os.path.relpath(cli.db, tmp_path)
    p = subprocess.run(QUEUECTL + ["worker", "start", "--burst"], env=env, cwd=tmp_path,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert cli.job("parent")["state"] == "completed", cli.job("parent")
    assert cli.job("child")["state"] == "completed"
    assert cli.job("child")["output"] == "child\n"


def test_trap_and_kill_inside_a_script_behave_as_in_a_terminal(cli):
    # A script that traps INT and sends it to itself: with SIGINT ignored at
    # start (as before), `trap` cannot catch it either... it can; but a child
    # started in the background of a non-interactive shell ignores SIGINT. What
    # must hold: a child sent SIGINT/SIGHUP/SIGPIPE dies of it.
    cli.enqueue(id="sig", command=(
        "sleep 30 & p=$!; kill -HUP $p; wait $p; echo hup=$?; "
        "sh -c 'kill -PIPE $$'; echo pipe=$?; sh -c 'kill -XFSZ $$'; echo xfsz=$?"))
    p = cli.run("worker", "start", "--burst", timeout=60, check=0)
    job = cli.job("sig")
    assert [w for w in job["output"].split() if "=" in w] == ["hup=129", "pipe=141", "xfsz=153"], (job, p.stderr)
