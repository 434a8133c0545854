"""Buffered Tinybird writes: a durable local spool, background flushes, nothing lost.

End to end against the local server (``-p tests.plugins.tinybird_server``), including a
``kill -9`` of a producer process in the middle of a stream.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from auditbird import AuditLog, Query, StoreUnavailable, Tinybird
from auditbird.codec import encode
from auditbird.event import Event
from auditbird.stores.tinybird import AuthenticationError, TinybirdStore

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def ws() -> str:
    return f"w{uuid.uuid4().hex[:12]}"


def _store(url: str, token: str, spool: Path, **options: Any) -> TinybirdStore:
    return TinybirdStore(Tinybird(token=token, host=url), buffered=True, spool_path=spool, **options)


def _rows(ws: str, n: int, start: int = 0) -> list[Any]:
    return [
        encode(Event(id=f"b:{i}", action="a.b", workspace=ws, metadata={"i": i})) for i in range(start, n)
    ]


def _server_uids(server: Any, ws: str) -> list[str]:
    with TinybirdStore(Tinybird(token=server.token, host=server.url)) as reader:
        return [r.uid for r in reader.query(Query(workspace=ws, limit=None))]


def _spooled(spool: Path) -> int:
    with sqlite3.connect(spool) as conn:
        return int(conn.execute("SELECT count(*) FROM pending").fetchone()[0])


def _dead_url() -> str:
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()  # nothing listens here
    return f"http://127.0.0.1:{port}"


def test_append_returns_before_sending_and_close_flushes(
    tinybird_server: Any, ws: str, tmp_path: Path
) -> None:
    spool = tmp_path / "a.spool"
    rows = _rows(ws, 25)
    store = _store(tinybird_server.url, tinybird_server.token, spool, flush_interval=60, batch_rows=1000)
    for row in rows:
        store.append([row])
    assert store.pending() == 25 and _server_uids(tinybird_server, ws) == []
    store.close()
    assert _spooled(spool) == 0
    assert sorted(_server_uids(tinybird_server, ws)) == sorted(r.uid for r in rows)


def test_background_thread_flushes_by_size_and_by_time(tinybird_server: Any, ws: str, tmp_path: Path) -> None:
    with _store(
        tinybird_server.url, tinybird_server.token, tmp_path / "b.spool", flush_interval=0.2
    ) as store:
        store.append(_rows(ws, 3))
        deadline = time.monotonic() + 10
        while store.pending() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert store.pending() == 0 and len(_server_uids(tinybird_server, ws)) == 3
    with _store(
        tinybird_server.url, tinybird_server.token, tmp_path / "c.spool", flush_interval=60, batch_rows=10
    ) as store:
        store.append(_rows(ws, 13, start=3))  # over batch_rows: sent without waiting for the interval
        deadline = time.monotonic() + 10
        while store.pending() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert store.pending() == 0 and len(_server_uids(tinybird_server, ws)) == 13


def test_buffered_log_reads_its_own_writes(tinybird_server: Any, ws: str, tmp_path: Path) -> None:
    tb = Tinybird(token=tinybird_server.token, host=tinybird_server.url)
    with AuditLog(
        tb=tb, workspace=ws, buffered=True, spool_path=tmp_path / "d.spool", flush_interval=60
    ) as log:
        stored = log.publish_many([{"id": "m:1", "action": "a.b", "timestamp": t} for t in (1, 2, 3)])
        assert [e.uid for e in log.get_audit_log(event_id="m:1")] == [e.uid for e in reversed(stored)]


class Switch:
    """A TCP forwarder to the local server that can be switched off: a real outage, same URL."""

    def __init__(self, target: str) -> None:
        host, port = target.split("://", 1)[1].rsplit(":", 1)
        self.target = (host, int(port))
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.url = f"http://127.0.0.1:{self.port}"
        self._listener: socket.socket | None = None

    def on(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def off(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def test_outage_keeps_rows_in_the_spool_and_sends_them_later(
    tinybird_server: Any, ws: str, tmp_path: Path
) -> None:
    spool = tmp_path / "outage.spool"
    rows = _rows(ws, 40)
    switch = Switch(tinybird_server.url)  # off: nothing listens
    options = {"flush_interval": 0.1, "max_retry_time": 1.0, "timeout": 0.5}
    store = _store(switch.url, tinybird_server.token, spool, **options)
    for i in range(0, 40, 10):
        store.append(rows[i : i + 10])  # returns at once although nothing answers
    start = time.monotonic()
    with pytest.raises(StoreUnavailable, match="40 row\\(s\\) are kept in the spool"):
        store.close()
    assert time.monotonic() - start < 5  # bounded by max_retry_time, not forever
    assert _spooled(spool) == 40

    switch.on()  # Tinybird answers again: the next store on this spool sends everything
    try:
        with _store(switch.url, tinybird_server.token, spool, **options):
            pass
    finally:
        switch.off()
    assert _spooled(spool) == 0
    assert sorted(_server_uids(tinybird_server, ws)) == sorted(r.uid for r in rows)


def test_wrong_token_stops_sending_and_keeps_the_rows(tinybird_server: Any, ws: str, tmp_path: Path) -> None:
    spool = tmp_path / "token.spool"
    store = _store(tinybird_server.url, "p.wrong", spool, flush_interval=0.05)
    store.append(_rows(ws, 5))
    deadline = time.monotonic() + 10
    while store.writer is not None and store.writer.last_error is None and time.monotonic() < deadline:
        time.sleep(0.05)
    with pytest.raises(AuthenticationError, match="rejected the token"):
        store.append(_rows(ws, 1))  # not spooled: the caller learns at once
    with pytest.raises(AuthenticationError, match="5 row\\(s\\) are kept in the spool"):
        store.close()
    assert _spooled(spool) == 5


def test_a_spool_belongs_to_one_destination(tinybird_server: Any, tmp_path: Path) -> None:
    spool = tmp_path / "one.spool"
    _store(tinybird_server.url, tinybird_server.token, spool).close()
    with pytest.raises(ValueError, match="holds rows for"):
        _store(_dead_url(), tinybird_server.token, spool)


PRODUCER = textwrap.dedent(
    """
    import sys
    from auditbird import Tinybird
    from auditbird.codec import encode
    from auditbird.event import Event
    from auditbird.stores.tinybird import TinybirdStore

    url, token, spool, ws = sys.argv[1:5]
    store = TinybirdStore(
        Tinybird(token=token, host=url), buffered=True, spool_path=spool, batch_rows=200, flush_interval=0.2
    )
    i = 0
    while True:
        row = encode(Event(id=f"k:{i % 7}", action="monitor.down", workspace=ws, metadata={"i": i}))
        store.append([row])
        sys.stdout.write(row.uid + "\\n")  # printed only once append returned: acknowledged
        sys.stdout.flush()
        i += 1
    """
)

RESTART = textwrap.dedent(
    """
    import sys
    from auditbird import Tinybird
    from auditbird.stores.tinybird import TinybirdStore

    url, token, spool = sys.argv[1:4]
    store = TinybirdStore(Tinybird(token=token, host=url), buffered=True, spool_path=spool)
    store.close()
    """
)


def _produce_then_kill(server: Any, ws: str, spool: Path) -> list[str]:
    """Run the producer for >= 400 acknowledged appends and >= 1 s, then kill -9 it; the
    uids it acknowledged (printed only after append returned)."""
    args = [server.url, server.token, str(spool)]
    producer = subprocess.Popen(
        [sys.executable, "-c", PRODUCER, *args, ws], stdout=subprocess.PIPE, text=True, bufsize=1
    )
    assert producer.stdout is not None
    acknowledged: list[str] = []
    start = time.monotonic()
    while len(acknowledged) < 400 or time.monotonic() - start < 1.0:
        line = producer.stdout.readline()
        assert line, "the producer died"
        acknowledged.append(line.strip())
    os.kill(producer.pid, signal.SIGKILL)
    producer.wait()
    acknowledged.extend(
        x.strip() for x in producer.stdout.read().splitlines(keepends=True) if x.endswith("\n")
    )
    return acknowledged


def test_kill_9_mid_stream_then_restart_loses_nothing(tinybird_server: Any, ws: str, tmp_path: Path) -> None:
    # Where the kill lands is a race: the sender may have caught up with every acknowledged
    # row just before it (seen in CI). Such a kill leaves the restart nothing to prove, so
    # it is tried again, in a fresh workspace and spool, until one leaves acknowledged rows
    # unsent (the assertions below hold for whichever kill is used).
    for attempt in range(5):
        ws_now, spool = f"{ws}{attempt}", tmp_path / f"crash{attempt}.spool"
        acknowledged = _produce_then_kill(tinybird_server, ws_now, spool)
        sent_before = set(_server_uids(tinybird_server, ws_now))
        if not set(acknowledged) <= sent_before:
            break
    ws = ws_now
    args = [tinybird_server.url, tinybird_server.token, str(spool)]
    left_in_spool = _spooled(spool)
    assert sent_before, "the background thread should have sent some batches before the kill"
    assert left_in_spool > 0, "the kill should have left rows in the spool"
    assert not set(acknowledged) <= sent_before  # so the restart has work to do

    subprocess.run([sys.executable, "-c", RESTART, *args], check=True, timeout=60)

    after = _server_uids(tinybird_server, ws)
    assert len(after) == len(set(after))  # every event exactly once
    assert set(acknowledged) <= set(after)  # every acknowledged append is there
    assert len(after) <= len(acknowledged) + 1  # at most the one spooled but not yet printed
    assert _spooled(spool) == 0


EXIT_WITHOUT_CLOSE = textwrap.dedent(
    """
    import sys
    from auditbird import Tinybird
    from auditbird.codec import encode
    from auditbird.event import Event
    from auditbird.stores.tinybird import TinybirdStore

    url, token, spool, ws = sys.argv[1:5]
    tb = Tinybird(token=token, host=url)
    store = TinybirdStore(tb, buffered=True, spool_path=spool, flush_interval=3600)
    store.append([encode(Event(id="exit:1", action="a.b", workspace=ws)) for _ in range(7)])
    # no close(): the interpreter's exit flushes
    """
)


def test_interpreter_exit_flushes_the_spool(tinybird_server: Any, ws: str, tmp_path: Path) -> None:
    spool = tmp_path / "exit.spool"
    args = [tinybird_server.url, tinybird_server.token, str(spool), ws]
    subprocess.run([sys.executable, "-c", EXIT_WITHOUT_CLOSE, *args], check=True, timeout=60)
    assert _spooled(spool) == 0
    assert len(_server_uids(tinybird_server, ws)) == 7
