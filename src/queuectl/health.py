"""Is the database answering? Shared by `queuectl health` and `GET /healthz`."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from queuectl.store.base import Store


def check(store: Store) -> str | None:
    """None when `store`'s database answers a read (and, on SQLite, its path
    still names the file that was opened); else what is wrong, in one line."""
    import os

    from queuectl.errors import QueueError
    path = getattr(store, "path", None)        # SQLite: opened without creating it?
    if isinstance(path, str) and path != ":memory:" and not os.path.exists(path):
        return f"no database at {path}"
    try:
        trouble = store.file_trouble()
        if trouble:
            return trouble
        store.max_event_seq()
    except QueueError as e:
        return " ".join(str(e).split()) or type(e).__name__
    return None
