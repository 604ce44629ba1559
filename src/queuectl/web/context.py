"""What every request of the dashboard shares: its settings and a store per
server thread (`current_store()`), kept on the app as `extensions["queuectl"]`."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from flask import current_app

from queuectl.store import open_store

if TYPE_CHECKING:
    from queuectl.store.base import Store


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
    """A dashboard's settings (from `queuectl dashboard`'s options)."""
    url: str
    token: str | None = None
    read_only: bool = False
    loopback: bool = True
    stores: Stores = field(init=False)

    def __post_init__(self) -> None:
        self.stores = Stores(self.url)


def settings() -> Settings:
    """The settings of the app serving this request."""
    found: Settings = current_app.extensions["queuectl"]
    return found


def current_store() -> Store:
    """This server thread's store."""
    return settings().stores.get()
