"""The dashboard in a real headless Chromium (Debian's `chromium`, driven by
Playwright for Python through the system browser's executable: no browser
download). Without a browser these tests skip with the reason; under CI=true
they fail (.ci/run installs the browser).

Set QUEUECTL_SCREENSHOT_DIR to keep the screenshots taken here (the README's
docs/dashboard.png comes from `make screenshots`).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from e2e_util import TOKEN, Dashboard, wait_exit

pytestmark = [pytest.mark.e2e, pytest.mark.backends("sqlite")]   # the pages; the API runs on both backends

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
LAPTOP = {"width": 1280, "height": 800}


def _chromium() -> "str | None":
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def browser():
    problem = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        problem = "playwright is not installed (pip install '.[test]')"
    path = _chromium()
    if problem is None and path is None:
        problem = "no chromium on PATH (apt-get install chromium)"
    if problem:
        if IN_CI:
            pytest.fail(f"CI=true and browser tests cannot run: {problem}", pytrace=False)
        pytest.skip(f"browser tests skipped: {problem}")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser):
    # The dashboard's Content-Security-Policy would block an injected script
    # by itself; bypassing it here makes the injection test prove the
    # escaping alone (and lets Playwright evaluate its wait conditions).
    context = browser.new_context(viewport=LAPTOP, bypass_csp=True)
    pg = context.new_page()
    pg.dialogs = []
    pg.on("dialog", lambda d: (pg.dialogs.append(d.message), d.dismiss()))
    pg.errors = []
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    yield pg
    context.close()


def _shot(page, name: str, tmp_path: Path) -> Path:
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    keep = os.environ.get("QUEUECTL_SCREENSHOT_DIR")
    if keep:
        shutil.copy(path, Path(keep) / name)
    return path


def _card(page, state: str) -> str:
    return page.text_content(f'[data-state="{state}"]').strip()


def _sign_in(page, d) -> None:
    """Open the one-time link `queuectl dashboard` printed, as its user would."""
    page.goto(d.signin_url)
    page.wait_for_url(d.url + "/")
    assert "code=" not in page.url


def test_overview_counts_update_live_when_a_job_completes(cli, page, tmp_path):
    cli.ok("enqueue", "-", input="".join(json.dumps({"command": "true"}) + "\n"
                                         for _ in range(3)))
    cli.ok("worker", "start", "--burst", "--quiet", timeout=60)
    cli.enqueue(id="waiting", command="sleep 0.5")
    d = Dashboard(cli, sign_in=False)
    _sign_in(page, d)
    page.goto(d.url + "/")
    assert _card(page, "completed") == "3" and _card(page, "pending") == "1"
    worker = cli.start("--quiet")
    # No reload: the page refreshes itself from /api/overview.
    page.wait_for_function(
        "document.querySelector('[data-state=\"completed\"]').textContent.trim() === '4'",
        timeout=15_000)
    assert _card(page, "pending") == "0"
    page.wait_for_function("document.getElementById('workers-active').textContent === '1'",
                           timeout=10_000)
    assert page.locator("#chart svg rect").count() >= 1
    assert "4 completed in 30 min" in page.text_content("#chart-summary")
    # Laptop width: nothing sticks out sideways.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    _shot(page, "dashboard-overview.png", tmp_path)
    assert page.errors == []
    worker.send_signal(signal.SIGTERM)
    assert wait_exit(worker, 10) == 0


def test_retrying_a_dlq_job_from_the_page_moves_it_to_pending(cli, page):
    cli.enqueue(id="broken", command="exit 7", max_retries=0)
    cli.enqueue(id="other", command="exit 9", max_retries=0)
    cli.ok("worker", "start", "--burst", "--quiet", timeout=60)
    d = Dashboard(cli, sign_in=False)
    _sign_in(page, d)
    page.goto(d.url + "/dlq")
    assert "2 jobs" in page.text_content("h1")
    page.click('#dead tr[data-job="broken"] button[data-action="retry"]')
    page.wait_for_selector("#flash:not([hidden])")
    assert "retried broken" in page.text_content("#flash")
    assert cli.job("broken")["state"] == "pending"
    assert cli.job("other")["state"] == "dead", "only the one clicked"
    page.wait_for_load_state("load")
    assert page.errors == []


def test_a_script_injection_job_is_shown_as_text(cli, page, tmp_path):
    cli.enqueue(id="xss", command="echo '<script>alert(1)</script>'; "
                                  "echo '<img src=x onerror=alert(2)>' >&2; exit 4",
                max_retries=0)
    cli.ok("worker", "start", "--burst", "--quiet", timeout=60)
    d = Dashboard(cli, sign_in=False)
    _sign_in(page, d)
    for path in ("/jobs/xss", "/", "/dlq", "/jobs?q=script"):
        page.goto(d.url + path)
        page.wait_for_timeout(300)          # give an injected script its chance
    page.goto(d.url + "/jobs/xss")
    assert page.text_content("#output") == "<script>alert(1)</script>\n<img src=x onerror=alert(2)>\n"
    assert page.locator("#output script, #output img").count() == 0
    assert page.locator("script").count() == 1, "only the dashboard's own script"
    assert "<img src=x onerror=alert(2)>" in page.text_content("main")
    assert page.dialogs == [] and page.errors == []
    _shot(page, "dashboard-job.png", tmp_path)


def test_a_token_is_entered_once_in_the_page(cli, page):
    cli.enqueue(id="j", command="true")
    d = Dashboard(cli, env={"QUEUECTL_DASHBOARD_TOKEN": TOKEN}, sign_in=False)
    page.goto(d.url + "/jobs/j")
    assert page.url.startswith(d.url + "/login")
    page.fill('input[name="token"]', "wrong-token-wrong")
    page.click('button[type="submit"]')
    assert "wrong token" in page.text_content("main")
    page.fill('input[name="token"]', TOKEN)
    page.click('button[type="submit"]')
    page.wait_for_url(d.url + "/jobs/j")
    page.goto(d.url + "/")
    page.wait_for_function("document.getElementById('live').textContent === 'live'")
    assert _card(page, "pending") == "1"
    assert TOKEN not in page.content() and TOKEN not in page.url
    assert all(TOKEN not in c["value"] for c in page.context.cookies())


def test_the_sign_in_link_works_once_and_the_session_cookie_is_strict(cli, page):
    d = Dashboard(cli, sign_in=False)
    started = time.time()
    _sign_in(page, d)
    port = d.url.rsplit(":", 1)[1]
    (cookie,) = page.context.cookies()
    assert cookie["name"] == f"queuectl_{port}" and cookie["path"] == "/"
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert cookie["secure"] is False, "plain HTTP"
    assert 11.9 * 3600 < cookie["expires"] - started < 12.1 * 3600, "a 12 h session"
    assert d.token not in cookie["value"] and d.token not in page.content()
    assert page.evaluate("document.cookie") == "", "HttpOnly: no script reads it"
    # Signed in: the pages open; the link is spent.
    page.goto(d.url + "/jobs")
    assert page.url == d.url + "/jobs"
    other = page.context.browser.new_context()
    try:
        p2 = other.new_page()
        p2.goto(d.signin_url)
        assert p2.url.startswith(d.url + "/login") and "used already" in p2.text_content("main")
        p2.goto(d.url + "/")
        assert p2.url.startswith(d.url + "/login")
    finally:
        other.close()
    # Sign out: back to the form, and the old cookie is dead even if replayed.
    page.goto(d.url + "/")
    page.click("form.signout button")
    page.wait_for_url(d.url + "/login")
    status, _, _ = d.request("/api/status", headers={
        "Cookie": f"{cookie['name']}={cookie['value']}"})
    assert status == 401, "a signed-out session is dead"
    page.goto(d.url + "/")
    assert page.url.startswith(d.url + "/login")
