"""The operations layer (ops.py): the rules the CLI and the dashboard share."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from queuectl import ops
from queuectl.errors import InvalidInput, NotFound
from queuectl.payload import parse_one


def test_names_and_states_are_checked_once_for_every_interface():
    assert ops.job_id("a.b:c-d_1") == "a.b:c-d_1"
    assert ops.queue_name("q1") == "q1"
    assert ops.state(None) is None and ops.state("dead") == "dead"
    for bad in ("", "a b", "x" * 129, "a;b"):
        with pytest.raises(InvalidInput, match="invalid job id"):
            ops.job_id(bad)
        with pytest.raises(InvalidInput, match="invalid queue name"):
            ops.queue_name(bad)
    with pytest.raises(InvalidInput, match="unknown state 'done' \\(states: pending"):
        ops.state("done")


def test_only_a_change_that_undoes_a_setting_needs_an_existing_queue():
    assert ops.only_undoes(paused=False)            # resume
    assert ops.only_undoes(limit=0)                 # no limit
    assert not ops.only_undoes(paused=True)         # pause makes the queue's row
    assert not ops.only_undoes(limit=3)


def _job(job_id, exit_code, error):
    return SimpleNamespace(id=job_id, exit_code=exit_code, last_error=error)


def test_dead_jobs_group_by_exit_code_and_first_error_line_with_numbers_masked():
    jobs = [_job("a", 3, "disk 12 full\nmore"), _job("b", 3, "disk 7 full"),
            _job("c", 3, "disk 9 full"), _job("d", 3, "disk 1 full"), _job("e", None, None),
            _job("f", 1, "disk 2 full")]
    assert ops.group_key(jobs[0]) == (3, "disk # full")
    assert ops.groups(jobs) == [
        {"exit_code": 3, "error": "disk # full", "count": 4, "examples": ["a", "b", "c"]},
        {"exit_code": 1, "error": "disk # full", "count": 1, "examples": ["f"]},
        {"exit_code": None, "error": "", "count": 1, "examples": ["e"]},
    ]


def test_resume_and_limit_0_of_an_unknown_queue_are_refused(store):
    with pytest.raises(NotFound, match="queue nope not found"):
        ops.set_queue(store, "nope", paused=False)
    with pytest.raises(NotFound):
        ops.set_queue(store, "nope", limit=0)
    assert store.queues() == []
    ops.set_queue(store, "made", paused=True)        # pausing makes it known
    ops.set_queue(store, "made", paused=False)
    ops.set_queue(store, "made", limit=0)
    job = parse_one('{"id": "j", "command": "true", "queue": "busy", "max_retries": 1, '
                    '"timeout": 0}')
    store.enqueue([job])
    ops.set_queue(store, "busy", paused=False)       # a queue with jobs is known too
    assert {q["name"]: q["paused"] for q in store.queues()} == {"busy": False, "made": False}
    with pytest.raises(InvalidInput):
        ops.set_queue(store, "bad name", paused=True)


def test_retrying_ids_skips_jobs_that_are_gone_or_not_dead(store):
    store.enqueue([parse_one('{"id": "w", "command": "true", "max_retries": 1, "timeout": 0}')])
    assert ops.retry_ids(store, ["w", "gone"]) == 0
    assert ops.retry_all(store) == 0
    with pytest.raises(InvalidInput):
        ops.retry_all(store, queue="bad name")
