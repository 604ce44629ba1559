-- queuectl schema, version 2 (PostgreSQL): per-job run settings
-- (fatal_exit_codes, cwd, env) as one JSON object, NULL when none is set.
ALTER TABLE queuectl_jobs ADD COLUMN options text;
