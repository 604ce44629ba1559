-- queuectl schema, version 3 (SQLite): named queues (pause, concurrency limit)
-- and the terminal state `cancelled` (with a cancel request flag for a running
-- job). SQLite cannot change a CHECK in place: jobs and events are rebuilt
-- (the migration runs with foreign keys off, inside one transaction).

CREATE TABLE jobs_v3 (
    seq              INTEGER PRIMARY KEY,          -- enqueue order
    id               TEXT    NOT NULL UNIQUE,
    command          TEXT    NOT NULL,
    queue            TEXT    NOT NULL DEFAULT 'default',
    state            TEXT    NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'processing', 'completed', 'failed', 'dead',
                                      'cancelled')),
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
    options          TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    CHECK ((state = 'processing') = (lease_expires_at IS NOT NULL AND worker_id IS NOT NULL)),
    CHECK ((state IN ('completed', 'dead', 'cancelled')) = (finished_at IS NOT NULL))
);
INSERT INTO jobs_v3 (seq, id, command, state, attempts, max_retries, priority, run_at,
                     timeout, created_at, updated_at, started_at, finished_at, exit_code,
                     last_error, worker_id, lease_expires_at, output, output_truncated,
                     options)
    SELECT seq, id, command, state, attempts, max_retries, priority, run_at, timeout,
           created_at, updated_at, started_at, finished_at, exit_code, last_error,
           worker_id, lease_expires_at, output, output_truncated, options FROM jobs;
DROP TABLE jobs;
ALTER TABLE jobs_v3 RENAME TO jobs;
CREATE INDEX jobs_ready ON jobs (priority DESC, run_at, seq)
    WHERE state IN ('pending', 'failed');
CREATE INDEX jobs_due ON jobs (run_at)
    WHERE state IN ('pending', 'failed');
CREATE INDEX jobs_state ON jobs (state, seq);
CREATE INDEX jobs_running ON jobs (lease_expires_at)
    WHERE state = 'processing';
CREATE INDEX jobs_queue_running ON jobs (queue)
    WHERE state = 'processing';

CREATE TABLE events_v3 (
    seq       INTEGER PRIMARY KEY,
    job_id    TEXT    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    event     TEXT    NOT NULL CHECK (event IN ('enqueued', 'processing', 'completed',
                      'retry_scheduled', 'dead', 'dlq_retry', 'lease_expired', 'cancelled')),
    attempt   INTEGER NOT NULL,
    at        INTEGER NOT NULL,
    worker_id TEXT,
    detail    TEXT
);
INSERT INTO events_v3 SELECT seq, job_id, event, attempt, at, worker_id, detail FROM events;
DROP TABLE events;
ALTER TABLE events_v3 RENAME TO events;
CREATE INDEX events_job ON events (job_id, seq);

CREATE TABLE queues (
    name        TEXT    PRIMARY KEY,
    paused      INTEGER NOT NULL DEFAULT 0,
    max_running INTEGER NOT NULL DEFAULT 0 CHECK (max_running >= 0)   -- 0 = no limit
) WITHOUT ROWID;
