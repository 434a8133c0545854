"""Browser-test fixtures: headless Chromium (Debian's ``chromium``) driven by Playwright, and a
real ``auditbird serve`` process on loopback for it to open.

Use with ``-p tests.plugins.browser``. Nothing here downloads a browser: if ``/usr/bin/chromium``
is missing the tests fail and say how to install it (``scripts/install-browser.sh``).
Screenshots of the main states land in ``test-output/screenshots/``.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-output" / "screenshots"
CHROMIUM = os.environ.get("AUDITBIRD_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
AUDITBIRD = [str(Path(sys.executable).with_name("auditbird"))]


# -- the browser -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(
            f"Chromium is not installed at {CHROMIUM}: the web viewer's browser tests need it. "
            "Run `sudo scripts/install-browser.sh` (Debian's chromium package), or point "
            "AUDITBIRD_CHROMIUM at a Chromium binary.",
            pytrace=False,
        )
    return CHROMIUM


@pytest.fixture(scope="session")
def chromium_browser(chromium_path: str) -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ModuleNotFoundError:
        pytest.fail("the playwright package is missing: pip install -e '.[dev]'", pytrace=False)
    with sync_playwright() as pw:
        # launch() gives every run a fresh temporary profile (user-data-dir), removed on close.
        b = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def browser_context(chromium_browser: Any) -> Iterator[Any]:
    ctx = chromium_browser.new_context(
        viewport={"width": 1366, "height": 860}, accept_downloads=True, timezone_id="Europe/Berlin"
    )
    ctx.set_default_timeout(10_000)
    yield ctx
    ctx.close()


@pytest.fixture
def browser_page(browser_context: Any) -> Any:
    return browser_context.new_page()


@pytest.fixture(scope="session")
def screenshot() -> Callable[[Any, str], Path]:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page: Any, name: str, *, full_page: bool = False) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path

    return take


# -- a real server -----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(*args: str, env: dict[str, str] | None = None) -> str:
    """Run the ``auditbird`` command line; return its stdout (fail the test on a non-zero exit)."""
    done = subprocess.run(
        [*AUDITBIRD, *args], capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=60
    )
    if done.returncode != 0:
        raise AssertionError(f"auditbird {' '.join(args)} failed ({done.returncode}): {done.stderr}")
    return done.stdout


@dataclass
class LiveServer:
    """``auditbird serve`` in its own process, over one SQLite store."""

    db: Path
    port: int = field(default_factory=_free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def store_url(self) -> str:
        return f"sqlite:///{self.db}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LiveServer:
        log = open(self.db.with_suffix(".serve.log"), "wb")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(
            [
                *AUDITBIRD,
                "--store",
                self.store_url,
                "serve",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "AUDITBIRD_RATE_LIMIT": "0"},
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"auditbird serve exited: {self.db.with_suffix('.serve.log').read_text()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("auditbird serve did not answer /healthz within 30 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def key(self, workspace: str, scope: str = "read") -> str:
        out = cli("--store", self.store_url, "keys", "create", "--workspace", workspace, "--scope", scope)
        return out.strip().splitlines()[-1]

    def viewer_link(self, *args: str) -> str:
        out = cli("--store", self.store_url, "keys", "viewer-link", "--url", self.url, *args)
        return out.strip().splitlines()[-1]

    def publish(self, key: str, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        r = httpx.post(f"{self.url}/v1/events", json=events, headers={"Authorization": f"Bearer {key}"})
        r.raise_for_status()
        return list(r.json()["data"])


@pytest.fixture(scope="module")
def viewer_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path_factory.mktemp("viewer") / "audit.db").start()
    yield server
    server.stop()


# -- a 1,000,000-event store, built once and kept across runs ------------------------------

BIG_VERSION = "v1"
BIG_EVENTS = 1_000_000
BIG_WORKSPACE = "big"
_RESOURCES = {
    "monitor": ["created", "updated", "paused", "resumed", "down", "recovered"],
    "incident": ["created", "acknowledged", "resolved"],
    "page": ["published", "updated"],
    "member": ["invited", "removed", "role_changed"],
    "notification": ["sent"],
}
_ACTIONS = [f"{r}.{v}" for r, verbs in _RESOURCES.items() for v in verbs]
_REGIONS = ["gru", "ams", "iad", "fra", "syd", "hkg", "jnb"]


def build_big_store(path: Path, n: int = BIG_EVENTS, *, span_ms: int = 60 * 86_400_000) -> None:
    """``n`` events over the ``span_ms`` before now, through the SQLite store's batched append."""
    from auditbird.codec import dumps
    from auditbird.event import new_uid, now_ms
    from auditbird.stores.base import Row
    from auditbird.stores.sqlite import SQLiteStore

    rnd = random.Random(7)
    end = now_ms()
    step = span_ms / n
    tmp = path.with_suffix(".building")
    for p in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        p.unlink(missing_ok=True)
    store = SQLiteStore(tmp, synchronous="OFF")
    # Test-only tuning of a throwaway build: room for the indexes in memory makes it ~4x faster.
    store._conn.execute("PRAGMA cache_size = -524288")
    batch: list[Row] = []
    for i in range(n):
        action = _ACTIONS[rnd.randrange(len(_ACTIONS))]
        resource = action.split(".")[0]
        target = rnd.randrange(1, 5_000)
        actor = rnd.randrange(200)
        metadata: dict[str, Any] = {"region": rnd.choice(_REGIONS), "seq": i}
        if action.endswith("updated"):
            interval = rnd.choice([30, 60, 300])
            metadata = {
                "before": {"interval": interval, "name": f"{resource} {target}"},
                "after": {"interval": interval * 2, "name": f"{resource} {target}"},
                "changed": ["interval"],
            }
        batch.append(
            Row(
                new_uid(),
                BIG_WORKSPACE,
                f"{resource}:{target}",
                action,
                dumps({"id": f"user_{actor}", "name": f"User {actor}"}),
                dumps([{"id": str(target), "type": resource}]),
                dumps(metadata),
                int(end - span_ms + i * step),
                1,
            )
        )
        if len(batch) == 10_000:
            store.append(batch)
            batch = []
    if batch:
        store.append(batch)
    store._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store._conn.execute("ANALYZE")
    store.close()
    tmp.replace(path)


@pytest.fixture(scope="session")
def big_store() -> Path:
    """The path of a 1,000,000-event SQLite store (built on first use, then reused: ~1 minute)."""
    cache = Path(os.environ.get("AUDITBIRD_BENCH_CACHE", Path(tempfile.gettempdir()) / "auditbird-bench"))
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"viewer-{BIG_VERSION}-{BIG_EVENTS}.db"
    if not path.exists():
        build_big_store(path)
    return path


@pytest.fixture(scope="module")
def big_viewer_server(big_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server over a private copy of the big store (reads record access events: keep the cache clean)."""
    copy = tmp_path_factory.mktemp("big") / "audit.db"
    shutil.copyfile(big_store, copy)
    server = LiveServer(copy).start()
    yield server
    server.stop()


def write_results(name: str, data: dict[str, Any]) -> None:
    out = ROOT / "test-output" / "viewer-perf.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    found = json.loads(out.read_text()) if out.exists() else {}
    found[name] = data
    out.write_text(json.dumps(found, indent=2) + "\n")
