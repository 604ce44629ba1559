-- Schema version 5: one partial index over running jobs instead of three.
-- The rescue, held_by, the burst check and the queue-limit count all look at
-- the few `processing` rows; each claim and finish updates two indexes fewer.
DROP INDEX queuectl_jobs_running;
DROP INDEX queuectl_jobs_holder;
DROP INDEX queuectl_jobs_queue_running;
CREATE INDEX queuectl_jobs_running ON queuectl_jobs (queue) WHERE state = 'processing';
