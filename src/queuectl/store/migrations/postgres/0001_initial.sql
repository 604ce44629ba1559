-- queuectl schema, version 1 (PostgreSQL). Times are epoch milliseconds (UTC)
-- taken from the database server's clock. Tables carry a queuectl_ prefix so
-- they can live beside an application's own tables; put them in a schema of
-- their own with the URL option `options=-csearch_path%3Dmyschema`.

CREATE TABLE queuectl_meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);

CREATE TABLE queuectl_jobs (
    seq              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,   -- enqueue order
    id               text    NOT NULL UNIQUE,
    command          text    NOT NULL,
    state            text    NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'processing', 'completed', 'failed', 'dead')),
    attempts         bigint  NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_retries      bigint  NOT NULL CHECK (max_retries >= 0),
    priority         bigint  NOT NULL DEFAULT 0,
    run_at           bigint  NOT NULL,
    timeout          double precision NOT NULL DEFAULT 0 CHECK (timeout >= 0),
    created_at       bigint  NOT NULL,
    updated_at       bigint  NOT NULL,
    started_at       bigint,
    finished_at      bigint,
    exit_code        bigint,
    last_error       text,
    worker_id        text,
    lease_expires_at bigint,
    output           text,
    output_truncated boolean NOT NULL DEFAULT false,
    -- a lease exists exactly while a worker holds the job
    CHECK ((state = 'processing') = (lease_expires_at IS NOT NULL AND worker_id IS NOT NULL)),
    -- finished_at is set exactly on terminal states
    CHECK ((state IN ('completed', 'dead')) = (finished_at IS NOT NULL))
);

-- The claim: best ready job first.
CREATE INDEX queuectl_jobs_ready ON queuectl_jobs (priority DESC, run_at, seq)
    WHERE state IN ('pending', 'failed');
-- When the next ready job is due (idle workers sleep until then).
CREATE INDEX queuectl_jobs_due ON queuectl_jobs (run_at)
    WHERE state IN ('pending', 'failed');
-- list --state, status counts.
CREATE INDEX queuectl_jobs_state ON queuectl_jobs (state, seq);
-- Rescue of expired leases and "current job" of workers: only running jobs.
CREATE INDEX queuectl_jobs_running ON queuectl_jobs (lease_expires_at)
    WHERE state = 'processing';
CREATE INDEX queuectl_jobs_holder ON queuectl_jobs (worker_id)
    WHERE state = 'processing';

CREATE TABLE queuectl_events (
    seq       bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id    text    NOT NULL REFERENCES queuectl_jobs (id) ON DELETE CASCADE,
    event     text    NOT NULL CHECK (event IN ('enqueued', 'processing', 'completed',
                      'retry_scheduled', 'dead', 'dlq_retry', 'lease_expired')),
    attempt   bigint  NOT NULL,
    at        bigint  NOT NULL,
    worker_id text,
    detail    text                                  -- JSON object, or NULL
);
CREATE INDEX queuectl_events_job ON queuectl_events (job_id, seq);

CREATE TABLE queuectl_workers (
    id             text    PRIMARY KEY,
    host           text    NOT NULL,
    pid            bigint  NOT NULL,
    started_at     bigint  NOT NULL,
    heartbeat_at   bigint  NOT NULL,
    expires_at     bigint  NOT NULL,                -- heartbeat_at + lease_timeout then
    stop_requested boolean NOT NULL DEFAULT false
);

CREATE TABLE queuectl_config (
    key   text PRIMARY KEY,
    value text NOT NULL                             -- JSON
);
