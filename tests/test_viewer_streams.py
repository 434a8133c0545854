"""The viewer's log-streams section (static/streams.js), in headless Chromium against a real
``auditbird serve``: an admin key sees its workspace's streams (status, lag, last error, dead
letters) and replays dead letters; a read key sees no section and is refused the API.

Named to sort after every test that runs an asyncio loop: the session's Playwright (sync API)
keeps a loop running in the main thread from the first browser test on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from auditbird.streams import Backoff, StreamRunner
from tests.plugins.browser import LiveServer

from .streams_support import WebhookReceiver


@pytest.fixture(scope="module")
def viewer_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    # The receiver listens on loopback, which streams added over the API may reach only when
    # the operator allows it: for the server, and for the runner this test runs in-process.
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AUDITBIRD_STREAM_HOSTS", "127.0.0.1")
        server = LiveServer(tmp_path_factory.mktemp("viewer-streams") / "audit.db").start()
        yield server
        server.stop()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver().start()
    yield r
    r.stop()


def sign_in(page: Any, server: LiveServer, key: str) -> None:
    page.goto(server.url + "/")
    page.get_by_label("API key").fill(key)
    page.locator("#signin-form button[type=submit]").click()
    page.wait_for_function("() => window.__auditbird.ready && window.__auditbirdStreams.loads > 0")


def test_admin_sees_streams_lag_and_dead_letters_and_replays_them_a_read_key_sees_nothing(
    viewer_server: LiveServer,
    receiver: WebhookReceiver,
    browser_page: Any,
    browser_context: Any,
    screenshot: Callable[[Any, str], Path],
) -> None:
    s = viewer_server
    admin, writer, reader = s.key("S", "admin"), s.key("S", "write"), s.key("S", "read")
    other_admin = s.key("T", "admin")
    auth = {"Authorization": f"Bearer {admin}"}
    receiver.status = 400
    made = httpx.post(
        f"{s.url}/v1/streams",
        headers=auth,
        json={
            "name": "siem",
            "kind": "webhook",
            "url": receiver.url,
            "max_attempts": 1,
            "filter": {"actions": ["monitor.deleted"]},
        },
    )
    assert made.status_code == 201, made.text
    refused = s.publish(writer, [{"id": f"monitor:{i}", "action": "monitor.deleted"} for i in range(3)])
    runner = StreamRunner(s.store_url, workspace="S", backoff=Backoff(0.001, 0.01))
    try:
        runner.run()
    finally:
        runner.close()
    # (Filtered: the viewer's own reads are events of the workspace too, audit_log.viewed.)
    behind = {
        "name": "archive",
        "kind": "syslog",
        "address": "tcp://127.0.0.1:9",
        "filter": {"actions": ["monitor.deleted"]},
    }
    assert httpx.post(f"{s.url}/v1/streams", headers=auth, json=behind).status_code == 201
    assert httpx.post(f"{s.url}/v1/streams/archive/pause", headers=auth).status_code == 200
    theirs = {"name": "t-only", "kind": "syslog", "address": "tcp://127.0.0.1:9"}
    assert httpx.post(
        f"{s.url}/v1/streams", headers={"Authorization": f"Bearer {other_admin}"}, json=theirs
    ).is_success

    page = browser_page
    sign_in(page, s, admin)
    panel = page.locator("#streams-panel")
    panel.locator("summary").click()
    rows = panel.locator("tbody tr")
    assert rows.evaluate_all("rows => rows.map(r => r.dataset.stream)") == ["siem", "archive"]  # not t-only
    siem, archive = panel.locator('tr[data-stream="siem"]'), panel.locator('tr[data-stream="archive"]')
    assert siem.locator(".stream-state").text_content() == "failing"
    assert "answered 400" in (siem.locator(".stream-error").text_content() or "")
    assert siem.locator("[data-dead]").text_content() == "3"  # dead letters
    assert archive.locator(".stream-state").text_content() == "paused"
    assert archive.locator("[data-behind]").get_attribute("data-behind") == "3"  # from the start
    assert "3 dead letter(s)" in (page.locator("#streams-summary").text_content() or "")

    siem.locator("[data-show]").click()
    page.wait_for_selector("#streams-letters li")
    shown = page.locator("#streams-letters li").evaluate_all("items => items.map(i => i.dataset.uid)")
    assert shown == [e["uid"] for e in refused]
    screenshot(page, "streams-admin")

    receiver.status = 200  # the receiver is fixed: the admin replays from the viewer
    siem.locator("[data-replay]").click()
    page.wait_for_function("() => window.__auditbirdStreams.replays > 0")
    page.wait_for_selector('tr[data-stream="siem"] [data-replay]', state="detached")
    assert "Replayed 3 dead letter(s) of siem" in (page.locator("#streams-note").text_content() or "")
    assert receiver.uids() == [e["uid"] for e in refused]
    assert page.locator('tr[data-stream="siem"] [data-dead]').text_content() == "0"

    # A read key: no section, and the API refuses it.
    reader_page = browser_context.new_page()
    sign_in(reader_page, s, reader)
    assert reader_page.evaluate("window.__auditbirdStreams.status") == 403
    assert reader_page.locator("#streams-panel").count() == 0
    status = reader_page.evaluate(
        "key => fetch('v1/streams', {headers: {Authorization: `Bearer ${key}`}}).then(r => r.status)", reader
    )
    assert status == 403
    screenshot(reader_page, "streams-read-key")
