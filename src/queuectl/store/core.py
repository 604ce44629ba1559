"""The dialect-neutral half of both SQL stores: every rule and read that is the
same on SQLite and PostgreSQL, written once.

`SQLStore` holds the job rules (settling dependents, planning dependencies,
firing schedules, the rescue's decision, DLQ retry, cancel, job management,
import) and the meta/version check; it inherits the reads
(get/list/count/export/history/counts/queues/config/metrics) from `SQLReads`
(store/reads.py), which also declares the primitives. It runs named statements
(store/sql/<dialect>.sql) through a handful of primitives its dialect supplies:

* `_write()`: a transaction, yielding (connection, now in epoch ms); driver
  errors leave it as `StoreError`, a unique violation the caller asked about
  as `Duplicate`.
* `_rows(name, params)` / `_run(name, params)`: one statement outside a
  transaction (rows / rowcount).
* `_many(c, name, rows)`: one statement over many rows, in a transaction.
* `_p(**params)`: the parameters plus `now` (the injected clock's time, or what
  the dialect's statements take as "the database's clock").
* `_list(values)` (how a list is bound), `NO_LIMIT`, `_bool`, `_text`, and the
  notifications (`_notify`, `_notify_in`; no-ops where nothing listens).

A dialect overrides only what truly differs: connections and transactions,
enqueue, claim, finish, heartbeat, the rescue's detection, waiting, and (SQLite
only: it alone takes jobs ahead) the reservations: finish_all, release,
start_held.
"""

from __future__ import annotations

from collections.abc import Callable

from queuectl.clock import iso
from queuectl.cron import firing_id
from queuectl.errors import Conflict, DuplicateJob, NotFound, QueueError, StoreError
from queuectl.model import TERMINAL, Decision, Job, NewJob, Outcome, State, options_json
from queuectl.store.base import (
    CANCEL,
    CANCELLED_ERROR,
    IMPORTED,
    dependency_error,
    dependency_plan,
    detail_json,
    ending,
    rescue_error,
    schedule_dict,
)
from queuectl.store.reads import SQLReads

TYPE_CHECKING = False          # (typing is not imported at run time: a CLI start pays for it)
if TYPE_CHECKING:
    from typing import Any

APP = "queuectl"
SCHEMA_VERSION = 6
STALE_WORKER_TTL = 3_600_000      # ms a dead worker's row is kept after it expired

#: The columns every job-returning statement selects, in Job's field order.
JOB_COLS = ("id, command, state, attempts, max_retries, priority, run_at, timeout, "
            "created_at, updated_at, started_at, finished_at, exit_code, last_error, "
            "worker_id, lease_expires_at, options, queue, blocked")



class Duplicate(Exception):
    """A write hit an existing job id (raised inside the transaction)."""


class SQLStore(SQLReads):
    """Store logic over named statements; see the module docstring."""

    # ------------------------------------------------------------ meta
    def _check_meta(self, meta: dict, foreign: str) -> int:
        """The schema version `meta` ({key: value} of the meta table) names;
        StoreError (`foreign` says why) if it is not queuectl's, or newer than
        this queuectl understands."""
        if meta.get("app") != APP:
            raise StoreError(foreign)
        version = int(meta.get("schema_version", 0))
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.where} has schema version {version}, newer than this "
                             f"queuectl understands ({SCHEMA_VERSION}); upgrade queuectl")
        return version

    # ------------------------------------------------------------ dependencies
    def _plan(self, c: Any, jobs: list) -> tuple:
        """dependency_plan() of jobs about to be inserted (nothing to do if
        none has `after`). On PostgreSQL the dependencies' rows are marked
        has_dependents first, which locks them: a finish that races with this
        enqueue either commits first (and we read its state) or waits and then
        reads has_dependents (and settles the new dependents)."""
        if not any(j.after for j in jobs):
            return {}, [], []
        batch = {j.id for j in jobs}
        outside = sorted({d for j in jobs for d in j.after or () if d not in batch})
        found = dict(c.execute(self.sql["plan_dependencies"],
                               {"ids": self._list(outside)}).fetchall()) if outside else {}
        return dependency_plan(jobs, found)

    def _add_deps(self, c: Any, deps: list, failed: list, now: int) -> None:
        """Record (job, dependency) pairs of jobs just inserted; cancel those
        whose dependency ended dead or cancelled already."""
        if not deps:
            return
        self._insert_deps(c, deps)
        c.execute(self.sql["mark_has_dependents"],
                  {"ids": self._list(sorted({d for _, d in deps}))})
        if failed:
            self._settle(c, failed, now)

    def _insert_deps(self, c: Any, deps: list) -> None:
        """Insert (job, dependency) pairs."""
        raise NotImplementedError

    def _settle(self, c: Any, ended: list, now: int) -> None:
        """Jobs `ended` have just reached a terminal state: unblock their
        dependents whose dependencies have all completed, and cancel (with
        their own dependents, recursively) those that waited for a job that
        ended dead or cancelled."""
        frontier = list(ended)
        while frontier:
            ids = {"ids": self._list(frontier)}
            self._lock_dependents(c, frontier)
            if c.execute(self.sql["unblock_dependents"], ids).rowcount:
                self._notify_in(c, "unblocked")
            doomed: dict = {}
            for job_id, dep, state, attempts in c.execute(
                    self.sql["doomed_dependents"], ids).fetchall():
                doomed.setdefault(job_id, (dep, state, attempts))
            for job_id, (dep, state, attempts) in doomed.items():
                self._cancel_waiting(c, now, job_id, attempts, dependency_error(dep, state))
            frontier = list(doomed)

    def _cancel_waiting(self, c: Any, now: int, job_id: str, attempts: int,
                        error: str) -> None:
        """A pending or failed job ends cancelled, with its event."""
        if c.execute(self.sql["cancel_waiting"],
                     {"now": now, "error": error, "id": job_id}).rowcount:
            c.execute(self.sql["insert_event"], (job_id, "cancelled", attempts, now, None,
                                                 detail_json(error=error)))

    # ------------------------------------------------------------ jobs: writes
    def import_jobs(self, jobs: list[Job]) -> None:
        try:
            with self._write() as (c, now):
                blocked, deps, failed = self._plan(c, jobs)
                try:
                    self._many(c, "import_job", [self._import_row(j, now, blocked.get(j.id))
                                                 for j in jobs])
                except Exception as e:
                    if self._is_duplicate(e):
                        raise Duplicate from None
                    raise
                self._many(c, "insert_event", [(j.id, "enqueued", j.attempts, now, None,
                                                IMPORTED) for j in jobs])
                self._add_deps(c, deps, failed, now)
                self._notify_in(c, "enqueued")
        except Duplicate:
            raise DuplicateJob(self._first_duplicate([j.id for j in jobs])) from None

    def _import_row(self, j: Job, now: int, blocked: "bool | None") -> tuple:
        text = self._text
        return (j.id, text(j.command), j.state, j.attempts, j.max_retries, j.priority,
                now if j.run_at is None else j.run_at, j.timeout,
                now if j.created_at is None else j.created_at,
                now if j.updated_at is None else j.updated_at, j.started_at,
                now if j.finished_at is None and j.state in TERMINAL else j.finished_at,
                j.exit_code, text(j.last_error), text(j.output),
                self._bool(j.output_truncated), options_json(j.options), j.queue,
                self._bool(blocked))

    def cancel(self, job_id: str) -> str:
        return self._cancel(job_id, running=True)

    def _cancel(self, job_id: str, running: bool) -> str:
        with self._write() as (c, now):
            row = c.execute(self.sql["job_for_cancel"], {"id": job_id}).fetchone()
            if row is None:
                raise NotFound(f"job {job_id} not found")
            state, attempts, has_dependents = row
            if state in (State.PENDING, State.FAILED):
                self._cancel_waiting(c, now, job_id, attempts, CANCELLED_ERROR)
                if has_dependents:
                    self._settle(c, [job_id], now)
                return "cancelled"
            if state == State.PROCESSING and running:
                c.execute(self.sql["request_cancel"], {"id": job_id})
                return "cancelling"
            raise Conflict(f"job {job_id} is {state}; there is nothing to cancel")

    def cancel_candidates(self, states: list[str],
                          queues: "list[str] | None" = None) -> list[tuple[str, str]]:
        return [(r[0], r[1]) for r in self._rows("cancel_candidates", {
            "states": self._list(list(states)),
            "queues": self._list(queues) if queues else None})]

    def cancel_many(self, ids: list[str], running: bool) -> tuple[list[str], list[str]]:
        cancelled: list[str] = []
        cancelling: list[str] = []
        for job_id in ids:
            try:
                result = self._cancel(job_id, running)
            except (NotFound, Conflict):
                continue            # ended, went, or started meanwhile
            (cancelled if result == "cancelled" else cancelling).append(job_id)
        return cancelled, cancelling

    def remove(self, job_id: str, force: bool = False) -> list[str]:
        with self._write() as (c, now):
            row = c.execute(self.sql["job_for_remove"], {"id": job_id}).fetchone()
            if row is None:
                raise NotFound(f"job {job_id} not found")
            state, has_dependents = row
            if state == State.PROCESSING:
                raise Conflict(f"job {job_id} is processing; cancel it first "
                               f"(queuectl cancel {job_id})")
            waiting: list = []
            if has_dependents and state != State.COMPLETED:
                self._lock_dependents(c, [job_id])
                waiting = c.execute(self.sql["waiting_dependents"], {"id": job_id}).fetchall()
                if waiting and not force:
                    names = ", ".join(r[0] for r in waiting[:3])
                    more = ", ..." if len(waiting) > 3 else ""
                    raise Conflict(f"job {job_id} has {len(waiting)} waiting dependent"
                                   f"{'' if len(waiting) == 1 else 's'} ({names}{more}); "
                                   "--force removes it and cancels them")
            error = f"dependency {job_id} was removed"
            for dep, attempts in waiting:
                self._cancel_waiting(c, now, dep, attempts, error)
            if c.execute(self.sql["remove_job"], {"id": job_id}).rowcount != 1:
                raise Conflict(f"job {job_id} is {state}; it cannot be removed")
            if waiting:
                self._settle(c, [r[0] for r in waiting], now)
            return [r[0] for r in waiting]

    def requeue(self, job_id: str) -> str:
        with self._write() as (c, now):
            # The dependencies first (seq order; share-locked on PostgreSQL,
            # so one that ends meanwhile settles the job requeued here).
            deps = c.execute(self.sql["dependency_states"], {"id": job_id}).fetchall()
            rows = c.execute(self.sql["job_state"], {"id": job_id}).fetchall()
            if not rows:
                raise NotFound(f"job {job_id} not found")
            state = rows[0][0]
            if state not in TERMINAL:
                raise Conflict(f"job {job_id} is {state}; only completed, dead or cancelled "
                               "jobs can be requeued")
            for dep, dep_state in deps:
                if dep_state in (State.DEAD, State.CANCELLED):
                    raise Conflict(f"job {job_id} runs after {dep}, which is {dep_state}; "
                                   f"requeue that first (queuectl requeue {dep} {job_id})")
            blocked = any(s != State.COMPLETED for _, s in deps)
            if c.execute(self.sql["requeue_job"], {"id": job_id, "now": now,
                                                   "blocked": self._bool(blocked)}
                         ).rowcount != 1:
                state = c.execute(self.sql["job_state"], {"id": job_id}).fetchall()[0][0]
                raise Conflict(f"job {job_id} is {state}; only completed, dead or cancelled "
                               "jobs can be requeued")
            c.execute(self.sql["insert_event"], (job_id, "enqueued", 0, now, None,
                                                 detail_json(requeued=str(state))))
            self._notify_in(c, "enqueued")
            return str(state)

    def edit(self, job_id: str, *, priority: "int | None" = None,
             delay: "float | None" = None, run_at: "int | None" = None,
             max_retries: "int | None" = None, timeout: "float | None" = None) -> None:
        with self._write() as (c, now):
            if delay is not None:
                run_at = now + round(delay * 1000)
            n = c.execute(self.sql["edit_job"], {
                "id": job_id, "now": now, "priority": priority, "run_at": run_at,
                "max_retries": max_retries, "timeout": timeout}).rowcount
            if n != 1:
                rows = c.execute(self.sql["job_state"], {"id": job_id}).fetchall()
                if not rows:
                    raise NotFound(f"job {job_id} not found")
                raise Conflict(f"job {job_id} is {rows[0][0]}; only a waiting job (pending, "
                               "or failed and waiting for its retry) can be edited")
            self._notify_in(c, "enqueued")     # due sooner, perhaps: look again

    def remove_queue(self, name: str) -> None:
        with self._write() as (c, _now):
            if c.execute(self.sql["remove_queue"], {"name": name}).rowcount == 1:
                return
            jobs, has_settings = c.execute(self.sql["queue_jobs"], {"name": name}).fetchone()
        if jobs:
            raise Conflict(f"queue {name} has {jobs} job{'' if jobs == 1 else 's'}; remove "
                           "or purge them first")
        raise NotFound(f"queue {name} not found" if not has_settings else
                       f"queue {name} could not be removed")

    def _rescue_job(self, c: Any, now: int, row: tuple, seen: int,
                    decide: Callable[[Job], Decision], gone: "bool | None" = None
                    ) -> "Job | None":
        """The rescue's decision for one running job taken back from its
        worker (`row`: JOB_COLS, has_dependents, cancel_requested): event
        `lease_expired`, then retry, bury, or (a job being cancelled is not
        retried when its worker is lost) cancelled. None if the job moved on
        meanwhile."""
        job = Job(*row[:-2])
        decision = CANCEL if row[-1] else decide(job)
        state, event, run_at, finished = ending(decision, job, now)
        error = CANCELLED_ERROR if row[-1] else rescue_error(job, seen, gone)
        if c.execute(self.sql["rescue"], {
                "state": state, "now": now, "finished": finished, "run_at": run_at,
                "error": error, "id": job.id, "worker": job.worker_id,
                "attempts": job.attempts}).rowcount != 1:
            return None
        c.execute(self.sql["insert_event"], (job.id, "lease_expired", job.attempts, now,
                                             job.worker_id, detail_json(error=error)))
        c.execute(self.sql["insert_event"], (
            job.id, event, job.attempts, now, None,
            detail_json(error=error, run_at=iso(run_at) if state == State.FAILED else None)))
        if row[-2] and state != State.FAILED:
            self._settle(c, [job.id], now)
        job.state, job.run_at, job.last_error = state, run_at, error
        return job

    def hand_back(self, job: Job, outcome: Outcome) -> None:
        if self._hand_back({
                "exit_code": outcome.exit_code, "error": self._text(outcome.error),
                "output": self._text(outcome.output) or None,
                "truncated": self._bool(outcome.truncated), "id": job.id,
                "worker": job.worker_id, "attempts": job.attempts,
                "duration": round(outcome.duration, 3)}):
            self._notify("retry")
            return
        # Cancelled meanwhile (it ends cancelled), or no longer ours (LeaseLost).
        super().hand_back(job, outcome)

    def _hand_back(self, params: dict) -> bool:
        """Run the hand_back statement (and its retry_scheduled event, detail
        `interrupted`): did it match?"""
        return self._run("hand_back", self._p(**params)) == 1

    def held_state(self, worker_id: str, job: Job) -> str:
        rows = self._rows("held_state", {"worker": worker_id, "attempts": job.attempts,
                                         "id": job.id})
        if not rows or not rows[0][0]:
            return "gone"
        return "paused" if rows[0][1] else "ok"

    def dlq_retry(self, job_id: str) -> None:
        if self._dlq_retry("dlq_retry_job", self._p(id=job_id)) != 1:
            rows = self._rows("job_state", {"id": job_id})
            if not rows:
                raise NotFound(f"job {job_id} not found")
            raise Conflict(f"job {job_id} is not in the DLQ (state: {rows[0][0]})")
        self._notify("dlq_retry")

    def dlq_retry_all(self, queue: "str | None" = None,
                      exit_code: "int | None" = None) -> int:
        n = self._dlq_retry("dlq_retry_all", self._p(queue=queue, exit_code=exit_code))
        if n:
            self._notify("dlq_retry")
        return n

    def _dlq_retry(self, name: str, params: dict) -> int:
        """Run a DLQ retry statement (with its events); how many jobs moved."""
        return self._run(name, params)

    def dead_jobs(self, queue: "str | None" = None,
                  exit_code: "int | None" = None) -> list[Job]:
        return [Job(*r) for r in self._rows("dead_jobs", {"queue": queue,
                                                          "exit_code": exit_code})]

    def purge(self, states: list[str], older_than: float) -> int:
        with self._write() as (c, now):
            params = {"states": self._list(list(states)),
                      "cutoff": now - round(older_than * 1000)}
            # Dependents whose settling was cut short must not lose the rows
            # that say what they wait for: settle them first.
            ended = [r[0] for r in c.execute(self.sql["purge_unsettled"], params).fetchall()]
            if ended:
                self._settle(c, ended, now)
            return c.execute(self.sql["purge"], params).rowcount

    # ------------------------------------------------------------ schedules
    def add_schedule(self, name: str, cron: str, tz: "str | None", job: str,
                     next_after: Callable[[int], int], replace: bool = False) -> int:
        with self._write() as (c, now):
            first = next_after(now)
            cur = c.execute(self.sql["replace_schedule" if replace else "add_schedule"],
                            {"name": name, "cron": cron, "tz": tz, "job": job,
                             "first": first, "now": now})
            if cur.rowcount != 1:
                raise Conflict(f"schedule {name} already exists (remove it first, or "
                               "use --replace)")
        return first

    def schedules(self) -> list[dict]:
        return [schedule_dict(*r) for r in self._rows("schedules")]

    def remove_schedule(self, name: str) -> None:
        if self._run("remove_schedule", {"name": name}) != 1:
            raise NotFound(f"schedule {name} not found")

    def fire_schedules(self, next_after: Callable[[str, "str | None", int], int],
                       make_job: Callable[[str, str], NewJob]) -> tuple:
        (due,) = self._rows("schedule_due", self._p())[0]
        if not due:
            return [], []
        fired, failed = [], []
        with self._write() as (c, now):
            # A schedule another worker is firing is skipped (PostgreSQL); one
            # it has fired no longer matches (its next_run_at moved past now).
            for name, cron, tz, job, at in c.execute(self.sql["due_schedules"],
                                                     {"now": now}).fetchall():
                job_id = firing_id(name, at)
                try:
                    following = next_after(cron, tz, now)
                    new = make_job(job, job_id)
                except QueueError as e:
                    failed.append((name, str(e)))       # the others still fire
                    continue
                c.execute(self.sql["schedule_fired"], {"next": following, "at": at,
                                                       "name": name})
                if self._insert_if_new(c, new, now):
                    fired.append(job_id)
        return fired, failed

    def _insert_if_new(self, c: Any, job: NewJob, now: int) -> bool:
        """Insert one new job unless its id exists (a firing already made)."""
        raise NotImplementedError


__all__ = ["APP", "SCHEMA_VERSION", "STALE_WORKER_TTL", "JOB_COLS", "Duplicate", "SQLStore"]

