"""Rendering for the CLI: aligned text tables, key/value blocks and JSON.

Read commands print either human text or (with --json) JSON only on stdout.
Job data in text never holds a control character (text.visible): cells and
one-line values escape them all; blocks of output keep newlines and tabs.
"""

from __future__ import annotations

import json
import sys

from queuectl.text import visible

TYPE_CHECKING = False     # (not typing's: `enqueue` does not import typing)
if TYPE_CHECKING:
    from queuectl.model import Job


def emit_json(value: object) -> None:
    sys.stdout.write(json.dumps(value, indent=2) + "\n")


def one_line(text: "str | None", width: int = 0) -> str:
    """Collapse newlines/tabs so a value fits one table cell; '-' for nothing.
    Other control characters are shown escaped (\\x1b, \\r, \\u202e): a job's
    command or error must not move the cursor or recolour the screen."""
    if text is None or text == "":
        return "-"
    flat = " ".join("".join(ch if ch.isprintable() else " "
                            for ch in visible(str(text), keep="\n\t")).split())
    if width and len(flat) > width:
        flat = flat[: max(1, width - 1)] + "…"
    return flat


def terminal_width() -> "int | None":
    """The width to fit tables to: $COLUMNS, else the terminal's; None when
    stdout is not a terminal (a pipe or file gets whole lines, cut at CAP)."""
    import os
    if not os.environ.get("COLUMNS", "").strip().isdigit() and not sys.stdout.isatty():
        return None
    import shutil
    return shutil.get_terminal_size().columns


CAP = {"last": 200, "other": 60}     # cut cells when not on a terminal
MIN_CELL = 8


def fit(widths: list[int], flex: list[int], width: int) -> dict[int, int]:
    """Widths for the `flex` columns so that the row fits `width` (columns
    that need less than an even share keep their width; the rest share what
    is left, at least MIN_CELL each)."""
    room = width - sum(w for i, w in enumerate(widths) if i not in flex) - 2 * (len(widths) - 1)
    out: dict[int, int] = {}
    left = sorted(flex, key=lambda i: widths[i])
    while left:
        share = room // len(left)
        i = left[0]
        if widths[i] <= share:
            out[i] = widths[i]
            room -= widths[i]
            left.pop(0)
        else:
            for i in left:
                out[i] = max(MIN_CELL, share)
            break
    return out


def table(headers: list[str], rows: list[list[str]], flex: "list[int] | None" = None) -> None:
    """Aligned columns. The `flex` columns (default: the last) are cut with '…'
    so that each line fits the terminal; off a terminal, at CAP characters."""
    rows = [[visible(cell) for cell in row] for row in rows]
    last = len(headers) - 1
    flex = [last] if flex is None else [i % len(headers) for i in flex]
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    width = terminal_width()
    limits = (fit(widths, flex, width) if width else
              {i: CAP["last" if i == last else "other"] for i in flex})
    out = []
    for row in [headers] + rows:
        cells = []
        for i, cell in enumerate(row):
            limit = limits.get(i)
            if limit is not None and len(cell) > limit:
                cell = cell[: max(1, limit - 1)] + "…"
            cells.append(cell if i == last else cell.ljust(min(widths[i], limit or widths[i])))
        out.append("  ".join(cells).rstrip())
    sys.stdout.write("\n".join(out) + "\n")


def short_time(iso_text: "str | None") -> str:
    """2026-11-27T21:51:19.123Z -> 2026-11-27 21:51:19 (UTC)."""
    if not iso_text:
        return "-"
    return iso_text[:19].replace("T", " ")


def attempts(job: Job) -> str:
    return f"{job.attempts}/{job.max_retries + 1}"
