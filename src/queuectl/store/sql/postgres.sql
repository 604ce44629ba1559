-- queuectl's PostgreSQL statements (schema: migrations/postgres/). Read beside
-- sqlite.sql: the same name is the same operation. Job rows are selected as
-- JOB_COLS (store/core.py). Times are the database server's clock, written
--     COALESCE(%(now)s::bigint, (extract(epoch FROM statement_timestamp()) * 1000)::bigint)
-- (epoch ms; %(now)s is NULL unless a test injects a clock). statement_timestamp(),
-- not now(): a claim that waited inside its transaction (for the queue-limit
-- lock) must not be dated before the finish it waited for. Lists travel as arrays.

-- ===================================================================== schema

-- name: meta_exists
-- description: Does this schema have queuectl's meta table?
SELECT to_regclass('queuectl_meta') IS NOT NULL;

-- name: meta
-- description: The app name and schema version this schema was made by.
SELECT key, value FROM queuectl_meta WHERE key IN ('app', 'schema_version');

-- name: set_meta
-- description: Record the app name and schema version after a migration.
INSERT INTO queuectl_meta (key, value) VALUES ('app', %s), ('schema_version', %s)
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value;

-- name: current_schema
-- description: The schema this connection uses (it names the notification channel).
SELECT current_schema();

-- name: lock_migrations
-- description: The session lock migrating processes queue on.
SELECT pg_advisory_lock(%s);

-- name: unlock_migrations
-- description: Release the migration lock.
SELECT pg_advisory_unlock(%s);

-- name: use_temporary_schema
-- description: Read a session-private empty schema (a database without a queue, read-only command).
SET search_path = pg_temp;

-- name: async_commit
-- description: Worker connections: a server crash may lose the last commits (the rescue covers them).
SET synchronous_commit = off;

-- name: application_name
-- description: Name this connection after its worker (pg_stat_activity).
SELECT set_config('application_name', %s, false);

-- name: now
-- description: The database's clock in epoch ms (or the injected one).
SELECT COALESCE(%(now)s::bigint, (extract(epoch FROM statement_timestamp()) * 1000)::bigint);

-- name: notify
-- description: Wake idle workers (channel, reason).
SELECT pg_notify(%s, %s);

-- ================================================================ jobs: writes

-- name: enqueue
-- description: New pending jobs from parallel arrays and their enqueued events, then a wake-up.
WITH clock AS (
    SELECT COALESCE(%(now)s::bigint,
                    (extract(epoch FROM statement_timestamp()) * 1000)::bigint) AS n),
new AS (
    INSERT INTO queuectl_jobs (id, command, max_retries, priority, run_at, timeout,
                               created_at, updated_at, options, queue, blocked)
    SELECT u.id, u.command, u.max_retries, u.priority, COALESCE(u.run_at, clock.n + u.delay),
           u.timeout, clock.n, clock.n, u.options, u.queue, COALESCE(u.blocked, false)
    FROM unnest(%(ids)s::text[], %(commands)s::text[], %(max_retries)s::bigint[],
                %(priorities)s::bigint[], %(run_ats)s::bigint[], %(delays)s::bigint[],
                %(timeouts)s::float8[], %(options)s::text[], %(queues)s::text[],
                %(blocked)s::boolean[])
         WITH ORDINALITY AS u(id, command, max_retries, priority, run_at, delay, timeout,
                              options, queue, blocked, ord),
         clock
    ORDER BY u.ord
    RETURNING id, created_at),
ev AS (
    INSERT INTO queuectl_events (job_id, event, attempt, at)
    SELECT id, 'enqueued', 0, created_at FROM new)
SELECT pg_notify(%(channel)s, 'enqueued');

-- name: enqueue_skip_existing
-- description: As enqueue, but ids that exist are left alone; returns the ids inserted.
WITH clock AS (
    SELECT COALESCE(%(now)s::bigint,
                    (extract(epoch FROM statement_timestamp()) * 1000)::bigint) AS n),
new AS (
    INSERT INTO queuectl_jobs (id, command, max_retries, priority, run_at, timeout,
                               created_at, updated_at, options, queue, blocked)
    SELECT u.id, u.command, u.max_retries, u.priority, COALESCE(u.run_at, clock.n + u.delay),
           u.timeout, clock.n, clock.n, u.options, u.queue, COALESCE(u.blocked, false)
    FROM unnest(%(ids)s::text[], %(commands)s::text[], %(max_retries)s::bigint[],
                %(priorities)s::bigint[], %(run_ats)s::bigint[], %(delays)s::bigint[],
                %(timeouts)s::float8[], %(options)s::text[], %(queues)s::text[],
                %(blocked)s::boolean[])
         WITH ORDINALITY AS u(id, command, max_retries, priority, run_at, delay, timeout,
                              options, queue, blocked, ord),
         clock
    ORDER BY u.ord
    ON CONFLICT (id) DO NOTHING
    RETURNING id, created_at),
ev AS (
    INSERT INTO queuectl_events (job_id, event, attempt, at)
    SELECT id, 'enqueued', 0, created_at FROM new)
SELECT new.id, pg_notify(%(channel)s, 'enqueued') FROM new;

-- name: import_job
-- description: One exported job with its state, times and output.
INSERT INTO queuectl_jobs (id, command, state, attempts, max_retries, priority, run_at,
                           timeout, created_at, updated_at, started_at, finished_at,
                           exit_code, last_error, output, output_truncated, options, queue,
                           blocked)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s);

-- name: insert_event
-- description: One event (job_id, event, attempt, at, worker_id, detail).
INSERT INTO queuectl_events (job_id, event, attempt, at, worker_id, detail)
VALUES (%s, %s, %s, %s, %s, %s);

-- name: existing_commands
-- description: id and command of those of %(ids)s that exist.
SELECT id, command FROM queuectl_jobs WHERE id = ANY(%(ids)s::text[]);

-- name: plan_dependencies
-- description: Mark the dependencies a new batch names (%(ids)s) as having dependents, locking them in seq order; their id and state.
UPDATE queuectl_jobs SET has_dependents = true
WHERE id IN (SELECT id FROM queuectl_jobs WHERE id = ANY(%(ids)s::text[])
             ORDER BY seq FOR UPDATE)
RETURNING id, state;

-- name: add_dependencies
-- description: New jobs (%(jobs)s) run after others (%(deps)s), pair by pair.
INSERT INTO queuectl_job_deps (job_id, dep_id)
SELECT * FROM unnest(%(jobs)s::text[], %(deps)s::text[]);

-- name: mark_has_dependents
-- description: Jobs (%(ids)s) that now have dependents settle them when they end.
UPDATE queuectl_jobs SET has_dependents = true
WHERE id = ANY(%(ids)s::text[]) AND NOT has_dependents;

-- name: lock_dependents
-- description: Lock the waiting dependents of %(ids)s in seq order (as everywhere: no deadlock).
SELECT 1 FROM queuectl_jobs
WHERE id IN (SELECT job_id FROM queuectl_job_deps WHERE dep_id = ANY(%(ids)s::text[]))
  AND state IN ('pending', 'failed')
ORDER BY seq FOR UPDATE;

-- name: unblock_dependents
-- description: Dependents of jobs that just ended (%(ids)s) whose dependencies have all completed can run.
UPDATE queuectl_jobs j SET blocked = false
WHERE j.blocked AND j.state IN ('pending', 'failed')
  AND j.id IN (SELECT job_id FROM queuectl_job_deps WHERE dep_id = ANY(%(ids)s::text[]))
  AND NOT EXISTS (SELECT 1 FROM queuectl_job_deps d JOIN queuectl_jobs p ON p.id = d.dep_id
                  WHERE d.job_id = j.id AND p.state <> 'completed');

-- name: doomed_dependents
-- description: Waiting dependents of jobs (%(ids)s) that ended dead or cancelled: (job, dependency, its state, attempts).
SELECT d.job_id, d.dep_id, p.state, j.attempts FROM queuectl_job_deps d
JOIN queuectl_jobs p ON p.id = d.dep_id JOIN queuectl_jobs j ON j.id = d.job_id
WHERE d.dep_id = ANY(%(ids)s::text[]) AND p.state IN ('dead', 'cancelled')
  AND j.state IN ('pending', 'failed')
ORDER BY j.seq, d.dep_id;

-- name: cancel_waiting
-- description: A pending or failed job (%(id)s) ends cancelled with %(error)s.
UPDATE queuectl_jobs SET state = 'cancelled', blocked = false, updated_at = %(now)s::bigint,
       finished_at = %(now)s::bigint, last_error = %(error)s::text
WHERE id = %(id)s::text AND state IN ('pending', 'failed');

-- name: job_for_cancel
-- description: What a cancel needs to know of a job (locked): state, attempts, has_dependents.
SELECT state, attempts, has_dependents FROM queuectl_jobs WHERE id = %(id)s FOR UPDATE;

-- name: request_cancel
-- description: Flag a running job for its worker to kill and end as cancelled.
UPDATE queuectl_jobs SET cancel_requested = true WHERE id = %(id)s;

-- name: job_for_remove
-- description: What a remove needs to know of a job (locked): state, has_dependents.
SELECT state, has_dependents FROM queuectl_jobs WHERE id = %(id)s::text FOR UPDATE;

-- name: waiting_dependents
-- description: The waiting (pending or failed) dependents of job %(id)s: (job, attempts), in seq order.
SELECT j.id, j.attempts FROM queuectl_job_deps d JOIN queuectl_jobs j ON j.id = d.job_id
WHERE d.dep_id = %(id)s::text AND j.state IN ('pending', 'failed')
ORDER BY j.seq;

-- name: remove_job
-- description: Delete a job that is not running (its events, output and dependency rows go with it).
DELETE FROM queuectl_jobs
WHERE id = %(id)s::text AND state IN ('pending', 'failed', 'completed', 'dead', 'cancelled');

-- name: dependency_states
-- description: The jobs job %(id)s runs after, with their states, in seq order (share-locked: one that ends meanwhile sees the requeued job).
SELECT p.id, p.state FROM queuectl_job_deps d JOIN queuectl_jobs p ON p.id = d.dep_id
WHERE d.job_id = %(id)s::text
ORDER BY p.seq FOR SHARE OF p;

-- name: requeue_job
-- description: A completed, dead or cancelled job (%(id)s) is pending again, attempts reset (%(blocked)s: a dependency has not completed).
UPDATE queuectl_jobs SET state = 'pending', attempts = 0, run_at = %(now)s::bigint,
       updated_at = %(now)s::bigint, finished_at = NULL, cancel_requested = false,
       blocked = %(blocked)s::boolean
WHERE id = %(id)s::text AND state IN ('completed', 'dead', 'cancelled');

-- name: edit_job
-- description: Change a waiting (pending or failed) job's priority, run_at, max_retries or timeout; NULL leaves one as it is.
UPDATE queuectl_jobs
SET priority = COALESCE(%(priority)s::bigint, priority),
    run_at = COALESCE(%(run_at)s::bigint, run_at),
    max_retries = COALESCE(%(max_retries)s::bigint, max_retries),
    timeout = COALESCE(%(timeout)s::double precision, timeout),
    updated_at = %(now)s::bigint
WHERE id = %(id)s::text AND state IN ('pending', 'failed');

-- name: cancel_candidates
-- description: id and state of the jobs in %(states)s (of %(queues)s, if given), oldest first.
SELECT id, state FROM queuectl_jobs
WHERE state = ANY(%(states)s::text[])
  AND (%(queues)s::text[] IS NULL OR queue = ANY(%(queues)s::text[]))
ORDER BY seq;

-- name: unblock_all
-- description: Repair: blocked jobs with no unfinished dependency left (settling cut short by a crash) can run.
UPDATE queuectl_jobs j SET blocked = false
WHERE j.blocked AND j.state IN ('pending', 'failed')
  AND NOT EXISTS (SELECT 1 FROM queuectl_job_deps d JOIN queuectl_jobs p ON p.id = d.dep_id
                  WHERE d.job_id = j.id AND p.state <> 'completed');

-- name: unsettled
-- description: Repair: dependencies that ended badly and still have blocked dependents.
SELECT DISTINCT d.dep_id FROM queuectl_jobs j
JOIN queuectl_job_deps d ON d.job_id = j.id JOIN queuectl_jobs p ON p.id = d.dep_id
WHERE j.blocked AND j.state IN ('pending', 'failed') AND p.state IN ('dead', 'cancelled');

-- ====================================================== claim, finish, release

-- name: any_limit
-- description: Does any queue have a concurrency limit?
SELECT EXISTS (SELECT 1 FROM queuectl_queues WHERE max_running > 0);

-- name: lock_limited_queues
-- description: Lock the rows of queues with a limit: concurrent claims count their room one at a time.
SELECT name FROM queuectl_queues WHERE max_running > 0 ORDER BY name FOR UPDATE;

-- name: claim_unlimited
-- description: Claim the best ready job for a registered worker not asked to stop, unless some queue has a limit (then nothing: claim_locked).
WITH me AS (
    SELECT 1 FROM queuectl_workers WHERE id = %(worker)s::text AND NOT stop_requested
    AND NOT EXISTS (SELECT 1 FROM queuectl_queues WHERE max_running > 0)),
next AS (
    SELECT seq FROM queuectl_jobs
    WHERE state IN ('pending', 'failed') AND NOT blocked
      AND run_at <= COALESCE(%(now)s::bigint,
                             (extract(epoch FROM statement_timestamp()) * 1000)::bigint)
      AND EXISTS (SELECT 1 FROM me)
      AND (%(queues)s::text[] IS NULL OR queue = ANY(%(queues)s::text[]))
      AND queue NOT IN (
          SELECT q.name FROM queuectl_queues q WHERE q.paused OR (q.max_running > 0 AND
              q.max_running <= (SELECT count(*) FROM queuectl_jobs r
                                WHERE r.state = 'processing' AND r.queue = q.name)))
    ORDER BY priority DESC, run_at, seq
    LIMIT 1 FOR UPDATE SKIP LOCKED),
claimed AS (
    UPDATE queuectl_jobs j
    SET state = 'processing', attempts = j.attempts + 1, worker_id = %(worker)s::text,
        started_at = COALESCE(%(now)s::bigint,
                              (extract(epoch FROM statement_timestamp()) * 1000)::bigint),
        updated_at = COALESCE(%(now)s::bigint,
                              (extract(epoch FROM statement_timestamp()) * 1000)::bigint),
        lease_expires_at = COALESCE(%(now)s::bigint,
                                    (extract(epoch FROM statement_timestamp()) * 1000)::bigint)
                           + %(lease)s::bigint,
        finished_at = NULL, output = NULL, output_truncated = false,
        cancel_requested = false
    FROM next WHERE j.seq = next.seq AND j.state IN ('pending', 'failed')
    RETURNING j.id, j.command, j.state, j.attempts, j.max_retries, j.priority, j.run_at,
              j.timeout, j.created_at, j.updated_at, j.started_at, j.finished_at,
              j.exit_code, j.last_error, j.worker_id, j.lease_expires_at, j.options,
              j.queue, j.blocked),
ev AS (
    INSERT INTO queuectl_events (job_id, event, attempt, at, worker_id)
    SELECT id, 'processing', attempts, started_at, worker_id FROM claimed)
SELECT * FROM claimed;

-- name: claim_locked
-- description: claim_unlimited without its limit guard: run after lock_limited_queues, in its transaction.
WITH me AS (
    SELECT 1 FROM queuectl_workers WHERE id = %(worker)s::text AND NOT stop_requested),
next AS (
    SELECT seq FROM queuectl_jobs
    WHERE state IN ('pending', 'failed') AND NOT blocked
      AND run_at <= COALESCE(%(now)s::bigint,
                             (extract(epoch FROM statement_timestamp()) * 1000)::bigint)
      AND EXISTS (SELECT 1 FROM me)
      AND (%(queues)s::text[] IS NULL OR queue = ANY(%(queues)s::text[]))
      AND queue NOT IN (
          SELECT q.name FROM queuectl_queues q WHERE q.paused OR (q.max_running > 0 AND
              q.max_running <= (SELECT count(*) FROM queuectl_jobs r
                                WHERE r.state = 'processing' AND r.queue = q.name)))
    ORDER BY priority DESC, run_at, seq
    LIMIT 1 FOR UPDATE SKIP LOCKED),
claimed AS (
    UPDATE queuectl_jobs j
    SET state = 'processing', attempts = j.attempts + 1, worker_id = %(worker)s::text,
        started_at = COALESCE(%(now)s::bigint,
                              (extract(epoch FROM statement_timestamp()) * 1000)::bigint),
        updated_at = COALESCE(%(now)s::bigint,
                              (extract(epoch FROM statement_timestamp()) * 1000)::bigint),
        lease_expires_at = COALESCE(%(now)s::bigint,
                                    (extract(epoch FROM statement_timestamp()) * 1000)::bigint)
                           + %(lease)s::bigint,
        finished_at = NULL, output = NULL, output_truncated = false,
        cancel_requested = false
    FROM next WHERE j.seq = next.seq AND j.state IN ('pending', 'failed')
    RETURNING j.id, j.command, j.state, j.attempts, j.max_retries, j.priority, j.run_at,
              j.timeout, j.created_at, j.updated_at, j.started_at, j.finished_at,
              j.exit_code, j.last_error, j.worker_id, j.lease_expires_at, j.options,
              j.queue, j.blocked),
ev AS (
    INSERT INTO queuectl_events (job_id, event, attempt, at, worker_id)
    SELECT id, 'processing', attempts, started_at, worker_id FROM claimed)
SELECT * FROM claimed;

-- A cancel requested while the attempt ended (and not in time to kill it)
-- wins over a retry or the DLQ: "this attempt ends cancelled" is the job's
-- cancel_requested and an ending other than `completed`. The flag is read from
-- the row being updated, not from a separate scan: under READ COMMITTED, an
-- UPDATE that waited for a concurrent cancel's row lock re-reads only its
-- target row, so a flag read elsewhere would miss that cancel (reported
-- `cancelling`, then retried; tests/e2e/test_cancel_race.py).

-- name: finish
-- description: End an attempt held by a worker, with its event; a cancel requested meanwhile (read from the updated row) wins over a retry or the DLQ.
WITH done AS (
    UPDATE queuectl_jobs j
    SET state = CASE WHEN (j.cancel_requested AND %(state)s::text <> 'completed')
                     THEN 'cancelled' ELSE %(state)s::text END,
        updated_at = COALESCE(%(now)s::bigint,
                              (extract(epoch FROM statement_timestamp()) * 1000)::bigint),
        finished_at = CASE WHEN %(state)s::text = 'failed'
                                AND NOT (j.cancel_requested AND %(state)s::text <> 'completed')
                           THEN NULL
                           ELSE COALESCE(%(now)s::bigint,
                                (extract(epoch FROM statement_timestamp()) * 1000)::bigint)
                      END,
        run_at = CASE WHEN %(state)s::text = 'failed'
                           AND NOT (j.cancel_requested AND %(state)s::text <> 'completed')
                      THEN COALESCE(%(now)s::bigint,
                           (extract(epoch FROM statement_timestamp()) * 1000)::bigint)
                           + %(delay)s::bigint
                      ELSE j.run_at END,
        exit_code = %(exit_code)s::bigint,
        last_error = CASE WHEN (j.cancel_requested AND %(state)s::text <> 'completed')
                          THEN %(cancelled)s::text ELSE %(error)s::text END,
        lease_expires_at = NULL, output = %(output)s::text,
        output_truncated = %(truncated)s::boolean, cancel_requested = false
    WHERE j.id = %(id)s::text AND j.state = 'processing' AND j.worker_id = %(worker)s::text
          AND j.attempts = %(attempts)s::bigint
    RETURNING j.id, j.attempts, j.updated_at, j.run_at, j.state, j.last_error,
              j.has_dependents),
ev AS (
    INSERT INTO queuectl_events (job_id, event, attempt, at, worker_id, detail)
    SELECT id, CASE WHEN done.state = 'cancelled' THEN 'cancelled' ELSE %(event)s::text END,
           attempts, updated_at, %(worker)s::text,
           json_strip_nulls(json_build_object(
               'exit_code', %(exit_code)s::bigint, 'error', done.last_error,
               'duration', %(duration)s::float8,
               'run_at', CASE WHEN done.state = 'failed'
                         THEN to_char(to_timestamp((run_at) / 1000.0) AT TIME ZONE 'UTC',
                                      'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') END))::text
    FROM done)
SELECT state, has_dependents FROM done;

-- name: finish_claim
-- description: A worker's usual step, one round trip: finish (as above, the cancel flag read from the updated row), then, only if it matched and no queue has a limit, claim_unlimited's claim.
WITH done AS (
    UPDATE queuectl_jobs j
    SET state = CASE WHEN (j.cancel_requested AND %(state)s::text <> 'completed')
                     THEN 'cancelled' ELSE %(state)s::text END,
        updated_at = COALESCE(%(now)s::bigint,
                              (extract(epoch FROM statement_timestamp()) * 1000)::bigint),
        finished_at = CASE WHEN %(state)s::text = 'failed'
                                AND NOT (j.cancel_requested AND %(state)s::text <> 'completed')
                           THEN NULL
                           ELSE COALESCE(%(now)s::bigint,
                                (extract(epoch FROM statement_timestamp()) * 1000)::bigint)
                      END,
        run_at = CASE WHEN %(state)s::text = 'failed'
                           AND NOT (j.cancel_requested AND %(state)s::text <> 'completed')
                      THEN COALESCE(%(now)s::bigint,
                           (extract(epoch FROM statement_timestamp()) * 1000)::bigint)
                           + %(delay)s::bigint
                      ELSE j.run_at END,
        exit_code = %(exit_code)s::bigint,
        last_error = CASE WHEN (j.cancel_requested AND %(state)s::text <> 'completed')
                          THEN %(cancelled)s::text ELSE %(error)s::text END,
        lease_expires_at = NULL, output = %(output)s::text,
        output_truncated = %(truncated)s::boolean, cancel_requested = false
    WHERE j.id = %(id)s::text AND j.state = 'processing' AND j.worker_id = %(worker)s::text
          AND j.attempts = %(attempts)s::bigint
    RETURNING j.id, j.attempts, j.updated_at, j.run_at, j.state, j.last_error,
              j.has_dependents),
ev AS (
    INSERT INTO queuectl_events (job_id, event, attempt, at, worker_id, detail)
    SELECT id, CASE WHEN done.state = 'cancelled' THEN 'cancelled' ELSE %(event)s::text END,
           attempts, updated_at, %(worker)s::text,
           json_strip_nulls(json_build_object(
               'exit_code', %(exit_code)s::bigint, 'error', done.last_error,
               'duration', %(duration)s::float8,
               'run_at', CASE WHEN done.state = 'failed'
                         THEN to_char(to_timestamp((run_at) / 1000.0) AT TIME ZONE 'UTC',
                                      'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') END))::text
    FROM done),
me AS (
    SELECT 1 FROM queuectl_workers WHERE id = %(worker)s::text AND NOT stop_requested
    AND EXISTS (SELECT 1 FROM done)
    AND NOT EXISTS (SELECT 1 FROM queuectl_queues WHERE max_running > 0)),
next AS (
    SELECT seq FROM queuectl_jobs
    WHERE state IN ('pending', 'failed') AND NOT blocked
      AND run_at <= COALESCE(%(now)s::bigint,
                             (extract(epoch FROM statement_timestamp()) * 1000)::bigint)
      AND EXISTS (SELECT 1 FROM me)
      AND (%(queues)s::text[] IS NULL OR queue = ANY(%(queues)s::text[]))
      AND queue NOT IN (
          SELECT q.name FROM queuectl_queues q WHERE q.paused OR (q.max_running > 0 AND
              q.max_running <= (SELECT count(*) FROM queuectl_jobs r
                                WHERE r.state = 'processing' AND r.queue = q.name)))
    ORDER BY priority DESC, run_at, seq
    LIMIT 1 FOR UPDATE SKIP LOCKED),
claimed AS (
    UPDATE queuectl_jobs j
    SET state = 'processing', attempts = j.attempts + 1, worker_id = %(worker)s::text,
        started_at = COALESCE(%(now)s::bigint,
                              (extract(epoch FROM statement_timestamp()) * 1000)::bigint),
        updated_at = COALESCE(%(now)s::bigint,
                              (extract(epoch FROM statement_timestamp()) * 1000)::bigint),
        lease_expires_at = COALESCE(%(now)s::bigint,
                                    (extract(epoch FROM statement_timestamp()) * 1000)::bigint)
                           + %(lease)s::bigint,
        finished_at = NULL, output = NULL, output_truncated = false,
        cancel_requested = false
    FROM next WHERE j.seq = next.seq AND j.state IN ('pending', 'failed')
    RETURNING j.id, j.command, j.state, j.attempts, j.max_retries, j.priority, j.run_at,
              j.timeout, j.created_at, j.updated_at, j.started_at, j.finished_at,
              j.exit_code, j.last_error, j.worker_id, j.lease_expires_at, j.options,
              j.queue, j.blocked),
ev2 AS (
    INSERT INTO queuectl_events (job_id, event, attempt, at, worker_id)
    SELECT id, 'processing', attempts, started_at, worker_id FROM claimed)
SELECT d.state, d.has_dependents, c.* FROM done d LEFT JOIN claimed c ON true;

-- name: hand_back
-- description: An interrupted attempt handed back: failed, due now, not charged (max_retries + 1), with its retry_scheduled event (detail interrupted); guard: processing, same worker and attempt, no cancel requested.
WITH done AS (
    UPDATE queuectl_jobs
    SET state = 'failed',
        updated_at = COALESCE(%(now)s::bigint,
                              (extract(epoch FROM statement_timestamp()) * 1000)::bigint),
        run_at = COALESCE(%(now)s::bigint,
                          (extract(epoch FROM statement_timestamp()) * 1000)::bigint),
        max_retries = CASE WHEN max_retries < 2147483647 THEN max_retries + 1
                           ELSE max_retries END,
        finished_at = NULL, exit_code = %(exit_code)s::bigint, last_error = %(error)s::text,
        lease_expires_at = NULL, output = %(output)s::text,
        output_truncated = %(truncated)s::boolean
    WHERE id = %(id)s::text AND state = 'processing' AND worker_id = %(worker)s::text
          AND attempts = %(attempts)s::bigint AND NOT cancel_requested
    RETURNING id, updated_at)
INSERT INTO queuectl_events (job_id, event, attempt, at, worker_id, detail)
SELECT id, 'retry_scheduled', %(attempts)s::bigint, updated_at, %(worker)s::text,
       json_build_object('error', %(error)s::text, 'duration', %(duration)s::float8,
                         'run_at', to_char(to_timestamp(updated_at / 1000.0) AT TIME ZONE 'UTC',
                                           'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                         'interrupted', true)::text
FROM done;

-- name: held_state
-- description: Is a job taken ahead still held by the worker (pending, reserved by it, with the attempts it was taken with), and is its queue paused? (This backend takes no job ahead: never held.)
SELECT state = 'pending' AND reserved_by = %(worker)s::text
       AND attempts = %(attempts)s::bigint,
       EXISTS (SELECT 1 FROM queuectl_queues q WHERE q.name = j.queue AND q.paused)
FROM queuectl_jobs j WHERE id = %(id)s::text;

-- name: held_by
-- description: Jobs processing under a worker, oldest claim first.
SELECT id, command, state, attempts, max_retries, priority, run_at, timeout, created_at,
       updated_at, started_at, finished_at, exit_code, last_error, worker_id,
       lease_expires_at, options, queue, blocked
FROM queuectl_jobs WHERE state = 'processing' AND worker_id = %(worker)s
ORDER BY started_at;

-- ================================================================== heartbeat

-- name: beat_worker_upsert
-- description: Renew a worker's heartbeat; a row swept as stale while it was frozen comes back.
INSERT INTO queuectl_workers (id, host, pid, started_at, heartbeat_at, expires_at)
VALUES (%(worker)s::text, %(host)s::text, %(pid)s::bigint, %(started)s::bigint,
        COALESCE(%(now)s::bigint, (extract(epoch FROM statement_timestamp()) * 1000)::bigint),
        COALESCE(%(now)s::bigint, (extract(epoch FROM statement_timestamp()) * 1000)::bigint)
        + %(lease)s::bigint)
ON CONFLICT (id) DO UPDATE
SET heartbeat_at = EXCLUDED.heartbeat_at, expires_at = EXCLUDED.expires_at;

-- name: beat_worker
-- description: Renew a worker's heartbeat (a worker this connection did not register).
UPDATE queuectl_workers
SET heartbeat_at = COALESCE(%(now)s::bigint,
                            (extract(epoch FROM statement_timestamp()) * 1000)::bigint),
    expires_at = COALESCE(%(now)s::bigint,
                          (extract(epoch FROM statement_timestamp()) * 1000)::bigint)
                 + %(lease)s::bigint
WHERE id = %(worker)s::text;

-- name: renew_lease
-- description: The running job's new lease, if the worker still holds it.
UPDATE queuectl_jobs
SET lease_expires_at = COALESCE(%(now)s::bigint,
                                (extract(epoch FROM statement_timestamp()) * 1000)::bigint)
                       + %(lease)s::bigint
WHERE id = %(job)s::text AND state = 'processing' AND worker_id = %(worker)s::text;

-- name: insert_worker
-- description: A worker's row; returns its start time.
INSERT INTO queuectl_workers (id, host, pid, started_at, heartbeat_at, expires_at)
VALUES (%(worker)s, %(host)s, %(pid)s,
        COALESCE(%(now)s::bigint, (extract(epoch FROM statement_timestamp()) * 1000)::bigint),
        COALESCE(%(now)s::bigint, (extract(epoch FROM statement_timestamp()) * 1000)::bigint),
        COALESCE(%(now)s::bigint, (extract(epoch FROM statement_timestamp()) * 1000)::bigint)
        + %(lease)s::bigint)
RETURNING started_at;

-- ===================================================================== rescue

-- name: any_expired
-- description: Is any running job's lease expired before %(seen)s (or its worker gone), or any worker row to forget?
SELECT EXISTS (
           SELECT 1 FROM queuectl_jobs j
           WHERE state = 'processing' AND (lease_expires_at < %(seen)s::bigint
                 OR NOT EXISTS (SELECT 1 FROM queuectl_workers w WHERE w.id = j.worker_id)))
       OR EXISTS (SELECT 1 FROM queuectl_workers WHERE expires_at < %(forget)s::bigint);

-- name: forget_workers
-- description: Rows of workers expired before %(forget)s (kept a while: they say which were asked to stop).
DELETE FROM queuectl_workers WHERE expires_at < %(forget)s::bigint;

-- name: expired
-- description: Running jobs to take back (lease expired before %(seen)s, or worker gone), locked, skipping those another rescuer holds (JOB_COLS, has_dependents, cancel_requested).
SELECT id, command, state, attempts, max_retries, priority, run_at, timeout, created_at,
       updated_at, started_at, finished_at, exit_code, last_error, worker_id,
       lease_expires_at, options, queue, blocked, has_dependents, cancel_requested
FROM queuectl_jobs j
WHERE state = 'processing' AND (lease_expires_at < %(seen)s::bigint
      OR NOT EXISTS (SELECT 1 FROM queuectl_workers w WHERE w.id = j.worker_id))
ORDER BY lease_expires_at LIMIT 200
FOR UPDATE SKIP LOCKED;

-- name: rescue
-- description: Take a job back from its worker (guard: processing, same worker and attempt).
UPDATE queuectl_jobs
SET state = %(state)s::text, updated_at = %(now)s::bigint, finished_at = %(finished)s::bigint,
    run_at = %(run_at)s::bigint, exit_code = NULL, last_error = %(error)s::text,
    lease_expires_at = NULL
WHERE id = %(id)s::text AND state = 'processing' AND worker_id = %(worker)s::text
      AND attempts = %(attempts)s::bigint;

-- ======================================================================== DLQ

-- name: dlq_retry_job
-- description: One dead job (%(id)s) is pending again, attempts reset, with its event.
WITH r AS (
    UPDATE queuectl_jobs
    SET state = 'pending', attempts = 0,
        run_at = COALESCE(%(now)s::bigint,
                          (extract(epoch FROM statement_timestamp()) * 1000)::bigint),
        updated_at = COALESCE(%(now)s::bigint,
                              (extract(epoch FROM statement_timestamp()) * 1000)::bigint),
        finished_at = NULL
    WHERE id = %(id)s::text AND state = 'dead'
    RETURNING id, updated_at)
INSERT INTO queuectl_events (job_id, event, attempt, at)
SELECT id, 'dlq_retry', 0, updated_at FROM r;

-- name: dlq_retry_all
-- description: Every dead job (of %(queue)s, with %(exit_code)s, if given) is pending again, with its event.
WITH r AS (
    UPDATE queuectl_jobs
    SET state = 'pending', attempts = 0,
        run_at = COALESCE(%(now)s::bigint,
                          (extract(epoch FROM statement_timestamp()) * 1000)::bigint),
        updated_at = COALESCE(%(now)s::bigint,
                              (extract(epoch FROM statement_timestamp()) * 1000)::bigint),
        finished_at = NULL
    WHERE state = 'dead' AND (%(queue)s::text IS NULL OR queue = %(queue)s::text)
          AND (%(exit_code)s::bigint IS NULL OR exit_code = %(exit_code)s::bigint)
    RETURNING id, updated_at)
INSERT INTO queuectl_events (job_id, event, attempt, at)
SELECT id, 'dlq_retry', 0, updated_at FROM r;

-- name: dead_jobs
-- description: Dead jobs (of %(queue)s, with %(exit_code)s, if given), oldest first.
SELECT id, command, state, attempts, max_retries, priority, run_at, timeout, created_at,
       updated_at, started_at, finished_at, exit_code, last_error, worker_id,
       lease_expires_at, options, queue, blocked
FROM queuectl_jobs
WHERE state = 'dead' AND (%(queue)s::text IS NULL OR queue = %(queue)s::text)
  AND (%(exit_code)s::bigint IS NULL OR exit_code = %(exit_code)s::bigint)
ORDER BY seq;

-- name: job_state
-- description: One job's state.
SELECT state FROM queuectl_jobs WHERE id = %(id)s;

-- ====================================================================== purge

-- name: purge_unsettled
-- description: Jobs about to be purged whose dependents are still blocked (settled first).
SELECT id FROM queuectl_jobs
WHERE state = ANY(%(states)s::text[]) AND finished_at <= %(cutoff)s::bigint
  AND has_dependents
  AND EXISTS (SELECT 1 FROM queuectl_job_deps d JOIN queuectl_jobs j ON j.id = d.job_id
              WHERE d.dep_id = queuectl_jobs.id AND j.blocked);

-- name: purge
-- description: Delete jobs in %(states)s that finished at or before %(cutoff)s (events go with them).
DELETE FROM queuectl_jobs
WHERE state = ANY(%(states)s::text[]) AND finished_at <= %(cutoff)s::bigint;

-- ================================================================== schedules

-- name: add_schedule
-- description: A new schedule (nothing if the name exists).
INSERT INTO queuectl_schedules (name, cron, tz, job, next_run_at, created_at)
VALUES (%(name)s, %(cron)s, %(tz)s, %(job)s, %(first)s, %(now)s)
ON CONFLICT (name) DO NOTHING;

-- name: replace_schedule
-- description: A schedule, replacing one of the same name.
INSERT INTO queuectl_schedules (name, cron, tz, job, next_run_at, created_at)
VALUES (%(name)s, %(cron)s, %(tz)s, %(job)s, %(first)s, %(now)s)
ON CONFLICT (name) DO UPDATE SET cron = EXCLUDED.cron, tz = EXCLUDED.tz, job = EXCLUDED.job,
    next_run_at = EXCLUDED.next_run_at, last_run_at = NULL, created_at = EXCLUDED.created_at;

-- name: schedules
-- description: Every schedule, by name.
SELECT name, cron, tz, job, next_run_at, last_run_at FROM queuectl_schedules ORDER BY name;

-- name: remove_schedule
-- description: Delete a schedule.
DELETE FROM queuectl_schedules WHERE name = %(name)s;

-- name: schedule_due
-- description: Is any schedule due now?
SELECT min(next_run_at) <= COALESCE(%(now)s::bigint,
                                    (extract(epoch FROM statement_timestamp()) * 1000)::bigint)
FROM queuectl_schedules;

-- name: due_schedules
-- description: The schedules due at %(now)s, in firing order; one another worker is firing is skipped.
SELECT name, cron, tz, job, next_run_at FROM queuectl_schedules
WHERE next_run_at <= %(now)s ORDER BY next_run_at, name
FOR UPDATE SKIP LOCKED;

-- name: schedule_fired
-- description: A schedule fired at %(at)s; it fires next at %(next)s.
UPDATE queuectl_schedules SET next_run_at = %(next)s, last_run_at = %(at)s
WHERE name = %(name)s;

-- ================================================================= jobs: reads

-- name: get_job
-- description: One job (JOB_COLS).
SELECT id, command, state, attempts, max_retries, priority, run_at, timeout, created_at,
       updated_at, started_at, finished_at, exit_code, last_error, worker_id,
       lease_expires_at, options, queue, blocked
FROM queuectl_jobs WHERE id = %(id)s;

-- name: get_job_output
-- description: One job (JOB_COLS, output, output_truncated).
SELECT id, command, state, attempts, max_retries, priority, run_at, timeout, created_at,
       updated_at, started_at, finished_at, exit_code, last_error, worker_id,
       lease_expires_at, options, queue, blocked, output, output_truncated
FROM queuectl_jobs WHERE id = %(id)s;

-- name: export_jobs
-- description: The next %(batch)s jobs after seq %(after)s, with their output (seq, JOB_COLS, output, output_truncated).
SELECT seq, id, command, state, attempts, max_retries, priority, run_at, timeout,
       created_at, updated_at, started_at, finished_at, exit_code, last_error, worker_id,
       lease_expires_at, options, queue, blocked, output, output_truncated
FROM queuectl_jobs WHERE seq > %(after)s ORDER BY seq LIMIT %(batch)s;

-- name: dependencies_of
-- description: (job, dependency) pairs of the jobs %(ids)s.
SELECT job_id, dep_id FROM queuectl_job_deps WHERE job_id = ANY(%(ids)s::text[])
ORDER BY job_id, dep_id;

-- name: existing_ids
-- description: Those of %(ids)s that exist.
SELECT id FROM queuectl_jobs WHERE id = ANY(%(ids)s::text[]);

-- name: list_jobs
-- description: Jobs (matching %(like)s, if given), oldest first.
SELECT id, command, state, attempts, max_retries, priority, run_at, timeout, created_at,
       updated_at, started_at, finished_at, exit_code, last_error, worker_id,
       lease_expires_at, options, queue, blocked
FROM queuectl_jobs
WHERE %(like)s::text IS NULL OR id ILIKE %(like)s::text ESCAPE '\'
      OR command ILIKE %(like)s::text ESCAPE '\'
ORDER BY seq LIMIT %(limit)s OFFSET %(offset)s;

-- name: list_jobs_newest
-- description: Jobs (matching %(like)s, if given), newest first.
SELECT id, command, state, attempts, max_retries, priority, run_at, timeout, created_at,
       updated_at, started_at, finished_at, exit_code, last_error, worker_id,
       lease_expires_at, options, queue, blocked
FROM queuectl_jobs
WHERE %(like)s::text IS NULL OR id ILIKE %(like)s::text ESCAPE '\'
      OR command ILIKE %(like)s::text ESCAPE '\'
ORDER BY seq DESC LIMIT %(limit)s OFFSET %(offset)s;

-- name: list_jobs_in_state
-- description: Jobs in %(state)s (matching %(like)s, if given), oldest first.
SELECT id, command, state, attempts, max_retries, priority, run_at, timeout, created_at,
       updated_at, started_at, finished_at, exit_code, last_error, worker_id,
       lease_expires_at, options, queue, blocked
FROM queuectl_jobs
WHERE state = %(state)s::text
  AND (%(like)s::text IS NULL OR id ILIKE %(like)s::text ESCAPE '\'
       OR command ILIKE %(like)s::text ESCAPE '\')
ORDER BY seq LIMIT %(limit)s OFFSET %(offset)s;

-- name: list_jobs_in_state_newest
-- description: Jobs in %(state)s (matching %(like)s, if given), newest first.
SELECT id, command, state, attempts, max_retries, priority, run_at, timeout, created_at,
       updated_at, started_at, finished_at, exit_code, last_error, worker_id,
       lease_expires_at, options, queue, blocked
FROM queuectl_jobs
WHERE state = %(state)s::text
  AND (%(like)s::text IS NULL OR id ILIKE %(like)s::text ESCAPE '\'
       OR command ILIKE %(like)s::text ESCAPE '\')
ORDER BY seq DESC LIMIT %(limit)s OFFSET %(offset)s;

-- name: list_jobs_in_queues
-- description: Jobs of %(queues)s (in %(state)s, matching %(like)s, if given), oldest first.
SELECT id, command, state, attempts, max_retries, priority, run_at, timeout, created_at,
       updated_at, started_at, finished_at, exit_code, last_error, worker_id,
       lease_expires_at, options, queue, blocked
FROM queuectl_jobs
WHERE queue = ANY(%(queues)s::text[])
  AND (%(state)s::text IS NULL OR state = %(state)s::text)
  AND (%(like)s::text IS NULL OR id ILIKE %(like)s::text ESCAPE '\'
       OR command ILIKE %(like)s::text ESCAPE '\')
ORDER BY seq LIMIT %(limit)s OFFSET %(offset)s;

-- name: list_jobs_in_queues_newest
-- description: Jobs of %(queues)s (in %(state)s, matching %(like)s, if given), newest first.
SELECT id, command, state, attempts, max_retries, priority, run_at, timeout, created_at,
       updated_at, started_at, finished_at, exit_code, last_error, worker_id,
       lease_expires_at, options, queue, blocked
FROM queuectl_jobs
WHERE queue = ANY(%(queues)s::text[])
  AND (%(state)s::text IS NULL OR state = %(state)s::text)
  AND (%(like)s::text IS NULL OR id ILIKE %(like)s::text ESCAPE '\'
       OR command ILIKE %(like)s::text ESCAPE '\')
ORDER BY seq DESC LIMIT %(limit)s OFFSET %(offset)s;

-- name: count_jobs
-- description: How many jobs there are.
SELECT count(*) FROM queuectl_jobs;

-- name: count_jobs_matching
-- description: How many jobs match %(like)s.
SELECT count(*) FROM queuectl_jobs
WHERE id ILIKE %(like)s::text ESCAPE '\' OR command ILIKE %(like)s::text ESCAPE '\';

-- name: count_jobs_in_state
-- description: How many jobs are in %(state)s.
SELECT count(*) FROM queuectl_jobs WHERE state = %(state)s::text;

-- name: count_jobs_in_state_matching
-- description: How many jobs in %(state)s match %(like)s.
SELECT count(*) FROM queuectl_jobs
WHERE state = %(state)s::text
  AND (id ILIKE %(like)s::text ESCAPE '\' OR command ILIKE %(like)s::text ESCAPE '\');

-- name: counts
-- description: Jobs per state.
SELECT state, count(*) FROM queuectl_jobs GROUP BY state;

-- name: queue_counts
-- description: Jobs per queue and state.
SELECT queue, state, count(*) FROM queuectl_jobs GROUP BY queue, state;

-- name: queue_settings
-- description: Every queue that has settings.
SELECT name, paused, max_running FROM queuectl_queues;

-- name: set_queue
-- description: Pause or resume a queue (%(paused)s), or set its limit (%(limit)s); NULL leaves either as it is.
INSERT INTO queuectl_queues (name, paused, max_running)
VALUES (%(name)s, COALESCE(%(paused)s::boolean, false), COALESCE(%(limit)s::bigint, 0))
ON CONFLICT (name) DO UPDATE SET
    paused = COALESCE(%(paused)s::boolean, queuectl_queues.paused),
    max_running = COALESCE(%(limit)s::bigint, queuectl_queues.max_running);

-- name: remove_queue
-- description: Delete queue %(name)s's settings unless it has jobs.
DELETE FROM queuectl_queues
WHERE name = %(name)s::text
  AND NOT EXISTS (SELECT 1 FROM queuectl_jobs WHERE queue = %(name)s::text);

-- name: queue_jobs
-- description: How many jobs queue %(name)s has, and whether it has settings.
SELECT (SELECT count(*) FROM queuectl_jobs WHERE queue = %(name)s::text),
       EXISTS (SELECT 1 FROM queuectl_queues WHERE name = %(name)s::text);

-- name: cancel_requested
-- description: A job's cancel flag.
SELECT cancel_requested FROM queuectl_jobs WHERE id = %(id)s;

-- name: any_running
-- description: Is any job running (of %(queues)s, if given)?
SELECT 1 FROM queuectl_jobs
WHERE state = 'processing'
  AND (%(queues)s::text[] IS NULL OR queue = ANY(%(queues)s::text[]))
LIMIT 1;

-- name: any_waiting
-- description: Is any job pending or failed outside paused queues (of %(queues)s, if given)?
SELECT 1 FROM queuectl_jobs
WHERE state IN ('pending', 'failed')
  AND queue NOT IN (SELECT name FROM queuectl_queues WHERE paused)
  AND (%(queues)s::text[] IS NULL OR queue = ANY(%(queues)s::text[]))
LIMIT 1;

-- name: next_due
-- description: Milliseconds from now until the earliest job a claim could take is due (NULL: none).
SELECT min(run_at) - COALESCE(%(now)s::bigint,
                              (extract(epoch FROM statement_timestamp()) * 1000)::bigint)
FROM queuectl_jobs
WHERE state IN ('pending', 'failed') AND NOT blocked
  AND (%(queues)s::text[] IS NULL OR queue = ANY(%(queues)s::text[]))
  AND queue NOT IN (
      SELECT q.name FROM queuectl_queues q WHERE q.paused OR (q.max_running > 0 AND
          q.max_running <= (SELECT count(*) FROM queuectl_jobs r
                            WHERE r.state = 'processing' AND r.queue = q.name)));

-- ===================================================================== events

-- name: event_seq_bounds
-- description: The oldest and newest event seq.
SELECT min(seq), max(seq) FROM queuectl_events;

-- name: event_at_from
-- description: The time of the first event at or after seq %(seq)s.
SELECT at FROM queuectl_events WHERE seq >= %(seq)s ORDER BY seq LIMIT 1;

-- name: attempt_ends
-- description: Attempt- and job-ending events (%(events)s) with seq >= %(from_seq)s, at >= %(since)s and seq > %(after)s, oldest first.
SELECT e.seq, e.job_id, j.queue, e.event, e.at, e.worker_id, e.detail
FROM queuectl_events e JOIN queuectl_jobs j ON j.id = e.job_id
WHERE e.event = ANY(%(events)s::text[])
  AND e.seq >= %(from_seq)s::bigint AND e.at >= %(since)s::bigint
  AND e.seq > %(after)s::bigint
ORDER BY e.seq LIMIT %(limit)s;

-- name: event_counts
-- description: Ending events (%(events)s) since %(since)s, counted per %(bucket)s ms, event and whether a worker wrote it.
SELECT (at - %(since)s::bigint) / %(bucket)s::bigint, event, worker_id IS NOT NULL, count(*)
FROM queuectl_events
WHERE seq >= %(from_seq)s::bigint AND at >= %(since)s::bigint
  AND event = ANY(%(events)s::text[])
GROUP BY 1, 2, 3;

-- name: recent_failures
-- description: The newest failed attempts since %(since)s, newest first.
SELECT e.seq, e.job_id, j.queue, e.event, e.at, e.worker_id, e.detail
FROM queuectl_events e JOIN queuectl_jobs j ON j.id = e.job_id
WHERE e.seq >= %(from_seq)s AND e.at >= %(since)s
  AND (e.event = 'lease_expired'
       OR e.event IN ('retry_scheduled', 'dead') AND e.worker_id IS NOT NULL)
ORDER BY e.seq DESC LIMIT %(limit)s;

-- name: max_event_seq
-- description: The newest event's seq (0 if none).
SELECT coalesce(max(seq), 0) FROM queuectl_events;

-- name: history
-- description: The newest %(limit)s events, newest first.
SELECT job_id, event, attempt, at, worker_id, detail FROM queuectl_events
ORDER BY seq DESC LIMIT %(limit)s;

-- name: job_history
-- description: The newest %(limit)s events of job %(job)s, newest first.
SELECT job_id, event, attempt, at, worker_id, detail FROM queuectl_events
WHERE job_id = %(job)s::text ORDER BY seq DESC LIMIT %(limit)s;

-- ==================================================================== workers

-- name: delete_worker
-- description: A worker that exits removes its row.
DELETE FROM queuectl_workers WHERE id = %(worker)s;

-- name: stop_requested
-- description: A worker's stop flag.
SELECT stop_requested FROM queuectl_workers WHERE id = %(worker)s;

-- name: request_stop
-- description: Flag every worker alive now to stop; their ids and start times.
UPDATE queuectl_workers SET stop_requested = true
WHERE expires_at >= COALESCE(%(now)s::bigint,
                             (extract(epoch FROM statement_timestamp()) * 1000)::bigint)
RETURNING id, started_at;

-- name: active_workers
-- description: Workers alive now with their current job, and now.
SELECT w.id, w.host, w.pid, w.started_at, w.heartbeat_at, w.stop_requested,
       (SELECT j.id FROM queuectl_jobs j WHERE j.state = 'processing'
        AND j.worker_id = w.id LIMIT 1),
       COALESCE(%(now)s::bigint, (extract(epoch FROM statement_timestamp()) * 1000)::bigint)
FROM queuectl_workers w
WHERE w.expires_at >= COALESCE(%(now)s::bigint,
                               (extract(epoch FROM statement_timestamp()) * 1000)::bigint)
ORDER BY w.started_at, w.id;

-- ===================================================================== config

-- name: config
-- description: Every config key set, with its JSON value.
SELECT key, value FROM queuectl_config;

-- name: config_set
-- description: Set a config key (JSON value).
INSERT INTO queuectl_config (key, value) VALUES (%(key)s, %(value)s)
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value;

-- ==================================================================== metrics
-- (/metrics: read at each scrape; see web/metrics.py)

-- name: metrics_ready
-- description: Per queue: jobs ready to run now (pending or failed, not blocked, due) and the oldest one's wait in ms (the jobs_due index: only ready jobs are read).
WITH t AS (SELECT COALESCE(%(now)s::bigint,
                           (extract(epoch FROM statement_timestamp()) * 1000)::bigint) AS now)
SELECT queue, count(*), min(t.now) - min(run_at) FROM queuectl_jobs, t
WHERE state IN ('pending', 'failed') AND NOT blocked AND run_at <= t.now
GROUP BY queue;

-- name: metrics_workers
-- description: Workers alive now, counted by whether they hold a running job (true) or not.
SELECT w.id IN (SELECT j.worker_id FROM queuectl_jobs j WHERE j.state = 'processing'),
       count(*)
FROM queuectl_workers w
WHERE w.expires_at >= COALESCE(%(now)s::bigint,
                               (extract(epoch FROM statement_timestamp()) * 1000)::bigint)
GROUP BY 1;

-- name: metrics_events
-- description: Enqueues and attempt- or job-ending events (%(events)s) after seq %(after)s, oldest first, with the job's queue (a range of the primary key).
SELECT e.seq, j.queue, e.event, e.at, e.worker_id, e.detail
FROM queuectl_events e JOIN queuectl_jobs j ON j.id = e.job_id
WHERE e.seq > %(after)s::bigint AND e.event = ANY(%(events)s::text[])
ORDER BY e.seq LIMIT %(limit)s;
