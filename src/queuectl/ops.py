"""Operations: the rules shared by the interfaces (`cli/`, `web/`) above the store.

Each rule is written here once: what a job id, queue name or state may be,
which queue changes need an existing queue, how dead jobs are grouped and
retried by group. The interfaces parse their input (argv, JSON bodies), call
these, and render the result; the store does the transitions.

Light on purpose: `queuectl enqueue` imports this module, so it imports only
the pure modules (no store, no driver).
"""

from __future__ import annotations

from queuectl.errors import Conflict, InvalidInput, NotFound
from queuectl.model import STATES, valid_id

# Not `typing.TYPE_CHECKING`: importing typing would cost `enqueue` 2-3 ms.
# (Type checkers read any constant of this name as true.)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

    from queuectl.model import Job
    from queuectl.store.base import Store

    GroupKey = tuple[Any, str]      # (exit code or None, normalised error)

# ---------------------------------------------------------------- names


def job_id(text: str) -> str:
    """A job id given by a user (InvalidInput, exit 2, if it cannot be one)."""
    if not valid_id(text):
        raise InvalidInput(f"invalid job id {text!r}: ids are 1-128 letters, digits or '._:-'")
    return text


def queue_name(text: str) -> str:
    """A queue name given by a user (InvalidInput if it cannot be one)."""
    if not valid_id(text):
        raise InvalidInput(f"invalid queue name {text!r}: names are 1-128 letters, "
                           "digits or '._:-'")
    return text


def state(text: str | None) -> str | None:
    """A state filter given by a user: None (no filter) or one of STATES."""
    if text is not None and text not in STATES:
        from queuectl.config import did_you_mean
        raise InvalidInput(f"unknown state {text!r}{did_you_mean(text, list(STATES))} "
                           f"(states: {', '.join(STATES)})")
    return text


#: What `cancel --all` may cancel (and cancels when no --state is given).
CANCELLABLE = ("pending", "failed", "processing")


def cancellable_states(texts: list[str] | None) -> list[str]:
    """The states a cancel of many jobs covers: `texts` (each one of
    CANCELLABLE, InvalidInput otherwise), or all of CANCELLABLE."""
    if not texts:
        return list(CANCELLABLE)
    out: list[str] = []
    for text in texts:
        if text not in CANCELLABLE:
            from queuectl.config import did_you_mean
            raise InvalidInput(f"--state must be pending, failed or processing, not {text!r}"
                               f"{did_you_mean(text, list(CANCELLABLE))}")
        if text not in out:
            out.append(text)
    return out


# ---------------------------------------------------------------- queues


def only_undoes(*, paused: bool | None = None, limit: int | None = None) -> bool:
    """Does this queue change only undo a setting (resume, limit 0)? Such a
    change needs the queue to exist already (have jobs or settings): a
    misspelt name is an error, not a new, silent queue row."""
    return paused is not True and not limit


def require_queue(store: Store, name: str) -> None:
    """NotFound unless queue `name` has jobs or settings."""
    if name not in {q["name"] for q in store.queues()}:
        raise NotFound(f"queue {name} not found: it has no jobs and no settings")


def set_queue(store: Store, name: str, *, paused: bool | None = None,
              limit: int | None = None) -> None:
    """Pause, resume or limit queue `name`, by the rules above."""
    queue_name(name)
    if only_undoes(paused=paused, limit=limit):
        require_queue(store, name)
    store.set_queue(name, paused=paused, limit=limit)


# ---------------------------------------------------------------- the DLQ

def _normalise(error: str | None) -> str:
    """The error's first line with numbers masked, so similar errors group."""
    import re
    line = (error or "").strip().splitlines()[0] if (error or "").strip() else ""
    return re.sub(r"\d+", "#", line)[:200]


def group_key(job: Job) -> GroupKey:
    """(exit code, normalised error): what dead jobs are grouped by."""
    return job.exit_code, _normalise(job.last_error)


def groups(jobs: Iterable[Job]) -> list[dict[str, Any]]:
    """Dead jobs grouped by `group_key`, biggest group first: exit code, error,
    count and up to three example ids each."""
    out: dict[GroupKey, dict[str, Any]] = {}
    for j in jobs:
        key = group_key(j)
        g = out.setdefault(key, {"exit_code": j.exit_code, "error": key[1], "count": 0,
                                 "examples": []})
        g["count"] += 1
        if len(g["examples"]) < 3:
            g["examples"].append(j.id)
    return sorted(out.values(), key=lambda g: (-g["count"], str(g["exit_code"]), g["error"]))


def retry_ids(store: Store, ids: Iterable[str]) -> int:
    """Retry each of these dead jobs; one that is gone or no longer dead is
    skipped. Returns how many were retried."""
    done = 0
    for i in ids:
        try:
            store.dlq_retry(i)
            done += 1
        except (NotFound, Conflict):
            pass
    return done


def retry_group(store: Store, exit_code: Any, error: Any) -> int:
    """Retry the dead jobs of one `groups()` group (its exit code and error)."""
    key = (exit_code, error)
    return retry_ids(store, [j.id for j in store.dead_jobs() if group_key(j) == key])


def retry_all(store: Store, queue: str | None = None, exit_code: int | None = None) -> int:
    """Retry every dead job (of `queue`, with `exit_code`, if given)."""
    if queue is not None:
        queue_name(queue)
    return store.dlq_retry_all(queue, exit_code)
