"""No orphan on the host of a run: what each worker is running, where any
process on the host can find it once the worker is dead.

Each worker process keeps one small file in a per-user, per-(host, database)
runtime directory, named by its pid:

    v1 <worker pid> <worker start> <job pgid> <job start lo> <job start hi> <worker id>

Starts are in clock ticks since boot, as field 22 of /proc/PID/stat gives
them: the worker's own, and the window (CLOCK_BOOTTIME read around the
spawn) in which the job's shell started. The job fields are 0 between jobs.
The file is rewritten in place (one pwrite) when a job starts and ends.

When a worker dies, its supervisor (`kill_recorded`, at once) and every other
worker on the host (`sweep`, each rescue round, before it looks for jobs to
rescue) kill the job's process group, but only after checking that the
group's leader is still the shell the worker started (pids are reused); then
a worker deregisters the dead worker's row, so that the rescue that follows in
the same round hands the job back at once.
"""

from __future__ import annotations

import hashlib
import math
import os
import signal
import time

RECORD = 512          # bytes: the record is padded to this size
TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> "tuple[str, int, int] | None":
    """(state, pgrp, start ticks) of a process, None if there is none."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read()
    except OSError:
        return None
    fields = text.rsplit(b")", 1)[1].split()
    # after the name: state(0) ppid(1) pgrp(2) session(3) ... starttime(19)
    return fields[0].decode(), int(fields[2]), int(fields[19])


def _boot_ticks() -> float:
    return time.clock_gettime(time.CLOCK_BOOTTIME) * TICK


def base_dir() -> str:
    return os.environ.get("QUEUECTL_RUNTIME_DIR") or (
        os.path.join(os.environ["XDG_RUNTIME_DIR"], "queuectl")
        if os.environ.get("XDG_RUNTIME_DIR") else f"/tmp/queuectl-{os.getuid()}")


def runtime_dir(host: str, db: str, create: bool = True) -> "str | None":
    """The directory of the records of workers on `host` serving `db`; None
    if it cannot be made safely (not ours, a symlink, no room)."""
    key = hashlib.sha256(f"{host}\0{db}".encode()).hexdigest()[:16]
    base = base_dir()
    path = os.path.join(base, key)
    try:
        if create:
            os.makedirs(path, mode=0o700, exist_ok=True)
        for p in (base, path):
            st = os.lstat(p)
            # Another user's directory (or a link to one) could name
            # processes for us to kill.
            if not os.path.isdir(p) or os.path.islink(p) or st.st_uid != os.getuid():
                return None
    except OSError:
        return None
    return path


class Record:
    """This worker's record (see the module's docstring)."""

    def __init__(self, directory: "str | None", worker_id: str):
        self.fd: "int | None" = None
        self.path: "str | None" = None
        self.previous: "dict | None" = None
        self.worker_id = worker_id
        st = _stat(os.getpid())
        self.me = f"v1 {os.getpid()} {st[2] if st else 0}"
        if directory is None:
            return
        self.path = os.path.join(directory, str(os.getpid()))
        # A record left under our pid by a dead worker (pids are reused)
        # that no sweep has seen yet: ours replaces it, so the caller deals
        # with it first.
        old = read(self.path)
        self.previous = old if old is not None and old["worker_id"] != worker_id else None
        for _ in range(2):
            try:
                self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC
                                  | os.O_CLOEXEC, 0o600)
                self._write(0, 0, 0)
                break
            except FileNotFoundError:
                # The last worker of this database removed the directory
                # just now (see close): make it again.
                try:
                    os.makedirs(directory, mode=0o700, exist_ok=True)
                except OSError:
                    break
            except OSError:
                break

    def _write(self, pgid: int, lo: int, hi: int) -> None:
        if self.fd is None:
            return
        line = f"{self.me} {pgid} {lo} {hi} {self.worker_id}\n".encode()
        os.pwrite(self.fd, line.ljust(RECORD, b" "), 0)

    def before_spawn(self) -> int:
        return math.floor(_boot_ticks()) - 1

    def started(self, pgid: int, lo: int) -> None:
        """The job's shell `pgid` started after tick `lo` (and by now)."""
        if self.fd is not None:
            try:
                self._write(pgid, lo, math.ceil(_boot_ticks()) + 1)
            except OSError:
                pass

    def ended(self) -> None:
        if self.fd is not None:
            try:
                self._write(0, 0, 0)
            except OSError:
                pass

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
            if self.path is None:
                return
            try:
                os.unlink(self.path)
                os.rmdir(os.path.dirname(self.path))     # if we were the last
            except OSError:
                pass


def read(path: str) -> "dict | None":
    try:
        with open(path, "rb") as f:
            fields = f.read(RECORD).decode("utf-8", "replace").split()
    except OSError:
        return None
    if len(fields) != 7 or fields[0] != "v1" or not all(x.isdigit() for x in fields[1:6]):
        return None
    wpid, wstart, pgid, lo, hi = map(int, fields[1:6])
    return {"pid": wpid, "start": wstart, "pgid": pgid, "lo": lo, "hi": hi,
            "worker_id": fields[6]}


def alive(rec: dict) -> bool:
    """Is the worker process that wrote `rec` still running?"""
    st = _stat(rec["pid"])
    return st is not None and st[0] not in ("Z", "X") and st[2] == rec["start"]


def kill_group(rec: dict) -> bool:
    """SIGKILL the job process group `rec` names, if it is still that job's:
    its leader (the job's shell) started in the recorded window, or, the
    leader gone, the group still exists (its id cannot have been reused while
    it does). Returns whether a signal was sent."""
    pgid = rec["pgid"]
    if pgid <= 1:
        return False
    st = _stat(pgid)
    if st is not None and not (st[1] == pgid and rec["lo"] <= st[2] <= rec["hi"]):
        return False     # that pid is another process now: our group is gone
    try:
        os.killpg(pgid, signal.SIGKILL)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def kill_recorded(directory: "str | None", worker_pid: int) -> bool:
    """The supervisor, on the death of its worker `worker_pid`: kill its job."""
    if directory is None:
        return False
    rec = read(os.path.join(directory, str(worker_pid)))
    return rec is not None and rec["pid"] == worker_pid and kill_group(rec)


def sweep(directory: "str | None", deregister) -> list:
    """Records of dead workers on this host: kill each one's job group, then
    `deregister(worker_id)` (its jobs are then rescued at once) and forget the
    record. A record is kept if deregister raises (tried again next round).
    Returns the worker ids dealt with."""
    if directory is None:
        return []
    me = str(os.getpid())
    done = []
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    for name in names:
        if name == me or not name.isdigit():
            continue
        path = os.path.join(directory, name)
        rec = read(path)
        if rec is None:
            if _stat(int(name)) is None:
                try:
                    os.unlink(path)      # a torn or foreign file of a dead pid
                except OSError:
                    pass
            continue
        if alive(rec):
            continue
        kill_group(rec)
        deregister(rec["worker_id"])
        try:
            os.unlink(path)
        except OSError:
            pass
        done.append(rec["worker_id"])
    return done
