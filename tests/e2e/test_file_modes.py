"""The files queuectl creates are private to their owner, whatever the umask.

queuectl creates exactly these files: the SQLite database (created 0600 before
SQLite opens it) and SQLite's companions next to it, `-wal` and `-shm` (and
`-journal` while a new database gets its schema), which SQLite gives the
database's mode. It creates no directories and no log files (logs go to
stderr), on either backend (PostgreSQL keeps nothing on the client).
"""

from __future__ import annotations

import json
import os
import signal
import stat

import pytest

from e2e_util import wait_exit, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.backends("sqlite")]   # files of the SQLite backend


def _modes(directory) -> dict:
    return {p.name: stat.S_IMODE(p.lstat().st_mode) for p in directory.iterdir()}


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077], ids=["umask000", "umask022", "umask077"])
def test_database_wal_and_shm_are_created_0600_and_nothing_else(cli, tmp_path, umask):
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    cli.db = cli.env["QUEUECTL_DB"] = str(data / "queuectl.db")
    gate = tmp_path / "gate"
    old = os.umask(umask)
    try:
        cli.enqueue(id="job", command=f"while [ ! -e {gate} ]; do sleep 0.02; done")
        cli.ok("config", "set", "max_retries", "0")
        worker = cli.start("--quiet")
        wait_until(lambda: cli.job("job")["state"] == "processing", message="the job to start")
        # While the worker has the database open, its WAL and shm files exist.
        modes = _modes(data)
        assert modes == {"queuectl.db": 0o600, "queuectl.db-wal": 0o600,
                         "queuectl.db-shm": 0o600}, {k: oct(v) for k, v in modes.items()}
        d = cli.json("show", "job")
        assert json.dumps(d)                     # reads create nothing new
        gate.touch()
        cli.wait_state("job", "completed")
        worker.send_signal(signal.SIGTERM)
        assert wait_exit(worker, 15) == 0
        modes = _modes(data)
        assert set(modes) <= {"queuectl.db", "queuectl.db-wal", "queuectl.db-shm"}, modes
        assert set(modes.values()) == {0o600}, {k: oct(v) for k, v in modes.items()}
        assert stat.S_IMODE(data.stat().st_mode) == 0o755, "the directory is left alone"
        # Nothing else anywhere: no log files, no directories of its own.
        assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "gate"]
    finally:
        os.umask(old)


def test_a_read_command_on_a_missing_database_creates_nothing(cli, tmp_path):
    for args in (["status"], ["list"], ["config", "list"], ["worker", "list"], ["stats"]):
        cli.ok(*args)
    assert list(tmp_path.iterdir()) == []
