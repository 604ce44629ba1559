"""Steering commands: cancel, queue list/pause/resume/limit."""

from __future__ import annotations

import sys

from queuectl.cli import render
from queuectl.cli.jobs import _store, job_id
from queuectl.errors import InvalidInput, NotFound
from queuectl.model import STATES, valid_id


def queue_name(text: str) -> str:
    if not valid_id(text):
        raise InvalidInput(f"invalid queue name {text!r}: names are 1-128 letters, "
                           "digits or '._:-'")
    return text


def cancel(args) -> int:
    with _store(args) as store:
        result = store.cancel(job_id(args.id))
    if result == "cancelled":
        print(f"cancelled {args.id}")
    else:
        print(f"cancelling {args.id} (its worker kills it within a second)")
    return 0


def queue_list(args) -> int:
    with _store(args) as store:
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


def _set(args, verb: str, *, known: bool = False, **change) -> int:
    """Change a queue's settings. `known`: the change only undoes a setting
    (resume, limit 0), so the queue must exist already (have jobs or
    settings): a misspelt name is an error, not a new, silent queue row."""
    name = queue_name(args.name)
    with _store(args, create=not known) as store:
        if known and name not in {q["name"] for q in store.queues()}:
            raise NotFound(f"queue {name} not found: it has no jobs and no settings "
                           "(see 'queuectl queue list')")
        store.set_queue(name, **change)
    print(f"{verb} {name}")
    return 0


def queue_pause(args) -> int:
    return _set(args, "paused", paused=True)


def queue_resume(args) -> int:
    return _set(args, "resumed", known=True, paused=False)


def queue_limit(args) -> int:
    return _set(args, f"limit {args.n} for" if args.n else "no limit for",
                known=not args.n, limit=args.n)


def purge(args) -> int:
    from queuectl.config import parse_duration
    states = []
    for state in args.states:
        if state not in ("completed", "dead", "cancelled"):
            raise InvalidInput(f"--state must be completed, dead or cancelled, not {state!r}")
        if state not in states:
            states.append(state)
    age = parse_duration(args.older_than, "--older-than")
    with _store(args) as store:
        n = store.purge(states, age)
    print(f"purged {n} job{'' if n == 1 else 's'}")
    return 0
