"""Run one shell command and describe how it ended. No database here.

The command runs as `/bin/sh -c COMMAND` in a new session (so its own process
group), stdin from /dev/null, stdout and stderr into one pipe whose last
OUTPUT_CAP bytes are kept. While it runs, `tick()` is called about every
`tick_interval` seconds; if it returns a reason, or the timeout passes, the
whole process group gets SIGTERM and, shortly after, SIGKILL.
"""

from __future__ import annotations

import os
import select
import signal
import time

from queuectl.model import Outcome  # noqa: F401  (re-exported: runner.Outcome)

OUTPUT_CAP = 64 * 1024   # bytes of output kept per attempt (the tail)
KILL_GRACE = 1.0         # seconds between SIGTERM and SIGKILL
SHELL = "/bin/sh"

# Every signal back to its default disposition in the job, none blocked: the
# worker ignores SIGPIPE (Python does), SIGINT and SIGHUP (the supervisor
# relays them) and SIGXFSZ, and exec keeps what is ignored. (glibc's two
# reserved signals, 32 and 33, are not in valid_signals; SIGKILL and SIGSTOP
# cannot be changed.)
DEFAULT_SIGNALS = frozenset(signal.valid_signals()) - {signal.SIGKILL, signal.SIGSTOP}


def no_inherited_fds() -> None:
    """Mark every descriptor above 2 close-on-exec, so that a job gets only
    0, 1 and 2. The worker's own descriptors are close-on-exec already
    (Python's, SQLite's, libpq's); this catches those it inherited from
    whatever started it (a service manager, a shell, a test harness)."""
    fds: "list[int] | range"
    try:
        fds = [int(x) for x in os.listdir("/proc/self/fd")]
    except OSError:
        fds = range(3, 1024)
    for fd in fds:
        if fd > 2:
            try:
                os.set_inheritable(fd, False)
            except OSError:
                pass     # (the listing's own fd, closed by now)


def _fmt_seconds(s: float) -> str:
    return f"{s:g}s"


def _last_line(text: str, limit: int = 300) -> str:
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line:
            return line if len(line) <= limit else line[:limit] + "…"
    return ""


class _Tail:
    """Keeps the last `cap` bytes of a stream in bounded memory."""

    __slots__ = ("cap", "buf", "total")

    def __init__(self, cap: int):
        self.cap, self.buf, self.total = cap, bytearray(), 0

    def add(self, data: bytes) -> None:
        self.total += len(data)
        self.buf += data
        if len(self.buf) > 2 * self.cap:
            del self.buf[:-self.cap]

    def text(self) -> "tuple[str, bool]":
        # NUL becomes U+FFFD like undecodable bytes: no database text type
        # has to hold it, and every backend stores the same text.
        text = bytes(self.buf[-self.cap:]).decode("utf-8", "replace").replace("\x00", "\ufffd")
        return text, self.total > self.cap


def run(command: str, env: dict, *, timeout: float = 0.0, tick=None,
        tick_interval: float = 0.25, cap: int = OUTPUT_CAP,
        kill_grace: float = KILL_GRACE, cwd: "str | None" = None,
        record=None) -> Outcome:
    """`record` (an orphans.Record): where the job's process group is noted
    while its shell runs, for whoever outlives a dead worker."""
    started = time.monotonic()
    here = None
    r, w = os.pipe()
    if cwd is not None:
        # posix_spawn cannot change directory, so the (single-threaded) worker
        # steps into `cwd` around the spawn and straight back out.
        try:
            here = os.open(".", os.O_PATH | os.O_DIRECTORY)
            os.chdir(cwd)
        except OSError as e:
            if here is not None:
                os.close(here)
            os.close(r)
            os.close(w)
            where = "the worker's own directory" if here is None else repr(cwd)
            return Outcome("start_failed", error=f"cannot run in directory {where}: "
                                                 f"{e.strerror or e}")
    lo = record.before_spawn() if record is not None else 0
    try:
        pid = os.posix_spawn(
            SHELL, [SHELL, "-c", command], env,
            file_actions=[(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                          (os.POSIX_SPAWN_DUP2, w, 1),
                          (os.POSIX_SPAWN_DUP2, w, 2)],
            setsid=True, setsigdef=DEFAULT_SIGNALS, setsigmask=())
    except (OSError, ValueError) as e:
        os.close(r)
        os.close(w)
        return Outcome("start_failed", error=f"could not start: "
                                             f"{getattr(e, 'strerror', None) or e}")
    finally:
        if here is not None:
            os.fchdir(here)
            os.close(here)
    os.close(w)
    if record is not None:
        record.started(pid, lo)
    proc = _Proc(pid, r, cap)
    try:
        kind, reason = proc.wait(started, timeout, tick, tick_interval, kill_grace)
    finally:
        proc.close()
        if record is not None:
            record.ended()
    duration = time.monotonic() - started
    output, truncated = proc.tail.text()
    assert proc.status is not None       # close() has reaped the shell
    code = os.waitstatus_to_exitcode(proc.status)
    if kind == "timeout":
        return Outcome("timeout", None, f"timed out after {_fmt_seconds(timeout)}",
                       output, truncated, duration)
    if kind == "interrupted":
        return Outcome("interrupted", None, f"interrupted: {reason}", output, truncated, duration)
    if code == 0:
        return Outcome("succeeded", 0, None, output, truncated, duration)
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = "unknown"
        return Outcome("signal", None, f"killed by signal {-code} ({name})",
                       output, truncated, duration)
    last = _last_line(output)
    error = f"exit code {code}: {last}" if last else f"exit code {code}"
    return Outcome("exit", code, error, output, truncated, duration)


class _Proc:
    """The waiting half of `run`: output pump, exit watch, ticks, kills."""

    def __init__(self, pid: int, fd: int, cap: int):
        self.pid, self.fd = pid, fd
        self.tail = _Tail(cap)
        self.status: "int | None" = None
        self.pidfd: "int | None"
        try:
            self.pidfd = os.pidfd_open(pid)
        except (AttributeError, OSError):
            self.pidfd = None      # no pidfd: poll waitpid instead
        self.poller = select.poll()
        self.poller.register(fd, select.POLLIN)
        if self.pidfd is not None:
            self.poller.register(self.pidfd, select.POLLIN)
        self.eof = False
        self.exited = False

    def close(self) -> None:
        if self.status is None:          # never leave a zombie behind
            self._kill(signal.SIGKILL)
            _, self.status = os.waitpid(self.pid, 0)
        os.close(self.fd)
        if self.pidfd is not None:
            os.close(self.pidfd)

    def _kill(self, sig: int) -> None:
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _check_exit(self) -> None:
        """Note whether the shell has exited, without reaping it (its zombie
        keeps the process-group id from being reused until we are done)."""
        if self.exited:
            return
        if self.pidfd is None:
            # waitid with WNOWAIT peeks without reaping.
            info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            self.exited = info is not None
        # with a pidfd, exit is reported by poll()

    def _pump(self, wait: "float | None") -> None:
        ms = max(0, int(wait * 1000)) if wait is not None else None
        if self.pidfd is None and not self.exited:
            ms = 50 if ms is None else min(ms, 50)
        for fd, _ in self.poller.poll(ms):
            if fd == self.fd:
                data = os.read(self.fd, 65536)
                if data:
                    self.tail.add(data)
                else:
                    self.eof = True
                    self.poller.unregister(self.fd)
            elif fd == self.pidfd:
                self.exited = True
                self.poller.unregister(self.pidfd)
        self._check_exit()

    def _reap(self) -> None:
        _, self.status = os.waitpid(self.pid, 0)

    def _drain(self, limit: float = 0.05) -> None:
        """After exit, read what is already in the pipe; a background child
        that keeps the pipe open must not hold the worker."""
        end = time.monotonic() + limit
        while not self.eof and time.monotonic() < end:
            self._pump(0.01)

    def wait(self, started, timeout, tick, tick_interval, kill_grace):
        deadline = started + timeout if timeout and timeout > 0 else None
        next_tick = started + tick_interval
        while True:
            if self.exited:
                self._drain()
                self._reap()
                return "exited", None
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                self._stop(kill_grace)
                return "timeout", None
            if tick is not None and now >= next_tick:
                reason = tick()
                next_tick = time.monotonic() + tick_interval
                if reason:
                    self._stop(kill_grace)
                    return "interrupted", reason
            until = next_tick if tick is not None else None
            if deadline is not None:
                until = deadline if until is None else min(until, deadline)
            self._pump(None if until is None else until - now)

    def _stop(self, grace: float) -> None:
        """SIGTERM the group, give the shell `grace` seconds, then SIGKILL the group."""
        self._kill(signal.SIGTERM)
        end = time.monotonic() + grace
        while not self.exited and time.monotonic() < end:
            self._pump(end - time.monotonic())
        self._kill(signal.SIGKILL)
        self._drain()
        self._reap()
