"""Named SQL statements, read once from store/sql/<dialect>.sql.

Each statement in a file follows two comment lines:

    -- name: get_job
    -- description: One job's columns (JOB_COLS), by id.
    SELECT ...;

and runs up to the next `-- name:` header (a trailing `;` is dropped). Both
dialect files use the same name where the operation is the same, so they can
be read side by side. Statements are used exactly as written: nothing is
spliced into them; a variant is a statement of its own.
"""

from __future__ import annotations

import os
import re
from collections import namedtuple

FOLDER = os.path.join(os.path.dirname(__file__), "sql")
_HEADER = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$")
_DESCRIPTION = re.compile(r"^--\s*description:\s*(\S.*)$")


#: One statement of a file (a named tuple: dataclasses cost a CLI start ~10 ms).
Query = namedtuple("Query", "name description sql")


def parse(text: str, source: str = "<sql>") -> list[Query]:
    """The statements of one file, in order. ValueError names a header
    without a description, a repeated name, an empty statement, or text
    before the first header (other than comments)."""
    out: list[Query] = []
    body: list[str] = []
    name, description = None, None

    def close() -> None:
        if name is None:
            return
        sql = "\n".join(body).strip().rstrip(";").strip()
        if not sql:
            raise ValueError(f"{source}: statement {name} is empty")
        out.append(Query(name, description or "", sql))

    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        m = _HEADER.match(line)
        if m:
            close()
            name, body = m.group(1), []
            d = _DESCRIPTION.match(lines[i + 1]) if i + 1 < len(lines) else None
            if d is None:
                raise ValueError(f"{source}:{i + 2}: statement {name} has no "
                                 "'-- description:' line")
            description = d.group(1).strip()
            i += 2
            continue
        if name is None:
            if line.strip() and not line.lstrip().startswith("--"):
                raise ValueError(f"{source}:{i + 1}: SQL before the first '-- name:'")
        else:
            body.append(line)
        i += 1
    close()
    seen: set = set()
    for q in out:
        if q.name in seen:
            raise ValueError(f"{source}: statement {q.name} is defined twice")
        seen.add(q.name)
    return out


_LOADED: dict[str, dict[str, str]] = {}


def load_queries(dialect: str) -> dict[str, str]:
    """{name: statement} of store/sql/<dialect>.sql (read once per process)."""
    if dialect not in _LOADED:
        path = os.path.join(FOLDER, f"{dialect}.sql")
        with open(path, encoding="utf-8") as f:
            _LOADED[dialect] = {q.name: q.sql for q in parse(f.read(), path)}
    return _LOADED[dialect]
