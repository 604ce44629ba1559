"""Rendering for the CLI: aligned text tables, key/value blocks and JSON.

Read commands print either human text or (with --json) JSON only on stdout.
"""

from __future__ import annotations

import json
import sys

TYPE_CHECKING = False     # (not typing's: `enqueue` does not import typing)
if TYPE_CHECKING:
    from queuectl.model import Job


def emit_json(value: object) -> None:
    sys.stdout.write(json.dumps(value, indent=2) + "\n")


def one_line(text: "str | None", width: int = 0) -> str:
    """Collapse newlines/tabs so a value fits one table cell; '-' for nothing."""
    if text is None or text == "":
        return "-"
    # (Control characters would drive the terminal: a job's command or
    # error must not move the cursor or recolour the screen.)
    flat = " ".join("".join(ch if ch.isprintable() else " " for ch in str(text)).split())
    if width and len(flat) > width:
        flat = flat[: max(1, width - 1)] + "…"
    return flat


def table(headers: list[str], rows: list[list[str]]) -> None:
    """Aligned columns; the last column is cut to the terminal width on a TTY."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths[i], len(cell))
    last_width = 200          # long commands are cut; `show` and --json have them whole
    if sys.stdout.isatty():
        import shutil
        used = sum(w + 2 for w in widths[:-1])
        last_width = max(20, shutil.get_terminal_size().columns - used)
    out = []
    for row in [headers] + rows:
        cells = [c.ljust(widths[i]) for i, c in enumerate(row[:-1])]
        last = row[-1]
        if last_width and len(last) > last_width:
            last = last[: last_width - 1] + "…"
        out.append("  ".join(cells + [last]).rstrip())
    sys.stdout.write("\n".join(out) + "\n")


def short_time(iso_text: "str | None") -> str:
    """2026-11-27T21:51:19.123Z -> 2026-11-27 21:51:19 (UTC)."""
    if not iso_text:
        return "-"
    return iso_text[:19].replace("T", " ")


def attempts(job: Job) -> str:
    return f"{job.attempts}/{job.max_retries + 1}"
