-- queuectl schema, version 5 (SQLite): reads for stats, the dashboard and
-- /metrics. Events by time (covering what the throughput chart counts), and
-- jobs by queue and state (per-queue counts without sorting the whole table).
CREATE INDEX events_at ON events (at, event, worker_id);
CREATE INDEX jobs_queue_state ON jobs (queue, state);
