"""Terminal-safe output: a job's command, output and error reach the terminal
with their control characters shown (\\x1b, \\r, \\u202e), never obeyed: in
`show`, `list`, `dlq list`, `history`, `top`, `logs` on a terminal and the
workers' log. `logs` to a pipe stays byte-exact; --json is unchanged."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import termios
import time
import tty

from e2e_util import QUEUECTL

from queuectl.text import visible

# What the job prints: a tab and DEL, then a title change (OSC ... BEL), a
# carriage return, a screen clear, a C1 CSI (U+009B) and a right-to-left override.
PRINTS = b"tab\there\x7f\n\x1b]0;pwned\x07\r\x1b[2J\xc2\x9b \xe2\x80\xaex\n"
COMMAND = (": '\x1b]0;cmd\x07\r\x1b[31m\u202eevil\x7f'; printf 'tab\\there\\177\\n"
           "\\033]0;pwned\\007\\r\\033[2J\\302\\233 \\342\\200\\256x\\n'; exit 3")
# Raw control characters in rendered text (newline and tab are allowed).
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def run_bytes(cli, *args: str) -> bytes:
    """stdout of a `queuectl` run to a pipe, as bytes (no newline translation)."""
    p = subprocess.run(QUEUECTL + list(args), capture_output=True,
                       env={**cli.env, "COLUMNS": "400"}, cwd=cli.cwd, timeout=30)
    assert p.returncode == 0, (args, p.stdout, p.stderr)
    return p.stdout


def run_tty(cli, *args: str, until: "bytes | None" = None) -> bytes:
    """stdout of a `queuectl` run on a terminal (a pty in raw mode, so that the
    bytes read are the bytes written). With `until`: SIGINT once it is seen."""
    master, slave = pty.openpty()
    tty.setraw(slave)
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 400, 0, 0))
    p = subprocess.Popen(QUEUECTL + list(args), stdin=subprocess.DEVNULL, stdout=slave,
                         stderr=subprocess.PIPE, env={**cli.env, "COLUMNS": "400"},
                         cwd=cli.cwd)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + 30
    try:
        while True:
            ready, _, _ = select.select([master], [], [], max(0.0, deadline - time.monotonic()))
            assert ready, (args, "no output in 30 s", out)
            try:
                chunk = os.read(master, 65536)
            except OSError:          # EIO: the command closed the terminal
                break
            if not chunk:
                break
            out += chunk
            if until is not None and until in out:
                p.send_signal(signal.SIGINT)
                until = None
        assert p.wait(10) == 0, (args, out, p.stderr.read() if p.stderr else b"")
    finally:
        os.close(master)
        if p.poll() is None:
            p.kill()
            p.wait()
        if p.stderr:
            p.stderr.close()
    return out


def assert_safe(out: bytes, *shown: str) -> str:
    text = out.decode("utf-8")
    assert not RAW.search(text), (RAW.search(text), text)
    for s in shown:
        assert s in text, (s, text)
    return text


def make_dead_job(cli) -> tuple[str, bytes]:
    """The job, dead after one attempt, and the workers' log (stderr) of its run."""
    job = cli.enqueue(id="esc", command=COMMAND, max_retries=0)
    worker = subprocess.run(QUEUECTL + ["worker", "start", "--burst"], capture_output=True,
                            env=cli.env, cwd=cli.cwd, timeout=60)
    assert worker.returncode == 0, worker
    return job, worker.stderr


class Checks:
    """Runs every check and reports all that failed (which commands leak)."""

    def __init__(self):
        self.failed: list[str] = []

    def __call__(self, name: str, check, *args) -> None:
        try:
            check(*args)
        except AssertionError as e:
            self.failed.append(f"{name}: {str(e)[:300]}")

    def done(self) -> None:
        assert not self.failed, "\n".join(self.failed)


def test_text_commands_show_control_characters_and_logs_to_a_pipe_is_exact(cli):
    job, worker_log = make_dead_job(cli)
    shown_command = ": '\\x1b]0;cmd\\x07\\r\\x1b[31m\\u202eevil\\x7f';"
    error = "exit code 3: \\x1b[2J\\x9b \\u202ex"
    check = Checks()

    # The workers' log quotes the job's error: escaped, one line a message.
    check("worker log", lambda: assert_safe(worker_log, f"failed ({error})"))

    # JSON is exact (and json.dumps escapes the controls itself).
    d = cli.json("show", job)
    assert d["command"] == COMMAND
    assert d["output"] == PRINTS.decode()
    assert d["last_error"] == "exit code 3: \x1b[2J\x9b \u202ex"

    def show(run):
        text = assert_safe(run(cli, "show", job), shown_command, error,
                           "tab\there\\x7f\n\\x1b]0;pwned\\x07\\r\\x1b[2J\\x9b \\u202ex\n")
        assert re.search(r"^state +dead$", text, re.M), text

    def history(run):
        text = assert_safe(run(cli, "history", "--job-id", job), "\\u001b[2J")
        assert [json.loads(line)["event"] for line in text.splitlines()] == \
            ["enqueued", "processing", "dead"]

    def shows(run, args, *shown):
        assert_safe(run(cli, *args), *shown)

    for run in (run_bytes, run_tty):
        where = "tty" if run is run_tty else "pipe"
        check(f"show ({where})", show, run)
        check(f"list ({where})", shows, run, ["list"], shown_command)
        check(f"list --state dead ({where})", shows, run, ["list", "--state", "dead"],
              shown_command)
        check(f"dlq list ({where})", shows, run, ["dlq", "list"], shown_command, error)
        check(f"dlq list --group ({where})",       # (digits masked in groups)
              shows, run, ["dlq", "list", "--group"], "\\x1b[#J\\x9b \\u202ex")
        check(f"history ({where})", history, run)

    # `logs`: on a terminal, shown (newlines and tabs kept); to a pipe or a
    # file, the bytes printed.
    def logs_tty():
        assert run_tty(cli, "logs", job) == \
            b"tab\there\\x7f\n\\x1b]0;pwned\\x07\\r\\x1b[2J\\x9b \\u202ex\n"
    check("logs (tty)", logs_tty)
    assert run_bytes(cli, "logs", job) == PRINTS
    with open(cli.cwd / "out", "wb") as f:
        assert subprocess.run(QUEUECTL + ["logs", job], stdout=f, env=cli.env, cwd=cli.cwd,
                              timeout=30).returncode == 0
    assert (cli.cwd / "out").read_bytes() == PRINTS
    check.done()


def test_top_shows_control_characters_of_running_and_failed_jobs(cli):
    make_dead_job(cli)
    cli.enqueue(id="running", command="sleep 60 # \x1b]0;run\x07\x9b\u2066")
    cli.start()
    cli.wait_state("running", "processing")

    snapshot = assert_safe(run_bytes(cli, "top"), "sleep 60 # \\x1b]0;run\\x07\\x9b\\u2066",
                           "\\x1b[2J\\x9b \\u202ex")
    assert "RECENT FAILURES" in snapshot
    frames = run_tty(cli, "top", until=b"(Ctrl+C to quit)")
    # Its own screen clear and nothing else.
    assert frames.startswith(b"\x1b[H\x1b[2J")
    assert_safe(frames.replace(b"\x1b[H\x1b[2J", b""), "sleep 60 # \\x1b]0;run\\x07\\x9b\\u2066",
                "\\x1b[2J\\x9b \\u202ex", "RECENT FAILURES")


def test_visible_escapes_controls_and_keeps_what_it_is_told():
    assert visible("a\x1b[2Jb\r\n\t\x00\x7f\x85\x9b\u202a\u202e\u2066\u2069é中\\x") == \
        "a\\x1b[2Jb\\r\\n\\t\\x00\\x7f\\x85\\x9b\\u202a\\u202e\\u2066\\u2069é中\\x"
    assert visible("a\n\tb\r\x07", keep="\n\t") == "a\n\tb\\r\\x07"
    assert visible("a\n\tb", keep="\t") == "a\\n\tb"
    text = "".join(map(chr, range(0x3000)))
    assert not re.search("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", visible(text))
