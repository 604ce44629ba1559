"""The dashboard (the `dashboard` extra). `app.py` needs Flask; this module
does not, so the CLI can check its arguments before importing it."""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """Is `host` (a bind address, or a Host header's name without the port)
    localhost or a loopback address?"""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
