"""Dead-letter queue commands: dlq list, dlq retry."""

from __future__ import annotations

import sys

from queuectl.cli import render
from queuectl.cli.jobs import _store, job_id, list_jobs
from queuectl.clock import iso
from queuectl.errors import InvalidInput


def _normalise(error: "str | None") -> str:
    """The error's first line with numbers masked, so similar errors group."""
    import re
    line = (error or "").strip().splitlines()[0] if (error or "").strip() else ""
    return re.sub(r"\d+", "#", line)[:200]


def group_key(job) -> tuple:
    """(exit code, normalised error): what dead jobs are grouped by."""
    return job.exit_code, _normalise(job.last_error)


def groups(jobs) -> list[dict]:
    out: dict = {}
    for j in jobs:
        key = group_key(j)
        g = out.setdefault(key, {"exit_code": j.exit_code, "error": key[1], "count": 0,
                                 "examples": []})
        g["count"] += 1
        if len(g["examples"]) < 3:
            g["examples"].append(j.id)
    return sorted(out.values(), key=lambda g: (-g["count"], str(g["exit_code"]), g["error"]))


def list_(args) -> int:
    if args.group:
        with _store(args) as store:
            found = groups(store.dead_jobs())
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
                         render.one_line(j.last_error, 60), render.one_line(j.command)])
    return 0


def retry(args) -> int:
    if args.all == (args.id is not None):
        raise InvalidInput("give a job id or --all (see 'queuectl dlq retry --help')")
    if not args.all and (args.queue is not None or args.exit_code is not None):
        raise InvalidInput("--queue and --exit-code go with --all")
    if args.exit_code is not None and not 0 <= args.exit_code <= 255:
        raise InvalidInput(f"--exit-code must be from 0 to 255, not {args.exit_code}")
    if args.queue is not None:
        from queuectl.cli.control import queue_name
        queue_name(args.queue)
    with _store(args) as store:       # a missing database has no dead jobs
        if args.all:
            print(f"retried {store.dlq_retry_all(args.queue, args.exit_code)} jobs")
        else:
            store.dlq_retry(job_id(args.id))
            print(f"retried {args.id}")
    return 0
