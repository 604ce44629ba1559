"""Dead-letter queue commands: dlq list, dlq retry."""

from __future__ import annotations

from queuectl.cli import render
from queuectl.cli.jobs import _store, job_id, list_jobs
from queuectl.clock import iso
from queuectl.errors import InvalidInput


def list_(args) -> int:
    list_jobs(args, "dead",
              ["ID", "ATTEMPTS", "FINISHED (UTC)", "LAST ERROR", "COMMAND"],
              lambda j: [j.id, str(j.attempts), render.short_time(iso(j.finished_at)),
                         render.one_line(j.last_error, 60), render.one_line(j.command)])
    return 0


def retry(args) -> int:
    if args.all == (args.id is not None):
        raise InvalidInput("give a job id or --all (see 'queuectl dlq retry --help')")
    with _store(args) as store:       # a missing database has no dead jobs
        if args.all:
            print(f"retried {store.dlq_retry_all()} jobs")
        else:
            store.dlq_retry(job_id(args.id))
            print(f"retried {args.id}")
    return 0
