"""The web viewer on a 1,000,000-event store, measured in the browser.

Goals (issue 5): the first page renders within 1 s, a filter answers within 300 ms, scrolling
through 10,000 events keeps the page responsive. Thresholds are asserted loosely (a shared CI
machine is noisy); the measured numbers go to ``test-output/viewer-perf.json`` for
``bench/RESULTS.md``. Run: ``pytest -p tests.plugins.browser tests/test_viewer_perf.py``.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from typing import Any

from tests.plugins.browser import BIG_EVENTS, LiveServer, write_results

OBSERVERS = """
window.__longtasks = [];
window.__frames = [];
try {
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) window.__longtasks.push(Math.round(e.duration));
  }).observe({ type: "longtask", buffered: true });
} catch (e) {}
"""
FRAME_SAMPLER = """
async ([steps, px]) => {
  // Scroll down in steps, one per frame (px per step, or the whole list in `steps`), timing frames.
  const frames = [];
  const height = document.scrollingElement.scrollHeight - innerHeight;
  const start = px ? height / 2 : 0;
  await new Promise((r) => requestAnimationFrame(r));
  let last = performance.now();
  for (let i = 0; i < steps; i++) {
    window.scrollTo(0, px ? start + px * (i + 1) : height * (i + 1) / steps);
    await new Promise((r) => requestAnimationFrame(r));
    const now = performance.now();
    frames.push(now - last);
    last = now;
  }
  return frames;
}
"""


def _set_field(page: Any, selector: str, value: str) -> float:
    before = page.evaluate("window.__auditbird.refreshes")
    page.fill(selector, value)
    page.wait_for_function(f"() => window.__auditbird.refreshes > {before}", timeout=30_000)
    return float(page.evaluate("window.__auditbird.queries.at(-1)"))


def _click_and_time(page: Any, selector: str) -> float:
    before = page.evaluate("window.__auditbird.refreshes")
    page.click(selector)
    page.wait_for_function(f"() => window.__auditbird.refreshes > {before}", timeout=30_000)
    return float(page.evaluate("window.__auditbird.queries.at(-1)"))


def test_first_page_filters_and_scrolling_on_a_million_events(
    big_viewer_server: LiveServer, browser_context: Any, screenshot: Any
) -> None:
    server = big_viewer_server
    key = server.key("big")
    browser_context.add_init_script(
        f"sessionStorage.setItem('auditbird.credential', {json.dumps(key)});" + OBSERVERS
    )
    results: dict[str, Any] = {
        "events": BIG_EVENTS,
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()} CPUs, {_cpu_model()}, {platform.system()} {platform.release()}",
    }

    # First page, cold (a server just started) and then warm, from navigation start to rows painted.
    loads = []
    for _ in range(3):
        page = browser_context.new_page()
        page.goto(server.url + "/?range=all")
        page.wait_for_function("() => window.__auditbird.firstRowsMs > 0", timeout=30_000)
        loads.append(int(page.evaluate("window.__auditbird.firstRowsMs")))
        assert page.evaluate("window.__auditbird.count()") == 100
        page.wait_for_function("() => window.__auditbird.charts > 0", timeout=30_000)
        if len(loads) < 3:
            page.close()
    results["first_render_ms"] = {"cold": loads[0], "warm": loads[1:]}
    screenshot(page, "11-million-events")
    assert min(loads) <= 1_000, loads

    # Filters: time from applying the filter to the new rows on screen.
    timings: dict[str, float] = {}
    page.click("#action-button")
    timings["action (1)"] = _click_and_time(page, '#action-options input[value="monitor.paused"]')
    timings["action (2)"] = _click_and_time(page, '#action-options input[value="incident.resolved"]')
    page.keyboard.press("Escape")
    timings["actor"] = _set_field(page, "#f-actor", "user_42")
    timings["subject"] = _set_field(page, "#f-subject", "monitor:1234")
    _set_field(page, "#f-subject", "")
    _set_field(page, "#f-actor", "")
    page.click("#action-button")
    _click_and_time(page, "#action-clear")
    page.keyboard.press("Escape")
    page.fill("#f-ttype", "incident")
    timings["target type + id"] = _set_field(page, "#f-tid", "77")
    _set_field(page, "#f-tid", "")
    _set_field(page, "#f-ttype", "")
    timings["range 24h"] = _click_and_time(page, 'label:has(input[value="24h"])')
    timings["text, common (24h)"] = _set_field(page, "#f-text", '"region":"syd"')
    timings["range 30d"] = _click_and_time(page, 'label:has(input[value="30d"])')
    timings["range all"] = _click_and_time(page, 'label:has(input[value="all"])')
    timings["text, common (all)"] = _set_field(page, "#f-text", '"region":"jnb"')
    timings["text, rare (all)"] = _set_field(page, "#f-text", '"seq":12345}')
    _set_field(page, "#f-text", "")
    results["filter_ms"] = timings
    indexed = [v for k, v in timings.items() if not k.startswith("text")]
    assert statistics.median(indexed) <= 300, timings
    assert max(indexed) <= 1_000, timings

    # Scrolling: load 10,000 events by scrolling (keyset pages), then scroll through them all.
    page.evaluate("window.__longtasks.length = 0")
    started = time.monotonic()
    while page.evaluate("window.__auditbird.count()") < 10_000:
        page.evaluate("window.scrollTo(0, document.scrollingElement.scrollHeight)")
        page.wait_for_timeout(50)
        assert time.monotonic() - started < 90, "loading 10,000 events took over 90 s"
    load_s = time.monotonic() - started
    rows = page.evaluate("window.__auditbird.count()")
    in_dom = page.locator("#rows > .row").count()
    loading_tasks = page.evaluate("window.__longtasks.splice(0)")
    wheel = sorted(page.evaluate(FRAME_SAMPLER, [200, 120]))  # a wheel's pace: 120 px a frame
    jumps = sorted(page.evaluate(FRAME_SAMPLER, [200, 0]))  # the whole list in 200 frames
    scroll_tasks = page.evaluate("window.__longtasks.splice(0)")
    # Responsiveness deep in the list: a click on a row until its detail panel shows.
    page.evaluate(
        "window.scrollTo(0, document.querySelector('#rows').getBoundingClientRect().top + scrollY"
        " + 8000 * parseFloat(getComputedStyle(document.querySelector('#rows')).getPropertyValue('--row-h'))"
        " - 300)"
    )
    t0 = time.monotonic()
    page.locator('#rows > .row[data-index="8000"]').click()
    page.wait_for_selector("#detail .fields")
    click_ms = (time.monotonic() - t0) * 1000
    results["scroll"] = {
        "rows": rows,
        "rows_in_dom": in_dom,
        "load_10k_s": round(load_s, 2),
        "loading_long_tasks": len(loading_tasks),
        "loading_longest_task_ms": max(loading_tasks, default=0),
        "wheel_frame_ms_p50": _pct(wheel, 0.5),
        "wheel_frame_ms_p95": _pct(wheel, 0.95),
        "jump_frame_ms_p50": _pct(jumps, 0.5),
        "jump_frame_ms_p95": _pct(jumps, 0.95),
        "scroll_long_tasks": len(scroll_tasks),
        "scroll_longest_task_ms": max(scroll_tasks, default=0),
        "click_to_detail_ms": round(click_ms),
    }
    write_results("million", results)
    screenshot(page, "12-scrolled-10k")
    assert rows >= 10_000
    assert results["scroll"]["wheel_frame_ms_p95"] <= 100, results["scroll"]
    assert results["scroll"]["loading_longest_task_ms"] <= 500, results["scroll"]
    assert click_ms <= 1_000, results["scroll"]


def _pct(sorted_values: list[float], q: float) -> float:
    return round(sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))], 1)


def _cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):  # noqa: SIM115
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"
