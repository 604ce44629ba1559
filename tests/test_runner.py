"""The runner (queuectl/runner.py) with real, tiny shell commands."""

from __future__ import annotations

import os
import signal
import time

import pytest

from queuectl import runner
from queuectl.runner import OUTPUT_CAP, run

ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}


def alive(pid: int) -> bool:
    """Is `pid` a live process (zombies count as dead: init may reap them late)?"""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def wait_gone(pids, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        left = [p for p in pids if alive(p)]
        if not left:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"processes still alive after {timeout}s: {left}")
        time.sleep(0.02)


def read_pids(*paths, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            pids = [int(p.read_text().strip()) for p in paths]
            return pids
        except (FileNotFoundError, ValueError):
            if time.monotonic() > deadline:
                raise AssertionError(f"pid files not written: {paths}")
            time.sleep(0.02)


@pytest.fixture
def reaper():
    """Pids to SIGKILL after the test, whatever happens."""
    pids = []
    yield pids
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


# ---------------------------------------------------------------- exit status

def test_exit_zero_succeeds():
    out = run("true", ENV)
    assert out.kind == "succeeded" and out.ok
    assert out.exit_code == 0 and out.error is None
    assert out.output == "" and out.truncated is False
    assert out.duration >= 0


def test_nonzero_exit_is_recorded():
    out = run("echo about to fail; exit 3", ENV)
    assert out.kind == "exit" and not out.ok
    assert out.exit_code == 3
    assert out.error == "exit code 3: about to fail"
    assert run("exit 1", ENV).error == "exit code 1"


def test_unknown_command_is_127_not_found():
    out = run("no-such-command-queuectl-test", ENV)
    assert out.kind == "exit"
    assert out.exit_code == 127
    assert out.error.startswith("exit code 127")
    assert "not found" in out.error and "no-such-command-queuectl-test" in out.error


def test_death_by_signal():
    out = run("kill -9 $$", ENV)
    assert out.kind == "signal" and not out.ok
    assert out.exit_code is None
    assert "9" in out.error and "SIGKILL" in out.error
    out = run("kill -TERM $$", ENV)
    assert out.kind == "signal" and "SIGTERM" in out.error


# ---------------------------------------------------------------- output

def test_stdout_and_stderr_are_captured_interleaved_in_order():
    out = run("echo out1; echo err1 >&2; echo out2; echo err2 1>&2", ENV)
    assert out.output == "out1\nerr1\nout2\nerr2\n"
    assert out.truncated is False


def test_output_is_bounded_to_the_last_64_kib():
    assert OUTPUT_CAP == 64 * 1024
    t = time.monotonic()
    out = run("head -c 10485760 /dev/zero | tr '\\0' a; printf END", ENV, timeout=30)
    assert time.monotonic() - t < 10
    assert out.ok
    assert out.truncated is True
    assert len(out.output.encode()) == OUTPUT_CAP
    assert out.output.endswith("aaaEND")
    assert set(out.output[:-3]) == {"a"}


def test_output_exactly_at_the_cap_is_not_truncated():
    out = run(f"head -c {OUTPUT_CAP} /dev/zero | tr '\\0' b", ENV)
    assert out.truncated is False and len(out.output) == OUTPUT_CAP
    out = run(f"head -c {OUTPUT_CAP + 1} /dev/zero | tr '\\0' b", ENV)
    assert out.truncated is True and len(out.output) == OUTPUT_CAP


def test_invalid_utf8_output_does_not_break_capture():
    out = run("printf 'ok \\377\\376 done'", ENV)
    assert out.ok
    assert out.output.startswith("ok ") and out.output.endswith(" done")


# ---------------------------------------------------------------- timeout

def test_timeout_kills_the_whole_process_group(tmp_path, reaper):
    a, b = tmp_path / "a.pid", tmp_path / "b.pid"
    # The shell, a background grandchild and a nested shell's child: all in the group.
    cmd = (f"sleep 30 & echo $! > {a}; "
           f"sh -c 'sleep 30 & echo $! > {b}; wait' & "
           "echo started; wait")
    t = time.monotonic()
    out = run(cmd, ENV, timeout=0.2)
    took = time.monotonic() - t
    pids = read_pids(a, b)
    reaper.extend(pids)
    assert out.kind == "timeout" and not out.ok
    assert out.exit_code is None
    assert out.error == "timed out after 0.2s"
    assert "started" in out.output
    assert 0.15 <= took < 2.0, took
    wait_gone(pids)


def test_timeout_escalates_to_sigkill_for_children_that_ignore_sigterm(tmp_path, reaper):
    pidfile = tmp_path / "stubborn.pid"
    cmd = (f"sh -c 'trap \"\" TERM; echo $$ > {pidfile}; "
           "while :; do sleep 0.05; done' & wait")
    t = time.monotonic()
    out = run(cmd, ENV, timeout=0.3, kill_grace=0.3)
    took = time.monotonic() - t
    (pid,) = read_pids(pidfile)
    reaper.append(pid)
    assert out.kind == "timeout"
    assert took < 2.0, took
    wait_gone([pid])


def test_zero_timeout_means_no_limit():
    out = run("sleep 0.3; echo done", ENV, timeout=0)
    assert out.ok and out.output == "done\n"


# ---------------------------------------------------------------- tick

def test_tick_returning_a_reason_interrupts_and_kills_the_group(tmp_path, reaper):
    pidfile = tmp_path / "child.pid"
    calls = []

    def tick():
        calls.append(time.monotonic())
        return "stop now" if len(calls) >= 3 else None

    t = time.monotonic()
    out = run(f"sleep 30 & echo $! > {pidfile}; wait", ENV, tick=tick, tick_interval=0.05)
    took = time.monotonic() - t
    (pid,) = read_pids(pidfile)
    reaper.append(pid)
    assert out.kind == "interrupted"
    assert out.error == "interrupted: stop now"
    assert len(calls) == 3
    assert took < 2.0, took
    wait_gone([pid])


def test_tick_returning_nothing_lets_the_command_finish():
    calls = []
    out = run("sleep 0.4; echo fine", ENV, tick=lambda: calls.append(1),
              tick_interval=0.05)
    assert out.ok and out.output == "fine\n"
    assert len(calls) >= 3           # called repeatedly while the command ran


# ---------------------------------------------------------------- environment, stdin

def test_environment_is_passed_through():
    env = {**ENV, "QUEUECTL_JOB_ID": "job-42", "QUEUECTL_ATTEMPT": "2"}
    out = run('echo "$QUEUECTL_JOB_ID:$QUEUECTL_ATTEMPT"', env)
    assert out.output == "job-42:2\n"


def test_only_the_given_environment_is_visible(monkeypatch):
    monkeypatch.setenv("QUEUECTL_TEST_LEAK", "leaked")
    out = run('echo "[${QUEUECTL_TEST_LEAK-unset}]"', ENV)
    assert out.output == "[unset]\n"


def test_stdin_is_dev_null():
    # Make our own stdin a pipe that never ends: a runner that inherited it
    # would make `cat` block until the timeout.
    r, w = os.pipe()
    saved = os.dup(0)
    try:
        os.dup2(r, 0)
        t = time.monotonic()
        out = run("cat; echo EOF; readlink /proc/self/fd/0", ENV, timeout=3)
        took = time.monotonic() - t
    finally:
        os.dup2(saved, 0)
        for fd in (saved, r, w):
            os.close(fd)
    assert out.kind == "succeeded", out
    assert out.output.splitlines()[0] == "EOF"
    assert out.output.splitlines()[1] == "/dev/null"
    assert took < 2.0


def test_runs_in_its_own_process_group():
    out = run("cut -d' ' -f5 /proc/$$/stat; echo $$", ENV)
    pgid, pid = out.output.split()
    assert pgid == pid
    assert int(pgid) != os.getpgrp()


# ---------------------------------------------------------------- background children

def test_background_child_holding_the_pipe_does_not_block_return(tmp_path, reaper):
    pidfile = tmp_path / "bg.pid"
    t = time.monotonic()
    out = run(f"sleep 20 & echo $! > {pidfile}; echo early", ENV, timeout=10)
    took = time.monotonic() - t
    (pid,) = read_pids(pidfile)
    reaper.append(pid)
    assert out.ok
    assert out.output == "early\n"
    assert took < 1.5, took


def test_no_zombie_is_left_behind():
    before = _zombie_children()
    for _ in range(5):
        run("true", ENV)
        run("exit 2", ENV)
    run("sleep 5", ENV, timeout=0.1)
    assert _zombie_children() == before


def _zombie_children():
    me = str(os.getpid())
    out = set()
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "Z" and fields[1] == me:
            out.add(int(d))
    return out


def test_kill_grace_default_is_short():
    assert 0 < runner.KILL_GRACE <= 5


def test_cwd_runs_there_and_the_worker_stays_where_it_was(tmp_path):
    here = os.getcwd()
    out = run("pwd", ENV, cwd=str(tmp_path))
    assert out.ok and out.output == f"{tmp_path}\n"
    assert os.getcwd() == here
    missing = run("pwd", ENV, cwd=str(tmp_path / "nope"))
    assert missing.kind == "start_failed"
    assert "cannot run in directory" in missing.error and "No such file" in missing.error
    assert os.getcwd() == here
