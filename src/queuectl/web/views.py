"""The data behind each dashboard page, shared by the HTML page and its JSON
twin under /api/ (so they always agree). Plain dicts out, from the store, the
operations layer and `insight`."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from queuectl import insight, ops
from queuectl.clock import iso
from queuectl.errors import InvalidInput
from queuectl.model import TERMINAL

if TYPE_CHECKING:
    from queuectl.model import Job
    from queuectl.store.base import Store

PER_PAGE = 50
MAX_PAGE = 100_000
CHART_MINUTES = 30
FAILURES_WINDOW = 3_600_000     # "recent failures": the last hour's
GROUPS_PER_PAGE = 50
TEXT_LIMIT = 300                # characters of a command/error/cwd shown in a list row
LIST_LIMIT = 20                 # env names and dependencies shown in a list row
EVENTS_SHOWN = 500              # a job page's history: the newest 500 events
SCAN_CHUNK = 50                 # dead jobs read at a time to group them …
SCANNING = threading.Lock()     # … by one request at a time (memory stays bounded)


def status(s: Store) -> dict[str, Any]:
    """What `status --json` prints."""
    return {"jobs": s.counts(), "workers": {"active": len(s.active_workers())}}


def overview(s: Store) -> dict[str, Any]:
    counts = s.counts()
    workers = s.active_workers()
    now = s.now_ms()
    # Whole minutes, the current one last.
    since = now - now % 60_000 - (CHART_MINUTES - 1) * 60_000
    running = {j.id: j for j in s.list_jobs("processing")}
    for w in workers:
        job = running.get(w["job_id"]) if w["job_id"] else None
        w["job_command"] = clip(job.command) if job else None
        w["job_elapsed"] = round((now - job.started_at) / 1000, 1) if job else None
    recent = s.recent_failures(10, now - FAILURES_WINDOW)
    return {
        "status": {"jobs": counts, "workers": {"active": len(workers)}},
        "queues": s.queues(),
        "workers": workers,
        "throughput": insight.throughput(s.event_counts(since, 60_000), since, now),
        "recent_failures": [{"job_id": r[1], "queue": r[2], "event": r[3], "at": iso(r[4]),
                             "error": clip(insight.event_detail(r[6]).get("error"))}
                            for r in recent],
        "now": iso(now),
    }


def _search(args: Mapping[str, str]) -> str | None:
    q = (args.get("q") or "").strip() or None
    if q is not None and len(q) > 200:
        raise InvalidInput("search text is longer than 200 characters")
    if q is not None and any(ord(ch) < 32 for ch in q):
        raise InvalidInput("search text must not contain control characters")
    return q


def _page(args: Mapping[str, str], name: str = "page") -> int:
    try:
        page = max(1, int(args.get(name, 1)))
    except ValueError:
        raise InvalidInput(f"{name} must be a number") from None
    if page > MAX_PAGE:
        raise InvalidInput(f"{name} must be at most {MAX_PAGE}")
    return page


def jobs(s: Store, args: Mapping[str, str]) -> dict[str, Any]:
    """One page of jobs, newest first: `state`, `q` (search) and `page` from the query."""
    state = ops.state(args.get("state") or None)
    q = _search(args)
    page = _page(args)
    total = s.count_jobs(state, q)
    found = s.list_jobs(state, PER_PAGE, offset=(page - 1) * PER_PAGE, search=q,
                        newest_first=True)
    return {"state": state, "q": q, "page": page, "per_page": PER_PAGE, "total": total,
            "pages": max(1, -(-total // PER_PAGE)), "jobs": [row(j) for j in found]}


def job(s: Store, job_id: str, show_env: bool) -> dict[str, Any]:
    found = s.get_job(ops.job_id(job_id), with_output=True)
    history = s.history(job_id, limit=EVENTS_SHOWN)
    return {"job": public(found, with_output=True, show_env=show_env),
            "attempts": insight.attempts(history), "events": history,
            "events_clipped": len(history) >= EVENTS_SHOWN,
            "terminal": found.state in TERMINAL,
            "env_hidden": bool(found.options and found.options.get("env") and not show_env)}


def public(job: Job, with_output: bool = False, show_env: bool = False) -> dict[str, Any]:
    """A job as the dashboard shows it: env values masked unless asked for
    (a read-only dashboard never passes show_env)."""
    d = job.to_dict(with_output=with_output)
    if d.get("env") and not show_env:
        d["env"] = {k: "••••" for k in d["env"]}
    return d


def clip(text: str | None, limit: int = TEXT_LIMIT) -> str | None:
    """`text` cut to `limit` characters, "…" marking a cut."""
    return text if text is None or len(text) <= limit else text[:limit - 1] + "…"


def row(job: Job) -> dict[str, Any]:
    """A job as a list shows it: bounded whatever its size (long texts cut,
    at most LIST_LIMIT env names and dependencies; `clipped` says so)."""
    d = public(job)
    clipped = False
    for key in ("command", "last_error", "cwd"):
        if isinstance(d.get(key), str) and len(d[key]) > TEXT_LIMIT:
            d[key], clipped = clip(d[key]), True
    if d.get("env") and len(d["env"]) > LIST_LIMIT:
        d["env"], clipped = dict(list(d["env"].items())[:LIST_LIMIT]), True
    if d.get("after") and len(d["after"]) > LIST_LIMIT:
        d["after"], clipped = d["after"][:LIST_LIMIT], True
    d["clipped"] = clipped
    return d


def dead_jobs(s: Store) -> Iterator[Job]:
    """Every dead job, oldest first, read SCAN_CHUNK at a time (memory stays
    bounded by the chunk; the store has no grouping query yet)."""
    offset = 0
    while True:
        chunk = s.list_jobs("dead", SCAN_CHUNK, offset=offset)
        yield from chunk
        if len(chunk) < SCAN_CHUNK:
            return
        offset += SCAN_CHUNK


def dlq(s: Store, args: Mapping[str, str]) -> dict[str, Any]:
    """The DLQ: one page of its groups (`gpage`, biggest first) and one page of
    its jobs (`page`, oldest first), each row bounded."""
    page, gpage = _page(args), _page(args, "gpage")
    total = s.count_jobs("dead")
    found = s.list_jobs("dead", PER_PAGE, offset=(page - 1) * PER_PAGE)
    with SCANNING:
        groups = ops.groups(dead_jobs(s))
    start = (gpage - 1) * GROUPS_PER_PAGE
    return {"groups": groups[start:start + GROUPS_PER_PAGE], "groups_total": len(groups),
            "gpage": gpage, "gpages": max(1, -(-len(groups) // GROUPS_PER_PAGE)),
            "jobs": [row(j) for j in found], "total": total, "page": page,
            "per_page": PER_PAGE, "pages": max(1, -(-total // PER_PAGE))}
