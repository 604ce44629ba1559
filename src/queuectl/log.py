"""Log lines for long-running processes (supervisor and workers), on stderr.

A worker must outlive its terminal: once the terminal is gone (SIGHUP, ssh
dropped) writes to it fail with EIO, and a failed log line must never stop a
worker from finishing its job. After the first failure, stderr is pointed at
/dev/null and logging carries on silently.
"""

from __future__ import annotations

import os
import sys
import time

from queuectl.clock import iso


def line(who: str, msg: str) -> None:
    text = f"{iso(time.time_ns() // 1_000_000)} [{who}] {msg}\n"
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except (OSError, ValueError):
        _silence()


def _silence() -> None:
    try:
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, 2)
        os.close(fd)
        sys.stderr = open(2, "w", closefd=False)
    except OSError:
        pass
