"""The storage contract every backend implements (SQLite now, PostgreSQL next).

Rules every implementation follows:

* Each state change is one guarded statement (`... WHERE id = ? AND state = ...`)
  and appends the job's event in the same transaction. A guard that matches no
  row raises (`LeaseLost`, `Conflict`, `NotFound`); it is never silent.
* Times are epoch milliseconds from the store's clock (the database's own clock
  on a server backend), so leases and run_at never mix host clocks.
* Driver errors are translated into `StoreError` here, never above.
"""

from __future__ import annotations

import json
import math
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence

from queuectl.clock import iso
from queuectl.model import Action, Decision, Job, NewJob, Outcome

TYPE_CHECKING = False          # (typing is not imported at run time: a CLI start pays for it)
if TYPE_CHECKING:
    from typing import Any

# decision.action -> (new state, event)
ENDING_EVENTS = ("completed", "retry_scheduled", "dead", "cancelled", "lease_expired")
ENDINGS = {"complete": ("completed", "completed"),
           "retry": ("failed", "retry_scheduled"),
           "bury": ("dead", "dead"),
           "cancel": ("cancelled", "cancelled")}
CANCELLED_ERROR = "cancelled (queuectl cancel)"


CANCEL = Decision(Action.CANCEL)      # how a cancelled running job ends

#: rescue_expired's `decide`: the decision for a job whose lease expired.
Decide = Callable[[Job], Decision]
#: fire_schedules' `next_after(cron, tz, after_ms)` and `make_job(payload, id)`.
NextAfter = Callable[[str, "str | None", int], int]
MakeJob = Callable[[str, str], NewJob]


def as_cancelled(outcome: Outcome) -> Outcome:
    """The outcome of an attempt that a cancel request ended."""
    return Outcome("interrupted", outcome.exit_code, CANCELLED_ERROR, outcome.output,
                   outcome.truncated, outcome.duration)


IMPORTED = '{"imported": true}'     # detail of an imported job's first event


def skip_existing_jobs(jobs: list[NewJob], existing: dict) -> "tuple[list[NewJob], list[str]]":
    """(jobs still to insert, ids that exist with the same command); Conflict
    if an id exists with a different command."""
    from queuectl.errors import Conflict
    keep, existed = [], []
    for j in jobs:
        if j.id not in existing:
            keep.append(j)
        elif existing[j.id] == j.command:
            existed.append(j.id)
        else:
            raise Conflict(f"job {j.id} already exists with a different command")
    return keep, existed


def dependency_error(dep_id: str, state: str) -> str:
    """last_error of a job cancelled because a job it runs after ended badly."""
    return f"dependency {dep_id} ended {state}"


def dependency_plan(jobs: list, found: dict) -> "tuple[dict, list, list]":
    """How to insert `jobs` (NewJobs, or Jobs being imported) that have `after`.

    `found` is {id: state} of the dependencies outside `jobs` that exist.
    Returns ({job id: blocked}, [(job id, dependency id)], ids of dependencies
    that ended dead or cancelled: their new dependents are cancelled once
    inserted). InvalidInput names the first dependency that does not exist.
    """
    from queuectl.errors import InvalidInput
    states = dict(found)
    states.update((j.id, getattr(j, "state", "pending")) for j in jobs)
    blocked, rows, failed = {}, [], {}
    for j in jobs:
        waits = False
        for dep in j.after or ():
            state = states.get(dep)
            if state is None:
                # (Naming the job helps in a batch; alone, its id may be one
                # just drawn that the user has never seen.)
                who = f"job {j.id}: " if len(jobs) > 1 else ""
                raise InvalidInput(f"{who}field 'after': no job {dep!r}")
            rows.append((j.id, dep))
            waits = waits or state != "completed"
            if state in ("dead", "cancelled"):
                failed[dep] = True
        blocked[j.id] = waits and getattr(j, "state", "pending") in ("pending", "failed")
    return blocked, rows, list(failed)


def ending(decision: Decision, job: Job, now: int) -> "tuple[str, str, int, int | None]":
    """(state, event, run_at, finished_at) for ending an attempt as `decision` says."""
    state, event = ENDINGS[decision.action]
    if state == "failed":
        return state, event, now + round(decision.delay * 1000), None
    return state, event, job.run_at, now


def rescue_error(job: Job, seen: int, gone: "bool | None" = None) -> str:
    """last_error of a job taken back from its worker at time `seen` (`gone`:
    whether the worker's row was gone, when the caller knows)."""
    if gone is None:
        gone = job.lease_expires_at >= seen
    if not gone:
        return f"lease expired: no heartbeat from worker {job.worker_id}"
    return f"worker {job.worker_id} died or exited without finishing the job"


def detail_json(**kw) -> "str | None":
    """An event's detail column: the non-None fields as a JSON object."""
    kw = {k: v for k, v in kw.items() if v is not None}
    if not kw:
        return None
    if all(type(v) is int or type(v) is float and math.isfinite(v) for v in kw.values()):
        # Numbers only (a finished attempt's usual detail): what json.dumps
        # writes, without its encoder's set-up on every job.
        return "{" + ", ".join(f'"{k}": {v!r}' for k, v in kw.items()) + "}"
    return json.dumps(kw)


def event_dict(job_id, event, attempt, at, worker_id, detail) -> dict:
    """One events row as `history` shows it."""
    d = {"job_id": job_id, "event": event, "attempt": attempt, "at": iso(at)}
    if worker_id:
        d["worker_id"] = worker_id
    if detail:
        d.update(json.loads(detail))
    return d


def migrations(dialect: str) -> list[tuple[int, str]]:
    """(number, script) for every file in migrations/<dialect>/, in order."""
    folder = os.path.join(os.path.dirname(__file__), "migrations", dialect)
    out = []
    for name in sorted(os.listdir(folder)):
        if name.endswith(".sql"):
            with open(os.path.join(folder, name), encoding="utf-8") as f:
                out.append((int(name.split("_", 1)[0]), f.read()))
    return out


class Store(ABC):
    """Abstract storage. Method names are the transitions they perform."""

    #: Longest time an idle worker waits in wait_for_change before it looks
    #: at the queue again anyway (a backend that wakes it reliably can wait longer).
    idle_wait = 0.5

    # ------------------------------------------------------------ lifecycle
    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def migrate(self) -> int:
        """Bring the schema up to date (opening a store already does);
        returns the schema version."""

    def file_trouble(self) -> "str | None":
        """Why the database this store has open is no longer the one its URL
        names (an SQLite file deleted or replaced under it), else None."""
        return None

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ jobs: writes
    @abstractmethod
    def enqueue(self, jobs: list[NewJob], skip_existing: bool = False) -> list[str]:
        """Insert all jobs as `pending` (event `enqueued`), all or nothing.

        Raises DuplicateJob if any id exists already; then nothing is written.
        With `skip_existing`, a job whose id exists with the same command is
        left out (its id is returned); a different command still raises.
        """

    @abstractmethod
    def claim(self, worker_id: str, lease_timeout: float,
              queues: "list[str] | None" = None) -> "Job | None":
        """Take the best ready job (`pending`/`failed`, run_at <= now; highest
        priority, then earliest run_at, then enqueue order), mark it
        `processing` for `worker_id` with a lease, count the attempt and
        append `processing`. Only from `queues` (None: every queue), never from
        a paused queue or one at its concurrency limit. None if nothing is
        ready, or if the worker is not registered or has been asked to stop."""

    @abstractmethod
    def finish(self, job: Job, outcome: Outcome, decision: Decision,
               next_lease: "float | None" = None,
               queues: "list[str] | None" = None) -> "Job | None":
        """End the attempt `job` (held by job.worker_id) as `decision` says:
        complete -> `completed`, retry -> `failed` with run_at = now + delay
        (event `retry_scheduled`), bury -> `dead`. Stores the outcome's exit
        code, error and output. Raises LeaseLost if the job is no longer held
        by that worker. If `next_lease` is given, claims the next job for the
        same worker in the same transaction and returns it."""

    def hand_back(self, job: Job, outcome: Outcome) -> None:
        """An attempt interrupted by its worker's stop (the command killed by
        the stop, or by the signal that stopped the worker): back to `failed`,
        due now, and the attempt is not charged: `max_retries` grows by one
        (attempt numbers stay unique), so it neither buries the job nor uses
        up a retry. Event `retry_scheduled` (detail `interrupted`). A job
        whose cancel was requested ends cancelled instead; LeaseLost if the
        job is no longer held."""
        self.finish(job, outcome, Decision(Action.RETRY))

    #: Whether workers may claim jobs ahead (config `claim_ahead`): several
    #: in one transaction, run one after another, recorded together (see
    #: finish_all, release and docs/ARCHITECTURE.md, "Claiming ahead").
    can_claim_ahead = False

    def finish_all(self, worker_id: str, results: "list[tuple[Job, Outcome, Decision]]",
                   next_lease: "float | None" = None, queues: "list[str] | None" = None,
                   ahead: int = 0) -> "tuple[list[Job], list[Job]]":
        """Record the ends of several attempts held by `worker_id` (a list of
        (job, outcome, decision), each as finish() would) in one
        transaction, and with `next_lease` claim the next job plus up to
        `ahead` more taken ahead. Returns (claimed jobs, jobs whose lease was
        lost and whose result was not recorded)."""
        raise NotImplementedError

    def release(self, worker_id: str, jobs: list[Job]) -> None:
        """Give back jobs taken ahead that never started: their reservations
        end (they stayed `pending` throughout; one cancelled meanwhile is
        `cancelled` already)."""
        raise NotImplementedError

    def held_state(self, worker_id: str, job: Job) -> str:
        """Read just before a job taken ahead starts: "ok" (still reserved by
        `worker_id`, its queue not paused), "paused" (reserved, but its queue
        is paused: give it back), or "gone" (cancelled, or taken by another
        worker once the reservation had expired: never start it)."""
        raise NotImplementedError

    def start_held(self, worker_id: str, job: Job, lease_timeout: float) -> bool:
        """A job taken ahead that has run for a while (job.started_at: when
        its command started; job.attempts: this attempt's number) becomes
        `processing` with a lease and that started_at (event `processing`,
        at the commit). False if its reservation was lost (then the worker
        kills the command)."""
        raise NotImplementedError

    @abstractmethod
    def heartbeat(self, worker_id: str, job_id: "str | None",
                  lease_timeout: float, held: Sequence[str] = ()) -> bool:
        """Renew the worker's heartbeat, its jobs' leases and the reservations
        of the jobs `held` (ids taken ahead). Returns False if the worker no
        longer holds `job_id` (it was rescued meanwhile)."""

    def settle_dependents(self) -> int:
        """Repair: settle blocked jobs whose dependencies have all ended (a
        backend that settles in the ending transaction never leaves any)."""
        return 0

    @abstractmethod
    def cancel(self, job_id: str) -> str:
        """`pending`/`failed` -> `cancelled` (event `cancelled`), returning
        "cancelled"; a `processing` job is flagged for its worker to kill and
        end as cancelled, returning "cancelling". NotFound if no such job,
        Conflict if it has ended already."""

    @abstractmethod
    def cancel_candidates(self, states: list[str],
                          queues: "list[str] | None" = None) -> list[tuple[str, str]]:
        """(id, state) of the jobs in `states` (of `queues`, if given), oldest
        first: what `cancel --all` would cancel."""

    @abstractmethod
    def cancel_many(self, ids: list[str], running: bool) -> tuple[list[str], list[str]]:
        """cancel() each of `ids`, one transaction per job: (cancelled,
        cancelling). A job that ended or went meanwhile is skipped, and so is a
        running one unless `running` (a job that started after the caller
        counted the running ones is not cancelled behind its back)."""

    @abstractmethod
    def remove(self, job_id: str, force: bool = False) -> list[str]:
        """Delete a job that is not running, with its events and output.
        NotFound if no such job; Conflict if it is processing (cancel it
        first), or if it has waiting dependents and is not completed, unless
        `force`: those are then cancelled (event `cancelled`, "dependency X
        was removed", and their own dependents settled), and their ids
        returned."""

    @abstractmethod
    def requeue(self, job_id: str) -> str:
        """`completed`/`dead`/`cancelled` -> `pending`, attempts 0, due now,
        with an `enqueued` event whose detail is {"requeued": <old state>}
        (the job's history is kept); returns the old state. Blocked again if
        one of its dependencies has not completed. NotFound if no such job;
        Conflict if it is waiting or running, or if a dependency is dead or
        cancelled (requeue that one first). Its dependents stay as they are."""

    @abstractmethod
    def edit(self, job_id: str, *, priority: "int | None" = None,
             delay: "float | None" = None, run_at: "int | None" = None,
             max_retries: "int | None" = None, timeout: "float | None" = None) -> None:
        """Change a waiting job (pending, or failed and waiting for its
        retry): priority, when it is due (`delay` seconds from now, or
        `run_at` epoch ms), max_retries, timeout (seconds; 0 = none); None
        leaves a field as it is. NotFound if no such job; Conflict if it is
        running or has ended."""

    @abstractmethod
    def remove_queue(self, name: str) -> None:
        """Delete a queue's settings. NotFound if it has neither settings nor
        jobs; Conflict if it has jobs."""

    @abstractmethod
    def cancel_requested(self, job_id: str) -> bool:
        """Has a cancel been requested for this (running) job?"""

    @abstractmethod
    def queues(self) -> list[dict]:
        """Every queue that has jobs or settings: name, paused, limit, and the
        number of its jobs in each state."""

    @abstractmethod
    def set_queue(self, name: str, *, paused: "bool | None" = None,
                  limit: "int | None" = None) -> None:
        """Pause or resume a queue, or set its concurrency limit (0 = none)."""

    @abstractmethod
    def purge(self, states: list[str], older_than: float) -> int:
        """Delete jobs in `states` (terminal ones) that finished more than
        `older_than` seconds ago, with their events; returns how many."""

    @abstractmethod
    def dead_jobs(self, queue: "str | None" = None,
                  exit_code: "int | None" = None) -> list[Job]:
        """Dead jobs (optionally of one queue / exit code), oldest first."""

    @abstractmethod
    def held_by(self, worker_id: str) -> list[Job]:
        """Jobs `processing` under `worker_id`: after a connection error a
        worker asks what it holds, so a claim whose reply was lost is run,
        not left to expire."""

    @abstractmethod
    def rescue_expired(self, decide: Decide) -> list[Job]:
        """Jobs `processing` whose lease has expired (or whose worker is gone)
        count a failed attempt: event `lease_expired`, then `decide(job)` (a
        function of the job returning a model.Decision) chooses retry or
        bury. Returns the rescued jobs."""

    @abstractmethod
    def dlq_retry(self, job_id: str) -> None:
        """`dead` -> `pending` with attempts reset (event `dlq_retry`).
        NotFound if no such job, Conflict if it is not dead."""

    @abstractmethod
    def dlq_retry_all(self, queue: "str | None" = None,
                      exit_code: "int | None" = None) -> int:
        """Every dead job (of `queue`, with `exit_code`, if given) back to
        pending; returns how many."""

    @abstractmethod
    def import_jobs(self, jobs: list[Job]) -> None:
        """Insert exported jobs with their state, attempts, times and output
        (event `enqueued` with detail `imported`), all or nothing; times that
        are None become now. DuplicateJob if any id exists already."""

    # ------------------------------------------------------------ schedules
    @abstractmethod
    def add_schedule(self, name: str, cron: str, tz: "str | None", job: str,
                     next_after: Callable[[int], int], replace: bool = False) -> int:
        """Store a recurring job (`job`: its payload as JSON text); its first
        firing is next_after(now). Conflict if the name exists, unless
        `replace`. Returns the first fire time (epoch ms)."""

    @abstractmethod
    def schedules(self) -> list[dict]:
        """Every schedule: name, cron, tz, job (the payload), next_run_at,
        last_run_at (ISO times), by name."""

    @abstractmethod
    def remove_schedule(self, name: str) -> None:
        """NotFound if there is no such schedule."""

    @abstractmethod
    def fire_schedules(self, next_after: NextAfter,
                       make_job: MakeJob) -> "tuple[list[str], list[tuple[str, str]]]":
        """Enqueue one job for each schedule that is due, exactly once however
        many workers call this at once: the job (`make_job(payload, id)`) has
        the id '<name>:<fire time>', and next_run_at moves to
        next_after(cron, tz, now) in the same transaction. A schedule that
        missed several firings (no worker ran) fires once. A schedule whose
        next_after or make_job raises a QueueError is left as it is (the
        others fire). Returns ([ids enqueued], [(schedule name, error)])."""

    # ------------------------------------------------------------ jobs: reads
    @abstractmethod
    def export_jobs(self, batch: int = 1000) -> Iterator[Job]:
        """Every job with its output, in enqueue order (an iterator)."""

    @abstractmethod
    def get_job(self, job_id: str, with_output: bool = False) -> Job:
        """The job, or NotFound."""

    @abstractmethod
    def list_jobs(self, state: "str | None" = None, limit: int = 0, *, offset: int = 0,
                  search: "str | None" = None, newest_first: bool = False,
                  queues: "list[str] | None" = None) -> list[Job]:
        """Jobs in enqueue order (oldest first, or newest first); limit 0 = all.
        `search`: only jobs whose id or command contains it (case-insensitive);
        `queues`: only jobs of these queues."""

    @abstractmethod
    def count_jobs(self, state: "str | None" = None, search: "str | None" = None) -> int:
        """How many jobs list_jobs(state, search=search) would list without a limit."""

    #: How long after its `at` an event may still become visible (commit
    #: later than a higher seq): 0 where commits happen in seq order.
    commit_lag_ms = 0

    @abstractmethod
    def now_ms(self) -> int:
        """The store's clock (the database server's, on a server backend)."""

    @abstractmethod
    def attempt_ends(self, since_ms: "int | None" = None, after_seq: "int | None" = None,
                     limit: int = 0) -> list[tuple]:
        """Events that end an attempt or a job (insight.ENDING_EVENTS) at or
        after `since_ms` / with seq > `after_seq`, oldest first, as (seq,
        job_id, queue, event, at, worker_id, detail JSON)."""

    @abstractmethod
    def event_counts(self, since_ms: int, bucket_ms: int) -> list[tuple]:
        """Attempt- and job-ending events since `since_ms`, counted per time
        bucket: (bucket number from since_ms, event, written by a worker?, n)."""

    @abstractmethod
    def recent_failures(self, limit: int, since_ms: int) -> list[tuple]:
        """The newest failed attempts since `since_ms` (retry_scheduled/dead
        written by a worker, and lease_expired), newest first, as attempt_ends
        rows."""

    @abstractmethod
    def max_event_seq(self) -> int:
        """The seq of the newest event (0 if none)."""

    @abstractmethod
    def counts(self) -> dict:
        """{state: number of jobs} for every state, zeros included."""

    @abstractmethod
    def history(self, job_id: "str | None" = None, limit: int = 0) -> list[dict]:
        """Events, oldest first; with a limit, the most recent `limit`."""

    @abstractmethod
    def has_unfinished(self, queues: "list[str] | None" = None) -> bool:
        """Is any job processing, or pending/failed in a queue that is not
        paused (of `queues` only, if given)?"""

    @abstractmethod
    def next_due_in(self, queues: "list[str] | None" = None) -> "float | None":
        """Seconds until the earliest job a claim could take is due (0 if one
        is due now), None if there is none: jobs of paused queues, of queues
        at their limit and (given `queues`) of other queues do not count."""

    @abstractmethod
    def wait_for_change(self, timeout: float, wake_fds: Sequence[int] = ()) -> None:
        """Block up to `timeout` seconds, until another process commits, or
        until one of `wake_fds` is readable (a signal, a dead supervisor)."""

    # ------------------------------------------------------------ workers
    @abstractmethod
    def register_worker(self, worker_id: str, host: str, pid: int,
                        lease_timeout: float) -> None:
        """Add the worker; it counts as active until its heartbeat is older
        than the lease_timeout it last heartbeated with."""

    @abstractmethod
    def deregister_worker(self, worker_id: str) -> None: ...

    @abstractmethod
    def stop_requested(self, worker_id: str) -> bool: ...

    @abstractmethod
    def request_stop(self) -> list[str]:
        """Flag every active worker to stop; returns their ids. Workers that
        start later are not affected."""

    @abstractmethod
    def active_workers(self) -> list[dict]:
        """Workers whose heartbeat is fresher than lease_timeout, with their
        current job (`job_id`, or None)."""

    # ------------------------------------------------------------ config
    @abstractmethod
    def config(self) -> dict:
        """Every config key with its effective value (defaults filled in)."""

    @abstractmethod
    def config_set(self, key: str, value: Any) -> None: ...

    # ------------------------------------------------------------ metrics
    # Reads for /metrics (web/metrics.py), each one statement per scrape.

    @abstractmethod
    def metrics_ready(self) -> list[tuple]:
        """(queue, jobs ready to run now, the oldest one's wait in ms) per queue
        with any: pending or failed, not blocked, due (paused queues included:
        leaving them out is the caller's). Reads only the ready jobs."""

    @abstractmethod
    def metrics_workers(self) -> "tuple[int, int]":
        """(busy, idle): live workers holding a running job, and the others."""

    @abstractmethod
    def metrics_events(self, after_seq: int, limit: int) -> list[tuple]:
        """`enqueued` and attempt- or job-ending events (ENDING_EVENTS) with
        seq > `after_seq`, oldest first, at most `limit`, as (seq, queue,
        event, at, worker_id, detail JSON)."""


def schedule_dict(name, cron, tz, job, next_run_at, last_run_at) -> dict:
    """One schedules row as `schedule list --json` shows it."""
    return {"name": name, "cron": cron, "tz": tz or "UTC", "job": json.loads(job),
            "next_run_at": iso(next_run_at), "last_run_at": iso(last_run_at)}


def first_seq_at(bounds, at_from, since_ms: int) -> int:
    """The smallest event seq whose `at` is >= since_ms (past the last event if
    none is): a bisection over seq, which grows with time, so that time windows
    need no index of their own on the busiest table. `bounds` is (min seq,
    max seq) or (None, None); at_from(s) is the `at` of the first event with
    seq >= s, or None if there is none (any more). The callers keep their
    `at >= since` condition, so nothing before the window is ever counted; an
    event whose `at` is earlier than a lower-seq one's (a clock step back, a
    statement that waited for a lock) may be left out at the window's edge."""
    lo, hi = bounds
    if lo is None:
        return 0

    def at_or_after(s: int) -> bool:
        at = at_from(s)
        # None: the events from s on were deleted (a purge) since `bounds`
        # was read; nothing there can be before the window.
        return at is None or at >= since_ms

    if not at_or_after(hi):
        return hi + 1
    while lo < hi:
        mid = (lo + hi) // 2
        if at_or_after(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def like_pattern(text: str) -> str:
    """A LIKE pattern matching `text` anywhere (with \\ as the escape)."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def queue_rows(counted, settings) -> list[dict]:
    """queues() from (queue, state, n) rows and (name, paused, limit) rows."""
    from queuectl.model import STATES
    out: dict = {}
    for name, paused, limit in settings:
        out[name] = {"name": name, "paused": bool(paused), "limit": limit,
                     **dict.fromkeys(STATES, 0)}
    for name, state, n in counted:
        row = out.setdefault(name, {"name": name, "paused": False, "limit": 0,
                                    **dict.fromkeys(STATES, 0)})
        row[state] = n
    return [out[k] for k in sorted(out)]
