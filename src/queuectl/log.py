"""Log lines for long-running processes (supervisor and workers), on stderr.

A worker must outlive its terminal: once the terminal is gone (SIGHUP, ssh
dropped) writes to it fail with EIO, and a failed log line must never stop a
worker from finishing its job. After the first failure, stderr is pointed at
/dev/null and logging carries on silently.

Messages quote job data (ids, errors taken from a job's output): each line is
passed through text.visible, so it is one line and holds no control character
(an ESC sequence in a job's output must not drive the terminal or the file's
reader).
"""

from __future__ import annotations

import os
import sys
import time

from queuectl.clock import iso
from queuectl.text import visible


def line(who: str, msg: str) -> None:
    text = visible(f"{iso(time.time_ns() // 1_000_000)} [{who}] {msg}", keep="\t") + "\n"
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
