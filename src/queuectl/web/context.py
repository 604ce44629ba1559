"""What every request of the dashboard shares: its settings and a store per
server thread (`current_store()`), kept on the app as `extensions["queuectl"]`."""

from __future__ import annotations

import os
import secrets
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from flask import current_app

from queuectl.store import open_store

if TYPE_CHECKING:
    from queuectl.store.base import Store
    from queuectl.web.auth import Sessions, Throttle


class Stores(threading.local):
    """One store (one connection) per server thread, opened on first use."""

    def __init__(self, url: str):
        self.url = url
        self.store: Store | None = None

    def get(self) -> Store:
        if self.store is None:
            # create=True: an SQLite file made later would not be seen by a
            # thread that had opened the (then missing) file as empty.
            self.store = open_store(self.url, create=True)
        return self.store


@dataclass
class Settings:
    """A dashboard's settings (from `queuectl dashboard`'s options), and the
    state of its sign-ins (auth.py)."""
    url: str
    token: str
    token_source: str = "QUEUECTL_DASHBOARD_TOKEN"    # where the token was read (shown)
    read_only: bool = False
    loopback: bool = True
    trusted_proxies: tuple[str, ...] = ()
    session_hours: float = 12
    #: The one-time sign-in link's code (None once used).
    signin_code: str | None = field(default_factory=lambda: secrets.token_urlsafe(24))
    stores: Stores = field(init=False)
    lock: threading.Lock = field(init=False, default_factory=threading.Lock)
    #: An SQLite file's path and (device, inode) when the server started:
    #: /healthz fails once the path names another file, or none.
    file: tuple[str, tuple[int, int]] | None = field(init=False, default=None)
    throttle: Throttle = field(init=False)
    sessions: Sessions = field(init=False)

    def __post_init__(self) -> None:
        from queuectl.web.auth import Sessions, Throttle
        self.stores = Stores(self.url)
        self.throttle = Throttle()
        self.sessions = Sessions(self.session_hours * 3600)
        self.file = _file(self.url)


def _file(url: str) -> tuple[str, tuple[int, int]] | None:
    if url.startswith(("postgresql://", "postgres://")):
        return None
    with open_store(url, create=True) as store:
        path = getattr(store, "path", None)
    if not isinstance(path, str) or path == ":memory:":
        return None
    st = os.stat(path)
    return path, (st.st_dev, st.st_ino)


def settings() -> Settings:
    """The settings of the app serving this request."""
    found: Settings = current_app.extensions["queuectl"]
    return found


def current_store() -> Store:
    """This server thread's store."""
    return settings().stores.get()
