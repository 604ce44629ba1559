-- Schema version 6: jobs taken ahead are reserved, not claimed (see the
-- SQLite migration). This backend does not claim ahead; the columns keep the
-- two schemas alike.
ALTER TABLE queuectl_jobs ADD COLUMN reserved_by text;
ALTER TABLE queuectl_jobs ADD COLUMN reserved_until bigint;
