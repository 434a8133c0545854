"""The viewer's detail panel checks, in the browser, that an event verifies against the latest
checkpoint: a live ``auditbird serve``, headless Chromium (fixtures: ``tests/plugins/browser.py``),
and a row altered in the SQLite file behind the server's back."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest

from tests.plugins.browser import CHROMIUM_ARGS, LiveServer


@pytest.fixture(scope="module")
def browser(request: pytest.FixtureRequest, chromium_path: str) -> Iterator[Any]:
    """A Chromium of this module's own, stopped after it: the session's (tests/plugins/browser.py)
    keeps an event loop running in this thread, and every ``asyncio.run`` in the test files
    sorted after this one would fail. If a session browser already runs here, share it."""
    from playwright.sync_api import Error, sync_playwright

    try:
        pw = sync_playwright().start()
    except Error:  # "using Playwright Sync API inside the asyncio loop": the session's is up
        yield request.getfixturevalue("chromium_browser")
        return
    launched = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS, headless=True)
    yield launched
    launched.close()
    pw.stop()


@pytest.fixture
def browser_page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1366, "height": 860}, timezone_id="Europe/Berlin")
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


def _open(page: Any, server: LiveServer, key: str, uid: str) -> Any:
    page.goto(f"{server.url}/?event={uid}")
    page.get_by_label("API key").fill(key)
    page.locator("#signin-form button[type=submit]").click()
    page.wait_for_selector("#proof-badge:not([data-state=checking])")
    return page.locator("#proof-badge")


def test_the_detail_panel_badge_verifies_a_good_event_and_not_an_altered_row(
    viewer_server: LiveServer, browser_page: Any, screenshot: Any
) -> None:
    s = viewer_server
    write, read = s.key("P", "write"), s.key("P")
    events = s.publish(
        write, [{"id": f"monitor:{i}", "action": "monitor.down", "metadata": {"n": i}} for i in range(21)]
    )
    good, altered = events[4]["uid"], events[13]["uid"]

    badge = _open(browser_page, s, read, good)
    assert (badge.get_attribute("data-state"), badge.inner_text()) == ("verified", "verified")
    # the 21 events and whatever the service recorded of its own in this workspace
    assert re.match(
        r"Event #\d+ of the (2[1-9]|[3-9]\d) in the latest checkpoint", badge.get_attribute("title") or ""
    )
    screenshot(browser_page, "merkle-01-verified")

    with sqlite3.connect(s.db) as conn:  # a byte of metadata, changed in the file
        conn.execute("UPDATE audit_log SET metadata = '{\"n\":31}' WHERE uid = ?", (altered,))

    browser_page.context.clear_cookies()
    badge = _open(browser_page.context.new_page(), s, read, altered)
    assert (badge.get_attribute("data-state"), badge.inner_text()) == ("failed", "does not verify")
    assert "changed after it was recorded" in (badge.get_attribute("title") or "")
    screenshot(badge.page, "merkle-02-does-not-verify")

    badge = _open(browser_page.context.new_page(), s, read, good)  # its neighbours still verify
    assert badge.get_attribute("data-state") == "verified"
