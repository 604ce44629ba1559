"""Job commands: enqueue, status, list, show, logs, history."""

from __future__ import annotations

import json
import sys

from queuectl.cli import render
from queuectl.errors import InvalidInput
from queuectl.model import STATES, parse_many, parse_one
from queuectl.store import open_store, resolve_url


def _store(args, **kw):
    return open_store(resolve_url(getattr(args, "db", None)), **kw)


def enqueue(args) -> int:
    if args.file and args.payload:
        raise InvalidInput("give a JSON payload or --file, not both")
    if args.file or args.payload == "-":
        if args.file:
            try:
                with open(args.file, encoding="utf-8") as f:
                    text = f.read()
            except (OSError, UnicodeDecodeError) as e:
                raise InvalidInput(f"cannot read {args.file}: "
                                   f"{getattr(e, 'strerror', None) or e}") from None
        else:
            try:
                text = sys.stdin.read()
            except UnicodeDecodeError as e:
                raise InvalidInput(f"standard input is not UTF-8: {e}") from None
        bulk = True
    elif args.payload is not None:
        text, bulk = args.payload, False
    else:
        raise InvalidInput("give a JSON payload, '-' for stdin, or --file F "
                           "(see 'queuectl enqueue --help')")
    with _store(args) as store:
        cfg = store.config()
        defaults = {"default_max_retries": cfg["max_retries"],
                    "default_timeout": cfg["job_timeout"]}
        if bulk:
            jobs = parse_many(text, **defaults)
            if jobs:
                store.enqueue(jobs)
            print(f"enqueued {len(jobs)} jobs")
        else:
            job = parse_one(text, **defaults)
            store.enqueue([job])
            print(f"enqueued {job.id}")
    return 0


def status(args) -> int:
    with _store(args) as store:
        counts = store.counts()
        workers = store.active_workers()
    if args.json:
        render.emit_json({"jobs": counts, "workers": {"active": len(workers)}})
        return 0
    width = max(map(len, STATES))
    lines = ["jobs"] + [f"  {s.ljust(width)}  {counts[s]}" for s in STATES]
    lines += ["workers", f"  {'active'.ljust(width)}  {len(workers)}"]
    print("\n".join(lines))
    return 0


def _check_state(state):
    if state is not None and state not in STATES:
        raise InvalidInput(f"unknown state {state!r} (states: {', '.join(STATES)})")


def _more_hint(shown: int, limit: int, more: bool) -> None:
    if more:
        print(f"(showing the first {shown} jobs; use --limit N for more, --limit 0 for all)",
              file=sys.stderr)


def list_(args) -> int:
    _check_state(args.state)
    with _store(args) as store:
        jobs = store.list_jobs(args.state, args.limit + 1 if args.limit else 0)
    more = bool(args.limit) and len(jobs) > args.limit
    jobs = jobs[: args.limit] if args.limit else jobs
    if args.json:
        render.emit_json([j.to_dict() for j in jobs])
    elif jobs:
        render.table(["ID", "STATE", "ATTEMPTS", "PRIORITY", "UPDATED (UTC)", "COMMAND"],
                     [[j.id, j.state, render.attempts(j), str(j.priority),
                       render.short_time(j.to_dict()["updated_at"]), render.one_line(j.command)]
                      for j in jobs])
    else:
        print("no jobs" + (f" in state {args.state}" if args.state else ""), file=sys.stderr)
    _more_hint(len(jobs), args.limit, more)
    return 0


def show(args) -> int:
    with _store(args) as store:
        job = store.get_job(args.id, with_output=True)
    d = job.to_dict(with_output=True)
    if args.json:
        render.emit_json(d)
        return 0
    fields = [k for k in d if k not in ("output", "output_truncated")]
    width = max(map(len, fields))
    for k in fields:
        v = d[k]
        if k == "timeout":
            v = f"{v}s" if v else "none"
        elif k == "attempts":
            v = f"{v} of {job.max_retries + 1} allowed"
        print(f"{k.ljust(width)}  {'-' if v is None else v}")
    if job.attempts or job.output:
        note = " (truncated: last 64 KiB)" if job.output_truncated else ""
        print(f"--- output of attempt {job.attempts}{note} ---")
        out = job.output or ""
        sys.stdout.write(out if out.endswith("\n") or not out else out + "\n")
    return 0


def logs(args) -> int:
    with _store(args) as store:
        job = store.get_job(args.id, with_output=True)
    if job.output_truncated:
        print(f"queuectl: note: output of attempt {job.attempts} was truncated; "
              "this is its last 64 KiB", file=sys.stderr)
    sys.stdout.write(job.output or "")
    return 0


def history(args) -> int:
    with _store(args) as store:
        if args.job_id is not None:
            store.get_job(args.job_id)          # NotFound for an unknown id
        events = store.history(args.job_id, args.limit)
    sys.stdout.write("".join(json.dumps(e) + "\n" for e in events))
    return 0
