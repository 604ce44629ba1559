"""The dialect primitives and the reads of both SQL stores, written once.

`SQLReads` declares the handful of primitives a dialect supplies (see
store/core.py's docstring) and implements every read over named statements:
jobs (get/list/count/export), events (history, attempt ends, counts, metrics),
queues, workers and config, plus the single-statement writes that sit with
them (queue settings, config, a worker leaving). `SQLStore` (core.py) adds the
job rules on top.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager

from queuectl import config as cfgmod
from queuectl.clock import iso
from queuectl.errors import NotFound
from queuectl.model import STATES, Job
from queuectl.store.base import (
    ENDING_EVENTS,
    Store,
    event_dict,
    first_seq_at,
    like_pattern,
    queue_rows,
)

TYPE_CHECKING = False          # (typing is not imported at run time: a CLI start pays for it)
if TYPE_CHECKING:
    from typing import Any

#: list_jobs / count_jobs: (in a state?, newest first? / matching?) -> statement.
LIST_JOBS = {(False, False): "list_jobs", (False, True): "list_jobs_newest",
             (True, False): "list_jobs_in_state", (True, True): "list_jobs_in_state_newest"}
COUNT_JOBS = {(False, False): "count_jobs", (False, True): "count_jobs_matching",
              (True, False): "count_jobs_in_state", (True, True): "count_jobs_in_state_matching"}
#: attempt_ends without a lower bound: every seq and time qualifies.
NO_SINCE = -(2 ** 62)


class SQLReads(Store):
    """The dialect's primitives (overridden by sqlite.py / postgres.py) and
    every read over named statements."""

    #: Where the database is, for messages (a file path or host:port/db).
    where: str = ""
    #: What a list-reading statement's LIMIT takes for "no limit".
    NO_LIMIT: "int | None" = None
    #: The dialect's statements, {name: SQL}.
    sql: "dict[str, str]" = {}
    _identity: "tuple | None" = None

    # ------------------------------------------------------- dialect primitives
    def _write(self) -> "AbstractContextManager[tuple[Any, int]]":
        raise NotImplementedError

    def _rows(self, name: str, params: "Any" = None) -> list:
        raise NotImplementedError

    def _run(self, name: str, params: "Any" = None) -> int:
        raise NotImplementedError

    def _many(self, c: Any, name: str, rows: list) -> None:
        raise NotImplementedError

    def _p(self, **params: Any) -> dict:
        raise NotImplementedError

    def _list(self, values: "Sequence[Any]") -> Any:
        raise NotImplementedError

    def _is_duplicate(self, e: BaseException) -> bool:
        """Is `e` a unique violation (an id that exists)?"""
        raise NotImplementedError

    @staticmethod
    def _bool(value: Any) -> Any:
        return bool(value)

    @staticmethod
    def _text(value: "str | None") -> "str | None":
        return value

    def _notify(self, what: str) -> None:
        """Wake idle workers (outside a transaction)."""

    def _notify_in(self, c: Any, what: str) -> None:
        """Wake idle workers when the transaction on `c` commits."""

    def _lock_dependents(self, c: Any, ids: list) -> None:
        """Lock the waiting dependents of `ids` before settling them."""

    # ------------------------------------------------------------ jobs: reads
    def get_job(self, job_id: str, with_output: bool = False) -> Job:
        rows = self._rows("get_job_output" if with_output else "get_job", {"id": job_id})
        if not rows:
            raise NotFound(f"job {job_id} not found")
        job = Job(*rows[0])
        if with_output:
            job.output_truncated = bool(job.output_truncated)
        job.after = self._after_of([job_id]).get(job_id, [])
        return job

    def export_jobs(self, batch: int = 1000) -> Iterator[Job]:
        last = 0
        while True:
            rows = self._rows("export_jobs", {"after": last, "batch": batch})
            jobs = [Job(*row[1:]) for row in rows]
            after = self._after_of([j.id for j in jobs])
            for job in jobs:
                job.output_truncated = bool(job.output_truncated)
                job.after = after.get(job.id)
                yield job
            if len(rows) < batch:
                return
            last = rows[-1][0]

    def _after_of(self, ids: list[str]) -> dict:
        """{job id: [ids it runs after]} for those of `ids` that have any."""
        out: dict = {}
        for job_id, dep in self._rows("dependencies_of", {"ids": self._list(ids)}):
            out.setdefault(job_id, []).append(dep)
        return out

    def _first_duplicate(self, ids: list[str]) -> str:
        """The first id that exists already, else the first repeated in `ids`."""
        found = {r[0] for r in self._rows("existing_ids", {"ids": self._list(ids)})}
        for job_id in ids:
            if job_id in found:
                return job_id
        seen = set()
        for job_id in ids:
            if job_id in seen:
                return job_id
            seen.add(job_id)
        return ids[0]

    def list_jobs(self, state: "str | None" = None, limit: int = 0, *, offset: int = 0,
                  search: "str | None" = None, newest_first: bool = False,
                  queues: "list[str] | None" = None) -> list[Job]:
        name = (("list_jobs_in_queues_newest" if newest_first else "list_jobs_in_queues")
                if queues else LIST_JOBS[bool(state), newest_first])
        rows = self._rows(name, {
            "queues": self._list(queues) if queues else None,
            "state": state, "like": like_pattern(search) if search else None,
            "limit": limit if limit > 0 else self.NO_LIMIT, "offset": offset})
        return [Job(*r) for r in rows]

    def count_jobs(self, state: "str | None" = None, search: "str | None" = None) -> int:
        return self._rows(COUNT_JOBS[bool(state), bool(search)], {
            "state": state, "like": like_pattern(search) if search else None})[0][0]

    def _seq_since(self, since_ms: int) -> int:
        return first_seq_at(
            self._rows("event_seq_bounds")[0],
            lambda s: next(iter(self._rows("event_at_from", {"seq": s})), (None,))[0],
            since_ms)

    def attempt_ends(self, since_ms: "int | None" = None, after_seq: "int | None" = None,
                     limit: int = 0) -> list[tuple]:
        # (Every bound is a range on seq or at, absent ones wide open, so that
        # the planner can use the primary key's range.)
        return self._rows("attempt_ends", {
            "events": self._list(ENDING_EVENTS),
            "from_seq": 0 if since_ms is None else self._seq_since(since_ms),
            "since": NO_SINCE if since_ms is None else since_ms,
            "after": -1 if after_seq is None else after_seq,
            "limit": limit if limit > 0 else self.NO_LIMIT})

    def event_counts(self, since_ms: int, bucket_ms: int) -> list[tuple]:
        return self._rows("event_counts", {
            "since": since_ms, "bucket": bucket_ms, "events": self._list(ENDING_EVENTS),
            "from_seq": self._seq_since(since_ms)})

    def recent_failures(self, limit: int, since_ms: int) -> list[tuple]:
        return self._rows("recent_failures", {"from_seq": self._seq_since(since_ms),
                                              "since": since_ms, "limit": limit})

    def max_event_seq(self) -> int:
        return self._rows("max_event_seq")[0][0]

    def counts(self) -> dict:
        counts = dict.fromkeys(STATES, 0)
        counts.update(self._rows("counts"))
        return counts

    def history(self, job_id: "str | None" = None, limit: int = 0) -> list[dict]:
        rows = self._rows("job_history" if job_id else "history", {
            "job": job_id, "limit": limit if limit > 0 else self.NO_LIMIT})
        return [event_dict(*row) for row in reversed(rows)]

    def has_unfinished(self, queues: "list[str] | None" = None) -> bool:
        # Running jobs first, through their small partial index: a burst
        # worker asks this at the end of every drain, when a large paused
        # backlog would otherwise be scanned row by row.
        params = {"queues": self._list(queues) if queues else None}
        return bool(self._rows("any_running", params) or self._rows("any_waiting", params))

    def next_due_in(self, queues: "list[str] | None" = None) -> "float | None":
        (wait,) = self._rows("next_due", self._p(
            queues=self._list(queues) if queues else None))[0]
        if wait is None:
            return None
        return max(0.0, wait / 1000)

    def queues(self) -> list[dict]:
        return queue_rows(self._rows("queue_counts"), self._rows("queue_settings"))

    def set_queue(self, name: str, *, paused: "bool | None" = None,
                  limit: "int | None" = None) -> None:
        self._run("set_queue", {"name": name, "paused": paused, "limit": limit})
        self._notify("queue")          # a resumed queue or a raised limit: look again

    def cancel_requested(self, job_id: str) -> bool:
        rows = self._rows("cancel_requested", {"id": job_id})
        return bool(rows and rows[0][0])

    def held_by(self, worker_id: str) -> list[Job]:
        return [Job(*r) for r in self._rows("held_by", {"worker": worker_id})]

    # ------------------------------------------------------------ workers
    def deregister_worker(self, worker_id: str) -> None:
        self._identity = None
        self._run("delete_worker", {"worker": worker_id})
        self._notify("worker_left")     # its job, if any, can be rescued now

    def stop_requested(self, worker_id: str) -> bool:
        rows = self._rows("stop_requested", {"worker": worker_id})
        return bool(rows and rows[0][0])

    def active_workers(self) -> list[dict]:
        rows = self._rows("active_workers", self._p())
        return [{"id": r[0], "host": r[1], "pid": r[2], "started_at": iso(r[3]),
                 "heartbeat_at": iso(r[4]), "heartbeat_age": round((r[7] - r[4]) / 1000, 3),
                 "stopping": bool(r[5]), "job_id": r[6]} for r in rows]

    # ------------------------------------------------------------ config
    def config(self) -> dict:
        values = cfgmod.defaults()
        for key, raw in self._rows("config"):
            if key in values:
                values[key] = json.loads(raw)
        return values

    def config_set(self, key: str, value: Any) -> None:
        self._run("config_set", {"key": key, "value": json.dumps(value)})

    # ------------------------------------------------------------ metrics
    def metrics_ready(self) -> list[tuple]:
        return self._rows("metrics_ready", self._p())

    def metrics_workers(self) -> "tuple[int, int]":
        by = {bool(busy): n for busy, n in self._rows("metrics_workers", self._p())}
        return by.get(True, 0), by.get(False, 0)

    def metrics_events(self, after_seq: int, limit: int) -> list[tuple]:
        return self._rows("metrics_events", {
            "after": after_seq, "events": self._list(("enqueued", *ENDING_EVENTS)),
            "limit": limit})
