"""`queuectl health`: does the database answer? Exit 0 if so, else 1 (for
service managers and probes; `--json` for a machine)."""

from __future__ import annotations

import sys
import time
from argparse import Namespace

from queuectl import health
from queuectl.cli import render
from queuectl.cli.jobs import db_url
from queuectl.errors import QueueError
from queuectl.store import open_store


def health_(args: Namespace) -> int:
    started = time.monotonic()
    backend = "unknown"
    try:
        url = db_url(args)
        backend = "postgresql" if url.startswith(("postgresql://", "postgres://")) else "sqlite"
        with open_store(url, create=False) as store:
            problem = health.check(store)
    except QueueError as e:
        problem = " ".join(str(e).split())
    took = round((time.monotonic() - started) * 1000, 1)
    if args.json:
        render.emit_json({"ok": problem is None, "backend": backend, "error": problem,
                          "ms": took})
    elif problem is None:
        print(f"ok: the database answers ({backend}, {took} ms)")
    else:
        print(f"unhealthy: {problem}", file=sys.stderr)
    return 0 if problem is None else 1
