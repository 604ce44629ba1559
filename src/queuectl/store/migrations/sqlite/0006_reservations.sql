-- Schema version 6: jobs taken ahead (config claim_ahead) are reserved, not
-- claimed: they stay `pending`, with the reserving worker and the
-- reservation's end (renewed by its heartbeat), until they really start.
-- NULL on every job that is not reserved.
ALTER TABLE jobs ADD COLUMN reserved_by TEXT;
ALTER TABLE jobs ADD COLUMN reserved_until INTEGER;
