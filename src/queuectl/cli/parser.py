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
from typing import TYPE_CHECKING, Any, NoReturn

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


# The most workers one `worker start` runs. Each is a Python process (~20 MB)
# with its own database connection, and a job queue's workers mostly wait on
# their commands: 256 is far past what one host's cores and a database's
# connection limit serve well. More: run `worker start` on more hosts.
MAX_WORKERS = 256


class Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line: `queuectl: error: ...` (exit 2),
    with a "did you mean" for a misspelt command, subcommand or option."""

    #: The innermost parser of the last parse: which options were possible
    #: where an unrecognised one was found.
    last: "Parser | None" = None

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[no-untyped-def]
        Parser.last = self
        return super().parse_known_args(args, namespace)

    def error(self, message: str) -> NoReturn:
        message, prog = self._explain(message)
        raise InvalidInput(f"{message} (see '{prog} --help')")

    def _explain(self, message: str) -> tuple[str, str]:
        """The message with a "did you mean", and the command it is about."""
        import re

        from queuectl.config import did_you_mean
        m = re.fullmatch(r"argument (\S+): invalid choice: '(.*)' \(choose from (.*)\)",
                         message, re.S)
        if m:
            what, word = m.group(1), m.group(2)
            choices = [c.strip().strip("'") for c in m.group(3).split(",")]
            choices = [c for c in choices if not c.startswith("_")]      # hidden ones
            kind = {"COMMAND": "command", "SUBCOMMAND": "subcommand"}.get(
                what, what.lower())
            return (f"unknown {kind} {word!r}{did_you_mean(word, choices)} "
                    f"(choose from {', '.join(choices)})"), self.prog
        m = re.fullmatch(r"unrecognized arguments: (.*)", message, re.S)
        if m:
            where = Parser.last or self
            options = [o for o in where._option_string_actions if o.startswith("--")]
            words = m.group(1).split(" ")
            first = next((w for w in words if w.startswith("-")), None)
            if first is not None:
                hint = did_you_mean(first.split("=")[0], options)
                if hint:
                    return f"unknown option {first!r}{hint}", where.prog
            if where.prog == "queuectl add":
                return (f"{message}: put the command after '--' (queuectl add [OPTIONS] -- "
                        "COMMAND [ARG...])"), where.prog
            return message, where.prog
        return message, self.prog


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
    """An argparse type: a duration (90, 90s, 15m, 1h30m...) in seconds."""
    from queuectl.config import parse_duration
    try:
        value = parse_duration(text, "the duration")
    except InvalidInput as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    if not 0 <= value <= 10**9:
        raise argparse.ArgumentTypeError(f"must be from 0 to 1e9 seconds: {text!r}")
    return value


def _count(text: str) -> int:
    value = _pos_int(text)
    if value > MAX_WORKERS:
        raise argparse.ArgumentTypeError(
            f"at most {MAX_WORKERS} workers per 'worker start', not {value}: each is a "
            "process with its own database connection, and more than that only "
            "contend; start workers on more hosts instead")
    return value


_nonneg_int = _int_at_least(0)


def _limit(text: str) -> int:
    value = _nonneg_int(text)
    if value > 2**31 - 1:
        raise argparse.ArgumentTypeError(f"must be at most {2**31 - 1}: {text!r}")
    return value


_pos_int = _int_at_least(1)

# One line for each payload field (`enqueue --help`, `add --help`);
# tests/test_cli_help.py checks that every field of model.FIELDS is here.
FIELD_HELP = {
    "command": "the shell command (required), run as /bin/sh -c COMMAND",
    "id": "the job's id: 1-128 letters, digits or ._:- (default: a new one)",
    "queue": "the named queue it belongs to (default 'default')",
    "max_retries": "retries after the first attempt (default: config max_retries)",
    "priority": "an integer; higher runs first, ties first-in first-out (default 0)",
    "run_at": "earliest start, an ISO-8601 time (UTC without an offset)",
    "delay": "earliest start = now + delay: seconds, or 90s/15m/2h/7d/1w/1h30m",
    "timeout": "kill an attempt after this long, like delay (default: config "
               "job_timeout; 0 = none)",
    "fatal_exit_codes": "exit codes (1-255) that go straight to the DLQ, no retry",
    "cwd": "the directory to run in (default: the worker's)",
    "env": "extra environment variables: an object of NAME to string",
    "after": "ids of jobs that must complete first",
}


def _fields_epilog() -> str:
    width = max(map(len, FIELD_HELP))
    return "payload fields:\n" + "\n".join(
        f"  {name.ljust(width)}  {text}" for name, text in FIELD_HELP.items())


class Commands:
    """Adds commands to a parser: each function below adds one top-level
    command (and its subcommands), in the order `queuectl --help` lists them."""

    def __init__(self, common: argparse.ArgumentParser, sub: Subparsers):
        self.common, self.sub = common, sub

    def add(self, name: str, help: str | None, target: str | None,
            parent: Subparsers | None = None, **kw: Any) -> argparse.ArgumentParser:
        """A command `name` that runs `target` ("module:function" in queuectl.cli).
        Without `help` it is hidden (a helper of the completion scripts)."""
        if help is not None:
            kw["help"] = help
        p = (parent or self.sub).add_parser(name, description=help, parents=[self.common],
                                            allow_abbrev=False, **kw)
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
              "jobs:enqueue", epilog=_fields_epilog() + "\n\nexample:\n  queuectl enqueue "
              "'{\"command\": \"make report\", \"delay\": \"15m\", \"max_retries\": 1}'",
              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("payload", nargs="?",
                   help="a JSON object, or '-' to read JSON Lines / a JSON array from stdin")
    p.add_argument("--file", "-f", metavar="F",
                   help="read JSON Lines or a JSON array from file F")
    p.add_argument("--skip-existing", action="store_true",
                   help="an id that exists with the same command is not an error "
                        "(prints 'exists ID')")
    _json(p)


def add(c: Commands) -> None:
    p = c.add("add", "add a job without JSON: add [OPTIONS] -- COMMAND [ARG...]",
              "jobs:add", formatter_class=argparse.RawDescriptionHelpFormatter,
              usage="queuectl add [OPTIONS] -- COMMAND [ARG...]",
              epilog="One word after -- is a shell command as written:\n"
                     "  queuectl add -- 'make && make test'\n"
                     "several words are quoted for the shell, so they arrive as typed:\n"
                     "  queuectl add -- printf '%s\\n' 'a b'      # prints: a b\n"
                     "  queuectl add --queue mail --delay 15m -- ./send.sh 'Hi there'")
    p.add_argument("words", nargs="*", metavar="COMMAND",
                   help="the command and its arguments (after --)")
    p.add_argument("--id", help=FIELD_HELP["id"])
    p.add_argument("--queue", metavar="NAME", help=FIELD_HELP["queue"])
    p.add_argument("--priority", type=int, metavar="N", help=FIELD_HELP["priority"])
    when = p.add_mutually_exclusive_group()
    when.add_argument("--delay", metavar="D", help="start no sooner than D from now: "
                      "seconds, or 90s/15m/2h/7d/1w/1h30m")
    when.add_argument("--run-at", dest="run_at", metavar="TIME", help=FIELD_HELP["run_at"])
    p.add_argument("--timeout", metavar="D", help=FIELD_HELP["timeout"])
    p.add_argument("--max-retries", dest="max_retries", type=int, metavar="N",
                   help=FIELD_HELP["max_retries"])
    p.add_argument("--after", action="append", metavar="ID",
                   help="run only once job ID has completed (repeatable)")
    p.add_argument("--cwd", metavar="DIR",
                   help="the directory to run in (default: this one; stored absolute)")
    p.add_argument("--env", action="append", metavar="NAME=VALUE",
                   help="an environment variable for the command (repeatable)")
    p.add_argument("--fatal-exit-code", dest="fatal_exit_codes", action="append", type=int,
                   metavar="N", help="an exit code that goes straight to the DLQ (repeatable)")
    p.add_argument("--skip-existing", action="store_true",
                   help="an id that exists with the same command is not an error")
    _json(p)


def wait(c: Commands) -> None:
    p = c.add("wait", "wait until jobs are completed or dead (exit 0: all completed, "
              "1: not all, 124: timed out)", "jobs:wait")
    p.add_argument("ids", nargs="*", metavar="ID")
    p.add_argument("--all", action="store_true",
                   help="wait until no job is pending, failed or processing")
    p.add_argument("--timeout", type=_seconds, default=None, metavar="D",
                   help="give up after D: seconds, or 90s/15m/1h30m... (exit 124)")


def status(c: Commands) -> None:
    _json(c.add("status", "job counts per state and active workers", "jobs:status"))


def health(c: Commands) -> None:
    _json(c.add("health", "does the database answer? exit 0 if so, 1 if not "
                "(for probes)", "health:health_"))


def list_(c: Commands) -> None:
    p = c.add("list", "list jobs, oldest first", "jobs:list_")
    p.add_argument("--state", metavar="STATE",
                   help="pending, processing, completed, failed, dead or cancelled")
    p.add_argument("--limit", type=_nonneg_int, default=None, metavar="N",
                   help="at most N jobs (0 = all; default 100 as text, all with --json)")
    p.add_argument("--last", type=_nonneg_int, default=None, metavar="N",
                   help="the newest N jobs instead (still oldest first)")
    p.add_argument("--queue", action="append", metavar="NAME", dest="queues",
                   help="only jobs of this queue (repeatable)")
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
    p.add_argument("--count", "-c", type=_count, default=1, metavar="N",
                   help=f"number of worker processes (default 1, at most {MAX_WORKERS})")
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
    _json(p)


# ---------------------------------------------------------------- steering (cli/control.py)

def cancel(c: Commands) -> None:
    p = c.add("cancel", "cancel a job (or --all): a waiting one at once, a running one "
              "is killed", "control:cancel")
    p.add_argument("id", nargs="?")
    p.add_argument("--all", action="store_true",
                   help="cancel every pending, failed and processing job (of --queue, "
                        "in --state)")
    p.add_argument("--queue", action="append", metavar="NAME", dest="queues",
                   help="with --all: only jobs of this queue (repeatable)")
    p.add_argument("--state", action="append", metavar="STATE", dest="states",
                   help="with --all: only jobs in this state: pending, failed or "
                        "processing (repeatable)")
    p.add_argument("--yes", action="store_true",
                   help="with --all: running jobs too (their commands are killed)")
    _json(p)


def remove(c: Commands) -> None:
    p = c.add("remove", "delete jobs that are not running, with their events and output",
              "control:remove")
    p.add_argument("ids", nargs="+", metavar="ID")
    p.add_argument("--force", action="store_true",
                   help="also when waiting jobs depend on it (they are cancelled)")
    _json(p)


def requeue(c: Commands) -> None:
    p = c.add("requeue", "run completed, dead or cancelled jobs again (attempts from 0, "
              "history kept)", "control:requeue")
    p.add_argument("ids", nargs="+", metavar="ID")
    _json(p)


def edit(c: Commands) -> None:
    p = c.add("edit", "change a waiting job (pending, or failed and waiting for its retry)",
              "control:edit")
    p.add_argument("id")
    p.add_argument("--priority", type=int, metavar="N", help=FIELD_HELP["priority"])
    when = p.add_mutually_exclusive_group()
    when.add_argument("--delay", metavar="D", help="due D from now: seconds, or "
                      "90s/15m/2h/7d/1w/1h30m (0 = now)")
    when.add_argument("--run-at", dest="run_at", metavar="TIME", help=FIELD_HELP["run_at"])
    p.add_argument("--max-retries", dest="max_retries", type=int, metavar="N",
                   help="retries after the first attempt")
    p.add_argument("--timeout", metavar="D", help="kill an attempt after D (0 = none)")
    _json(p)


def queue(c: Commands) -> None:
    sub = c.group("queue", "named queues: list, pause, resume, limit, remove")
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
    p = c.add("remove", "remove a queue's settings (only when it has no jobs)",
              "control:queue_remove", sub)
    p.add_argument("name")
    _json(p)


def purge(c: Commands) -> None:
    p = c.add("purge", "delete old finished jobs and their events", "control:purge")
    p.add_argument("--state", action="append", required=True, metavar="STATE",
                   dest="states", help="completed, dead or cancelled (repeatable)")
    p.add_argument("--older-than", required=True, metavar="AGE", dest="older_than",
                   help="finished more than AGE ago: 30s, 15m, 2h, 7d, 1w, 1h30m (0 = all)")


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
                   help="the window: 30s, 15m, 2h, 7d, 1w, 1h30m (default 1h)")
    _json(p)


def top(c: Commands) -> None:
    p = c.add("top", "a live view: counts, workers, running jobs, recent failures "
              "(Ctrl+C quits; one snapshot when not on a terminal)", "stats:top")
    p.add_argument("--interval", type=_seconds, default=1.0, metavar="D",
                   help="time between refreshes (default 1 second)")


# ---------------------------------------------------------------- the dashboard (cli/web.py)

def dashboard(c: Commands) -> None:
    p = c.add("dashboard", "serve the web dashboard, its JSON API and /metrics "
              "(needs the dashboard extra)", "web:dashboard")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=_int_at_least(0), default=8080,
                   help="port (default 8080; 0 = any free port)")
    p.add_argument("--token", metavar="TOKEN", help=argparse.SUPPRESS)   # refused: ps
    p.add_argument("--token-file", metavar="FILE", dest="token_file",
                   help="read the access token from FILE (mode 600; default "
                        "$QUEUECTL_DASHBOARD_TOKEN, else ~/.config/queuectl/dashboard-token, "
                        "made on first use)")
    p.add_argument("--trusted-proxy", metavar="ADDR", action="append", dest="trusted_proxy",
                   help="a reverse proxy's address whose X-Forwarded-* headers are "
                        "believed (HTTPS: Secure cookies); repeatable")
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
    p = c.add("set", "set a config key (durations: seconds or 90s/15m/2h/7d/1w/1h30m)",
              "settings:set_", sub)
    p.add_argument("key")
    p.add_argument("value")
    _json(p)
    p = c.add("get", "print a config key's value", "settings:get", sub)
    p.add_argument("key")
    _json(c.add("list", "every config key and its value", "settings:list_", sub))


# ---------------------------------------------------------------- help (cli/shell.py)

def help_(c: Commands) -> None:
    p = c.add("help", "help on a command: queuectl help [COMMAND [SUBCOMMAND]]", "shell:help_")
    p.add_argument("topic", nargs="*", metavar="COMMAND")


def completion(c: Commands) -> None:
    p = c.add("completion", "print a shell completion script (see the README to install it)",
              "shell:completion")
    p.add_argument("shell", choices=SHELLS, metavar="SHELL", help="bash, zsh or fish")


def ids(c: Commands) -> None:
    # Hidden: the completion scripts' source of job ids.
    c.add(IDS_COMMAND, None, "shell:ids")


SHELLS = ("bash", "zsh", "fish")
IDS_COMMAND = "_ids"

# The order of `queuectl --help`.
COMMANDS = (add, enqueue, wait, worker, status, health, list_, show, logs, history, dlq, cancel,
            remove, requeue, edit, queue, schedule, stats, top, dashboard, purge, migrate,
            export, import_, config, help_, completion, ids)


def command_word(argv: list[str]) -> "int | None":
    """The index of the command in argv (after global options), or None."""
    i = 0
    while i < len(argv):
        if argv[i] == "--db":
            i += 2
        elif argv[i].startswith("-"):
            i += 1
        else:
            return i
    return None


def parse(argv: list[str]) -> argparse.Namespace:
    """Parse argv. `add`'s command words are everything after its first `--`,
    as given (argparse itself would treat a later `--` differently by version)."""
    at = command_word(argv)
    rest = None
    if at is not None and argv[at] == "add" and "--" in argv[at:]:
        cut = argv.index("--", at)
        argv, rest = argv[:cut], argv[cut + 1:]
    args = build_parser().parse_args(argv)
    if rest is not None:
        args.words = list(args.words) + rest
    return args


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
