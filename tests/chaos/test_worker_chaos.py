"""Worker chaos: jobs that record every run (most take 0.15 s, every 10th
1.5 s), 2 supervisors x 2 workers, and every ~0.5 s one of them SIGKILLed (a
worker; a worker with its job's process group; a supervisor, whose workers
then orphan themselves; or a supervisor with its workers and their commands at
once, like a power cut) and a new one started. Afterwards every job has completed exactly once, and every extra run
is explained by a rescue of a job whose worker we killed."""

from __future__ import annotations

import random
import time

import pytest

from chaos_util import (Fleet, bulk, check_exactly_once, recording_command, size, summary,
                        wait_until)
from e2e_util import counts

pytestmark = pytest.mark.chaos

LEASE = 3


def test_sigkilled_workers_and_supervisors_lose_no_job_and_complete_each_once(cli, tmp_path,
                                                                              backend):
    n = size(120, 1000)
    rng = random.Random()
    cli.ok("config", "set", "lease_timeout", str(LEASE))
    cli.ok("config", "set", "backoff_base", "1")       # a rescued job retries 1 s later
    runs = tmp_path / "runs.txt"
    ids = [f"job-{i:04d}" for i in range(n)]
    # Every 10th job outlives a few heartbeats: a rescue of a live worker's
    # job cannot hide behind jobs shorter than a heartbeat.
    bulk(cli, [{"id": i, "command": recording_command(runs, 1.5 if k % 10 == 5 else 0.15),
                "max_retries": 100} for k, i in enumerate(ids)])
    fleet = Fleet(cli, tmp_path, per_supervisor=2, rng=rng)
    t0 = time.monotonic()
    try:
        fleet.start()
        fleet.start()
        # Kill until 90% are done (or the budget runs out), then let it finish.
        budget = t0 + (60 if n <= 200 else 600)
        while time.monotonic() < budget:
            time.sleep(rng.uniform(0.3, 0.7))
            fleet.random_kill()
            if counts(cli)["completed"] >= 0.9 * n:
                break
        while len(fleet.live()) < 2:
            fleet.start()
        wait_until(lambda: counts(cli)["completed"] == n, timeout=60 + n / 10, interval=0.2,
                   message=f"all {n} jobs to complete")
        fleet.stop()
        took = time.monotonic() - t0
        dups = check_exactly_once(cli, ids, runs, fleet.killed_workers)
        assert "Traceback" not in fleet.log_text(), fleet.log_text()[-3000:]
    finally:
        fleet.cleanup()
    summary(f"worker chaos [{backend}]", jobs=n, kills=sum(fleet.kills.values()),
            **{f"kill_{k}": v for k, v in sorted(fleet.kills.items())},
            supervisors_started=fleet.started, completed=n, lost=0,
            duplicate_runs=dups["dup_runs"], jobs_run_twice_or_more=dups["dup_jobs"],
            rescues=dups["rescues"], why=dups["reasons"], seconds=round(took, 1))
