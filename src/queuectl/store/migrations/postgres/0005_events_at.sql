-- queuectl schema, version 5 (PostgreSQL): see migrations/sqlite/0005.
CREATE INDEX queuectl_events_at ON queuectl_events (at, event, worker_id);
CREATE INDEX queuectl_jobs_queue_state ON queuectl_jobs (queue, state);
