-- queuectl schema, version 4 (SQLite): job dependencies (`after`) and
-- recurring jobs (`schedule add`).
--
-- A job with unfinished dependencies is `pending` with blocked = 1: the claim
-- (and the idle workers' "when is the next job due") skip it. Whoever moves a
-- job to a terminal state settles its dependents in the same transaction:
-- completed -> dependents whose dependencies are all completed are unblocked;
-- dead/cancelled -> dependents are cancelled, recursively. has_dependents
-- tells that step whether there is anything to do.
ALTER TABLE jobs ADD COLUMN blocked INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN has_dependents INTEGER NOT NULL DEFAULT 0;
DROP INDEX jobs_ready;
CREATE INDEX jobs_ready ON jobs (priority DESC, run_at, seq)
    WHERE state IN ('pending', 'failed') AND blocked = 0;
DROP INDEX jobs_due;
CREATE INDEX jobs_due ON jobs (run_at)
    WHERE state IN ('pending', 'failed') AND blocked = 0;
CREATE INDEX jobs_blocked ON jobs (seq) WHERE blocked = 1;

CREATE TABLE job_deps (
    job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,   -- the dependent
    dep_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,   -- what it runs after
    PRIMARY KEY (job_id, dep_id)
) WITHOUT ROWID;
CREATE INDEX job_deps_dep ON job_deps (dep_id);

-- Recurring jobs. Each firing enqueues the job with id '<name>:<fire time>'
-- (unique), and moves next_run_at past now in the same transaction.
CREATE TABLE schedules (
    name        TEXT    PRIMARY KEY,
    cron        TEXT    NOT NULL,
    tz          TEXT,                                -- NULL = UTC
    job         TEXT    NOT NULL,                    -- the payload, JSON
    next_run_at INTEGER NOT NULL,
    last_run_at INTEGER,
    created_at  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX schedules_due ON schedules (next_run_at);
