-- Schema version 5: one partial index over running jobs instead of two.
-- The rescue, the burst check and the queue-limit count all look at the few
-- `processing` rows; each claim and finish now writes one index page fewer.
DROP INDEX jobs_running;
DROP INDEX jobs_queue_running;
CREATE INDEX jobs_running ON jobs (queue) WHERE state = 'processing';
