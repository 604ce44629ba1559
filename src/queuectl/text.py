"""Job data on a terminal: control characters shown, never obeyed.

A job's command, output and error may hold any character. Written raw to a
terminal, an ESC sequence retitles or clears it, CR lets a line overwrite
itself, and the bidi overrides reorder what is shown. `visible` spells those
out instead: CR, LF and TAB as \\r \\n \\t, the rest of C0, DEL and C1 as \\xNN,
the bidi embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069) as
\\uNNNN. Backslashes are left as they are: the exact text is in --json and in
`logs` to a pipe or file.

Used by the CLI's text rendering (cli/render.py, `show`, `logs` on a terminal,
`top`) and by every worker and supervisor log line (log.py). Pure: imports
only `re`, which the `enqueue` path has loaded anyway.
"""

from __future__ import annotations

import re

CONTROLS = "\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069"
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_patterns: dict = {}


def _spell(m: re.Match) -> str:
    ch = m.group()
    named = _NAMED.get(ch)
    if named is not None:
        return named
    n = ord(ch)
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}"


def visible(text: str, keep: str = "") -> str:
    """`text` with each control character escaped, except those in `keep`
    ("\\n\\t" for a multi-line block of output; "" for one line)."""
    pattern = _patterns.get(keep)
    if pattern is None:
        pattern = _patterns[keep] = re.compile(
            ("(?![" + re.escape(keep) + "])" if keep else "") + "[" + CONTROLS + "]")
    return pattern.sub(_spell, text)
