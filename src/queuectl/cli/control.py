"""Steering commands: cancel (one or --all), remove, requeue, edit, purge,
queue list/pause/resume/limit/remove."""

from __future__ import annotations

import sys
from argparse import Namespace
from typing import Any

from queuectl import ops
from queuectl.cli import render
from queuectl.cli.jobs import open_db
from queuectl.clock import iso
from queuectl.errors import Conflict, InvalidInput, NotFound
from queuectl.model import STATES


def cancel(args: Namespace) -> int:
    if args.all == (args.id is not None):
        raise InvalidInput("give a job id or --all (see 'queuectl cancel --help')")
    if args.all:
        return cancel_all(args)
    if args.queues or args.states or args.yes:
        raise InvalidInput("--queue, --state and --yes go with --all")
    with open_db(args) as store:
        result = store.cancel(ops.job_id(args.id))
    if args.json:
        render.emit_json({"id": args.id, "state": result})
    elif result == "cancelled":
        print(f"cancelled {args.id}")
    else:
        print(f"cancelling {args.id} (its worker kills it within a second)")
    return 0


def cancel_all(args: Namespace) -> int:
    """`cancel --all [--queue Q]... [--state S]... [--yes]`: one transaction per
    job. Running jobs are cancelled only with --yes; without it, if there are
    any, nothing is changed (exit 2). A job that starts after they were counted
    is left running."""
    states = ops.cancellable_states(args.states)
    queues = [ops.queue_name(q) for q in args.queues or ()]
    with open_db(args) as store:
        found = store.cancel_candidates(states, queues or None)
        running = sum(1 for _, state in found if state == "processing")
        if running and not args.yes:
            raise InvalidInput(
                f"this would cancel {running} running job{'' if running == 1 else 's'} "
                f"(of {len(found)}); their commands would be killed: add --yes, or "
                "--state pending --state failed to cancel only waiting ones")
        # Waiting jobs first: a running job cancelled first would free its
        # worker to claim the next job of the list before that one's cancel.
        ids = [i for i, state in found if state != "processing"] + \
              [i for i, state in found if state == "processing"]
        cancelled, cancelling = store.cancel_many(ids, running=args.yes)
    if args.json:
        render.emit_json({"cancelled": cancelled, "cancelling": cancelling})
        return 0
    print(f"cancelled {len(cancelled)} job{'' if len(cancelled) == 1 else 's'}" +
          (f", cancelling {len(cancelling)} running (their workers kill them within a "
           "second)" if cancelling else ""))
    return 0


def _each(args: Namespace, ids: list[str], act: Any) -> tuple[list, list]:
    """Run `act(store, id)` for each id, in order, one transaction each: a job
    that cannot be acted on is reported (one line on stderr; in --json in
    "errors") and the others still are. (done, errors)."""
    ids = [ops.job_id(i) for i in ids]          # every id checked before anything
    done, errors = [], []
    with open_db(args) as store:
        for job_id in ids:
            try:
                done.append((job_id, act(store, job_id)))
            except (NotFound, Conflict) as e:
                errors.append({"id": job_id, "error": str(e)})
                if not args.json:
                    print(f"queuectl: error: {e}", file=sys.stderr)
    return done, errors


def remove(args: Namespace) -> int:
    done, errors = _each(args, args.ids, lambda store, i: store.remove(i, force=args.force))
    if args.json:
        render.emit_json({"removed": [i for i, _ in done],
                          "cancelled": [d for _, deps in done for d in deps],
                          "errors": errors})
    else:
        for job_id, dependents in done:
            print(f"removed {job_id}" + (f" (cancelled its waiting dependents: "
                                         f"{' '.join(dependents)})" if dependents else ""))
    return 1 if errors else 0


def requeue(args: Namespace) -> int:
    done, errors = _each(args, args.ids, lambda store, i: store.requeue(i))
    if args.json:
        render.emit_json({"requeued": [i for i, _ in done], "errors": errors})
    else:
        for job_id, was in done:
            print(f"requeued {job_id} (was {was})")
    return 1 if errors else 0


def edit(args: Namespace) -> int:
    """`edit ID [--priority N] [--delay D|--run-at T] [--max-retries N]
    [--timeout D]`: validated as the same payload fields of `enqueue`."""
    from queuectl.payload import validate_payload
    job_id = ops.job_id(args.id)
    given = {f: getattr(args, f) for f in ("priority", "delay", "run_at", "max_retries",
                                           "timeout") if getattr(args, f) is not None}
    if not given:
        raise InvalidInput("nothing to change: give --priority, --delay or --run-at, "
                           "--max-retries or --timeout (see 'queuectl edit --help')")
    new = validate_payload({"command": "-", **given}, default_max_retries=0,
                           default_timeout=0)
    with open_db(args) as store:
        store.edit(job_id, priority=new.priority if "priority" in given else None,
                   delay=new.delay if "delay" in given else None,
                   run_at=new.run_at if "run_at" in given else None,
                   max_retries=new.max_retries if "max_retries" in given else None,
                   timeout=new.timeout if "timeout" in given else None)
        job = store.get_job(job_id)
    if args.json:
        render.emit_json(job.to_dict())
    else:
        print(f"edited {job_id}: priority {job.priority}, due {iso(job.run_at)}, "
              f"max_retries {job.max_retries}, timeout "
              f"{f'{job.timeout:g}s' if job.timeout else 'none'}")
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


def queue_remove(args: Namespace) -> int:
    name = ops.queue_name(args.name)
    with open_db(args) as store:
        store.remove_queue(name)
    if args.json:
        render.emit_json({"removed": name})
    else:
        print(f"removed queue {name}")
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
