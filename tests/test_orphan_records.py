"""orphans.py: a dead worker's job process group is killed only while it is
still that job's (pids are reused), and records of dead workers are swept."""

from __future__ import annotations

import os
import subprocess

from queuectl import orphans


def _session(cmd="sleep 30") -> subprocess.Popen:
    return subprocess.Popen(["/bin/sh", "-c", cmd], start_new_session=True)


def _start(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[19])


def test_a_group_is_killed_only_if_its_leader_started_in_the_recorded_window():
    p = _session()
    try:
        start = _start(p.pid)
        wrong = {"pgid": p.pid, "lo": start + 5, "hi": start + 9}
        assert orphans.kill_group(wrong) is False      # same pid, another process
        assert p.poll() is None
        right = {"pgid": p.pid, "lo": start - 1, "hi": start + 1}
        assert orphans.kill_group(right) is True
        assert p.wait(5) == -9
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_sweep_kills_a_dead_worker_s_job_deregisters_it_and_forgets_it(tmp_path):
    job = _session()
    # A "worker" that has died: a process that has exited (and been reaped).
    dead = subprocess.Popen(["true"])
    dead.wait()
    path = tmp_path / str(dead.pid)
    start = _start(job.pid)
    path.write_text(f"v1 {dead.pid} 12345 {job.pid} {start - 1} {start + 1} host:{dead.pid}:ab\n")
    # A live worker's record (ours) is left alone.
    mine = orphans.Record(str(tmp_path), "host:me:cd")
    gone = []
    try:
        assert orphans.sweep(str(tmp_path), gone.append) == [f"host:{dead.pid}:ab"]
        assert gone == [f"host:{dead.pid}:ab"]
        assert job.wait(5) == -9
        assert not path.exists()
        # Another process's view: our record is alive, nothing to do.
        rec = orphans.read(mine.path)
        assert rec is not None and orphans.alive(rec)
    finally:
        mine.close()
        if job.poll() is None:
            job.kill()
            job.wait()


def test_a_record_notes_the_job_while_its_shell_runs():
    from queuectl import runner
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        rec = orphans.Record(d, "host:1:ab")
        seen = []

        def tick():
            seen.append(orphans.read(rec.path))
            return None
        runner.run("sleep 0.3", dict(os.environ), tick=tick, tick_interval=0.1, record=rec)
        during = [r for r in seen if r and r["pgid"]]
        assert during and orphans.read(rec.path)["pgid"] == 0     # cleared once reaped
        r = during[0]
        assert r["lo"] <= r["hi"] and r["worker_id"] == "host:1:ab"
        rec.close()
        assert not os.path.exists(rec.path)
