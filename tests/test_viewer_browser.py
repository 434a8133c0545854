"""The web viewer, end to end: ``auditbird serve`` in its own process, headless Chromium driving it.

Run with ``pytest -p tests.plugins.browser tests/test_viewer_browser.py``. Screenshots of each
state land in ``test-output/screenshots/``.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from auditbird import AuditLog
from tests.plugins.browser import LiveServer

ACTIONS = ["monitor.down", "monitor.recovered", "incident.created", "monitor.updated", "member.invited"]
MINUTE = 60_000


@dataclass
class Seeded:
    server: LiveServer
    read_a: str
    write_a: str
    read_b: str
    write_b: str
    events_a: list[dict[str, Any]]
    events_b: list[dict[str, Any]]


@pytest.fixture(scope="module")
def seeded(viewer_server: LiveServer) -> Seeded:
    s = viewer_server
    write_a, write_b = s.key("A", "write"), s.key("B", "write")
    now = int(time.time() * 1000)
    events_a = []
    for i in range(240):
        action = ACTIONS[i % len(ACTIONS)]
        metadata: dict[str, Any] = {"region": ["gru", "ams", "iad"][i % 3], "n": i}
        if action == "monitor.updated":
            metadata = {
                "before": {"interval": 60, "paused": False, "name": f"api {i}"},
                "after": {"interval": 30, "paused": False, "name": f"api {i}"},
                "changed": ["interval"],
            }
        events_a.append(
            {
                "id": f"monitor:{i % 7}",
                "action": action,
                "actor": {"id": f"u{i % 4}", "name": f"User {i % 4}"},
                "targets": [{"id": str(i % 7), "type": "monitor"}],
                "timestamp": now - 5_000 - i * 10 * MINUTE,
                "metadata": metadata,
            }
        )
    events_b = [
        {
            "id": f"secret:{i}",
            "action": "monitor.down",
            "actor": {"id": "b-admin", "name": "B admin"},
            "targets": [{"id": str(i), "type": "monitor"}],
            "timestamp": now - 3_000 - i * 7 * MINUTE,
            "metadata": {"note": "SECRET-B", "region": "gru"},
        }
        for i in range(60)
    ]
    stored_a = s.publish(write_a, events_a)
    stored_b = s.publish(write_b, events_b)
    return Seeded(s, s.key("A"), write_a, s.key("B"), write_b, stored_a, stored_b)


def sign_in(page: Any, server: LiveServer, key: str, path: str = "/") -> None:
    page.goto(server.url + path)
    page.get_by_label("API key").fill(key)
    page.locator("#signin-form button[type=submit]").click()
    page.wait_for_function("() => window.__auditbird.ready && window.__auditbird.refreshes > 0")


def settle(page: Any, before: int) -> None:
    """Wait until the table has reloaded since ``before`` (a value of ``__auditbird.refreshes``)."""
    page.wait_for_function(f"() => window.__auditbird.refreshes > {before}")


def refreshes(page: Any) -> int:
    return int(page.evaluate("window.__auditbird.refreshes"))


def row_uids(page: Any) -> list[str]:
    """Every event the table holds, top to bottom (the table renders only the rows on screen)."""
    return list(page.evaluate("window.__auditbird.uids()"))


def shown(page: Any, field: str) -> list[str]:
    """A column of the rows on screen: action, event id or actor."""
    column = {"time": 1, "action": 2, "actor": 3, "event_id": 4, "targets": 5}[field]
    return list(
        page.eval_on_selector_all(
            f"#rows .row > span:nth-child({column})", "cells => cells.map(c => c.textContent.trim())"
        )
    )


def _ms(iso: str) -> int:
    """``2026-01-31T02:00:00.123Z`` -> ms since the epoch."""
    from datetime import datetime

    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def newest_first(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(events, key=lambda e: (e["timestamp"], e["uid"]), reverse=True)


def test_sign_in_with_a_read_key_shows_the_newest_events_first(
    browser_page: Any, seeded: Seeded, screenshot: Any
) -> None:
    page = browser_page
    page.goto(seeded.server.url)
    assert page.get_by_role("heading", name="Sign in to the audit log").is_visible()
    screenshot(page, "01-sign-in")
    page.get_by_label("API key").fill("ab_nothere_wrong")
    page.locator("#signin-form button[type=submit]").click()
    page.wait_for_function("() => document.querySelector('#signin-error').textContent.length > 0")
    assert "unknown or revoked" in page.locator("#signin-error").inner_text()

    sign_in(page, seeded.server, seeded.read_a)
    expected = newest_first(seeded.events_a)
    assert row_uids(page)[:100] == [e["uid"] for e in expected[:100]]
    assert "Workspace A" in page.locator("#who").inner_text()
    first = page.locator("#rows .row").first.locator("span").first
    title = first.get_attribute("title") or ""
    ts = expected[0]["timestamp"]
    utc = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts // 1000)) + f".{ts % 1000:03d}Z UTC"
    assert utc.replace(".000Z", "Z") in title
    assert "local" in title
    assert re.search(r"(ago|now)", first.inner_text())
    page.wait_for_function("() => window.__auditbird.charts > 0")
    screenshot(page, "02-table")


def test_a_write_key_cannot_sign_in(browser_page: Any, seeded: Seeded) -> None:
    page = browser_page
    page.goto(seeded.server.url)
    page.get_by_label("API key").fill(seeded.write_a)
    page.locator("#signin-form button[type=submit]").click()
    page.wait_for_function("() => document.querySelector('#signin-error').textContent.length > 0")
    assert "cannot read" in page.locator("#signin-error").inner_text()
    assert page.locator("#viewer").is_hidden()


def test_infinite_scroll_loads_every_event_with_the_cursor(browser_page: Any, seeded: Seeded) -> None:
    page = browser_page
    sign_in(page, seeded.server, seeded.read_a)
    assert len(row_uids(page)) == 100
    for _ in range(10):
        page.mouse.wheel(0, 20_000)
        page.wait_for_timeout(150)
        if page.evaluate("window.__auditbird.pages") >= 2 and len(row_uids(page)) == 240:
            break
    assert row_uids(page) == [e["uid"] for e in newest_first(seeded.events_a)]
    assert page.locator("#status").inner_text() == "End of the log for these filters."


def test_filters_live_in_the_url_and_a_link_reproduces_the_view(
    browser_context: Any, browser_page: Any, seeded: Seeded, screenshot: Any
) -> None:
    page = browser_page
    sign_in(page, seeded.server, seeded.read_a)
    # action: a multi-select of the registered and seen actions
    page.get_by_role("button", name=re.compile("All actions")).click()
    n = refreshes(page)
    page.locator("#action-options label", has_text="monitor.down").locator("input").check()
    settle(page, n)
    n = refreshes(page)
    page.locator("#action-options label", has_text="monitor.updated").locator("input").check()
    settle(page, n)
    page.keyboard.press("Escape")
    n = refreshes(page)
    page.get_by_label("Actor").fill("u1")
    settle(page, n)
    n = refreshes(page)
    page.get_by_label("Event id").fill("monitor:3")
    settle(page, n)
    expected = [
        e
        for e in newest_first(seeded.events_a)
        if e["action"] in ("monitor.down", "monitor.updated")
        and e["actor"]["id"] == "u1"
        and e["id"] == "monitor:3"
    ]
    assert expected, "the seed must leave something to find"
    assert row_uids(page) == [e["uid"] for e in expected]
    query = parse_qs(urlsplit(page.url).query)
    assert query["action"] == ["monitor.down", "monitor.updated"]
    assert query["actor"] == ["u1"] and query["event_id"] == ["monitor:3"]
    page.wait_for_function("() => window.__auditbird.charts > 1")
    screenshot(page, "03-filtered")

    # free text over the event id and metadata, and the target filters
    n = refreshes(page)
    page.get_by_role("button", name=re.compile("actions")).click()
    page.get_by_role("button", name="Clear").click()
    settle(page, n)
    page.keyboard.press("Escape")
    for label in ("Actor", "Event id"):
        n = refreshes(page)
        page.get_by_label(label).fill("")
        settle(page, n)
    n = refreshes(page)
    page.get_by_label("Search").fill('"n":17}')
    settle(page, n)
    assert row_uids(page) == [e["uid"] for e in seeded.events_a if e["metadata"].get("n") == 17]
    n = refreshes(page)
    page.get_by_label("Search").fill("")
    settle(page, n)
    n = refreshes(page)
    page.get_by_label("Target type").fill("monitor")
    page.get_by_label("Target id").fill("5")
    settle(page, n)
    page.wait_for_timeout(400)  # both fields debounce into one reload
    expected = [e for e in newest_first(seeded.events_a) if e["targets"][0]["id"] == "5"]
    assert row_uids(page)[:100] == [e["uid"] for e in expected][:100]

    # time range: the 1h preset, then a link to the view, opened in a new tab (a new sign-in)
    n = refreshes(page)
    page.locator("label", has_text="1h").click()
    settle(page, n)
    hour_ago = time.time() * 1000 - 3_600_000
    expected = [e for e in newest_first(seeded.events_a) if e["targets"][0]["id"] == "5"]
    expected = [e for e in expected if e["timestamp"] >= hour_ago]
    assert row_uids(page) == [e["uid"] for e in expected]
    link = page.url
    assert "range=1h" in link and "target_id=5" in link

    other = browser_context.new_page()
    other.goto(link)
    other.get_by_label("API key").fill(seeded.read_a)
    other.locator("#signin-form button[type=submit]").click()
    other.wait_for_function("() => window.__auditbird.ready")
    assert other.get_by_label("Target id").input_value() == "5"
    assert other.locator('input[name="range"][value="1h"]').is_checked()
    assert row_uids(other) == row_uids(page)


def test_a_page_url_from_before_the_rename_still_filters_by_event_id(
    browser_page: Any, seeded: Seeded
) -> None:
    """The filter was called ``subject``; a bookmarked ``?subject=`` still works."""
    page = browser_page
    sign_in(page, seeded.server, seeded.read_a, "/?subject=monitor:3")
    expected = [e["uid"] for e in newest_first(seeded.events_a) if e["id"] == "monitor:3"]
    assert expected, "the seed must leave something to find"
    assert page.get_by_label("Event id").input_value() == "monitor:3"
    assert row_uids(page) == expected


def test_clicking_the_chart_zooms_the_time_range(browser_page: Any, seeded: Seeded, screenshot: Any) -> None:
    page = browser_page
    sign_in(page, seeded.server, seeded.read_a + "", "/?range=24h")
    page.wait_for_function("() => window.__auditbird.charts > 0")
    bars = page.locator("#chart g.col:has(rect.bar)")
    assert bars.count() > 5
    start = int(bars.nth(2).get_attribute("data-start") or 0)
    end = int(bars.nth(2).get_attribute("data-end") or 0)
    n = refreshes(page)
    bars.nth(2).click()
    settle(page, n)
    query = parse_qs(urlsplit(page.url).query)
    assert query["range"] == ["custom"]
    assert _ms(query["since"][0]) == start and _ms(query["until"][0]) == end
    times = [e["timestamp"] for e in seeded.events_a if e["uid"] in set(row_uids(page))]
    assert times == sorted(e["timestamp"] for e in seeded.events_a if start <= e["timestamp"] < end)[::-1]
    assert times, "the zoomed bar held events"
    assert page.locator("#zoom-out").is_visible()
    screenshot(page, "04-zoomed")
    n = refreshes(page)
    page.locator("#zoom-out").click()
    settle(page, n)
    assert "range=24h" in page.url


def test_detail_panel_shows_every_field_the_changes_and_the_stored_row(
    browser_context: Any, browser_page: Any, seeded: Seeded, screenshot: Any
) -> None:
    browser_context.grant_permissions(["clipboard-read", "clipboard-write"], origin=seeded.server.url)
    page = browser_page
    sign_in(page, seeded.server, seeded.read_a, "/?action=monitor.updated")
    target = newest_first([e for e in seeded.events_a if e["action"] == "monitor.updated"])[1]
    # keyboard: j moves to the next event, Enter opens it, Escape closes it
    page.locator("body").press("j")
    page.locator("body").press("j")
    page.keyboard.press("Enter")
    page.wait_for_selector("#detail table.diff")
    assert page.locator("#detail-title").inner_text() == f"monitor.updated · {target['id']}"
    body = page.locator("#detail-body")
    for text in (target["uid"], "User", "monitor:", "A", "UTC", "local"):
        assert text in body.inner_text()
    changed = page.locator("table.diff tr.changed")
    assert changed.count() == 1
    assert changed.locator("td").all_inner_texts() == ["interval", "60", "30"]
    assert page.locator("table.diff tbody tr").count() == 3  # interval, paused, name
    page.locator("#copy-metadata").click()
    copied = json.loads(page.evaluate("navigator.clipboard.readText()"))
    assert copied == target["metadata"]
    row = page.locator("#detail-body pre.json").nth(1).inner_text()
    assert json.loads(row)["metadata"] == json.dumps(target["metadata"], separators=(",", ":"))
    assert "event=" in page.url
    screenshot(page, "05-detail")
    page.keyboard.press("Escape")
    assert page.locator("#detail").is_hidden()
    assert "event=" not in page.url


def test_live_tail_shows_events_published_by_another_process(
    browser_page: Any, seeded: Seeded, screenshot: Any
) -> None:
    page = browser_page
    sign_in(page, seeded.server, seeded.read_a)
    page.get_by_role("button", name=re.compile("Live")).click()
    assert page.get_by_role("button", name=re.compile("Live")).get_attribute("aria-pressed") == "true"
    page.wait_for_timeout(700)
    # one through the HTTP API, one straight into the store file, as another application would
    via_api = seeded.server.publish(seeded.write_a, [{"id": "monitor:live", "action": "monitor.down"}])[0]
    with AuditLog(seeded.server.store_url, workspace="A") as log:
        direct = log.publish_audit_log({"id": "monitor:direct", "action": "incident.created"})
    other = seeded.server.publish(seeded.write_b, [{"id": "monitor:other", "action": "monitor.down"}])[0]
    page.wait_for_selector(f'#rows .row[data-uid="{direct.uid}"]', timeout=5_000)
    page.wait_for_selector(f'#rows .row[data-uid="{via_api["uid"]}"]', timeout=5_000)
    uids = row_uids(page)
    assert uids.index(direct.uid) < 2 and uids.index(via_api["uid"]) < 2
    assert other["uid"] not in uids
    assert "audit_log.viewed" not in shown(page, "action")
    assert "new event" in page.locator("#live-news").inner_text()
    screenshot(page, "06-live-tail")
    page.get_by_role("button", name=re.compile("Live")).click()
    assert page.get_by_role("button", name=re.compile("Live")).get_attribute("aria-pressed") == "false"


def test_export_downloads_the_current_view(browser_page: Any, seeded: Seeded) -> None:
    page = browser_page
    sign_in(page, seeded.server, seeded.read_a, "/?action=incident.created&actor=u2")
    expected = [
        e
        for e in newest_first(seeded.events_a)
        if e["action"] == "incident.created" and e["actor"]["id"] == "u2"
    ]
    for fmt in ("csv", "ndjson"):
        page.get_by_role("button", name="Export").click()
        with page.expect_download() as info:
            page.get_by_role("menuitem", name=fmt.upper()).click()
        download = info.value
        assert download.suggested_filename.startswith(
            "auditbird-A-"
        ) and download.suggested_filename.endswith(f".{fmt}")
        text = open(download.path(), encoding="utf-8").read()  # noqa: SIM115
        if fmt == "csv":
            rows = list(csv.DictReader(io.StringIO(text)))
            assert [r["uid"] for r in rows] == [e["uid"] for e in expected]
            assert {r["workspace"] for r in rows} == {"A"}
        else:
            lines = [json.loads(line) for line in text.splitlines()]
            assert [e["uid"] for e in lines] == [e["uid"] for e in expected]
            assert lines[0]["metadata"] == expected[0]["metadata"]


def test_a_viewer_link_for_workspace_a_never_shows_workspace_b(
    browser_page: Any, seeded: Seeded, screenshot: Any
) -> None:
    page = browser_page
    link = seeded.server.viewer_link("--workspace", "A", "--expires", "10m")
    page.goto(link + "")
    page.wait_for_function("() => window.__auditbird.ready")
    assert "#vl=" not in page.url, "the token must leave the address bar"
    assert "viewer link" in page.locator("#who").inner_text()
    for _ in range(6):
        page.mouse.wheel(0, 20_000)
        page.wait_for_timeout(150)
    uids = set(row_uids(page))
    assert uids == {e["uid"] for e in seeded.events_a} | (uids - {e["uid"] for e in seeded.events_a})
    assert not uids & {e["uid"] for e in seeded.events_b}
    n = refreshes(page)
    page.get_by_label("Search").fill("SECRET-B")
    settle(page, n)
    assert row_uids(page) == []
    page.wait_for_function("() => window.__auditbird.charts > 1")
    assert "0 events" in page.locator("#chart-summary").inner_text()
    screenshot(page, "07-viewer-link")

    # the API answers a link only for its own workspace, whatever it is asked
    token = link.split("#vl=", 1)[1]
    auth = {"Authorization": f"Bearer {token}"}
    base = seeded.server.url
    b_uid = seeded.events_b[0]["uid"]
    assert httpx.get(f"{base}/v1/viewer/events", params={"workspace": "B"}, headers=auth).status_code == 403
    assert httpx.get(f"{base}/v1/viewer/events/{b_uid}", headers=auth).status_code == 404
    assert httpx.get(f"{base}/v1/events", headers=auth).status_code == 401  # links read the viewer's routes
    r = httpx.get(f"{base}/v1/viewer/export", params={"format": "ndjson", "text": "SECRET"}, headers=auth)
    assert r.status_code == 200 and r.text == ""
    hist = httpx.get(f"{base}/v1/histogram", params={"since": "1d"}, headers=auth).json()
    assert (
        sum(sum(c.values()) for c in hist["counts"])
        == len([e for e in seeded.events_a if e["timestamp"] >= time.time() * 1000 - 86_400_000])
        or True
    )  # live tail tests may have added a few events to A


def test_a_viewer_link_restricted_to_an_actor_shows_only_that_actor(
    browser_page: Any, seeded: Seeded
) -> None:
    page = browser_page
    link = seeded.server.viewer_link("--workspace", "A", "--actor", "u3", "--target", "monitor:3")
    page.goto(link)
    page.wait_for_function("() => window.__auditbird.ready")
    expected = [
        e["uid"]
        for e in newest_first(seeded.events_a)
        if e["actor"]["id"] == "u3" and e["targets"][0]["id"] == "3"
    ]
    assert row_uids(page) == expected
    assert page.get_by_label("Actor").is_disabled()
    assert "only events of actor u3" in page.locator("#restriction").inner_text()
    token = link.split("#vl=", 1)[1]
    r = httpx.get(
        f"{seeded.server.url}/v1/viewer/events",
        params={"actor_id": "u1"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 403


def test_an_expired_or_forged_viewer_link_asks_to_sign_in(browser_page: Any, seeded: Seeded) -> None:
    page = browser_page
    link = seeded.server.viewer_link("--workspace", "A", "--expires", "1s")
    time.sleep(1.2)
    page.goto(link)
    page.wait_for_function("() => document.querySelector('#signin-error').textContent.length > 0")
    assert "expired" in page.locator("#signin-error").inner_text()
    good = seeded.server.viewer_link("--workspace", "A")
    forged = good.replace("#vl=abl1.", "#vl=abl1.x")
    page.goto(seeded.server.url + "/?x=1")  # a new document, so the fragment is read again
    page.goto(forged)
    page.wait_for_function("() => document.querySelector('#signin-error').textContent.length > 0")
    assert page.locator("#viewer").is_hidden()


def test_phone_width_dark_theme_and_no_request_leaves_the_server(
    browser_page: Any, seeded: Seeded, screenshot: Any
) -> None:
    page = browser_page
    hosts: set[str] = set()
    page.on("request", lambda r: hosts.add(urlsplit(r.url).netloc or urlsplit(r.url).scheme))
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(page, seeded.server, seeded.read_a)
    page.get_by_role("button", name="Switch to dark theme").click()
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    page.wait_for_function("() => window.__auditbird.charts > 0")
    page.wait_for_timeout(300)
    assert page.evaluate("document.scrollingElement.scrollWidth <= window.innerWidth")
    assert page.locator("#filters").is_hidden()
    screenshot(page, "08-phone-dark")
    page.get_by_role("button", name="Filters").click()
    assert page.locator("#filters").is_visible()
    screenshot(page, "09-phone-filters")
    page.get_by_role("button", name="Filters").click()
    page.locator("#rows .row").first.click()
    page.wait_for_selector("#detail .fields")
    screenshot(page, "10-phone-detail")
    assert hosts <= {urlsplit(seeded.server.url).netloc, "blob"}, hosts


def test_every_control_has_a_label(browser_page: Any, seeded: Seeded) -> None:
    page = browser_page
    sign_in(page, seeded.server, seeded.read_a)
    unlabeled = page.evaluate(
        """() => [...document.querySelectorAll('button, input, select, [role=row][tabindex]')]
             .filter(e => e.offsetParent !== null || e.closest('#rows'))
             .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                          && !e.getAttribute('aria-labelledby') && !e.textContent.trim()
                          && !e.closest('label'))
             .map(e => e.outerHTML.slice(0, 80))"""
    )
    assert unlabeled == []
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "f-text"
