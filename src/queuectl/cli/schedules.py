"""Recurring jobs: schedule add, list, remove."""

from __future__ import annotations

import sys
from argparse import Namespace

from queuectl import cron
from queuectl.cli import render
from queuectl.cli.jobs import open_db
from queuectl.clock import iso


def add(args: Namespace) -> int:
    name = cron.check_name(args.name)
    job = cron.check_job(args.job)
    cron.check(args.cron, args.tz)           # validated before the database is opened
    with open_db(args, create=True) as store:
        first = store.add_schedule(name, args.cron, args.tz, job,
                                   lambda now: cron.next_after(args.cron, args.tz, now),
                                   replace=args.replace)
    print(f"added schedule {name}: first run {iso(first)}")
    return 0


def list_(args: Namespace) -> int:
    with open_db(args) as store:
        rows = store.schedules()
    if args.json:
        render.emit_json(rows)
    elif rows:
        render.table(["NAME", "CRON", "TZ", "NEXT RUN (UTC)", "LAST RUN (UTC)", "JOB"],
                     [[r["name"], r["cron"], r["tz"], render.short_time(r["next_run_at"]),
                       render.short_time(r["last_run_at"]),
                       render.one_line(r["job"].get("command"))] for r in rows])
    else:
        print("no schedules", file=sys.stderr)
    return 0


def remove(args: Namespace) -> int:
    name = cron.check_name(args.name)
    with open_db(args) as store:
        store.remove_schedule(name)
    print(f"removed schedule {name}")
    return 0
