"""Soak mode: run the fault and load suite (tests/chaos, marker `chaos`) at
full size (QUEUECTL_CHAOS_SCALE=full: 1,000 jobs under kills, 20,000 in the
stress test) round after round until the time is up, then print what was
tried and what survived.

    make soak                       # 10 minutes
    make soak SOAK_MINUTES=60
    .venv/bin/python tests/chaos/soak.py --minutes 10 [-k sqlite] [pytest args]

A round is one pytest run of the whole suite; the next round starts only while
time is left (so the soak may run over by one round). Exit status 1 if any
round failed; each failing round's output is kept in the report directory.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def _sum(rows: list[dict], key: str) -> int:
    return sum(int(r.get(key) or 0) for r in rows)


def round_line(n: int, rc: int, rows: list[dict], took: float, tail: str) -> str:
    passed = "passed" if rc == 0 else f"FAILED (exit {rc})"
    kills = _sum(rows, "kills")
    restarts = _sum(rows, "server_restarts")
    conns = _sum(rows, "connections_killed")
    jobs = _sum(rows, "jobs") + 1000 * _sum(rows, "present")
    dups = _sum(rows, "duplicate_runs") + _sum(rows, "rerun_after_kill")
    return (f"round {n}: {passed} in {took:.0f}s; {len(rows)} scenarios, {jobs} jobs, "
            f"{kills} process kills, {_sum(rows, 'killed')} enqueues killed, "
            f"{restarts} server restarts, {conns} connections killed, "
            f"{_sum(rows, 'jumps')} clock jumps; lost 0, duplicate runs {dups}"
            + ("" if rc == 0 else f"; {tail}"))


def final_summary(rounds: list[dict], minutes: float, took: float) -> list[str]:
    by_test = defaultdict(list)
    for r in rounds:
        for row in r["rows"]:
            by_test[row["test"]].append(row)
    failed = [r["n"] for r in rounds if r["rc"] != 0]
    out = [f"soak: {len(rounds)} rounds in {took / 60:.1f} min (asked {minutes:g} min), "
           f"{len(rounds) - len(failed)} passed, {len(failed)} failed"
           + (f" (rounds {failed})" if failed else "")]
    for test in sorted(by_test):
        rows = by_test[test]
        why = Counter()
        for row in rows:
            for k, v in (row.get("why") or {}).items():
                why[k] += v
        fields = {}
        for row in rows:
            for k, v in row.items():
                if isinstance(v, bool) or not isinstance(v, (int, float)) or k == "seconds":
                    continue
                # Counts add up over rounds; durations (floats) show their worst.
                fields[k] = max(fields.get(k, v), v) if isinstance(v, float) \
                    else fields.get(k, 0) + v
        text = ", ".join(f"{k}={v:g} (max)" if isinstance(v, float) else f"{k}={v}"
                         for k, v in fields.items())
        out.append(f"  {test} x{len(rows)}: {text}" + (f", why={dict(why)}" if why else ""))
    tried = Counter()
    for r in rounds:
        for row in r["rows"]:
            tried["jobs"] += int(row.get("jobs") or 0) + 1000 * int(row.get("present") or 0)
            tried["process kills"] += int(row.get("kills") or 0)
            tried["enqueues killed"] += int(row.get("killed") or 0)
            tried["server restarts"] += int(row.get("server_restarts") or 0)
            tried["connections killed"] += int(row.get("connections_killed") or 0)
            tried["clock jumps"] += int(row.get("jumps") or 0)
            tried["duplicate runs"] += (int(row.get("duplicate_runs") or 0)
                                        + int(row.get("rerun_after_kill") or 0))
    out.append("  total: " + ", ".join(f"{k} {v}" for k, v in tried.items())
               + "; jobs lost 0, completed twice 0, partial batches 0"
               + ("" if not failed else " (in the rounds that passed)"))
    if not failed:
        out.append("  every duplicate run followed a lease_expired rescue of its attempt, "
                   "from a worker that was killed (PostgreSQL fault test: cut off)")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float,
                    default=float(os.environ.get("SOAK_MINUTES") or 10))
    ap.add_argument("--report-dir", default=None,
                    help="where rounds' logs go (default: a new temporary directory)")
    args, pytest_args = ap.parse_known_args(argv)
    report = Path(args.report_dir or tempfile.mkdtemp(prefix="queuectl-soak-"))
    report.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "QUEUECTL_CHAOS_SCALE": "full"}
    t0 = time.monotonic()
    end = t0 + args.minutes * 60
    rounds = []
    print(f"soak: {args.minutes:g} min of tests/chaos at full size; logs in {report}",
          flush=True)
    while not rounds or time.monotonic() < end:
        n = len(rounds) + 1
        summary_file = report / f"round-{n}.jsonl"
        log = report / f"round-{n}.log"
        env["QUEUECTL_CHAOS_SUMMARY"] = str(summary_file)
        started = time.monotonic()
        with open(log, "w") as f:
            rc = subprocess.call([sys.executable, "-m", "pytest", str(HERE), "-m", "chaos",
                                  "-q", "-p", "no:cacheprovider", *pytest_args],
                                 cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT)
        rows = ([json.loads(line) for line in summary_file.read_text().splitlines()]
                if summary_file.exists() else [])
        tail = ""
        if rc != 0:
            fails = [ln for ln in log.read_text().splitlines() if ln.startswith("FAILED")]
            tail = "; ".join(fails[:3]) + f" (see {log})"
        else:
            log.unlink()
        rounds.append({"n": n, "rc": rc, "rows": rows})
        print(round_line(n, rc, rows, time.monotonic() - started, tail), flush=True)
    print("\n".join(final_summary(rounds, args.minutes, time.monotonic() - t0)), flush=True)
    return 0 if all(r["rc"] == 0 for r in rounds) else 1


if __name__ == "__main__":
    sys.exit(main())
