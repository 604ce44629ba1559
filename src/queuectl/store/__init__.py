"""The storage seam: the only package that speaks SQL or imports a database driver.

`open_store(url)` picks the backend from the URL: a file path (or
`sqlite:///path`) is SQLite; `postgresql://` (or `postgres://`) is PostgreSQL,
which needs the `postgres` extra (psycopg 3).
"""

from __future__ import annotations

from queuectl.errors import InvalidInput, QueueError
from queuectl.store.base import Store

__all__ = ["Store", "open_store", "resolve_url"]


def resolve_url(url: "str | None") -> str:
    """--db, else $QUEUECTL_DB, else ./queuectl.db."""
    import os
    if url is not None:
        return url
    return os.environ.get("QUEUECTL_DB") or "queuectl.db"


def open_store(url: str, *, clock=None, worker: bool = False, create: bool = True) -> Store:
    """Open (creating and migrating if needed) the database named by `url`.

    `worker=True` selects the cheaper sync mode used for worker state changes
    (see docs/ARCHITECTURE.md, "Durability"). With `create=False` a database
    that does not exist is not created: the store reads as an empty one.
    """
    if not url:
        raise InvalidInput("the database path is empty (--db or QUEUECTL_DB)")
    if url.startswith(("postgresql://", "postgres://")):
        try:
            from queuectl.store.postgres import PostgresStore
        except ImportError:
            raise QueueError("PostgreSQL support is not installed: "
                             "pip install 'psycopg[binary]>=3.2'") from None
        return PostgresStore(url, clock=clock, worker=worker, create=create)
    if url.startswith("sqlite://"):
        url = url[len("sqlite://"):]
        if url.startswith("/") and url[1:2] == "/":
            url = url[1:]
    from queuectl.store.sqlite import SQLiteStore
    return SQLiteStore(url, clock=clock, worker=worker, create=create)
