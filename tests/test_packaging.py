"""The package: one version, its metadata, install hints that work in a fresh
virtualenv, an sdist the tests run from, and the built wheel installed with
each extra into fresh virtualenvs (`-m packaging`: about a minute)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tarfile
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path

import pytest

import queuectl

ROOT = Path(__file__).resolve().parent.parent
DIST = "queuectl-shell"
EXTRAS = ("postgres", "cron", "dashboard", "all")


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _extras() -> dict[str, set[str]]:
    """{extra: its requirements, as written} from the installed metadata."""
    out: dict[str, set[str]] = {}
    for req in metadata.metadata(DIST).get_all("Requires-Dist") or []:
        spec, _, marker = req.partition(";")
        m = re.search(r"""extra\s*==\s*["']([^"']+)["']""", marker)
        if m:
            out.setdefault(m.group(1), set()).add(_canon_req(spec))
    return out


def _canon_req(spec: str) -> str:
    """'psycopg[binary] >=3.2' and "psycopg[binary]>=3.2" alike."""
    spec = spec.replace(" ", "")
    m = re.match(r"([A-Za-z0-9._-]+)(.*)", spec)
    assert m, spec
    return _canon(m.group(1)) + m.group(2)


_TOKEN = r"""(?:-\w+|'[^']*'|"[^"]*"|[\w.\[\],<>=-]+)"""


def _hints() -> list[tuple[str, str]]:
    """(where, what follows `pip install`) for every install hint in the code,
    the README and the tests' skip messages."""
    files = [*sorted((ROOT / "src").rglob("*.py")), ROOT / "README.md",
             *sorted((ROOT / "tests").rglob("*.py"))]
    found = []
    for f in files:
        if f.name == "test_packaging.py":
            continue
        for n, line in enumerate(f.read_text().splitlines(), 1):
            for m in re.finditer(rf"pip install ({_TOKEN}(?: {_TOKEN})*)", line):
                found.append((f"{f.relative_to(ROOT)}:{n}", m.group(1).strip()))
    return found


def test_one_version_and_the_metadata():
    text = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^dynamic = \["version"\]', text, re.M)
    project = text.split("\n[project]\n", 1)[1].split("\n[", 1)[0]
    assert not re.search(r"^version\s*=", project, re.M), "queuectl/__init__.py has it"
    meta = metadata.metadata(DIST)
    assert meta["Version"] == queuectl.__version__
    assert meta["License-Expression"] == "MIT" or meta["License"] == "MIT"
    assert "queuectl authors" in (meta["Author"] or "") + (meta["Author-email"] or "")
    assert any(c.startswith("Programming Language :: Python :: 3.10")
               for c in meta.get_all("Classifier") or [])
    assert meta["Keywords"]
    assert set(EXTRAS) | {"test"} <= set(meta.get_all("Provides-Extra") or [])
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    out = subprocess.run([sys.executable, "-m", "queuectl", "--version"], capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == f"queuectl {queuectl.__version__}"


def test_the_all_extra_is_every_extra():
    extras = _extras()
    assert extras["all"] == extras["postgres"] | extras["cron"] | extras["dashboard"]
    assert extras["all"] <= extras["test"]


def test_every_install_hint_names_something_that_installs():
    """`queuectl` on the public index is another project: no hint may name it.
    A hint names the real packages (as the extras pin them) or a local
    checkout's extra (`pip install '.[cron]'`)."""
    extras = _extras()
    pinned = set().union(*(extras[e] for e in EXTRAS))
    hints = _hints()
    assert len(hints) >= 6, hints
    for where, args in hints:
        for arg in shlex.split(args):
            if arg.startswith("-"):
                continue
            assert not re.match(r"queuectl(\[|$|[<>=])", arg), f"{where}: {args}"
            local = re.fullmatch(r"\.(?:\[([\w,]+)\])?", arg)
            if local:
                assert set((local.group(1) or "test").split(",")) <= set(extras), where
            elif re.fullmatch(r"[\w.-]+\.whl|queuectl-shell.*|dist/.*", arg):
                continue
            else:
                assert _canon_req(arg) in pinned, f"{where}: {arg} is not what an extra pins"
    # The hints the code raises, each checked above, are there.
    code = {w.split(":")[0] for w, _ in hints}
    assert {"src/queuectl/cron.py", "src/queuectl/cli/web.py",
            "src/queuectl/store/__init__.py"} <= code


def _sdist(tmp_path: Path) -> Path:
    subprocess.run([sys.executable, "-m", "build", "--sdist", "--outdir", str(tmp_path),
                    str(ROOT)], check=True, capture_output=True, timeout=120)
    (found,) = tmp_path.glob("queuectl_shell-*.tar.gz")
    return found


@pytest.mark.packaging
def test_the_tests_run_from_the_sdist(tmp_path):
    pytest.importorskip("build", reason="the test extra is not installed")
    sdist = _sdist(tmp_path)
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
        tar.extractall(tmp_path / "x", filter="data") if sys.version_info >= (3, 12) \
            else tar.extractall(tmp_path / "x")
    for need in ("LICENSE", "README.md", "Makefile", "tests/conftest.py",
                 "tests/e2e/e2e_util.py", "tests/chaos/chaos_util.py", "docs/ARCHITECTURE.md",
                 "docs/dashboard-overview.png", "src/queuectl/web/templates/base.html"):
        assert need in names, need
    (top,) = (tmp_path / "x").iterdir()
    env = {**os.environ, "PYTHONPATH": str(top / "src")}
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "tests/test_model.py", "tests/test_policy.py", "tests/test_config.py"],
                       cwd=top, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert " passed" in p.stdout


@pytest.mark.packaging
def test_the_wheel_installs_with_each_extra_in_a_fresh_virtualenv(tmp_path):
    """No --system-site-packages: each virtualenv has only pip and what the
    wheel and its extra pull in (pip's cache makes it quick)."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                    str(tmp_path), str(ROOT)], check=True, capture_output=True, timeout=120)
    (wheel,) = tmp_path.glob("queuectl_shell-*.whl")

    def install(extra: str) -> tuple[str, Path]:
        venv = tmp_path / f"venv-{extra or 'bare'}"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
        spec = f"{wheel}[{extra}]" if extra else str(wheel)
        p = subprocess.run([str(venv / "bin/python"), "-m", "pip", "install", "-q",
                            "--disable-pip-version-check", spec],
                           capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, (extra, p.stderr[-2000:])
        return extra, venv

    with ThreadPoolExecutor(3) as pool:
        venvs = dict(pool.map(install, ["", *EXTRAS]))
    for extra, venv in venvs.items():
        run = subprocess.run([str(venv / "bin/queuectl"), "--help"], capture_output=True,
                             text=True, timeout=60)
        assert run.returncode == 0 and "dashboard" in run.stdout, (extra, run.stderr)
        cfg = (venv / "pyvenv.cfg").read_text()
        assert "include-system-site-packages = false" in cfg
    imports = {"postgres": ["psycopg"], "cron": ["cronsim"],
               "dashboard": ["flask", "flask_wtf", "waitress", "prometheus_client"]}
    imports["all"] = [m for e in ("postgres", "cron", "dashboard") for m in imports[e]]
    for extra, mods in imports.items():
        if extra in ("dashboard", "all"):
            mods = [*mods, "queuectl.web.app"]
        p = subprocess.run([str(venvs[extra] / "bin/python"), "-c",
                            "; ".join(f"import {m}" for m in mods)],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, (extra, p.stderr)
    # Without an extra, a feature that needs it says what to install, and that works.
    bare = venvs[""]
    db = tmp_path / "q.db"
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    p = subprocess.run([str(bare / "bin/queuectl"), "--db", str(db), "dashboard"],
                       capture_output=True, text=True, timeout=60, env=env)
    assert p.returncode == 1 and "pip install 'flask>=3.0'" in p.stderr, p.stderr
    p = subprocess.run([str(bare / "bin/queuectl"), "--db", str(db), "health"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "no database" in p.stderr
