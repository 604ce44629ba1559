"""End-to-end on PostgreSQL: a cancel that races the job's failing exit. The
cancel's transaction is held open (a trigger on the flag waits for an
advisory lock this test holds) while the command fails and its worker's
finish waits for the row; then the cancel commits. It said `cancelling`: the
job must end `cancelled`, not be retried."""

from __future__ import annotations

import subprocess

import pytest

from e2e_util import QUEUECTL, events, start_logged, wait_until, worker_log

pytestmark = [pytest.mark.e2e, pytest.mark.backends("postgres")]

LOCK_KEY = 7341913


def _pg(cli):
    import psycopg
    return psycopg.connect(cli.db, autocommit=True)


def _waiting(conn, needle: str) -> bool:
    """Is a session of this database waiting for a lock in a statement containing `needle`?"""
    rows = conn.execute(
        "SELECT query FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
        "AND pid <> pg_backend_pid()").fetchall()
    return any(needle in q for (q,) in rows)


def test_a_cancel_reported_cancelling_ends_cancelled_whatever_the_commit_order(cli, tmp_path):
    go = tmp_path / "go"
    cli.enqueue(id="race", max_retries=3,
                command=f"while [ ! -e {go} ]; do sleep 0.01; done; exit 1")
    hold = _pg(cli)
    spy = _pg(cli)
    try:
        hold.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        hold.execute(f"""
            CREATE FUNCTION hold_cancel() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN PERFORM pg_advisory_xact_lock_shared({LOCK_KEY}); RETURN NEW; END $$;
            CREATE TRIGGER hold_cancel AFTER UPDATE OF cancel_requested ON queuectl_jobs
            FOR EACH ROW WHEN (NEW.cancel_requested AND NOT OLD.cancel_requested)
            EXECUTE FUNCTION hold_cancel();""")
        log = tmp_path / "w.log"
        start_logged(cli, log)
        cli.wait_state("race", "processing")
        # 1. The cancel flags the job and waits, uncommitted, in the trigger.
        cancel = subprocess.Popen(QUEUECTL + ["cancel", "race"], env=cli.env, cwd=cli.cwd,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        cli.procs.append(cancel)
        wait_until(lambda: _waiting(spy, "cancel_requested = true"), timeout=10,
                   message="the cancel to wait inside its transaction")
        # 2. The command fails; its worker's finish waits for the job's row.
        go.touch()
        wait_until(lambda: _waiting(spy, "WITH done AS"), timeout=10,
                   message="the worker's finish to wait for the cancel's row lock")
        # 3. The cancel commits.
        hold.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
        out, err = cancel.communicate(timeout=20)
        assert cancel.returncode == 0 and out.startswith("cancelling race"), (out, err)
        job = wait_until(lambda: (lambda j: j if j["state"] != "processing" else None)(
            cli.job("race")), timeout=10, message="the job to end its attempt")
        assert job["state"] == "cancelled", (job, worker_log(log))
        assert job["attempts"] == 1
        assert events(cli, "race")[-1] == "cancelled"
    finally:
        hold.close()
        spy.close()
