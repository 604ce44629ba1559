"""The one error hierarchy of queuectl.

Every error a user can cause or meet is a `QueueError` carrying the exit code
the CLI returns: 2 for usage and invalid input, 1 for everything else. Driver
errors are translated into these at the storage boundary, so nothing above the
store ever sees `sqlite3` or `psycopg` exceptions.
"""


class QueueError(Exception):
    """Base class: a one-line message for the user and an exit code."""

    exit_code = 1


class InvalidInput(QueueError):
    """Bad arguments, a malformed payload, an unknown config key (exit 2)."""

    exit_code = 2


class NotFound(QueueError):
    """The named job (or worker) does not exist."""


class Conflict(QueueError):
    """The request contradicts the current state (duplicate id, wrong state)."""


class DuplicateJob(Conflict):
    def __init__(self, job_id: str):
        super().__init__(f"job {job_id} already exists")
        self.job_id = job_id


class StoreError(QueueError):
    """The database cannot be opened, read or written."""


class LeaseLost(Conflict):
    """A worker tried to end a job it no longer holds (its lease was rescued)."""
