"""Worker commands: worker start, stop, list."""

from __future__ import annotations

import time
from argparse import Namespace

from queuectl.cli import render
from queuectl.cli.jobs import db_url, open_db


def start(args: Namespace) -> int:
    from queuectl import ops
    from queuectl.supervisor import Supervisor
    url = db_url(args)
    queues = [ops.queue_name(q) for q in args.queues] if args.queues else None
    # Open (creating and migrating) once, so errors show before forking.
    with open_db(args, create=True):
        pass
    return Supervisor(url, args.count, burst=args.burst, quiet=args.quiet,
                      debug=getattr(args, "debug", False), queues=queues).run()


def stop(args: Namespace) -> int:
    with open_db(args) as store:
        ids = store.request_stop()
        print(f"signalled {len(ids)} workers")
        if args.wait and ids:
            pending = set(ids)
            while pending:
                time.sleep(0.1)
                pending &= {w["id"] for w in store.active_workers()}
            print(f"stopped {len(ids)} workers")
    return 0


def list_(args: Namespace) -> int:
    with open_db(args) as store:
        workers = store.active_workers()
    if args.json:
        render.emit_json(workers)
    elif workers:
        render.table(["ID", "PID", "STARTED (UTC)", "HEARTBEAT", "STATE", "JOB"],
                     [[w["id"], str(w["pid"]), render.short_time(w["started_at"]),
                       f"{w['heartbeat_age']:.1f}s ago",
                       "stopping" if w["stopping"] else ("busy" if w["job_id"] else "idle"),
                       w["job_id"] or "-"] for w in workers])
    else:
        import sys
        print("no active workers", file=sys.stderr)
    return 0
