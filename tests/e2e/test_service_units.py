"""The systemd units in contrib/systemd/ (system and user): `systemd-analyze
verify` finds nothing to say about them (skipped where systemd-analyze is
missing, except under CI=true), and they stop workers the documented way."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import IN_CI

ROOT = Path(__file__).resolve().parents[2]
UNITS = {"system": ROOT / "contrib/systemd/queuectl-worker.service",
         "user": ROOT / "contrib/systemd/user/queuectl-worker.service"}
QUEUECTL = Path(sys.executable).parent / "queuectl"


def _settings(path: Path) -> dict:
    p = configparser.ConfigParser(strict=False, interpolation=None)
    p.optionxform = str
    p.read(path)
    return dict(p["Service"])


@pytest.mark.parametrize("kind", sorted(UNITS))
def test_the_unit_stops_workers_gracefully_and_restarts_on_failure(kind):
    s = _settings(UNITS[kind])
    assert s["KillMode"] == "mixed"          # SIGTERM to `worker start` alone
    assert s["KillSignal"] == "SIGTERM"
    assert s["Restart"] == "on-failure"
    assert s["TimeoutStopSec"]
    assert "worker start" in s["ExecStart"]
    assert "QUEUECTL_RUNTIME_DIR=%t/queuectl" in UNITS[kind].read_text()


@pytest.mark.parametrize("kind", sorted(UNITS))
def test_systemd_analyze_verify_accepts_the_unit(kind, tmp_path):
    tool = shutil.which("systemd-analyze")
    if tool is None:
        if IN_CI:
            pytest.fail("CI=true and systemd-analyze is missing (.ci/run installs systemd)")
        pytest.skip("systemd-analyze is not installed")
    text = UNITS[kind].read_text()
    env = {**os.environ, "SYSTEMD_LOG_COLOR": "0"}
    args = [tool]
    if kind == "system":
        text = text.replace("/usr/local/bin/queuectl", str(QUEUECTL))
    else:
        # The user unit runs %h/.local/bin/queuectl: a home that has it.
        home = tmp_path / "home"
        (home / ".local/bin").mkdir(parents=True)
        (home / ".local/bin/queuectl").symlink_to(QUEUECTL)
        run = tmp_path / "run"
        run.mkdir(mode=0o700)
        env.update(HOME=str(home), XDG_RUNTIME_DIR=str(run))
        args.append("--user")
    unit = tmp_path / "queuectl-worker.service"
    unit.write_text(text)
    p = subprocess.run(args + ["verify", "--man=no", str(unit)], capture_output=True,
                       text=True, env=env, timeout=60)
    assert p.returncode == 0 and p.stdout == "" and p.stderr == "", (p.stdout, p.stderr)
