-- queuectl schema, version 2 (SQLite): per-job run settings
-- (fatal_exit_codes, cwd, env) as one JSON object, NULL when none is set.
ALTER TABLE jobs ADD COLUMN options TEXT;
