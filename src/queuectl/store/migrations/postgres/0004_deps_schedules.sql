-- queuectl schema, version 4 (PostgreSQL): job dependencies (`after`) and
-- recurring jobs (`schedule add`). See migrations/sqlite/0004 for the design.
-- has_dependents is set (taking the dependency's row lock) by the enqueue that
-- adds a dependent, so a finish racing with that enqueue reads it in its
-- RETURNING and settles the new dependent.
ALTER TABLE queuectl_jobs
    ADD COLUMN blocked boolean NOT NULL DEFAULT false,
    ADD COLUMN has_dependents boolean NOT NULL DEFAULT false;
DROP INDEX queuectl_jobs_ready;
CREATE INDEX queuectl_jobs_ready ON queuectl_jobs (priority DESC, run_at, seq)
    WHERE state IN ('pending', 'failed') AND NOT blocked;
DROP INDEX queuectl_jobs_due;
CREATE INDEX queuectl_jobs_due ON queuectl_jobs (run_at)
    WHERE state IN ('pending', 'failed') AND NOT blocked;
CREATE INDEX queuectl_jobs_blocked ON queuectl_jobs (seq) WHERE blocked;

CREATE TABLE queuectl_job_deps (
    job_id text NOT NULL REFERENCES queuectl_jobs (id) ON DELETE CASCADE,
    dep_id text NOT NULL REFERENCES queuectl_jobs (id) ON DELETE CASCADE,
    PRIMARY KEY (job_id, dep_id)
);
CREATE INDEX queuectl_job_deps_dep ON queuectl_job_deps (dep_id);

CREATE TABLE queuectl_schedules (
    name        text   PRIMARY KEY,
    cron        text   NOT NULL,
    tz          text,
    job         text   NOT NULL,
    next_run_at bigint NOT NULL,
    last_run_at bigint,
    created_at  bigint NOT NULL
);
CREATE INDEX queuectl_schedules_due ON queuectl_schedules (next_run_at);
