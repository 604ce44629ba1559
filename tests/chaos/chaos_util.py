"""Helpers of the fault and load tests: sizes, summary lines, a fleet of real
`queuectl worker start` supervisors that can be killed in every way, and the
checks every scenario ends with.

Sizes: the CI run uses small ones; `QUEUECTL_CHAOS_SCALE=full` (what `make soak`
sets) uses the issue's (1,000 jobs under kills, 20,000 in the stress test).
Summary lines: every test calls `summary(...)`; tests/chaos/conftest.py prints
them at the end of the run (whatever the capture mode), and with
`QUEUECTL_CHAOS_SUMMARY=FILE` they are also appended to FILE as JSON (the soak
driver reads them).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "e2e"))
import e2e_util  # noqa: E402

QUEUECTL = e2e_util.QUEUECTL
wait_until = e2e_util.wait_until
history = e2e_util.history

FULL = os.environ.get("QUEUECTL_CHAOS_SCALE", "").lower() == "full"
SUMMARY_FILE = os.environ.get("QUEUECTL_CHAOS_SUMMARY")
LINES: list[str] = []          # printed by conftest.py's pytest_terminal_summary


def size(ci: int, full: int) -> int:
    return full if FULL else ci


def summary(test: str, **fields) -> None:
    """One line of what a test tried and what survived."""
    text = f"{test}: " + ", ".join(f"{k}={v}" for k, v in fields.items())
    LINES.append(text)
    sys.stderr.write(f"\n[chaos] {text}\n")
    if SUMMARY_FILE:
        with open(SUMMARY_FILE, "a") as f:
            f.write(json.dumps({"test": test, **fields}, default=str) + "\n")


# ---------------------------------------------------------------- /proc

def _stat(pid: int) -> "list[str] | None":
    """(state, ppid, pgrp, ...) of a live process, None if gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None if fields[0] in ("Z", "X") else fields


def children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(int(entry))
            if st and int(st[1]) == pid:
                out.append(int(entry))
    return out


def pgid_of(pid: int) -> "int | None":
    st = _stat(pid)
    return int(st[2]) if st else None


def alive(pid: int) -> bool:
    return _stat(pid) is not None


def processes_in(directory: Path) -> list[int]:
    """Live processes whose working directory is `directory` (every worker and
    every job command a test starts runs there): what cleanup must kill."""
    want = str(directory)
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            if os.readlink(f"/proc/{entry}/cwd") == want and _stat(int(entry)):
                out.append(int(entry))
        except OSError:
            continue
    return out


def kill(pid: int, sig=signal.SIGKILL) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def killpg(pgid: "int | None", sig=signal.SIGKILL) -> None:
    if pgid and pgid > 1:
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            pass


# ---------------------------------------------------------------- the fleet

class Fleet:
    """Supervisors (`queuectl worker start --count N`) started in their own
    sessions, killed in four ways, and all cleaned up at the end."""

    def __init__(self, cli, tmp_path: Path, per_supervisor: int = 2, argv=None,
                 env=None, rng=None):
        self.cli = cli
        self.tmp = tmp_path
        self.per = per_supervisor
        self.argv = argv or (lambda: QUEUECTL + ["worker", "start"])
        self.env = {**cli.env, **(env or {})}
        self.rng = rng or random.Random()
        self.sups: list[subprocess.Popen] = []
        self.killed_workers: dict = {}   # pid -> how it died: its job may rightly run again
        self.kills = Counter()
        self.started = 0
        self.logs: list[Path] = []

    def start(self, *extra, argv=None, env=None) -> subprocess.Popen:
        log = self.tmp / f"sup-{self.started}.log"
        self.logs.append(log)
        base = argv or self.argv
        base = base() if callable(base) else base
        with open(log, "w") as f:
            p = subprocess.Popen([*base, "--count", str(self.per), *extra],
                                 env={**self.env, **(env or {})}, cwd=self.cli.cwd,
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=f, start_new_session=True)
        self.started += 1
        self.sups.append(p)
        return p

    def live(self) -> list[subprocess.Popen]:
        return [p for p in self.sups if p.poll() is None]

    def workers(self, sup=None) -> list[int]:
        return [w for p in ([sup] if sup else self.live()) for w in children(p.pid)]

    @staticmethod
    def job_groups(worker: int) -> list[int]:
        """Process groups of the commands a worker runs (each in its own session)."""
        return [g for g in (pgid_of(c) for c in children(worker)) if g and g != worker]

    # -- the four kills
    def kill_worker(self, with_job: bool) -> bool:
        ws = self.workers()
        if not ws:
            return False
        w = self.rng.choice(ws)
        groups = self.job_groups(w) if with_job else []
        self.killed_workers[w] = "worker+job" if with_job else "worker"
        kill(w)                       # the worker first: it must not see its job die
        for g in groups:
            killpg(g)
        self.kills["worker+job" if with_job else "worker"] += 1
        return True

    def kill_supervisor(self, power: bool) -> bool:
        """power=False: the supervisor alone (its workers orphan themselves, kill
        their commands, deregister). power=True: supervisor, workers and commands
        at once, nobody cleans up (only the lease tells)."""
        live = self.live()
        if not live:
            return False
        sup = self.rng.choice(live)
        if power:
            sup.send_signal(signal.SIGSTOP)      # no replacement while we kill
        ws = self.workers(sup)
        self.killed_workers.update(dict.fromkeys(ws, "power" if power else "supervisor"))
        if power:
            for w in ws:
                groups = self.job_groups(w)
                kill(w)
                for g in groups:
                    killpg(g)
        sup.send_signal(signal.SIGKILL)
        sup.wait(10)
        self.kills["power" if power else "supervisor"] += 1
        return True

    def random_kill(self) -> str:
        what = self.rng.choice(["worker", "worker+job", "supervisor", "power"])
        if what.startswith("worker"):
            self.kill_worker(what == "worker+job")
        else:
            self.kill_supervisor(what == "power")
            self.start()
        return what

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM every live supervisor (graceful stop) and wait for it."""
        for p in self.live():
            p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for p in self.sups:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise AssertionError(f"supervisor {p.pid} did not stop in {timeout}s")

    def cleanup(self) -> None:
        for p in self.sups:
            if p.poll() is None:
                killpg(p.pid, signal.SIGCONT)
                killpg(p.pid)
                p.wait(10)
        kill_everything_in(self.tmp)

    def log_text(self) -> str:
        return "".join(log.read_text() for log in self.logs if log.exists())


def kill_everything_in(directory: Path) -> None:
    """SIGKILL every process (and its group) still running in `directory`."""
    for _ in range(20):
        pids = processes_in(directory)
        if not pids:
            return
        for pid in pids:
            g = pgid_of(pid)
            if g and g != os.getpgid(0):
                killpg(g)
            kill(pid)
        time.sleep(0.05)


# ---------------------------------------------------------------- jobs and checks

def recording_command(runs: Path, sleep: float) -> str:
    """Appends '<id> <attempt>' to `runs` (one short O_APPEND write), then sleeps."""
    return f'echo "$QUEUECTL_JOB_ID $QUEUECTL_ATTEMPT" >> {runs}; sleep {sleep}'


def bulk(cli, payloads: list[dict], *extra, timeout=120) -> None:
    text = "".join(json.dumps(p) + "\n" for p in payloads)
    out = cli.ok("enqueue", "-", *extra, input=text, timeout=timeout)
    assert out.splitlines()[-1].startswith("enqueued "), out


def read_runs(runs: Path) -> dict:
    """job id -> list of attempt numbers that started running (from the file)."""
    out = defaultdict(list)
    if runs.exists():
        for line in runs.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2:
                out[parts[0]].append(int(parts[1]))
    return out


def worker_pid(worker_id: "str | None") -> "int | None":
    try:
        return int(worker_id.split(":")[-2])
    except (AttributeError, IndexError, ValueError):
        return None


def check_exactly_once(cli, ids: list[str], runs: Path, killed: "dict | set | None") -> dict:
    """The end state every scenario must reach. Returns the duplicate runs and
    the rescues (why each attempt was taken back) that explain them.

    * every job completed, nothing processing (or anything else);
    * each job's completion recorded exactly once in history;
    * each job ran at least once, each (job, attempt) at most once, and the
      completed attempt is the job's last;
    * a job ran more than once only after a lease_expired event for each extra
      run, and (with `killed` given: pids, or pid -> how it was killed) only
      one whose worker we killed.
    """
    counts = e2e_util.counts(cli)
    n = len(ids)
    assert counts["completed"] == n and sum(counts.values()) == n, counts
    events = history(cli)
    by_job = defaultdict(list)
    for e in events:
        by_job[e["job_id"]].append(e)
    ran = read_runs(runs)
    dups, reasons = {}, Counter()
    for job_id in ids:
        evs = by_job[job_id]
        kinds = [e["event"] for e in evs]
        assert kinds.count("completed") == 1, (job_id, kinds)
        assert kinds[-1] == "completed", (job_id, kinds)
        attempts = ran.get(job_id, [])
        assert attempts, f"job {job_id} completed but never ran"
        assert len(attempts) == len(set(attempts)), (job_id, attempts)
        done = next(e for e in evs if e["event"] == "completed")["attempt"]
        assert max(attempts) == done, (job_id, attempts, done)
        lost = [e for e in evs if e["event"] == "lease_expired"]
        # Every attempt that ended other than 'completed' ended by a rescue.
        assert kinds.count("processing") == done == len(lost) + 1, (job_id, kinds)
        if killed is not None:
            for e in lost:
                assert worker_pid(e.get("worker_id")) in killed, (
                    f"job {job_id}: attempt {e['attempt']} was taken from worker "
                    f"{e.get('worker_id')}, which was never killed: {kinds}")
        if len(attempts) > 1:
            dups[job_id] = len(attempts) - 1
        for e in lost:
            how = killed.get(worker_pid(e.get("worker_id"))) if isinstance(killed, dict) else None
            reasons[f"{how} killed, {_reason(e)}" if how else _reason(e)] += 1
    extra = set(ran) - set(ids)
    assert not extra, f"runs of unknown jobs: {sorted(extra)[:5]}"
    if dups:
        sys.stderr.write("[chaos] jobs run more than once (extra runs): " + ", ".join(
            f"{j} x{k}" for j, k in sorted(dups.items())) + "\n")
    return {"dup_jobs": len(dups), "dup_runs": sum(dups.values()), "reasons": dict(reasons),
            "rescues": sum(reasons.values()), "dup_ids": sorted(dups)}


def _reason(event: dict) -> str:
    error = event.get("error") or ""
    if "exited without finishing" in error:
        return "worker exited"
    if "no heartbeat" in error:
        return "no heartbeat"
    return error or "?"


def assert_clean_logs(text: str, *, allow_db_errors: bool = False) -> None:
    assert "Traceback" not in text, text[-3000:]
    # ("database is locked" from SQLite, "database <path> is locked: ..." from queuectl)
    assert "is locked" not in text and "database is busy" not in text, text[-3000:]
    if not allow_db_errors:
        assert "database error" not in text, text[-3000:]
