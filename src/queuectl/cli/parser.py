"""The argument parser of every command (argparse), built only when a
command needs it: see main._plain_enqueue for the one that does not.

One small function per top-level command adds it (and its subcommands, with
the `target` "module:function" in queuectl.cli that runs it); `COMMANDS`
lists them in help order and `build_parser` calls them. The command modules
themselves are not imported here: a command imports only its own.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, NoReturn

from queuectl import __version__
from queuectl.errors import InvalidInput

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]

# argparse passes each of its strings through gettext, and gettext, finding no
# catalogue (Python ships none for argparse), searches the locale directories
# again for every string: ~7 ms per command here for ~100 strings. The text is
# the same either way. (Through __dict__: the names are argparse's private ones.)
argparse.__dict__.update(
    _=lambda message: message,
    ngettext=lambda singular, plural, n: singular if n == 1 else plural)


class Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line: `queuectl: error: ...` (exit 2)."""

    def error(self, message: str) -> NoReturn:
        raise InvalidInput(f"{message} (see '{self.prog} --help')")


def _common() -> argparse.ArgumentParser:
    # Accepted before or after the command; SUPPRESS keeps a subcommand's
    # absent option from overwriting one given before it.
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--db", default=argparse.SUPPRESS, metavar="URL",
                   help="database: a file path or postgresql://... "
                        "(default: $QUEUECTL_DB, else ./queuectl.db)")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="print a traceback with any error (for bug reports)")
    return p


def _json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON only")


def _int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number >= minimum."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}: {text!r}")
        return value
    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 <= value <= 10**9:
        raise argparse.ArgumentTypeError(f"must be from 0 to 1e9 seconds: {text!r}")
    return value


_nonneg_int = _int_at_least(0)


def _limit(text: str) -> int:
    value = _nonneg_int(text)
    if value > 2**31 - 1:
        raise argparse.ArgumentTypeError(f"must be at most {2**31 - 1}: {text!r}")
    return value


_pos_int = _int_at_least(1)


class Commands:
    """Adds commands to a parser: each function below adds one top-level
    command (and its subcommands), in the order `queuectl --help` lists them."""

    def __init__(self, common: argparse.ArgumentParser, sub: Subparsers):
        self.common, self.sub = common, sub

    def add(self, name: str, help: str, target: str | None,
            parent: Subparsers | None = None) -> argparse.ArgumentParser:
        """A command `name` that runs `target` ("module:function" in queuectl.cli)."""
        p = (parent or self.sub).add_parser(name, help=help, description=help,
                                            parents=[self.common], allow_abbrev=False)
        p.set_defaults(target=target)
        return p

    def group(self, name: str, help: str) -> Subparsers:
        """A command `name` whose subcommands are added to what this returns."""
        p = self.add(name, help, None)
        return p.add_subparsers(dest=f"{name}_command", metavar="SUBCOMMAND",
                                parser_class=Parser)


# ---------------------------------------------------------------- jobs (cli/jobs.py)

def enqueue(c: Commands) -> None:
    p = c.add("enqueue", "add a job (one JSON object), or many with '-' / --file",
              "jobs:enqueue")
    p.add_argument("payload", nargs="?",
                   help="a JSON object, or '-' to read JSON Lines / a JSON array from stdin")
    p.add_argument("--file", "-f", metavar="F",
                   help="read JSON Lines or a JSON array from file F")
    p.add_argument("--skip-existing", action="store_true",
                   help="an id that exists with the same command is not an error "
                        "(prints 'exists ID')")


def wait(c: Commands) -> None:
    p = c.add("wait", "wait until jobs are completed or dead (exit 0: all completed, "
              "1: not all, 124: timed out)", "jobs:wait")
    p.add_argument("ids", nargs="*", metavar="ID")
    p.add_argument("--all", action="store_true",
                   help="wait until no job is pending, failed or processing")
    p.add_argument("--timeout", type=_seconds, default=None, metavar="S",
                   help="give up after S seconds (exit 124)")


def status(c: Commands) -> None:
    _json(c.add("status", "job counts per state and active workers", "jobs:status"))


def list_(c: Commands) -> None:
    p = c.add("list", "list jobs, oldest first", "jobs:list_")
    p.add_argument("--state", metavar="STATE",
                   help="pending, processing, completed, failed or dead")
    p.add_argument("--limit", type=_nonneg_int, default=None, metavar="N",
                   help="at most N jobs (0 = all; default 100 as text, all with --json)")
    _json(p)


def show(c: Commands) -> None:
    p = c.add("show", "one job and the output of its latest attempt", "jobs:show")
    p.add_argument("id")
    _json(p)


def logs(c: Commands) -> None:
    p = c.add("logs", "output (stdout and stderr) of a job's latest attempt", "jobs:logs")
    p.add_argument("id")


def history(c: Commands) -> None:
    p = c.add("history", "job events as JSON Lines, oldest first", "jobs:history")
    p.add_argument("--job-id", metavar="ID")
    p.add_argument("--limit", type=_nonneg_int, default=0, metavar="N",
                   help="only the N most recent events (default all)")


# ---------------------------------------------------------------- workers (cli/workers.py)

def worker(c: Commands) -> None:
    sub = c.group("worker", "start or stop workers")
    p = c.add("start", "run N workers in the foreground (Ctrl+C: finish jobs and exit)",
              "workers:start", sub)
    p.add_argument("--count", "-c", type=_pos_int, default=1, metavar="N",
                   help="number of worker processes (default 1)")
    p.add_argument("--burst", action="store_true",
                   help="exit once no job is pending, failed or processing")
    p.add_argument("--quiet", "-q", action="store_true", help="log only problems")
    p.add_argument("--queue", action="append", metavar="NAME", dest="queues",
                   help="only take jobs from this queue (repeatable; default: every queue)")
    p = c.add("stop", "ask every running worker to finish its job and exit",
              "workers:stop", sub)
    p.add_argument("--wait", action="store_true", help="wait until they have exited")
    _json(c.add("list", "list active workers", "workers:list_", sub))


# ---------------------------------------------------------------- the DLQ (cli/dlq.py)

def dlq(c: Commands) -> None:
    sub = c.group("dlq", "the dead-letter queue")
    p = c.add("list", "list dead jobs", "dlq:list_", sub)
    p.add_argument("--limit", type=_nonneg_int, default=None, metavar="N",
                   help="at most N jobs (0 = all; default 100 as text, all with --json)")
    _json(p)
    p.add_argument("--group", action="store_true",
                   help="group dead jobs by exit code and error, with counts and examples")
    p = c.add("retry", "move a dead job (or all) back to pending", "dlq:retry", sub)
    p.add_argument("id", nargs="?")
    p.add_argument("--all", action="store_true", help="retry every dead job")
    p.add_argument("--queue", metavar="Q", help="with --all: only jobs of queue Q")
    p.add_argument("--exit-code", type=int, metavar="N", dest="exit_code",
                   help="with --all: only jobs whose last exit code was N")


# ---------------------------------------------------------------- steering (cli/control.py)

def cancel(c: Commands) -> None:
    p = c.add("cancel", "cancel a job: a waiting one at once, a running one is killed",
              "control:cancel")
    p.add_argument("id")


def queue(c: Commands) -> None:
    sub = c.group("queue", "named queues: list, pause, resume, limit")
    _json(c.add("list", "every queue with its job counts, paused flag and limit",
                "control:queue_list", sub))
    p = c.add("pause", "stop claiming from a queue (running jobs finish)",
              "control:queue_pause", sub)
    p.add_argument("name")
    p = c.add("resume", "claim from a paused queue again", "control:queue_resume", sub)
    p.add_argument("name")
    p = c.add("limit", "run at most N jobs of a queue at once, on all hosts (0 = no limit)",
              "control:queue_limit", sub)
    p.add_argument("name")
    p.add_argument("n", type=_limit, metavar="N")


def purge(c: Commands) -> None:
    p = c.add("purge", "delete old finished jobs and their events", "control:purge")
    p.add_argument("--state", action="append", required=True, metavar="STATE",
                   dest="states", help="completed, dead or cancelled (repeatable)")
    p.add_argument("--older-than", required=True, metavar="AGE", dest="older_than",
                   help="finished more than AGE ago: 30s, 15m, 2h, 7d (0 = all)")


# ---------------------------------------------------------------- schedules (cli/schedules.py)

def schedule(c: Commands) -> None:
    sub = c.group("schedule", "recurring jobs: add, list, remove")
    p = c.add("add", "enqueue a job on a cron schedule (workers fire it)",
              "schedules:add", sub)
    p.add_argument("name", help="the schedule's name; each firing's job id is "
                                "NAME:<fire time>")
    p.add_argument("cron", metavar="CRON",
                   help="5 fields: minute hour day-of-month month day-of-week "
                        "(e.g. '*/15 * * * *'; a 6th leading field is seconds), or "
                        "@hourly/@daily/@weekly/@monthly/@yearly")
    p.add_argument("job", metavar="JOB", help="the job as a JSON object, without id")
    p.add_argument("--tz", metavar="ZONE",
                   help="evaluate CRON in this IANA time zone (default UTC)")
    p.add_argument("--replace", action="store_true",
                   help="replace a schedule of the same name instead of failing")
    _json(c.add("list", "every schedule with its next fire time", "schedules:list_", sub))
    p = c.add("remove", "delete a schedule (jobs it enqueued stay)", "schedules:remove", sub)
    p.add_argument("name")


# ---------------------------------------------------------------- numbers (cli/stats.py)

def stats(c: Commands) -> None:
    p = c.add("stats", "finished jobs, success rate, throughput, durations, per queue",
              "stats:stats")
    p.add_argument("--since", default="1h", metavar="AGE",
                   help="the window: 30s, 15m, 2h, 7d (default 1h)")
    _json(p)


def top(c: Commands) -> None:
    p = c.add("top", "a live view: counts, workers, running jobs, recent failures "
              "(Ctrl+C quits; one snapshot when not on a terminal)", "stats:top")
    p.add_argument("--interval", type=_seconds, default=1.0, metavar="S",
                   help="seconds between refreshes (default 1)")


# ---------------------------------------------------------------- the dashboard (cli/web.py)

def dashboard(c: Commands) -> None:
    p = c.add("dashboard", "serve the web dashboard, its JSON API and /metrics "
              "(needs the dashboard extra)", "web:dashboard")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; any other needs a token)")
    p.add_argument("--port", type=_int_at_least(0), default=8080,
                   help="port (default 8080; 0 = any free port)")
    p.add_argument("--token", metavar="TOKEN",
                   help="require this token (≥ 16 characters; default "
                        "$QUEUECTL_DASHBOARD_TOKEN)")
    p.add_argument("--read-only", action="store_true", dest="read_only",
                   help="no actions (retry, cancel, pause): look only")


# ---------------------------------------------------------------- data moves (cli/transfer.py)

def migrate(c: Commands) -> None:
    c.add("migrate", "create or upgrade the database schema (every command does it "
          "when needed)", "transfer:migrate")


def export(c: Commands) -> None:
    p = c.add("export", "every job, with its state and output, as JSON Lines on stdout",
              "transfer:export")
    p.add_argument("--state", metavar="STATE", help="only jobs in this state")


def import_(c: Commands) -> None:
    p = c.add("import", "add jobs from 'queuectl export' output (all or nothing)",
              "transfer:import_")
    p.add_argument("file", nargs="?", default="-", metavar="FILE",
                   help="JSON Lines file (default '-': standard input)")


# ---------------------------------------------------------------- settings (cli/settings.py)

def config(c: Commands) -> None:
    sub = c.group("config", "read or change settings")
    p = c.add("set", "set a config key", "settings:set_", sub)
    p.add_argument("key")
    p.add_argument("value")
    p = c.add("get", "print a config key's value", "settings:get", sub)
    p.add_argument("key")
    _json(c.add("list", "every config key and its value", "settings:list_", sub))


# The order of `queuectl --help`.
COMMANDS = (enqueue, wait, worker, status, list_, show, logs, history, dlq, cancel, queue,
            schedule, stats, top, dashboard, purge, migrate, export, import_, config)


def build_parser() -> Parser:
    common = _common()
    root = Parser(prog="queuectl", parents=[common], allow_abbrev=False,
                  description="A durable background job queue for shell commands.")
    root.add_argument("--version", action="version", version=f"queuectl {__version__}")
    commands = Commands(common, root.add_subparsers(dest="command", metavar="COMMAND",
                                                     parser_class=Parser))
    for add in COMMANDS:
        add(commands)
    return root
