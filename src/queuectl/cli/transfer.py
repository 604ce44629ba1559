"""Schema and data moves: migrate, export, import."""

from __future__ import annotations

import json
import sys
from argparse import Namespace

from queuectl.cli.jobs import db_url, open_db, read_input
from queuectl.errors import InvalidInput
from queuectl.model import MAX_BATCH, STATES
from queuectl.payload import json_lines, parse_exported, validated


def migrate(args: Namespace) -> int:
    with open_db(args, create=True) as store:
        version = store.migrate()
    print(f"schema version {version}: {_where(db_url(args))}")
    return 0


def _where(url: str) -> str:
    if url.startswith(("postgresql://", "postgres://")):
        from queuectl.store.postgres import describe_url
        return describe_url(url)
    return url


def export(args: Namespace) -> int:
    if args.state is not None and args.state not in STATES:
        raise InvalidInput(f"invalid state {args.state!r} (choose from {', '.join(STATES)})")
    n = 0
    with open_db(args) as store:
        out = sys.stdout
        for job in store.export_jobs():
            if args.state is None or job.state == args.state:
                d = job.to_dict(with_output=True)
                del d["worker_id"], d["lease_expires_at"]
                out.write(json.dumps(d, ensure_ascii=False) + "\n")
                n += 1
    print(f"exported {n} jobs", file=sys.stderr)
    return 0


def import_(args: Namespace) -> int:
    if args.file == "-":
        args.file = None
    text = read_input(args)
    jobs = validated(json_lines(text), parse_exported)
    if len(jobs) > MAX_BATCH * 10:
        raise InvalidInput(f"{len(jobs)} jobs in one import; the limit is {MAX_BATCH * 10}")
    with open_db(args, create=True) as store:
        if jobs:
            store.import_jobs(jobs)
    print(f"imported {len(jobs)} jobs")
    return 0
