"""Dead-letter queue commands: dlq list, dlq retry."""

from __future__ import annotations

import sys
from argparse import Namespace

from queuectl import ops
from queuectl.cli import render
from queuectl.cli.jobs import list_jobs, open_db
from queuectl.clock import iso
from queuectl.errors import InvalidInput


def list_(args: Namespace) -> int:
    if args.group:
        with open_db(args) as store:
            found = ops.groups(store.dead_jobs())
        if args.limit:                          # the biggest N groups
            found = found[:args.limit]
        if args.json:
            render.emit_json(found)
        elif found:
            render.table(["COUNT", "EXIT", "ERROR", "EXAMPLES"],
                         [[str(g["count"]), "-" if g["exit_code"] is None else str(g["exit_code"]),
                           render.one_line(g["error"], 60), " ".join(g["examples"])]
                          for g in found])
        else:
            print("no jobs in state dead", file=sys.stderr)
        return 0
    list_jobs(args, "dead",
              ["ID", "ATTEMPTS", "FINISHED (UTC)", "LAST ERROR", "COMMAND"],
              lambda j: [j.id, str(j.attempts), render.short_time(iso(j.finished_at)),
                         render.one_line(j.last_error), render.one_line(j.command)],
              flex=[3, 4])
    return 0


def retry(args: Namespace) -> int:
    if args.all == (args.id is not None):
        raise InvalidInput("give a job id or --all (see 'queuectl dlq retry --help')")
    if not args.all and (args.queue is not None or args.exit_code is not None):
        raise InvalidInput("--queue and --exit-code go with --all")
    if args.exit_code is not None and not 0 <= args.exit_code <= 255:
        raise InvalidInput(f"--exit-code must be from 0 to 255, not {args.exit_code}")
    if args.queue is not None:
        ops.queue_name(args.queue)              # before the database is opened
    with open_db(args) as store:       # a missing database has no dead jobs
        if args.all:
            n = ops.retry_all(store, args.queue, args.exit_code)
            if args.json:
                render.emit_json({"retried": n})
            else:
                print(f"retried {n} jobs")
        else:
            store.dlq_retry(ops.job_id(args.id))
            if args.json:
                render.emit_json({"retried": 1, "id": args.id})
            else:
                print(f"retried {args.id}")
    return 0
