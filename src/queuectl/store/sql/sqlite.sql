-- queuectl's SQLite statements (schema: migrations/sqlite/). Read beside
-- postgres.sql: the same name is the same operation. Job rows are selected as
-- JOB_COLS (store/core.py): id, command, state, attempts, max_retries,
-- priority, run_at, timeout, created_at, updated_at, started_at, finished_at,
-- exit_code, last_error, worker_id, lease_expires_at, options, queue, blocked.
-- Lists of ids travel as one JSON array read with json_each (no statement is
-- built for a list's length).

-- ===================================================================== schema

-- name: meta
-- description: The app name and schema version this database was made by.
SELECT key, value FROM meta WHERE key IN ('app', 'schema_version');

-- name: tables
-- description: Every table's name (an empty file has none; a foreign database has others).
SELECT name FROM sqlite_master WHERE type = 'table';

-- name: set_meta
-- description: Record the app name (?1) and schema version (?2) after a migration.
INSERT OR REPLACE INTO meta (key, value) VALUES ('app', ?), ('schema_version', ?);

-- name: journal_mode
-- description: The journal mode (WAL once the schema exists).
PRAGMA journal_mode;

-- name: set_wal
-- description: Switch the file to WAL (once, when the schema is created).
PRAGMA journal_mode = WAL;

-- name: sync_full
-- description: CLI connections: a change is on disk before it is reported.
PRAGMA synchronous = FULL;

-- name: sync_normal
-- description: Worker connections: a power cut may roll back the last few commits.
PRAGMA synchronous = NORMAL;

-- name: foreign_keys_on
-- description: Enforce foreign keys (events and dependencies of deleted jobs go too).
PRAGMA foreign_keys = ON;

-- name: foreign_keys_off
-- description: Off while a migration rebuilds tables that keys point at.
PRAGMA foreign_keys = OFF;

-- name: foreign_key_check
-- description: Any row a migration left pointing nowhere.
PRAGMA foreign_key_check;

-- name: data_version
-- description: Changes when another connection commits (idle workers poll it).
PRAGMA data_version;

-- name: begin_immediate
-- description: A write transaction that takes the write lock up front.
BEGIN IMMEDIATE;

-- name: commit
-- description: Commit the open transaction.
COMMIT;

-- name: rollback
-- description: Roll back the open transaction.
ROLLBACK;

-- ================================================================ jobs: writes

-- name: insert_job
-- description: One new pending job (positional: id .. timeout, created_at, updated_at, options, queue, blocked).
INSERT INTO jobs (id, command, max_retries, priority, run_at, timeout,
                  created_at, updated_at, options, queue, blocked)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?);

-- name: max_seq
-- description: The newest job's seq (0 if none): new rows get seqs above it.
SELECT coalesce(max(seq), 0) FROM jobs;

-- name: bulk_jobs
-- description: A run of new jobs alike but for id and command ([id, command] pairs in ?2; needs SQLite 3.38).
INSERT INTO jobs (id, command, max_retries, priority, run_at, timeout,
                  created_at, updated_at, options, queue, blocked)
SELECT value->>0, value->>1, ?3, ?4, ?5, ?6, ?1, ?1, ?7, ?8, ?9 FROM json_each(?2);

-- name: bulk_events
-- description: The enqueued events of every job inserted after seq ?2, at ?1.
INSERT INTO events (job_id, event, attempt, at)
SELECT id, 'enqueued', 0, ?1 FROM jobs WHERE seq > ?2 ORDER BY seq;

-- name: import_job
-- description: One exported job with its state, times and output.
INSERT INTO jobs (id, command, state, attempts, max_retries, priority, run_at, timeout,
                  created_at, updated_at, started_at, finished_at, exit_code, last_error,
                  output, output_truncated, options, queue, blocked)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?);

-- name: insert_event
-- description: One event (job_id, event, attempt, at, worker_id, detail).
INSERT INTO events (job_id, event, attempt, at, worker_id, detail)
VALUES (?, ?, ?, ?, ?, ?);

-- name: existing_commands
-- description: id and command of those of :ids that exist.
SELECT id, command FROM jobs WHERE id IN (SELECT value FROM json_each(:ids));

-- name: plan_dependencies
-- description: id and state of the dependencies (:ids) a new batch names.
SELECT id, state FROM jobs WHERE id IN (SELECT value FROM json_each(:ids));

-- name: add_dependency
-- description: A new job (?1) runs after another (?2).
INSERT INTO job_deps (job_id, dep_id) VALUES (?, ?);

-- name: mark_has_dependents
-- description: Jobs (:ids) that now have dependents settle them when they end.
UPDATE jobs SET has_dependents = 1
WHERE id IN (SELECT value FROM json_each(:ids)) AND has_dependents = 0;

-- name: unblock_dependents
-- description: Dependents of jobs that just ended (:ids) whose dependencies have all completed can run.
UPDATE jobs SET blocked = 0
WHERE blocked = 1 AND state IN ('pending', 'failed')
  AND id IN (SELECT job_id FROM job_deps WHERE dep_id IN (SELECT value FROM json_each(:ids)))
  AND NOT EXISTS (SELECT 1 FROM job_deps d JOIN jobs p ON p.id = d.dep_id
                  WHERE d.job_id = jobs.id AND p.state <> 'completed');

-- name: doomed_dependents
-- description: Waiting dependents of jobs (:ids) that ended dead or cancelled: (job, dependency, its state, attempts).
SELECT d.job_id, d.dep_id, p.state, j.attempts FROM job_deps d
JOIN jobs p ON p.id = d.dep_id JOIN jobs j ON j.id = d.job_id
WHERE d.dep_id IN (SELECT value FROM json_each(:ids)) AND p.state IN ('dead', 'cancelled')
  AND j.state IN ('pending', 'failed')
ORDER BY j.seq, d.dep_id;

-- name: cancel_waiting
-- description: A pending or failed job (:id) ends cancelled with :error (a reservation it had ends).
UPDATE jobs SET state = 'cancelled', blocked = 0, updated_at = :now, finished_at = :now,
       last_error = :error, reserved_by = NULL, reserved_until = NULL
WHERE id = :id AND state IN ('pending', 'failed');

-- name: job_for_cancel
-- description: What a cancel needs to know of a job: state, attempts, has_dependents.
SELECT state, attempts, has_dependents FROM jobs WHERE id = :id;

-- name: request_cancel
-- description: Flag a running job for its worker to kill and end as cancelled.
UPDATE jobs SET cancel_requested = 1 WHERE id = :id;

-- name: job_for_remove
-- description: What a remove needs to know of a job: state, has_dependents.
SELECT state, has_dependents FROM jobs WHERE id = :id;

-- name: waiting_dependents
-- description: The waiting (pending or failed) dependents of job :id: (job, attempts), in seq order.
SELECT j.id, j.attempts FROM job_deps d JOIN jobs j ON j.id = d.job_id
WHERE d.dep_id = :id AND j.state IN ('pending', 'failed')
ORDER BY j.seq;

-- name: remove_job
-- description: Delete a job that is not running (its events, output and dependency rows go with it).
DELETE FROM jobs
WHERE id = :id AND state IN ('pending', 'failed', 'completed', 'dead', 'cancelled');

-- name: dependency_states
-- description: The jobs job :id runs after, with their states, in seq order.
SELECT p.id, p.state FROM job_deps d JOIN jobs p ON p.id = d.dep_id
WHERE d.job_id = :id
ORDER BY p.seq;

-- name: requeue_job
-- description: A completed, dead or cancelled job (:id) is pending again, attempts reset, not reserved (:blocked: a dependency has not completed).
UPDATE jobs SET state = 'pending', attempts = 0, run_at = :now, updated_at = :now,
       finished_at = NULL, cancel_requested = 0, blocked = :blocked,
       reserved_by = NULL, reserved_until = NULL
WHERE id = :id AND state IN ('completed', 'dead', 'cancelled');

-- name: edit_job
-- description: Change a waiting (pending or failed) job's priority, run_at, max_retries or timeout; NULL leaves one as it is. A job taken ahead loses its reservation: its worker, holding the old values, does not start it.
UPDATE jobs SET priority = coalesce(:priority, priority), run_at = coalesce(:run_at, run_at),
       max_retries = coalesce(:max_retries, max_retries),
       timeout = coalesce(:timeout, timeout), updated_at = :now,
       reserved_by = NULL, reserved_until = NULL
WHERE id = :id AND state IN ('pending', 'failed');

-- name: cancel_candidates
-- description: id and state of the jobs in :states (of the :queues JSON array, if given), oldest first.
SELECT id, state FROM jobs
WHERE state IN (SELECT value FROM json_each(:states))
  AND (:queues IS NULL OR queue IN (SELECT value FROM json_each(:queues)))
ORDER BY seq;

-- ====================================================== claim, finish, release

-- name: worker_may_claim
-- description: The claiming worker's stop flag (no row: it may not claim).
SELECT stop_requested FROM workers WHERE id = ?;

-- A pending job taken ahead is reserved (schema version 6): reserved_by names
-- the worker holding it, reserved_until is the reservation's end, renewed by
-- that worker's heartbeat. It stays `pending`; a claim skips it while the
-- reservation lasts and its worker's row exists: it is free if
--     reserved_until IS NULL OR reserved_until < now
--     OR NOT EXISTS (SELECT 1 FROM workers w WHERE w.id = jobs.reserved_by)
-- (written out in ready, ready_in_queues and next_due; only reserved rows,
-- few, ever evaluate the subquery).

-- name: ready
-- description: The claim's look for the best ready job at ?1 (seq, JOB_COLS), outside paused queues and queues at their limit, not reserved by a live worker.
SELECT seq, id, command, state, attempts, max_retries, priority, run_at, timeout,
       created_at, updated_at, started_at, finished_at, exit_code, last_error,
       worker_id, lease_expires_at, options, queue, blocked
FROM jobs INDEXED BY jobs_ready
WHERE state IN ('pending', 'failed') AND blocked = 0 AND run_at <= ?1
  AND queue NOT IN (SELECT name FROM queues WHERE paused = 1 OR (max_running > 0
      AND max_running <= (SELECT count(*) FROM jobs r
                          WHERE r.state = 'processing' AND r.queue = queues.name)))
  AND (reserved_until IS NULL OR reserved_until < ?1
       OR NOT EXISTS (SELECT 1 FROM workers w WHERE w.id = jobs.reserved_by))
ORDER BY priority DESC, run_at, seq LIMIT 1;

-- name: ready_in_queues
-- description: ready, for a worker of some queues only (?2: their names as a JSON array).
SELECT seq, id, command, state, attempts, max_retries, priority, run_at, timeout,
       created_at, updated_at, started_at, finished_at, exit_code, last_error,
       worker_id, lease_expires_at, options, queue, blocked
FROM jobs INDEXED BY jobs_ready
WHERE state IN ('pending', 'failed') AND blocked = 0 AND run_at <= ?1
  AND queue NOT IN (SELECT name FROM queues WHERE paused = 1 OR (max_running > 0
      AND max_running <= (SELECT count(*) FROM jobs r
                          WHERE r.state = 'processing' AND r.queue = queues.name)))
  AND queue IN (SELECT value FROM json_each(?2))
  AND (reserved_until IS NULL OR reserved_until < ?1
       OR NOT EXISTS (SELECT 1 FROM workers w WHERE w.id = jobs.reserved_by))
ORDER BY priority DESC, run_at, seq LIMIT 1;

-- name: queue_limited
-- description: Does this queue have a concurrency limit? (nothing is taken ahead from one)
SELECT 1 FROM queues WHERE name = ? AND max_running > 0;

-- name: claim
-- description: The job at seq ?5 becomes processing for a worker, its attempt counted (a reservation it had ends).
UPDATE jobs SET state = 'processing', attempts = attempts + 1, worker_id = ?,
       started_at = ?, updated_at = ?, lease_expires_at = ?, finished_at = NULL,
       cancel_requested = 0, output = NULL, output_truncated = 0,
       reserved_by = NULL, reserved_until = NULL
WHERE seq = ? AND state IN ('pending', 'failed');

-- name: reserve
-- description: A job taken ahead (seq ?3) is reserved for worker ?1 until ?2; it stays pending (no attempt, no event).
UPDATE jobs SET reserved_by = ?, reserved_until = ?
WHERE seq = ? AND state = 'pending' AND attempts = 0;

-- name: finish_flags
-- description: A finishing job's cancel flag and whether it has dependents.
SELECT cancel_requested, has_dependents FROM jobs WHERE id = ?;

-- name: finish
-- description: End an attempt held by a worker (guard: processing, same worker and attempt).
UPDATE jobs SET state = ?, updated_at = ?, finished_at = ?, run_at = ?,
       exit_code = ?, last_error = ?, lease_expires_at = NULL, cancel_requested = 0,
       output = ?, output_truncated = ?
WHERE id = ? AND state = 'processing' AND worker_id = ? AND attempts = ?;

-- name: hand_back
-- description: An interrupted attempt handed back: failed, due at :now, not charged (max_retries + 1); guard: processing, same worker and attempt, no cancel requested.
UPDATE jobs SET state = 'failed',
       max_retries = CASE WHEN max_retries < 2147483647 THEN max_retries + 1
                          ELSE max_retries END,
       updated_at = :now, run_at = :now, finished_at = NULL, exit_code = :exit_code,
       last_error = :error, lease_expires_at = NULL, output = :output,
       output_truncated = :truncated
WHERE id = :id AND state = 'processing' AND worker_id = :worker AND attempts = :attempts
  AND cancel_requested = 0;

-- Jobs taken ahead are held while `pending AND reserved_by = worker AND
-- attempts = the attempts it was taken with` (the guard of held_state,
-- start_held and finish_held).

-- name: held_state
-- description: Is a job taken ahead still held by :worker (pending, reserved by it, :attempts as taken), and is its queue paused?
SELECT state = 'pending' AND reserved_by = :worker AND attempts = :attempts,
       EXISTS (SELECT 1 FROM queues q WHERE q.name = jobs.queue AND q.paused = 1)
FROM jobs WHERE id = :id;

-- name: start_held
-- description: A job taken ahead that has run for a while becomes processing with a lease and its real start (guard: still held).
UPDATE jobs SET state = 'processing', attempts = attempts + 1, worker_id = :worker,
       started_at = :started, updated_at = :now, lease_expires_at = :lease,
       finished_at = NULL, cancel_requested = 0, output = NULL, output_truncated = 0,
       reserved_by = NULL, reserved_until = NULL
WHERE id = :id AND state = 'pending' AND reserved_by = :worker AND attempts = :attempts;

-- name: finish_held
-- description: A job taken ahead whose whole attempt ran while it was reserved: its start and end at once (guard: still held).
UPDATE jobs SET state = :state, attempts = attempts + 1, worker_id = :worker,
       started_at = :started, updated_at = :now, finished_at = :finished, run_at = :run_at,
       exit_code = :exit_code, last_error = :error, lease_expires_at = NULL,
       cancel_requested = 0, output = :output, output_truncated = :truncated,
       reserved_by = NULL, reserved_until = NULL
WHERE id = :id AND state = 'pending' AND reserved_by = :worker AND attempts = :attempts;

-- name: unreserve
-- description: A job taken ahead that never started is given back: its reservation ends (it stayed pending).
UPDATE jobs SET reserved_by = NULL, reserved_until = NULL
WHERE id = ? AND state = 'pending' AND reserved_by = ?;

-- name: held_by
-- description: Jobs processing under a worker, oldest claim first.
SELECT id, command, state, attempts, max_retries, priority, run_at, timeout, created_at,
       updated_at, started_at, finished_at, exit_code, last_error, worker_id,
       lease_expires_at, options, queue, blocked
FROM jobs WHERE state = 'processing' AND worker_id = :worker ORDER BY started_at;

-- ================================================================== heartbeat

-- name: beat_worker
-- description: Renew a worker's heartbeat (?1 now, ?2 expiry, ?3 worker).
UPDATE workers SET heartbeat_at = ?, expires_at = ? WHERE id = ?;

-- name: insert_worker
-- description: A worker's row (id, host, pid, started_at, heartbeat_at, expires_at).
INSERT INTO workers (id, host, pid, started_at, heartbeat_at, expires_at)
VALUES (?, ?, ?, ?, ?, ?);

-- name: renew_leases
-- description: Every job processing under a worker (the one running and any ended whose result is not recorded yet) gets a new lease.
UPDATE jobs SET lease_expires_at = ? WHERE state = 'processing' AND worker_id = ?;

-- name: renew_reservations
-- description: The reservations of the jobs a worker has taken ahead (:ids, a JSON array) last until :until.
UPDATE jobs SET reserved_until = :until
WHERE id IN (SELECT value FROM json_each(:ids)) AND state = 'pending' AND reserved_by = :worker;

-- name: holds_job
-- description: Does the worker still hold this job?
SELECT 1 FROM jobs WHERE id = ? AND state = 'processing' AND worker_id = ?;

-- ===================================================================== rescue

-- name: running
-- description: Running jobs with what the rescue watches: lease, the holder's heartbeat (NULL: its row is gone) and lease term.
SELECT j.id, j.worker_id, j.attempts, j.lease_expires_at, w.heartbeat_at,
       w.expires_at - w.heartbeat_at
FROM jobs j LEFT JOIN workers w ON w.id = j.worker_id
WHERE j.state = 'processing';

-- name: rescuable
-- description: A running job still held as the rescue saw it (JOB_COLS, has_dependents, cancel_requested).
SELECT id, command, state, attempts, max_retries, priority, run_at, timeout, created_at,
       updated_at, started_at, finished_at, exit_code, last_error, worker_id,
       lease_expires_at, options, queue, blocked, has_dependents, cancel_requested
FROM jobs WHERE id = ? AND state = 'processing' AND worker_id = ? AND attempts = ?;

-- name: stale_workers
-- description: Workers expired before ?1: id, heartbeat, lease term.
SELECT id, heartbeat_at, expires_at - heartbeat_at FROM workers WHERE expires_at < ?;

-- name: forget_worker
-- description: A dead worker's row, unless it heartbeated since it was judged.
DELETE FROM workers WHERE id = ? AND heartbeat_at = ?;

-- name: rescue
-- description: Take a job back from its worker (guard: processing, same worker and attempt).
UPDATE jobs SET state = :state, updated_at = :now, finished_at = :finished, run_at = :run_at,
       exit_code = NULL, last_error = :error, lease_expires_at = NULL
WHERE id = :id AND state = 'processing' AND worker_id = :worker AND attempts = :attempts;

-- ======================================================================== DLQ

-- name: dlq_retry_job_event
-- description: The dlq_retry event of one dead job (:id).
INSERT INTO events (job_id, event, attempt, at)
SELECT id, 'dlq_retry', 0, :now FROM jobs WHERE id = :id AND state = 'dead';

-- name: dlq_retry_job
-- description: One dead job (:id) is pending again, attempts reset.
UPDATE jobs SET state = 'pending', attempts = 0, run_at = :now, updated_at = :now,
       finished_at = NULL
WHERE id = :id AND state = 'dead';

-- name: dlq_retry_all_events
-- description: The dlq_retry events of every dead job (of :queue, with :exit_code, if given).
INSERT INTO events (job_id, event, attempt, at)
SELECT id, 'dlq_retry', 0, :now FROM jobs
WHERE state = 'dead' AND (:queue IS NULL OR queue = :queue)
  AND (:exit_code IS NULL OR exit_code = :exit_code);

-- name: dlq_retry_all
-- description: Every dead job (of :queue, with :exit_code, if given) is pending again.
UPDATE jobs SET state = 'pending', attempts = 0, run_at = :now, updated_at = :now,
       finished_at = NULL
WHERE state = 'dead' AND (:queue IS NULL OR queue = :queue)
  AND (:exit_code IS NULL OR exit_code = :exit_code);

-- name: dead_jobs
-- description: Dead jobs (of :queue, with :exit_code, if given), oldest first.
SELECT id, command, state, attempts, max_retries, priority, run_at, timeout, created_at,
       updated_at, started_at, finished_at, exit_code, last_error, worker_id,
       lease_expires_at, options, queue, blocked
FROM jobs WHERE state = 'dead' AND (:queue IS NULL OR queue = :queue)
  AND (:exit_code IS NULL OR exit_code = :exit_code)
ORDER BY seq;

-- name: job_state
-- description: One job's state.
SELECT state FROM jobs WHERE id = :id;

-- ====================================================================== purge

-- name: purge_unsettled
-- description: Jobs about to be purged whose dependents are still blocked (settled first).
SELECT id FROM jobs
WHERE state IN (SELECT value FROM json_each(:states)) AND finished_at <= :cutoff
  AND has_dependents
  AND EXISTS (SELECT 1 FROM job_deps d JOIN jobs j ON j.id = d.job_id
              WHERE d.dep_id = jobs.id AND j.blocked);

-- name: purge
-- description: Delete jobs in :states that finished at or before :cutoff (events go with them).
DELETE FROM jobs
WHERE state IN (SELECT value FROM json_each(:states)) AND finished_at <= :cutoff;

-- ================================================================== schedules

-- name: add_schedule
-- description: A new schedule (nothing if the name exists).
INSERT OR IGNORE INTO schedules (name, cron, tz, job, next_run_at, created_at)
VALUES (:name, :cron, :tz, :job, :first, :now);

-- name: replace_schedule
-- description: A schedule, replacing one of the same name.
INSERT OR REPLACE INTO schedules (name, cron, tz, job, next_run_at, created_at)
VALUES (:name, :cron, :tz, :job, :first, :now);

-- name: schedules
-- description: Every schedule, by name.
SELECT name, cron, tz, job, next_run_at, last_run_at FROM schedules ORDER BY name;

-- name: remove_schedule
-- description: Delete a schedule.
DELETE FROM schedules WHERE name = :name;

-- name: schedule_due
-- description: Is any schedule due at :now?
SELECT min(next_run_at) <= :now FROM schedules;

-- name: due_schedules
-- description: The schedules due at :now, in firing order.
SELECT name, cron, tz, job, next_run_at FROM schedules
WHERE next_run_at <= :now ORDER BY next_run_at, name;

-- name: schedule_fired
-- description: A schedule fired at :at; it fires next at :next.
UPDATE schedules SET next_run_at = :next, last_run_at = :at WHERE name = :name;

-- ================================================================= jobs: reads

-- name: get_job
-- description: One job (JOB_COLS).
SELECT id, command, state, attempts, max_retries, priority, run_at, timeout, created_at,
       updated_at, started_at, finished_at, exit_code, last_error, worker_id,
       lease_expires_at, options, queue, blocked
FROM jobs WHERE id = :id;

-- name: get_job_output
-- description: One job (JOB_COLS, output, output_truncated).
SELECT id, command, state, attempts, max_retries, priority, run_at, timeout, created_at,
       updated_at, started_at, finished_at, exit_code, last_error, worker_id,
       lease_expires_at, options, queue, blocked, output, output_truncated
FROM jobs WHERE id = :id;

-- name: export_jobs
-- description: The next :batch jobs after seq :after, with their output (seq, JOB_COLS, output, output_truncated).
SELECT seq, id, command, state, attempts, max_retries, priority, run_at, timeout,
       created_at, updated_at, started_at, finished_at, exit_code, last_error, worker_id,
       lease_expires_at, options, queue, blocked, output, output_truncated
FROM jobs WHERE seq > :after ORDER BY seq LIMIT :batch;

-- name: dependencies_of
-- description: (job, dependency) pairs of the jobs :ids.
SELECT job_id, dep_id FROM job_deps WHERE job_id IN (SELECT value FROM json_each(:ids))
ORDER BY job_id, dep_id;

-- name: existing_ids
-- description: Those of :ids that exist.
SELECT id FROM jobs WHERE id IN (SELECT value FROM json_each(:ids));

-- name: list_jobs
-- description: Jobs (matching :like, if given), oldest first.
SELECT id, command, state, attempts, max_retries, priority, run_at, timeout, created_at,
       updated_at, started_at, finished_at, exit_code, last_error, worker_id,
       lease_expires_at, options, queue, blocked
FROM jobs
WHERE :like IS NULL OR id LIKE :like ESCAPE '\' OR command LIKE :like ESCAPE '\'
ORDER BY seq LIMIT :limit OFFSET :offset;

-- name: list_jobs_newest
-- description: Jobs (matching :like, if given), newest first.
SELECT id, command, state, attempts, max_retries, priority, run_at, timeout, created_at,
       updated_at, started_at, finished_at, exit_code, last_error, worker_id,
       lease_expires_at, options, queue, blocked
FROM jobs
WHERE :like IS NULL OR id LIKE :like ESCAPE '\' OR command LIKE :like ESCAPE '\'
ORDER BY seq DESC LIMIT :limit OFFSET :offset;

-- name: list_jobs_in_state
-- description: Jobs in :state (matching :like, if given), oldest first.
SELECT id, command, state, attempts, max_retries, priority, run_at, timeout, created_at,
       updated_at, started_at, finished_at, exit_code, last_error, worker_id,
       lease_expires_at, options, queue, blocked
FROM jobs
WHERE state = :state
  AND (:like IS NULL OR id LIKE :like ESCAPE '\' OR command LIKE :like ESCAPE '\')
ORDER BY seq LIMIT :limit OFFSET :offset;

-- name: list_jobs_in_state_newest
-- description: Jobs in :state (matching :like, if given), newest first.
SELECT id, command, state, attempts, max_retries, priority, run_at, timeout, created_at,
       updated_at, started_at, finished_at, exit_code, last_error, worker_id,
       lease_expires_at, options, queue, blocked
FROM jobs
WHERE state = :state
  AND (:like IS NULL OR id LIKE :like ESCAPE '\' OR command LIKE :like ESCAPE '\')
ORDER BY seq DESC LIMIT :limit OFFSET :offset;

-- name: list_jobs_in_queues
-- description: Jobs of the :queues JSON array (in :state, matching :like, if given), oldest first.
SELECT id, command, state, attempts, max_retries, priority, run_at, timeout, created_at,
       updated_at, started_at, finished_at, exit_code, last_error, worker_id,
       lease_expires_at, options, queue, blocked
FROM jobs
WHERE queue IN (SELECT value FROM json_each(:queues))
  AND (:state IS NULL OR state = :state)
  AND (:like IS NULL OR id LIKE :like ESCAPE '\' OR command LIKE :like ESCAPE '\')
ORDER BY seq LIMIT :limit OFFSET :offset;

-- name: list_jobs_in_queues_newest
-- description: Jobs of the :queues JSON array (in :state, matching :like, if given), newest first.
SELECT id, command, state, attempts, max_retries, priority, run_at, timeout, created_at,
       updated_at, started_at, finished_at, exit_code, last_error, worker_id,
       lease_expires_at, options, queue, blocked
FROM jobs
WHERE queue IN (SELECT value FROM json_each(:queues))
  AND (:state IS NULL OR state = :state)
  AND (:like IS NULL OR id LIKE :like ESCAPE '\' OR command LIKE :like ESCAPE '\')
ORDER BY seq DESC LIMIT :limit OFFSET :offset;

-- name: count_jobs
-- description: How many jobs there are.
SELECT count(*) FROM jobs;

-- name: count_jobs_matching
-- description: How many jobs match :like.
SELECT count(*) FROM jobs WHERE id LIKE :like ESCAPE '\' OR command LIKE :like ESCAPE '\';

-- name: count_jobs_in_state
-- description: How many jobs are in :state.
SELECT count(*) FROM jobs WHERE state = :state;

-- name: count_jobs_in_state_matching
-- description: How many jobs in :state match :like.
SELECT count(*) FROM jobs
WHERE state = :state AND (id LIKE :like ESCAPE '\' OR command LIKE :like ESCAPE '\');

-- name: counts
-- description: Jobs per state.
SELECT state, count(*) FROM jobs GROUP BY state;

-- name: queue_counts
-- description: Jobs per queue and state.
SELECT queue, state, count(*) FROM jobs GROUP BY queue, state;

-- name: queue_settings
-- description: Every queue that has settings.
SELECT name, paused, max_running FROM queues;

-- name: set_queue
-- description: Pause or resume a queue (:paused), or set its limit (:limit); NULL leaves either as it is.
INSERT INTO queues (name, paused, max_running)
VALUES (:name, coalesce(:paused, 0), coalesce(:limit, 0))
ON CONFLICT (name) DO UPDATE SET paused = coalesce(:paused, queues.paused),
                                 max_running = coalesce(:limit, queues.max_running);

-- name: remove_queue
-- description: Delete queue :name's settings unless it has jobs.
DELETE FROM queues
WHERE name = :name AND NOT EXISTS (SELECT 1 FROM jobs WHERE queue = :name);

-- name: queue_jobs
-- description: How many jobs queue :name has, and whether it has settings.
SELECT (SELECT count(*) FROM jobs WHERE queue = :name),
       EXISTS (SELECT 1 FROM queues WHERE name = :name);

-- name: cancel_requested
-- description: A job's cancel flag.
SELECT cancel_requested FROM jobs WHERE id = :id;

-- name: any_running
-- description: Is any job running (of the :queues JSON array, if given)?
SELECT 1 FROM jobs INDEXED BY jobs_running
WHERE state = 'processing'
  AND (:queues IS NULL OR queue IN (SELECT value FROM json_each(:queues)))
LIMIT 1;

-- name: any_waiting
-- description: Is any job pending or failed outside paused queues (of :queues, if given)?
SELECT 1 FROM jobs
WHERE state IN ('pending', 'failed') AND queue NOT IN (SELECT name FROM queues WHERE paused = 1)
  AND (:queues IS NULL OR queue IN (SELECT value FROM json_each(:queues)))
LIMIT 1;

-- name: next_due
-- description: Milliseconds from :now until the earliest job a claim could take is due (NULL: none); one reserved by a live worker is due when its reservation ends. (The first 65 in run_at order: past them, the 65th's run_at.)
SELECT CASE WHEN count(*) = 65 THEN min(min(due), max(run_at)) ELSE min(due) END - :now
FROM (SELECT run_at,
             CASE WHEN reserved_until IS NULL OR reserved_until < :now
                       OR NOT EXISTS (SELECT 1 FROM workers w WHERE w.id = jobs.reserved_by)
                  THEN run_at ELSE max(run_at, reserved_until) END AS due
      FROM jobs INDEXED BY jobs_due
      WHERE state IN ('pending', 'failed') AND blocked = 0
        AND queue NOT IN (SELECT name FROM queues WHERE paused = 1 OR (max_running > 0
            AND max_running <= (SELECT count(*) FROM jobs r
                                WHERE r.state = 'processing' AND r.queue = queues.name)))
        AND (:queues IS NULL OR queue IN (SELECT value FROM json_each(:queues)))
      ORDER BY run_at LIMIT 65);

-- ===================================================================== events

-- name: event_seq_bounds
-- description: The oldest and newest event seq.
SELECT min(seq), max(seq) FROM events;

-- name: event_at_from
-- description: The time of the first event at or after seq :seq.
SELECT at FROM events WHERE seq >= :seq ORDER BY seq LIMIT 1;

-- name: attempt_ends
-- description: Attempt- and job-ending events (:events) with seq >= :from_seq, at >= :since and seq > :after, oldest first.
SELECT e.seq, e.job_id, j.queue, e.event, e.at, e.worker_id, e.detail
FROM events e JOIN jobs j ON j.id = e.job_id
WHERE e.event IN (SELECT value FROM json_each(:events))
  AND e.seq >= :from_seq AND e.at >= :since AND e.seq > :after
ORDER BY e.seq LIMIT :limit;

-- name: event_counts
-- description: Ending events (:events) since :since, counted per :bucket ms, event and whether a worker wrote it.
SELECT (at - :since) / :bucket, event, worker_id IS NOT NULL, count(*) FROM events
WHERE seq >= :from_seq AND at >= :since
  AND event IN (SELECT value FROM json_each(:events))
GROUP BY 1, 2, 3;

-- name: recent_failures
-- description: The newest failed attempts since :since, newest first.
SELECT e.seq, e.job_id, j.queue, e.event, e.at, e.worker_id, e.detail
FROM events e JOIN jobs j ON j.id = e.job_id
WHERE e.seq >= :from_seq AND e.at >= :since
  AND (e.event = 'lease_expired'
       OR e.event IN ('retry_scheduled', 'dead') AND e.worker_id IS NOT NULL)
ORDER BY e.seq DESC LIMIT :limit;

-- name: max_event_seq
-- description: The newest event's seq (0 if none).
SELECT coalesce(max(seq), 0) FROM events;

-- name: history
-- description: The newest :limit events, newest first.
SELECT job_id, event, attempt, at, worker_id, detail FROM events
ORDER BY seq DESC LIMIT :limit;

-- name: job_history
-- description: The newest :limit events of job :job, newest first.
SELECT job_id, event, attempt, at, worker_id, detail FROM events
WHERE job_id = :job ORDER BY seq DESC LIMIT :limit;

-- ==================================================================== workers

-- name: delete_worker
-- description: A worker that exits removes its row.
DELETE FROM workers WHERE id = :worker;

-- name: stop_requested
-- description: A worker's stop flag.
SELECT stop_requested FROM workers WHERE id = :worker;

-- name: active_worker_ids
-- description: Workers alive at ?1, oldest first.
SELECT id FROM workers WHERE expires_at >= ? ORDER BY started_at;

-- name: request_stop
-- description: Flag every worker alive at ?1 to stop.
UPDATE workers SET stop_requested = 1 WHERE expires_at >= ?;

-- name: active_workers
-- description: Workers alive at :now with their current job, and :now.
SELECT w.id, w.host, w.pid, w.started_at, w.heartbeat_at, w.stop_requested,
       (SELECT j.id FROM jobs j WHERE j.state = 'processing' AND j.worker_id = w.id),
       :now
FROM workers w WHERE w.expires_at >= :now ORDER BY w.started_at, w.id;

-- ===================================================================== config

-- name: config
-- description: Every config key set, with its JSON value.
SELECT key, value FROM config;

-- name: config_set
-- description: Set a config key (JSON value).
INSERT OR REPLACE INTO config (key, value) VALUES (:key, :value);

-- ==================================================================== metrics
-- (/metrics: read at each scrape; see web/metrics.py)

-- name: metrics_ready
-- description: Per queue: jobs ready to run at :now (pending or failed, not blocked, due) and the oldest one's wait in ms (the jobs_due index: only ready jobs are read).
SELECT queue, count(*), :now - min(run_at) FROM jobs INDEXED BY jobs_due
WHERE state IN ('pending', 'failed') AND blocked = 0 AND run_at <= :now
GROUP BY queue;

-- name: metrics_workers
-- description: Workers alive at :now, counted by whether they hold a running job (1) or not (0).
SELECT w.id IN (SELECT j.worker_id FROM jobs j INDEXED BY jobs_running
                WHERE j.state = 'processing'), count(*)
FROM workers w WHERE w.expires_at >= :now GROUP BY 1;

-- name: metrics_events
-- description: Enqueues and attempt- or job-ending events (:events) after seq :after, oldest first, with the job's queue (a range of the primary key).
SELECT e.seq, j.queue, e.event, e.at, e.worker_id, e.detail
FROM events e JOIN jobs j ON j.id = e.job_id
WHERE e.seq > :after AND e.event IN (SELECT value FROM json_each(:events))
ORDER BY e.seq LIMIT :limit;
