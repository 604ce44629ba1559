"""`queuectl` entry point: the error boundary (one-line errors, exit codes).

Command modules, and the argument parser itself (cli/parser.py), are imported
only when needed, so a one-shot command like `enqueue` pays for nothing it
does not use.
"""

from __future__ import annotations

import sys

from queuectl.errors import InvalidInput, QueueError

# Not `typing.TYPE_CHECKING`: importing typing would cost `enqueue` 2-3 ms.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse


class _Args:
    """The parsed arguments of a plain `enqueue '<json>'` (see _plain_enqueue)."""
    command, target, file, skip_existing, debug = "enqueue", "jobs:enqueue", None, False, False
    json = False

    def __init__(self, payload: str, db: str | None):
        self.payload, self.db = payload, db


def _plain_enqueue(argv: list[str]) -> _Args | None:
    """The most common command, `queuectl [--db URL] enqueue '{...}' [--db URL]`,
    parsed without argparse: importing it and building every subcommand's parser
    would cost more than the rest of the command. Anything else (another
    option, '-', --help, a second payload) returns None and goes through
    argparse, which then gives the same result or the usual usage error."""
    db, payload, rest = None, None, list(argv)
    while rest:
        word = rest.pop(0)
        if word == "--db" and rest and not rest[0].startswith("-"):
            db = rest.pop(0)
        elif word.startswith("--db=") and len(word) > 5:
            db = word[5:]
        elif word == "enqueue" and payload is None and rest and rest[0].startswith("{"):
            payload = rest.pop(0)
        else:
            return None
    return None if payload is None else _Args(payload, db)


def _parse(argv: list[str]) -> argparse.Namespace:
    from queuectl.cli.parser import parse
    return parse(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # Job output and commands may hold any character; never die printing them.
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    debug = "--debug" in argv
    try:
        args = _plain_enqueue(argv) or _parse(argv)
        debug = getattr(args, "debug", False)
        target = getattr(args, "target", None)
        if target is None:
            group = {"worker": "worker", "dlq": "dlq", "config": "config",
                     "queue": "queue", "schedule": "schedule"}.get(args.command)
            raise InvalidInput(f"{'a subcommand' if group else 'a command'} is required "
                               f"(see 'queuectl {group + ' ' if group else ''}--help')")
        module, func = target.split(":")
        mod = __import__(f"queuectl.cli.{module}", fromlist=[func])
        return getattr(mod, func)(args) or 0
    except QueueError as e:
        if debug:
            import traceback
            traceback.print_exc()
        # One line, whatever the message quotes (an id or path with a newline).
        msg = str(e).replace("\r", "\\r").replace("\n", "\\n")
        print(f"queuectl: error: {msg}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `queuectl list | head`: the reader left; say nothing.
        sys.stdout = None         # (no flush of the closed pipe at exit)
        return 0
    except Exception as e:   # a bug: one line unless --debug
        if debug:
            raise
        print(f"queuectl: error: internal error: {e.__class__.__name__}: {e} "
              "(run with --debug for the traceback)", file=sys.stderr)
        return 1
