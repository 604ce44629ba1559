"""The fault and load suite: prints every test's summary line (what was tried,
what survived) at the end of the run, in CI logs too, whatever the capture
mode. Lines come from chaos_util.summary()."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import chaos_util  # noqa: E402


def pytest_terminal_summary(terminalreporter):
    if chaos_util.LINES:
        terminalreporter.section("chaos summary")
        for line in chaos_util.LINES:
            terminalreporter.write_line(line)
