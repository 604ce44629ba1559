"""Job commands: enqueue, status, list, show, logs, history."""

from __future__ import annotations

import json
import sys

from queuectl import ops
from queuectl.cli import render
from queuectl.clock import iso
from queuectl.errors import InvalidInput, NotFound
from queuectl.model import MAX_INPUT_CHARS, STATES, TERMINAL
from queuectl.payload import fill_defaults, parse_many, parse_one
from queuectl.store import open_store, resolve_url
from queuectl.text import visible

# Not `typing.TYPE_CHECKING`, and argparse only for the checker: `enqueue`'s
# fast path imports this module and neither of those (2-3 ms each).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from argparse import Namespace
    from collections.abc import Callable
    from contextlib import AbstractContextManager
    from typing import Any

    from queuectl.model import Job
    from queuectl.store.base import Store


SCHEMES = ("postgresql", "postgres", "sqlite", "file")


def db_url(args: Namespace) -> str:
    """--db, else $QUEUECTL_DB, else ./queuectl.db; a `scheme://` other than
    those of SCHEMES is an error (not a file path). `file://PATH` is `PATH`."""
    url = resolve_url(getattr(args, "db", None))
    scheme, sep, rest = url.partition("://")
    if sep and scheme.replace("+", "").replace("-", "").replace(".", "").isalnum():
        if scheme.lower() not in SCHEMES:
            raise InvalidInput(f"unsupported database URL scheme {scheme + '://'!r}: "
                               "give a file path, sqlite:///path, file:///path or "
                               "postgresql://user@host/dbname")
        if scheme.lower() == "file":
            return "sqlite://" + rest
    return url


def describe_db(url: str) -> str:
    """The database as `status` names it: an SQLite file's absolute path, or a
    PostgreSQL URL without its password."""
    import os
    if url.startswith(("postgresql://", "postgres://")):
        from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
        parts = urlsplit(url)
        user, at, host = parts.netloc.rpartition("@")
        netloc = user.split(":", 1)[0] + at + host
        query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
                           if k.lower() != "password"])
        return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
    if url.startswith("sqlite://"):             # as open_store reads it
        url = url[len("sqlite://"):]
        if url.startswith("//"):
            url = url[1:]
    return os.path.abspath(url)


class _Missing:
    """A store opened on a database that does not exist (it reads as empty):
    when the `with` block ends without an error, a line on stderr says so,
    naming the file. (Not when it fails: an error stays one line.)"""

    def __init__(self, store: Store, path: str):
        self.store, self.path = store, path

    def __enter__(self) -> Store:
        return self.store

    def __exit__(self, kind: object, *exc: object) -> None:
        self.store.close()
        if kind is None:
            print(f"queuectl: no queue at {self.path} yet", file=sys.stderr, flush=True)


def open_db(args: Namespace, *, create: bool = False, quiet: bool = False,
            **kw: Any) -> AbstractContextManager[Store]:
    """Open the database, for a `with` block. Read-only commands pass
    create=False: a database that does not exist yet then reads as empty and
    no file is made, and (unless `quiet`) a line on stderr says so, naming the
    file: a command run in the wrong directory is not silently answered by an
    empty queue."""
    url = db_url(args)
    store = open_store(url, create=create, **kw)
    if not create and not quiet and not url.startswith(("postgresql://", "postgres://")):
        import os
        path = describe_db(url)
        if url not in (":memory:", "sqlite://:memory:") and not os.path.exists(path):
            return _Missing(store, path)
    return store


def read_input(args: Namespace, limit: int | None = None) -> str:
    """The input file or stdin; InvalidInput beyond `limit` characters."""
    size = -1 if limit is None else limit + 1
    if args.file:
        try:
            with open(args.file, encoding="utf-8") as f:
                text = f.read(size)
        except (OSError, UnicodeDecodeError) as e:
            raise InvalidInput(f"cannot read {args.file}: "
                               f"{getattr(e, 'strerror', None) or e}") from None
    else:
        try:
            text = sys.stdin.read(size)
        except UnicodeDecodeError as e:
            raise InvalidInput(f"standard input is not UTF-8: {e}") from None
    if limit is not None and len(text) > limit:
        raise InvalidInput(f"the input is longer than {limit} characters ({limit >> 20} Mi); "
                           "split it into several enqueues")
    return text


def add(args: Namespace) -> int:
    """`add [OPTIONS] -- COMMAND [ARG...]`: the payload built from options,
    then validated and stored exactly as `enqueue`'s."""
    import os
    import shlex
    words = args.words
    if not words:
        raise InvalidInput("give the command after --: queuectl add [OPTIONS] -- COMMAND "
                           "[ARG...] (see 'queuectl add --help')")
    payload: dict[str, Any] = {"command": words[0] if len(words) == 1 else shlex.join(words)}
    for field in ("id", "queue", "priority", "delay", "run_at", "timeout", "max_retries",
                  "after", "fatal_exit_codes"):
        if getattr(args, field) is not None:
            payload[field] = getattr(args, field)
    try:
        payload["cwd"] = os.path.abspath(args.cwd if args.cwd is not None else os.getcwd())
    except OSError as e:
        raise InvalidInput(f"cannot tell the current directory: {e.strerror} "
                           "(give --cwd DIR)") from None
    if args.env:
        env = payload["env"] = {}
        for item in args.env:
            name, eq, value = item.partition("=")
            if not eq:
                raise InvalidInput(f"--env must be NAME=VALUE, not {item!r}")
            env[name] = value
    from queuectl.payload import validate_payload
    store_jobs(args, [validate_payload(payload)], bulk=False)
    return 0


def store_jobs(args: Namespace, jobs: list, bulk: bool) -> None:
    """Store validated jobs (enqueue, add) and print what was done."""
    # Validated before the database is opened: bad input creates no file.
    with open_db(args, create=True) as store:
        cfg = store.config()
        fill_defaults(jobs, max_retries=cfg["max_retries"], timeout=cfg["job_timeout"])
        existed = store.enqueue(jobs, skip_existing=args.skip_existing) if jobs else []
    if args.json:
        old = set(existed)
        if bulk:
            render.emit_json({"enqueued": [j.id for j in jobs if j.id not in old],
                              "existing": existed})
        else:
            render.emit_json({"id": jobs[0].id, "enqueued": not existed})
        return
    for existing in existed:
        print(f"exists {existing}")
    if bulk:
        print(f"enqueued {len(jobs) - len(existed)} jobs")
    elif not existed:
        print(f"enqueued {jobs[0].id}")


def enqueue(args: Namespace) -> int:
    if args.file and args.payload:
        raise InvalidInput("give a JSON payload or --file, not both")
    bulk = bool(args.file) or args.payload == "-"
    if bulk:
        jobs = parse_many(read_input(args, MAX_INPUT_CHARS))
    elif args.payload is not None:
        jobs = [parse_one(args.payload)]
    else:
        raise InvalidInput("give a JSON payload, '-' for stdin, or --file F "
                           "(see 'queuectl enqueue --help')")
    store_jobs(args, jobs, bulk)
    return 0


def wait(args: Namespace) -> int:
    """Block until the named jobs (or, with --all, the whole queue) are done."""
    import time
    if args.all == bool(args.ids):
        raise InvalidInput("give job ids or --all (see 'queuectl wait --help')")
    ids = [ops.job_id(i) for i in args.ids]
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    tty = sys.stdout.isatty()
    with open_db(args) as store:
        for i in ids:
            try:
                store.get_job(i)
            except NotFound:
                raise InvalidInput(f"job {i} not found") from None
        dead_before = store.counts()["dead"] if args.all else 0
        last_line = 0.0
        seen, since, told = None, time.monotonic(), set()
        while True:
            # Nothing has changed for STALL seconds: say once why, if we can see it.
            look: Any = store.counts() if args.all else [store.get_job(i).state for i in ids]
            if look != seen:
                seen, since = look, time.monotonic()
            elif time.monotonic() - since >= STALL:
                since = float("inf")            # (looked; look again after a change)
                for reason in stall_reasons(store, None if args.all else ids, args):
                    if reason not in told:
                        told.add(reason)
                        if tty and args.all:
                            sys.stdout.write("\n")
                        print(f"queuectl: wait: {reason}", file=sys.stderr, flush=True)
            if args.all:
                counts = look
                left = counts["pending"] + counts["failed"] + counts["processing"]
                done = counts["completed"] + counts["dead"] + counts["cancelled"]
                now = time.monotonic()
                if tty:
                    total = max(1, left + done)
                    bar = "#" * (30 * done // total)
                    sys.stdout.write(f"\r[{bar:30}] {done}/{left + done} done, "
                                     f"{counts['processing']} running ")
                    sys.stdout.flush()
                elif now - last_line >= 1.0 or not left:
                    print(f"{left} left, {done} done, {counts['processing']} running",
                          flush=True)
                    last_line = now
                if not left:
                    if tty:
                        sys.stdout.write("\n")
                    dead = counts["dead"] - dead_before
                    print(f"drained: {counts['completed']} completed, {counts['dead']} dead, "
                          f"{counts['cancelled']} cancelled")
                    return 1 if dead > 0 else 0
            else:
                states = dict(zip(ids, look, strict=True))
                if all(st in TERMINAL for st in states.values()):
                    for i in ids:
                        print(f"{i} {states[i]}")
                    return 0 if all(st == "completed" for st in states.values()) else 1
            if deadline is not None and time.monotonic() >= deadline:
                if tty and args.all:
                    sys.stdout.write("\n")
                print(f"queuectl: wait: timed out after {args.timeout:g}s", file=sys.stderr)
                return 124
            time.sleep(0.1 if deadline is None else
                       max(0.0, min(0.1, deadline - time.monotonic())))


#: Seconds without any change before `wait` looks for why nothing moves.
STALL = 2.0


def stall_reasons(store: Store, ids: list[str] | None, args: Namespace) -> list[str]:
    """Why the jobs `ids` (None: every unfinished job) may not move: no
    active worker on this database, their queue paused, a dependency that
    ended dead or cancelled (or waits in a paused queue)."""
    reasons = []
    paused = {q["name"] for q in store.queues() if q["paused"]}
    if ids is None:
        waiting_in = {q["name"] for q in store.queues() if q["pending"] + q["failed"]}
        left = bool(waiting_in) or store.counts()["processing"] > 0
        blocked: list = []
    else:
        jobs = [store.get_job(i) for i in ids]
        jobs = [j for j in jobs if j.state not in TERMINAL]
        waiting_in = {j.queue for j in jobs if j.state != "processing"}
        left = bool(jobs)
        blocked = [j for j in jobs if j.blocked]
    if not left:
        return []
    if not store.active_workers():
        reasons.append(f"no active worker on this database ({describe_db(db_url(args))}); "
                       "jobs wait until one starts (queuectl worker start)")
    for name in sorted(waiting_in & paused):
        reasons.append(f"queue {name} is paused; its jobs wait (queuectl queue resume {name})")
    for job in blocked:
        for dep_id in job.after or ():
            try:
                dep = store.get_job(dep_id)
            except NotFound:
                continue
            if dep.state in ("dead", "cancelled"):
                reasons.append(f"job {job.id} waits for job {dep_id}, which is {dep.state} "
                               f"(queuectl requeue {dep_id})")
            elif dep.state != "completed" and dep.queue in paused:
                reasons.append(f"job {job.id} waits for job {dep_id}, whose queue "
                               f"{dep.queue} is paused")
    return reasons


def status(args: Namespace) -> int:
    with open_db(args) as store:
        counts = store.counts()
        workers = store.active_workers()
    where = describe_db(db_url(args))
    if args.json:
        render.emit_json({"jobs": counts, "workers": {"active": len(workers)},
                          "database": where})
        return 0
    width = max(map(len, STATES))
    lines = [f"database  {where}", "jobs"] + [f"  {s.ljust(width)}  {counts[s]}" for s in STATES]
    lines += ["workers", f"  {'active'.ljust(width)}  {len(workers)}"]
    print("\n".join(lines))
    return 0


def list_jobs(args: Namespace, state: str | None, headers: list[str],
              row: Callable[[Job], list[str]], flex: list[int] | None = None) -> None:
    """The body of `list` and `dlq list`: limit (or the last N), JSON or table,
    the 'more' hint."""
    last = getattr(args, "last", None)
    if last is not None and args.limit is not None:
        raise InvalidInput("give --limit N (the oldest N) or --last N (the newest N), not both")
    limit = args.limit if args.limit is not None else (0 if args.json else 100)
    queues = [ops.queue_name(q) for q in getattr(args, "queues", None) or ()] or None
    with open_db(args) as store:
        if last is not None:
            jobs = (store.list_jobs(state, last, newest_first=True, queues=queues)[::-1]
                    if last else [])
            limit = 0
        else:
            jobs = store.list_jobs(state, limit + 1 if limit else 0, queues=queues)
    more = bool(limit) and len(jobs) > limit
    jobs = jobs[:limit] if limit else jobs
    if args.json:
        render.emit_json([j.to_dict() for j in jobs])
    elif jobs:
        render.table(headers, [row(j) for j in jobs], flex)
    else:
        print("no jobs" + (f" in state {state}" if state else "") +
              (f" in queue{'s' if len(queues) > 1 else ''} {', '.join(queues)}"
               if queues else ""), file=sys.stderr)
    if more:
        print(f"(showing the first {limit} jobs; --limit N for more, --limit 0 for all, "
              "--last N for the newest)", file=sys.stderr)


def list_(args: Namespace) -> int:
    ops.state(args.state)
    list_jobs(args, args.state,
              ["ID", "STATE", "ATTEMPTS", "PRIORITY", "UPDATED (UTC)", "COMMAND"],
              lambda j: [j.id, j.state + (" (blocked)" if j.blocked else ""),
                         render.attempts(j), str(j.priority),
                         render.short_time(iso(j.updated_at)), render.one_line(j.command)])
    return 0


def show(args: Namespace) -> int:
    with open_db(args) as store:
        job = store.get_job(ops.job_id(args.id), with_output=True)
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
        elif isinstance(v, bool):
            v = "yes" if v else "no"
        elif isinstance(v, (list, dict)):
            v = json.dumps(v, ensure_ascii=False) if v else None
        # One line a field, whatever the command or error holds (text.visible).
        print(visible(f"{k.ljust(width)}  {'-' if v is None else v}", keep="\t"))
    if job.attempts or job.output:
        note = " (truncated: last 64 KiB)" if job.output_truncated else ""
        print(f"--- output of attempt {job.attempts}{note} ---")
        out = visible(job.output or "", keep="\n\t")
        sys.stdout.write(out if out.endswith("\n") or not out else out + "\n")
    return 0


def logs(args: Namespace) -> int:
    with open_db(args) as store:
        job = store.get_job(ops.job_id(args.id), with_output=True)
    if job.output_truncated:
        print(f"queuectl: note: output of attempt {job.attempts} was truncated; "
              "this is its last 64 KiB", file=sys.stderr)
    out = job.output or ""
    # Byte-exact to a pipe or file; on a terminal, control characters are
    # shown, not obeyed (newlines and tabs kept).
    sys.stdout.write(visible(out, keep="\n\t") if sys.stdout.isatty() else out)
    return 0


def history(args: Namespace) -> int:
    with open_db(args) as store:
        if args.job_id is not None:
            store.get_job(ops.job_id(args.job_id))      # NotFound for an unknown id
        events = store.history(args.job_id, args.limit)
    sys.stdout.write("".join(json.dumps(e) + "\n" for e in events))
    return 0
