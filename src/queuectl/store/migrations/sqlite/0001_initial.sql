-- queuectl schema, version 1 (SQLite). Times are epoch milliseconds (UTC).

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE jobs (
    seq              INTEGER PRIMARY KEY,          -- enqueue order
    id               TEXT    NOT NULL UNIQUE,
    command          TEXT    NOT NULL,
    state            TEXT    NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'processing', 'completed', 'failed', 'dead')),
    attempts         INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_retries      INTEGER NOT NULL CHECK (max_retries >= 0),
    priority         INTEGER NOT NULL DEFAULT 0,
    run_at           INTEGER NOT NULL,
    timeout          REAL    NOT NULL DEFAULT 0 CHECK (timeout >= 0),
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER,
    exit_code        INTEGER,
    last_error       TEXT,
    worker_id        TEXT,
    lease_expires_at INTEGER,
    output           TEXT,
    output_truncated INTEGER NOT NULL DEFAULT 0,
    -- a lease exists exactly while a worker holds the job
    CHECK ((state = 'processing') = (lease_expires_at IS NOT NULL AND worker_id IS NOT NULL)),
    -- finished_at is set exactly on terminal states
    CHECK ((state IN ('completed', 'dead')) = (finished_at IS NOT NULL))
);

-- The claim: best ready job first.
CREATE INDEX jobs_ready ON jobs (priority DESC, run_at, seq)
    WHERE state IN ('pending', 'failed');
-- When the next ready job is due (idle workers sleep until then).
CREATE INDEX jobs_due ON jobs (run_at)
    WHERE state IN ('pending', 'failed');
-- list --state, status counts.
CREATE INDEX jobs_state ON jobs (state, seq);
-- Rescue of expired leases and "current job" of workers: only running jobs.
CREATE INDEX jobs_running ON jobs (lease_expires_at)
    WHERE state = 'processing';

CREATE TABLE events (
    seq       INTEGER PRIMARY KEY,
    job_id    TEXT    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    event     TEXT    NOT NULL CHECK (event IN ('enqueued', 'processing', 'completed',
                      'retry_scheduled', 'dead', 'dlq_retry', 'lease_expired')),
    attempt   INTEGER NOT NULL,
    at        INTEGER NOT NULL,
    worker_id TEXT,
    detail    TEXT                                  -- JSON object, or NULL
);
CREATE INDEX events_job ON events (job_id, seq);

CREATE TABLE workers (
    id             TEXT    PRIMARY KEY,
    host           TEXT    NOT NULL,
    pid            INTEGER NOT NULL,
    started_at     INTEGER NOT NULL,
    heartbeat_at   INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,                -- heartbeat_at + lease_timeout then
    stop_requested INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

CREATE TABLE config (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL                             -- JSON
) WITHOUT ROWID;
