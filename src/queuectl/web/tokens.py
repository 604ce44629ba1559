"""The dashboard's token: where it comes from (no Flask here, so the CLI can
check it before importing the app).

In order: `--token-file FILE`, `$QUEUECTL_DASHBOARD_TOKEN`, else the user's
token file, `$XDG_CONFIG_HOME/queuectl/dashboard-token` (by default
`~/.config/queuectl/dashboard-token`), made on first use with a random token
(mode 0600, in a 0700 directory) and reused after. A token file must belong
to the user and be readable by no one else.
"""

from __future__ import annotations

import os
import secrets
import stat
import time
from pathlib import Path

from queuectl.errors import InvalidInput, QueueError

MIN_LENGTH = 16


def default_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or ""
    root = Path(base) if os.path.isabs(base) else Path.home() / ".config"
    return root / "queuectl" / "dashboard-token"


def check(token: str, where: str) -> str:
    token = token.strip()
    if len(token) < MIN_LENGTH:
        raise InvalidInput(f"the dashboard token ({where}) must be at least "
                           f"{MIN_LENGTH} characters")
    if any(ord(ch) < 33 or ord(ch) == 127 for ch in token):
        raise InvalidInput(f"the dashboard token ({where}) must not contain spaces or "
                           "control characters")
    return token


def read(path: Path) -> str:
    """The token in `path`, which must be ours and private."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise InvalidInput(f"token file {path} does not exist") from None
    except OSError as e:
        raise QueueError(f"cannot read token file {path}: {e.strerror or e}") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise InvalidInput(f"token file {path} is not a regular file")
        if st.st_uid != os.geteuid():
            raise InvalidInput(f"token file {path} belongs to another user")
        if st.st_mode & 0o077:
            raise InvalidInput(f"token file {path} can be read by other users "
                               f"(mode {stat.S_IMODE(st.st_mode):04o}): chmod 600 {path}")
        data = f.read(4096)
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise InvalidInput(f"token file {path} is not text") from None
    return check(text, str(path))


def load_or_create(path: Path) -> str:
    """The token in `path`; a new random one written there if there is none."""
    if not os.path.lexists(path):
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            time.sleep(0.1)               # another dashboard is writing it
        except OSError as e:
            raise QueueError(f"cannot create the dashboard token file {path}: "
                             f"{e.strerror or e}") from None
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(32) + "\n")
    return read(path)
