"""The job model: states, allowed transitions, the Job record and its limits.

Payload parsing and validation is in queuectl.payload.

Everything here is pure: no database, no processes, no clock reads.
"""

from __future__ import annotations

import json
import os
import re
from collections import namedtuple
from enum import Enum

from queuectl.clock import iso

PENDING, PROCESSING, COMPLETED, FAILED, DEAD, CANCELLED = (
    "pending", "processing", "completed", "failed", "dead", "cancelled")
STATES = (PENDING, PROCESSING, COMPLETED, FAILED, DEAD, CANCELLED)
TERMINAL = (COMPLETED, DEAD, CANCELLED)


class _Str(str, Enum):
    """A str Enum that is its value: equal, hashed, printed and formatted as it."""
    def __str__(self) -> str:
        return str.__str__(self)

    def __format__(self, spec: str) -> str:
        return str.__format__(self, spec)

    def __hash__(self) -> int:
        return str.__hash__(self)


class State(_Str):
    """A job's state (the values of STATES)."""
    PENDING, PROCESSING, COMPLETED = PENDING, PROCESSING, COMPLETED
    FAILED, DEAD, CANCELLED = FAILED, DEAD, CANCELLED


class Action(_Str):
    """What ends an attempt: a Decision's action."""
    COMPLETE, RETRY, BURY, CANCEL = "complete", "retry", "bury", "cancel"


class OutcomeKind(_Str):
    """How an attempt ended: `succeeded` (exit 0), `exit` (non-zero), `signal` (one
    it did not get from us), `timeout`, `start_failed`, `interrupted` (stopped by
    the worker), `lease_expired` (a result its rescued job can no longer take)."""
    SUCCEEDED, EXIT, SIGNAL, TIMEOUT = "succeeded", "exit", "signal", "timeout"
    START_FAILED, INTERRUPTED, LEASE_EXPIRED = "start_failed", "interrupted", "lease_expired"


class Outcome(namedtuple("Outcome", "kind exit_code error output truncated duration",
                         defaults=(None, None, "", False, 0.0))):
    """How one attempt ended (kind: an OutcomeKind), with its output's tail.
    (A named tuple, not a dataclass: importing dataclasses costs a short CLI
    command ~10 ms.)"""
    __slots__ = ()
    kind: str
    exit_code: "int | None"
    error: "str | None"
    output: str
    truncated: bool
    duration: float

    @property
    def ok(self) -> bool:
        return self.kind == OutcomeKind.SUCCEEDED


class Decision(namedtuple("Decision", "action delay", defaults=(0.0,))):
    """An Action: `complete`, `retry` (after `delay` seconds), `bury` (to the DLQ), `cancel`."""
    __slots__ = ()
    action: str
    delay: float


# The whole state machine. The store's guarded statements implement exactly
# these edges; the contract suite checks every change it sees against them.
TRANSITIONS = {
    ("new", PENDING): "enqueue",
    (PENDING, PROCESSING): "claim",
    (FAILED, PROCESSING): "claim",
    (PROCESSING, COMPLETED): "complete",
    (PROCESSING, FAILED): "retry (or rescue of an expired lease)",
    (PROCESSING, DEAD): "bury (or rescue of an expired lease)",
    (DEAD, PENDING): "dlq retry (or requeue)",
    (COMPLETED, PENDING): "requeue",
    (CANCELLED, PENDING): "requeue",
    (PENDING, CANCELLED): "cancel",
    (FAILED, CANCELLED): "cancel",
    (PROCESSING, CANCELLED): "cancel (the worker kills the command)",
}

EVENTS = ("enqueued", "processing", "completed", "retry_scheduled", "dead",
          "dlq_retry", "lease_expired", "cancelled")

ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}")
MAX_COMMAND_BYTES = 65536
MAX_INT = 2**31 - 1
# Jobs in one `enqueue -` batch. A batch is one write transaction; this keeps
# the write lock (which heartbeats wait for) held for ~2 s at most here.
MAX_BATCH = 100_000

# Payload fields; any other field is rejected.
FIELDS = ("id", "command", "queue", "max_retries", "priority", "run_at", "delay",
          "timeout", "fatal_exit_codes", "cwd", "env", "after")
FIELD_SET = frozenset(FIELDS)
DEFAULT_QUEUE = "default"
# Limits on the optional run settings (documented in the README).
MAX_CWD_BYTES = 4096
MAX_ENV_VARS = 1000
MAX_ENV_BYTES = 64 * 1024
ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_AFTER = 1000          # dependencies of one job
# Input of one `enqueue -` / `enqueue --file` (read into memory whole), and one
# line of it: a valid job, even with every field at its limit and every
# character escaped, is far shorter.
MAX_INPUT_CHARS = 128 * 2**20
MAX_LINE_CHARS = 2 * 2**20


_id_prefix, _id_next, _id_pid = "", 0, 0


def new_job_id() -> str:
    """A 16-hex-digit id: 40 random bits drawn once per process, then a
    24-bit count. Ids of one batch sort in enqueue order, so inserting them
    appends to the id index instead of scattering writes over it; two
    processes share a prefix with a chance of 2**-40 (a forked child draws
    its own)."""
    global _id_prefix, _id_next, _id_pid
    if (_id_next & 0xFFFFFF) == 0xFFFFFF or _id_pid != os.getpid():
        _id_prefix, _id_next = os.urandom(5).hex(), int.from_bytes(os.urandom(3), "big")
        _id_pid = os.getpid()
    _id_next += 1
    return f"{_id_prefix}{_id_next & 0xFFFFFF:06x}"


def valid_id(value: object) -> bool:
    return isinstance(value, str) and ID_RE.fullmatch(value) is not None


class NewJob:
    """A validated enqueue request. `run_at` is absolute (ms) or None (= now + delay)."""

    __slots__ = ("id", "command", "max_retries", "priority", "run_at", "delay", "timeout",
                 "options", "queue", "after")

    # max_retries and timeout are None until fill_defaults when not given.
    def __init__(self, id: str, command: str, max_retries: "int | None", priority: int = 0,
                 run_at: "int | None" = None, delay: float = 0.0,
                 timeout: "float | None" = 0.0,
                 options: "dict | None" = None, queue: str = "default",
                 after: "list[str] | None" = None):
        self.queue = queue
        self.after = after or None        # ids of jobs that must complete first
        self.id, self.command, self.max_retries = id, command, max_retries
        self.priority, self.run_at, self.delay, self.timeout = priority, run_at, delay, timeout
        # fatal_exit_codes / cwd / env, only those given; None if none was.
        self.options = options or None

    def __repr__(self) -> str:
        return f"NewJob(id={self.id!r}, command={self.command!r})"


class Job:
    """A job as stored. Times are epoch milliseconds (UTC).

    (A plain class rather than a dataclass: importing dataclasses costs every
    CLI invocation several milliseconds.)
    """

    FIELDS = ("id", "command", "state", "attempts", "max_retries", "priority", "run_at",
              "timeout", "created_at", "updated_at", "started_at", "finished_at",
              "exit_code", "last_error", "worker_id", "lease_expires_at", "options",
              "queue", "blocked", "output", "output_truncated", "after")
    __slots__ = FIELDS

    def __init__(self, id, command, state, attempts, max_retries, priority, run_at,
                 timeout, created_at, updated_at, started_at=None, finished_at=None,
                 exit_code=None, last_error=None, worker_id=None, lease_expires_at=None,
                 options=None, queue="default", blocked=False, output=None,
                 output_truncated=False, after=None):
        if isinstance(options, str):          # as stored: a JSON object
            options = json.loads(options)
        self.options = options or None
        self.queue = queue
        # blocked: pending until the jobs in `after` complete. `after` is only
        # loaded by get_job and export (None: not loaded).
        self.blocked, self.after = bool(blocked), after
        self.id, self.command, self.state = id, command, state
        self.attempts, self.max_retries, self.priority = attempts, max_retries, priority
        self.run_at, self.timeout = run_at, timeout
        self.created_at, self.updated_at = created_at, updated_at
        self.started_at, self.finished_at = started_at, finished_at
        self.exit_code, self.last_error = exit_code, last_error
        self.worker_id, self.lease_expires_at = worker_id, lease_expires_at
        self.output, self.output_truncated = output, output_truncated

    def __repr__(self) -> str:
        return f"Job(id={self.id!r}, state={self.state!r}, attempts={self.attempts})"

    def replace(self, **changes) -> "Job":
        """A copy with some fields changed."""
        values = {f: getattr(self, f) for f in self.FIELDS}
        values.update(changes)
        return Job(**values)

    def __eq__(self, other) -> bool:
        return isinstance(other, Job) and all(
            getattr(self, f) == getattr(other, f) for f in self.FIELDS)

    def to_dict(self, with_output: bool = False) -> dict:
        d = {
            "id": self.id,
            "command": self.command,
            "queue": self.queue,
            "state": self.state,
            "attempts": self.attempts,
            "max_retries": self.max_retries,
            "priority": self.priority,
            "run_at": iso(self.run_at),
            "timeout": _num(self.timeout),
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "exit_code": self.exit_code,
            "last_error": self.last_error,
            "worker_id": self.worker_id,
            "lease_expires_at": iso(self.lease_expires_at),
            "blocked": self.blocked,
        }
        if self.after is not None:
            d["after"] = list(self.after)
        opts = self.options or {}
        for key in OPTION_FIELDS:
            d[key] = opts.get(key)
        if with_output:
            d["output"] = self.output or ""
            d["output_truncated"] = bool(self.output_truncated)
        return d


OPTION_FIELDS = ("fatal_exit_codes", "cwd", "env")


def options_json(options: "dict | None") -> "str | None":
    """How a job's options are stored (one JSON text column)."""
    return json.dumps(options, separators=(",", ":")) if options else None


def _num(x: float):
    """Render whole floats as ints (timeout 5.0 -> 5)."""
    return int(x) if float(x).is_integer() else x
