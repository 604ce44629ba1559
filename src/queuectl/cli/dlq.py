"""Dead-letter queue commands: dlq list, dlq retry."""

from __future__ import annotations

from queuectl.cli import render
from queuectl.cli.jobs import _more_hint, _store
from queuectl.errors import InvalidInput


def list_(args) -> int:
    with _store(args) as store:
        jobs = store.list_jobs("dead", args.limit + 1 if args.limit else 0)
    more = bool(args.limit) and len(jobs) > args.limit
    jobs = jobs[: args.limit] if args.limit else jobs
    if args.json:
        render.emit_json([j.to_dict() for j in jobs])
    elif jobs:
        render.table(["ID", "ATTEMPTS", "FINISHED (UTC)", "LAST ERROR", "COMMAND"],
                     [[j.id, str(j.attempts), render.short_time(j.to_dict()["finished_at"]),
                       render.one_line(j.last_error, 60), render.one_line(j.command)]
                      for j in jobs])
    else:
        import sys
        print("the DLQ is empty", file=sys.stderr)
    _more_hint(len(jobs), args.limit, more)
    return 0


def retry(args) -> int:
    if args.all == (args.id is not None):
        raise InvalidInput("give a job id or --all (see 'queuectl dlq retry --help')")
    with _store(args) as store:
        if args.all:
            print(f"retried {store.dlq_retry_all()} jobs")
        else:
            store.dlq_retry(args.id)
            print(f"retried {args.id}")
    return 0
