"""`queuectl worker start`: fork N worker processes and look after them.

Signals: the first SIGINT/SIGTERM/SIGHUP asks every worker to finish its current job
and exit; a second one makes them kill their jobs and hand them back. A worker
killed by a signal (OOM, kill -9) is replaced; a worker that exits with an
error is not (the error is reported and the exit code is 1). If the supervisor
itself dies, its workers notice at once (the "life pipe" it holds open reads
as closed) or within a tick, kill their jobs and exit as crashed workers do,
so the jobs are rescued by lease.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
import traceback

from queuectl import log, orphans, runner
from queuectl.errors import StoreError
from queuectl.store import open_store
from queuectl.worker import STOP_BURST, Worker  # imported before fork: children share it

# SIGHUP (the terminal or ssh session went away) stops workers like SIGTERM.
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def job_db(url: str) -> str:
    """QUEUECTL_DB for the jobs: the worker's database, an SQLite path made
    absolute (a job may run in another directory)."""
    if url.startswith(("postgresql://", "postgres://")):
        return url
    path = url[len("sqlite://"):] if url.startswith("sqlite://") else url
    if url.startswith("sqlite://") and path.startswith("//"):
        path = path[1:]
    return os.path.abspath(path)


def _log(msg: str) -> None:
    log.line(f"supervisor {os.getpid()}", msg)


class Supervisor:
    def __init__(self, url: str, count: int, *, burst: bool = False, quiet: bool = False,
                 debug: bool = False, queues: "list[str] | None" = None):
        self.queues = queues
        self.url, self.count, self.burst = url, count, burst
        self.quiet, self.debug = quiet, debug
        self.children: dict[int, int] = {}     # pid -> slot
        self.signals = 0                        # stop requests (signal bursts)
        self._burst_at: "float | None" = None
        self.failed = False
        self.restarts: list[float] = []
        self.pid = os.getpid()
        self.host = os.environ.get("QUEUECTL_HOSTNAME") or socket.gethostname()
        # Children hold only the read end: it reads as closed the moment the
        # supervisor dies, however it dies, which wakes idle workers at once.
        self.life_r, self.life_w = os.pipe()
        # Where the workers note their jobs' process groups (orphans.py).
        self.rundir = orphans.runtime_dir(self.host, job_db(url))

    def _on_signal(self, signum, frame) -> None:
        # One signal sent to the whole process group (`kill -TERM -- -PGID`,
        # a terminal's Ctrl+C or hang-up, a service manager) reaches us and
        # every worker: signals within STOP_BURST of the first of a burst
        # count once. (Workers count the same way, so the relay below and
        # the signal they got directly make one stop.)
        now = time.monotonic()
        if self._burst_at is not None and now - self._burst_at < STOP_BURST:
            return
        self._burst_at = now
        self.signals += 1
        for pid in list(self.children):     # relay first: logging may fail (SIGHUP)
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        if self.signals == 1:
            _log(f"{signal.Signals(signum).name}: finishing running jobs, then exiting "
                 "(again to kill them)")
        else:
            _log("killing running jobs; they will be retried")

    def run(self) -> int:
        runner.no_inherited_fds()      # jobs get fds 0-2 only
        for s in SIGNALS:
            signal.signal(s, self._on_signal)
        for n in range(self.count):
            if self.signals:
                break        # told to stop while starting: start no more
            self._spawn(n)
        if not self.quiet and self.children:
            _log(f"started {len(self.children)} worker(s): pids "
                 f"{' '.join(map(str, self.children))}")
        while self.children:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            slot = self.children.pop(pid, None)
            if slot is None:
                continue
            if orphans.kill_recorded(self.rundir, pid):
                _log(f"worker pid {pid} died while running a job; killed the job's "
                     "processes (the job is handed back)")
            if os.WIFSIGNALED(status):
                sig = os.WTERMSIG(status)
                if self.signals == 0:
                    _log(f"worker pid {pid} was killed by signal {sig}; starting a new one")
                    self._throttle()
                    if self.signals == 0:
                        self._spawn(slot)
            elif os.WEXITSTATUS(status) != 0:
                self.failed = True
                _log(f"worker pid {pid} exited with status {os.WEXITSTATUS(status)}")
            elif self.signals == 0 and not self.burst and self.children:
                # Stopped on its own (worker stop, or SIGTERM to it alone): not replaced.
                _log(f"worker pid {pid} exited; {len(self.children)} still running")
        if self.failed:
            return 1
        return 130 if self.signals > 1 else 0

    def _throttle(self) -> None:
        now = time.monotonic()
        self.restarts = [t for t in self.restarts if now - t < 10] + [now]
        if len(self.restarts) > 5:
            time.sleep(1.0)

    def _spawn(self, slot: int) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        old = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
        if self.signals:       # a stop arrived while blocking: start nothing
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
            return
        pid = os.fork()
        if pid:
            # Known before signals are let in, so a stop request reaches it.
            self.children[pid] = slot
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
            return
        code = 1
        try:
            code = self._child()
        except BaseException as e:   # never let a child return into the parent's stack
            try:
                if self.debug:
                    traceback.print_exc()
                else:
                    sys.stderr.write(f"queuectl: error: worker: {e}\n")
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
        finally:
            os._exit(code)

    def _open_store(self):
        """The worker's connection. A database that is down (a replacement
        worker started during an outage) is waited for, with backoff, until it
        answers, the worker is told to stop (None) or the supervisor dies."""
        pause, said = 0.1, None
        while True:
            try:
                return open_store(self.url, worker=True)
            except StoreError as e:
                if said != str(e):
                    said = str(e)
                    log.line(f"worker {os.getpid()}", f"database error (will retry): {e}")
            # Stop signals are still blocked here: wait for one instead of sleeping.
            if signal.sigtimedwait(SIGNALS, pause) is not None:
                return None
            if os.getppid() != self.pid:
                return None
            pause = min(pause * 2, 5.0)

    def _child(self) -> int:
        for s in SIGNALS:          # (blocked until the worker's handler is set)
            signal.signal(s, signal.SIG_DFL)
        os.close(self.life_w)
        # A signal also writes a byte here, so an idle wait ends at once.
        sig_r, sig_w = os.pipe()
        os.set_blocking(sig_w, False)
        os.set_blocking(sig_r, False)
        signal.set_wakeup_fd(sig_w, warn_on_full_buffer=False)
        worker_id = f"{self.host}:{os.getpid()}:{os.urandom(2).hex()}"
        store = self._open_store()
        if store is None:
            return 0
        worker = Worker(store, worker_id, burst=self.burst, parent_pid=self.pid,
                        quiet=self.quiet, wake_fds=(sig_r, self.life_r), host=self.host,
                        queues=self.queues, db=job_db(self.url))
        for s in SIGNALS:          # SIGINT and SIGHUP too: see Worker.on_sigterm
            signal.signal(s, worker.on_sigterm)
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        try:
            return worker.run()
        finally:
            store.close()
