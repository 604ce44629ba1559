"""Steering commands: cancel, queue list/pause/resume/limit."""

from __future__ import annotations

import sys
from argparse import Namespace

from queuectl import ops
from queuectl.cli import render
from queuectl.cli.jobs import open_db
from queuectl.errors import InvalidInput, NotFound
from queuectl.model import STATES


def cancel(args: Namespace) -> int:
    with open_db(args) as store:
        result = store.cancel(ops.job_id(args.id))
    if args.json:
        render.emit_json({"id": args.id, "state": result})
    elif result == "cancelled":
        print(f"cancelled {args.id}")
    else:
        print(f"cancelling {args.id} (its worker kills it within a second)")
    return 0


def queue_list(args: Namespace) -> int:
    with open_db(args) as store:
        queues = store.queues()
    if args.json:
        render.emit_json(queues)
    elif queues:
        render.table(["QUEUE", "PAUSED", "LIMIT"] + [s.upper() for s in STATES],
                     [[q["name"], "yes" if q["paused"] else "no",
                       str(q["limit"]) if q["limit"] else "-"] +
                      [str(q[s]) for s in STATES] for q in queues])
    else:
        print("no queues", file=sys.stderr)
    return 0


def _set(args: Namespace, verb: str, *, paused: bool | None = None,
         limit: int | None = None) -> int:
    """Change a queue's settings (ops.set_queue: resume and limit 0 need an
    existing queue, so they create no database either)."""
    name = ops.queue_name(args.name)
    with open_db(args, create=not ops.only_undoes(paused=paused, limit=limit)) as store:
        new = name not in {q["name"] for q in store.queues()}
        try:
            ops.set_queue(store, name, paused=paused, limit=limit)
        except NotFound as e:
            raise NotFound(f"{e} (see 'queuectl queue list')") from None
    if new:       # (a misspelt name, perhaps: say so, on stderr)
        print(f"queuectl: note: made a new queue {name}: it had no jobs or settings "
              "(see 'queuectl queue list')", file=sys.stderr)
    print(f"{verb} {name}")
    return 0


def queue_pause(args: Namespace) -> int:
    return _set(args, "paused", paused=True)


def queue_resume(args: Namespace) -> int:
    return _set(args, "resumed", paused=False)


def queue_limit(args: Namespace) -> int:
    return _set(args, f"limit {args.n} for" if args.n else "no limit for", limit=args.n)


def purge(args: Namespace) -> int:
    from queuectl.config import parse_duration
    states = []
    for state in args.states:
        if state not in ("completed", "dead", "cancelled"):
            raise InvalidInput(f"--state must be completed, dead or cancelled, not {state!r}")
        if state not in states:
            states.append(state)
    age = parse_duration(args.older_than, "--older-than")
    with open_db(args) as store:
        n = store.purge(states, age)
    print(f"purged {n} job{'' if n == 1 else 's'}")
    return 0
