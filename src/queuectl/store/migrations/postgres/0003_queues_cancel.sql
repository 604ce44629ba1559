-- queuectl schema, version 3 (PostgreSQL): named queues (pause, concurrency
-- limit) and the terminal state `cancelled` (with a cancel request flag for a
-- running job).
ALTER TABLE queuectl_jobs
    ADD COLUMN queue text NOT NULL DEFAULT 'default',
    ADD COLUMN cancel_requested boolean NOT NULL DEFAULT false;
ALTER TABLE queuectl_jobs
    DROP CONSTRAINT queuectl_jobs_state_check,
    ADD CONSTRAINT queuectl_jobs_state_check CHECK (state IN
        ('pending', 'processing', 'completed', 'failed', 'dead', 'cancelled')),
    DROP CONSTRAINT queuectl_jobs_check1,
    ADD CONSTRAINT queuectl_jobs_finished_check CHECK
        ((state IN ('completed', 'dead', 'cancelled')) = (finished_at IS NOT NULL));
ALTER TABLE queuectl_events
    DROP CONSTRAINT queuectl_events_event_check,
    ADD CONSTRAINT queuectl_events_event_check CHECK (event IN
        ('enqueued', 'processing', 'completed', 'retry_scheduled', 'dead', 'dlq_retry',
         'lease_expired', 'cancelled'));
-- Running jobs per queue (the concurrency limit is checked in the claim).
CREATE INDEX queuectl_jobs_queue_running ON queuectl_jobs (queue)
    WHERE state = 'processing';

CREATE TABLE queuectl_queues (
    name        text    PRIMARY KEY,
    paused      boolean NOT NULL DEFAULT false,
    max_running bigint  NOT NULL DEFAULT 0 CHECK (max_running >= 0)   -- 0 = no limit
);
