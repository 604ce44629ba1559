"""Storage faults under running workers, on real file systems made for the test.

* disk full: a small tmpfs filled to the last page by a filler file;
* read-only: an ext4 image on a loop device mounted `errors=remount-ro`, turned
  read-only under the workers through ext4's `trigger_fs_error` (what the
  kernel does by itself after a write error);
* chmod 0400 of the database while workers (running as `nobody`: root ignores
  file modes) have it open;
* deleted: `rm queuectl.db*` while workers run.

Each checks that errors are one line, never a traceback, that waiting workers
do not spin (their CPU time is measured) and what state is left. The mounts
need root (mount, losetup, setpriv). Where a file system cannot be made the
test skips saying why, except under CI=true, where it fails. Every mount is
undone in `finally`. README, "Guarantees", says what survives each fault.

SQLite only: these are faults of the database *file*; a PostgreSQL server's
storage is the server's business (its faults are in the PostgreSQL chaos tests).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "e2e"))
import e2e_util  # noqa: E402
from e2e_util import assert_one_error_line, wait_exit, wait_until, worker_log  # noqa: E402

CLI, IN_CI = e2e_util._root.CLI, e2e_util._root.IN_CI

pytestmark = [pytest.mark.chaos, pytest.mark.backends("sqlite")]

CLK_TCK = os.sysconf("SC_CLK_TCK")


def summary(test: str, **fields) -> None:
    """The suite's summary line (chaos_util's, printed at the end of the run)."""
    try:
        import chaos_util
    except ImportError:                      # run outside tests/chaos' conftest
        print(f"{test}: " + ", ".join(f"{k}={v}" for k, v in fields.items()))
        return
    chaos_util.summary(test, **fields)


def _cannot(reason: str):
    if IN_CI:
        pytest.fail(f"CI=true and the storage fault tests cannot run: {reason}", pytrace=False)
    pytest.skip(f"storage fault test skipped: {reason}")


def _run(*cmd) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def _umount(path: Path) -> None:
    for _ in range(50):
        if _run("umount", str(path)).returncode == 0 or not os.path.ismount(path):
            return
        time.sleep(0.1)
    _run("umount", "-l", str(path))


@contextlib.contextmanager
def tmpfs(path: Path, size: str):
    path.mkdir()
    if os.geteuid() != 0:
        _cannot("needs root to mount a tmpfs")
    p = _run("mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path))
    if p.returncode != 0:
        _cannot(f"cannot mount a tmpfs: {p.stderr.strip()}")
    try:
        yield path
    finally:
        _umount(path)


@contextlib.contextmanager
def ext4_loop(image: Path, path: Path, size_mb: int = 32):
    """An ext4 file system in `image`, loop-mounted on `path` with errors=remount-ro.
    Yields the /sys/fs/ext4/<dev>/trigger_fs_error file that makes it read-only."""
    path.mkdir()
    if os.geteuid() != 0:
        _cannot("needs root to loop-mount a file system")
    with open(image, "wb") as f:
        f.truncate(size_mb << 20)
    p = _run("mkfs.ext4", "-q", "-F", str(image))
    if p.returncode != 0:
        _cannot(f"mkfs.ext4 failed: {p.stderr.strip() or p.stdout.strip()}")
    p = _run("mount", "-o", "loop,errors=remount-ro", str(image), str(path))
    if p.returncode != 0:
        _cannot(f"cannot loop-mount an ext4 image: {p.stderr.strip()}")
    try:
        dev = _run("findmnt", "-n", "-o", "SOURCE", str(path)).stdout.strip()
        trigger = Path("/sys/fs/ext4") / Path(dev).name / "trigger_fs_error"
        if not trigger.exists():
            _cannot(f"{trigger} does not exist (kernel without ext4 error injection)")
        yield trigger
    finally:
        _umount(path)


def fill(directory: Path) -> Path:
    """Write zeros into directory/filler until the file system is full."""
    filler = directory / "filler"
    chunk = b"\0" * 65536
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, 4096, 512, 1):
            while True:
                try:
                    if os.write(fd, chunk[:size]) < size:
                        break
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    assert os.statvfs(directory).f_bavail == 0
    return filler


def family(pid: int) -> list[int]:
    """`pid` and its children (a supervisor and its workers)."""
    pids = [pid]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        pids.append(int(entry))
            except (FileNotFoundError, ProcessLookupError, IndexError):
                pass
    return pids


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])      # utime + stime
    return total / CLK_TCK


def assert_no_busy_loop(proc, seconds: float = 3.0, limit: float = 0.10) -> float:
    """CPU share of a core used by `proc` and its workers over `seconds` (each
    process must stay under `limit`; a retry loop without pauses uses ~1.0)."""
    pids = family(proc.pid)
    assert len(pids) >= 2, "the supervisor's workers are gone"
    before, t0 = cpu_seconds(pids), time.monotonic()
    time.sleep(seconds)           # measuring, not waiting for anything
    share = (cpu_seconds(pids) - before) / (time.monotonic() - t0)
    assert share < limit * len(pids), f"{len(pids)} processes used {share:.0%} of a core"
    return share


def gated(tmp_path: Path) -> str:
    """A job command that logs its start, waits for the gate file, logs its end."""
    return (f"echo $QUEUECTL_JOB_ID >> {tmp_path}/started; "
            f"while [ ! -e {tmp_path}/gate ]; do sleep 0.02; done; "
            f"echo $QUEUECTL_JOB_ID >> {tmp_path}/ran")


def lines(path: Path) -> list[str]:
    try:
        return path.read_text().split()
    except FileNotFoundError:
        return []


def no_traceback(log: Path) -> str:
    text = worker_log(log)
    assert "Traceback" not in text and "internal error" not in text, text
    return text


def _jobs(cli: CLI, tmp_path: Path, n: int) -> list[str]:
    ids = [f"j{i:02d}" for i in range(n)]
    cli.ok("enqueue", "-", input="".join(
        json.dumps({"id": i, "command": gated(tmp_path)}) + "\n" for i in ids))
    return ids


def _start(cli: CLI, log: Path, *args):
    with open(log, "a") as f:
        return cli.start("--count", "2", *args, stderr=f)


def _completions(cli: CLI) -> dict:
    out = {}
    for line in cli.ok("history").splitlines():
        e = json.loads(line)
        if e["event"] == "completed":
            out[e["job_id"]] = out.get(e["job_id"], 0) + 1
    return out


def test_disk_full_enqueue_fails_whole_and_workers_pause_then_recover(tmp_path):
    """The database's file system fills up while two workers run two jobs.
    Enqueues (one job, a batch) fail with one line and exit 1 and leave
    nothing; the workers keep the finished jobs' results, log the problem once,
    sleep between attempts, and record everything once space is back; then they
    run the rest. Every job runs once and is completed once."""
    with tmpfs(tmp_path / "mnt", "8m") as mnt:
        cli = CLI(str(mnt / "queuectl.db"), tmp_path)
        log = tmp_path / "workers.log"
        try:
            cli.ok("config", "set", "lease_timeout", "10")    # heartbeats every 2.5 s
            ids = _jobs(cli, tmp_path, 12)
            workers = _start(cli, log)
            wait_until(lambda: len(lines(tmp_path / "started")) == 2,
                       message="two jobs running")
            filler = fill(mnt)

            line = assert_one_error_line(
                cli.run("enqueue", json.dumps({"id": "late", "command": "true"})), 1)
            assert "disk is full" in line, line
            batch = "".join(json.dumps({"id": f"b{i}", "command": "x" * 500}) + "\n"
                            for i in range(200))
            line = assert_one_error_line(cli.run("enqueue", "-", input=batch), 1)
            assert "disk is full" in line, line
            # A worker started now cannot register: it says so and exits 1.
            p = cli.run("worker", "start", "--burst", timeout=30)
            assert p.returncode == 1 and "disk is full" in p.stderr, p.stderr
            assert "Traceback" not in p.stderr, p.stderr

            (tmp_path / "gate").touch()      # the two jobs end; their results cannot be written
            wait_until(lambda: len(lines(tmp_path / "ran")) == 2, message="two jobs done")
            wait_until(lambda: "disk is full" in worker_log(log), message="the workers' log line")
            share = assert_no_busy_loop(workers)
            # Reads still work; nothing moved while the disk was full.
            status = cli.json("status")
            assert status["jobs"]["processing"] == 2 and status["jobs"]["pending"] == 10, status
            assert workers.poll() is None
            text = no_traceback(log)
            assert text.count("disk is full") <= 4, text       # once per worker and cause

            filler.unlink()                  # space is back
            p = cli.run("wait", "--all", "--timeout", "30", timeout=40)
            assert p.returncode == 0, (p.stdout, p.stderr, worker_log(log))
            assert sorted(lines(tmp_path / "ran")) == ids, "every job ran exactly once"
            assert _completions(cli) == dict.fromkeys(ids, 1)
            jobs = cli.json("list")
            assert [j["id"] for j in jobs] == ids, "nothing of the refused enqueues"
            assert all(j["attempts"] == 1 for j in jobs)
            # Each says so once, at its first heartbeat that goes through.
            wait_until(lambda: worker_log(log).count("database error cleared") == 2,
                       timeout=10, message="the workers to log the recovery")
            workers.send_signal(signal.SIGTERM)
            assert wait_exit(workers, 15) == 0, worker_log(log)
            no_traceback(log)
            summary("storage: disk full", jobs=12, results_held_while_full=2,
                    enqueues_refused=2, worker_cpu_while_full=f"{share:.1%}",
                    completed_once=12, lost=0)
        finally:
            cli.cleanup()


def test_database_deleted_under_running_workers_stops_them_with_one_line(tmp_path):
    """`rm queuectl.db*` while two workers run two jobs. An open SQLite
    connection keeps working on a deleted file, where no other process can see
    its writes, while the next `enqueue` makes a new, empty database at the
    path: two queues under one name. So each worker notices (within ~2 s),
    says so in one line, lets its running job finish (as `worker stop` would)
    and exits; `worker start` exits 1. Nothing busy-loops meanwhile. Jobs
    enqueued afterwards go to the new file and wait for new workers, which run
    them."""
    cli = CLI(str(tmp_path / "queuectl.db"), tmp_path)
    log = tmp_path / "workers.log"
    try:
        _jobs(cli, tmp_path, 6)
        workers = _start(cli, log)
        wait_until(lambda: len(lines(tmp_path / "started")) == 2, message="two jobs running")
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{cli.db}{suffix}")
        wait_until(lambda: worker_log(log).count("was deleted while in use") == 2,
                   timeout=10, message="both workers to notice")
        share = assert_no_busy_loop(workers, seconds=2.0)
        assert workers.poll() is None, "running jobs are not interrupted"
        (tmp_path / "gate").touch()
        assert wait_exit(workers, 15) == 1, worker_log(log)
        text = no_traceback(log)
        assert len(lines(tmp_path / "ran")) == 2, "they finished their jobs, took no more"
        for line in text.splitlines():
            if "was deleted" in line:
                assert line.endswith("; stopping once job j00 ends") or \
                    line.endswith("; stopping once job j01 ends"), line
        # The path now names a new database, which the stopped workers never touched.
        assert cli.json("status")["jobs"]["pending"] == 0
        cli.enqueue(id="after", command="echo after >> " + str(tmp_path / "ran"))
        cli.ok("worker", "start", "--burst", "--quiet", timeout=30)
        assert cli.job("after")["state"] == "completed"
        summary("storage: database deleted", workers=2, stopped_with_one_line=2,
                running_jobs_finished=2, worker_cpu=f"{share:.1%}", exit_code=1,
                new_database_works=True)
    finally:
        cli.cleanup()


def test_database_file_system_turning_read_only_under_running_workers(tmp_path):
    """The ext4 file system holding the database goes read-only (as the kernel
    makes it after a write error) while two workers run two jobs. Writes fail
    with one line (`enqueue`: exit 1); reads still answer; the workers keep the
    two results, log the error once each, and retry slowly (no busy loop) for
    as long as it lasts. A first SIGTERM cannot finish them (the results cannot
    be written); a second gives up the results and they exit 1, one line each.
    The file, checked afterwards, is intact and holds every enqueued job, none
    completed: the two that ran will run again (at-least-once)."""
    with ext4_loop(tmp_path / "fs.img", tmp_path / "mnt") as trigger:
        mnt = tmp_path / "mnt"
        cli = CLI(str(mnt / "queuectl.db"), tmp_path)
        log = tmp_path / "workers.log"
        try:
            ids = _jobs(cli, tmp_path, 6)
            workers = _start(cli, log)
            wait_until(lambda: len(lines(tmp_path / "started")) == 2,
                       message="two jobs running")
            trigger.write_text("queuectl storage fault test\n")

            line = assert_one_error_line(
                cli.run("enqueue", json.dumps({"id": "late", "command": "true"})), 1)
            assert "read-only" in line, line
            (tmp_path / "gate").touch()
            wait_until(lambda: worker_log(log).count("database error (will retry)") >= 2,
                       message="the workers' log lines")
            share = assert_no_busy_loop(workers)
            status = cli.json("status")
            assert status["jobs"]["processing"] == 2 and status["jobs"]["pending"] == 4, status
            text = no_traceback(log)
            assert text.count("database error (will retry)") == 2, text
            assert "read-only" in text, text

            workers.send_signal(signal.SIGTERM)
            with pytest.raises(subprocess.TimeoutExpired):
                workers.wait(1.5)        # holding results it cannot write
            workers.send_signal(signal.SIGTERM)
            code = wait_exit(workers, 15)
            text = no_traceback(log)
            assert code == 1, text
            assert text.count("could not record the result") == 2, text
        finally:
            cli.cleanup()
    # The file, on the file system repaired and mounted again.
    _run("e2fsck", "-fy", str(tmp_path / "fs.img"))
    mnt.rmdir()
    with _remount(tmp_path):
        import sqlite3
        with contextlib.closing(sqlite3.connect(f"file:{mnt}/queuectl.db?mode=ro", uri=True)) as c:
            assert c.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        # Every enqueued job is there (enqueue fsyncs). The workers' own
        # commits (synchronous=NORMAL) after the last write-back may be gone,
        # as after a power cut: the two claims can be `processing` (rescued
        # by lease) or rolled back to `pending`. Either way they run again.
        states = {j["id"]: j["state"] for j in cli.json("list")}
        assert sorted(states) == ids
        assert sorted(states.values())[:4] == ["pending"] * 4, states
        assert set(states.values()) <= {"pending", "processing"}, states
    summary("storage: file system read-only", workers=2, results_unwritable=2,
            enqueue_exit=1, worker_cpu=f"{share:.1%}", integrity="ok",
            jobs_kept=len(ids), completed=0)


@contextlib.contextmanager
def _remount(tmp_path: Path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    p = _run("mount", "-o", "loop", str(tmp_path / "fs.img"), str(mnt))
    assert p.returncode == 0, p.stderr
    try:
        yield mnt
    finally:
        _umount(mnt)


def test_database_file_chmod_read_only_under_running_workers(tmp_path):
    """`chmod 0400 queuectl.db` while two workers (not root: root ignores
    file modes) run two jobs. POSIX checks a file's mode when it is opened, so
    the workers, which have it open, carry on and finish every job; every
    process that opens it afterwards is refused its writes in one line: an
    `enqueue` (exit 1, nothing written), and a new `worker start` (its
    worker cannot register: exit 1). Reads still work."""
    import pwd
    import shutil
    import tempfile
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        _cannot("needs root and setpriv to run queuectl as another user")
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        _cannot("no user 'nobody'")
    as_nobody = ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}",
                 "--clear-groups"]
    # (pytest's tmp_path is root's alone: the database lives where nobody can write.)
    home = Path(tempfile.mkdtemp(prefix="queuectl-ro-"))
    os.chown(home, nobody.pw_uid, nobody.pw_gid)
    cli = CLI(str(home / "queuectl.db"), home)
    log = tmp_path / "workers.log"

    def run(*args, input=None):
        return subprocess.run(as_nobody + e2e_util.QUEUECTL + [str(a) for a in args],
                              input=input, text=True, capture_output=True, env=cli.env,
                              cwd=home, timeout=60)

    try:
        p = run("enqueue", "-", input="".join(
            json.dumps({"id": f"j{i:02d}", "command": gated(home)}) + "\n" for i in range(4)))
        assert p.returncode == 0, p.stderr
        with open(log, "a") as f:
            workers = subprocess.Popen(as_nobody + e2e_util.QUEUECTL + [
                "worker", "start", "--count", "2"], env=cli.env, cwd=home,
                stdout=subprocess.DEVNULL, stderr=f)
        cli.procs.append(workers)
        wait_until(lambda: len(lines(home / "started")) == 2, message="two jobs running")
        os.chmod(cli.db, 0o400)

        p = run("enqueue", json.dumps({"id": "late", "command": "true"}))
        line = assert_one_error_line(p, 1)
        assert "is read-only; check the permissions" in line, line
        p = run("worker", "start", "--burst")
        assert p.returncode == 1, p.stderr
        errors = [x for x in p.stderr.splitlines() if "error" in x]
        assert errors and all("read-only" in x for x in errors), p.stderr
        assert "Traceback" not in p.stderr, p.stderr
        assert json.loads(run("status", "--json").stdout)["jobs"]["processing"] == 2

        (home / "gate").touch()
        # The running workers still hold the file open for writing: they finish everything.
        wait_until(lambda: json.loads(run("status", "--json").stdout)["jobs"]["completed"] == 4,
                   timeout=20, message="all four jobs completed")
        assert sorted(lines(home / "ran")) == [f"j{i:02d}" for i in range(4)]
        assert "late" not in {j["id"] for j in json.loads(run("list", "--json").stdout)}
        workers.send_signal(signal.SIGTERM)
        assert wait_exit(workers, 15) == 0, worker_log(log)
        no_traceback(log)
        summary("storage: database chmod 0400", running_workers_carry_on=True, completed=4,
                enqueue_exit=1, new_worker_start_exit=1)
    finally:
        cli.cleanup()
        shutil.rmtree(home, ignore_errors=True)
