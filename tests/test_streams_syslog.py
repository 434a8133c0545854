"""Syslog log streams: RFC 5424 over TCP with octet counting, to a real rsyslogd."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from auditbird import AuditLog
from auditbird.row import Row
from auditbird.streams import Backoff, StreamRegistry, StreamRunner, format_message

from .streams_support import Rsyslog, first_occurrences, make_certificates, wait_for


@pytest.fixture
def store(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'audit.db'}"


@pytest.fixture
def rsyslog(tmp_path: Path) -> Iterator[Rsyslog]:
    server = Rsyslog(tmp_path / "rsyslog").start()
    yield server
    server.stop()


def add_syslog(store: str, port: int) -> None:
    with StreamRegistry.for_store(store) as reg:
        reg.add("siem", workspace="acme", kind="syslog", options={"host": "127.0.0.1", "port": port})


def publish(store: str, events: list[dict[str, object]], workspace: str = "acme") -> list[str]:
    with AuditLog(store, workspace=workspace) as log:
        return [e.uid for e in log.publish_many(events)]


def test_rfc5424_message_escapes_structured_data_values() -> None:
    row = Row("u1", "acme", "monitor:1", "monitor.deleted", '{"id":"a\\"]\\\\","name":"x"}', "[]", None, 0, 1)
    msg = format_message(row, hostname="host 1").decode()
    assert msg.startswith(
        "<110>1 1970-01-01T00:00:00.000Z host_1 auditbird - monitor.deleted [auditbird@32473 "
    )
    assert 'actor_id="a\\"\\]\\\\"' in msg


def test_rsyslog_receives_every_event_in_order_as_structured_data(store: str, rsyslog: Rsyslog) -> None:
    add_syslog(store, rsyslog.port)
    events = [
        {
            "id": "monitor:1",
            "action": "monitor.deleted",
            "actor": {"id": 'ev"il]', "name": "Ève"},
            "metadata": {"note": "line one\nline two | pipe"},
        },
        *({"id": f"monitor:{i}", "action": "monitor.down"} for i in range(30)),
    ]
    uids = publish(store, events)
    publish(store, [{"id": "x:1", "action": "monitor.down"}], workspace="other")
    runner = StreamRunner(store, batch=8)
    runner.run()
    runner.close()
    wait_for(lambda: len(rsyslog.uids()) >= len(uids), 30, "rsyslog to write every message")
    messages = rsyslog.messages()
    assert [m[3]["uid"] for m in messages] == uids
    app, msgid, sd, first = messages[0]
    # rsyslog parsed the header and the structured data: its own properties show them.
    assert (app, msgid) == ("auditbird", "monitor.deleted")
    assert sd.startswith(f'[auditbird@32473 uid="{uids[0]}" workspace="acme" id="monitor:1"')
    assert 'actor_id="ev\\"il\\]"' in sd
    assert first["metadata"] == {"note": "line one\nline two | pipe"}  # octet counting keeps the newline
    assert first["actor"]["name"] == "Ève"


def test_a_syslog_server_that_closes_the_connection_gets_everything_when_back(
    store: str, tmp_path: Path
) -> None:
    rsyslog = Rsyslog(tmp_path / "rsyslog").start()
    add_syslog(store, rsyslog.port)
    uids = publish(store, [{"id": f"m:{i}", "action": "monitor.down"} for i in range(10)])
    stop = threading.Event()
    runner = StreamRunner(store, batch=4, backoff=Backoff(0.01, 0.05), stop=stop)
    thread = threading.Thread(target=runner.run, kwargs={"follow": True, "poll_interval": 0.02})
    thread.start()
    try:
        wait_for(lambda: len(rsyslog.uids()) == 10, 30, "the first events")
        rsyslog.stop()  # the server goes away, closing the runner's connection
        uids += publish(store, [{"id": f"m:{i}", "action": "monitor.down"} for i in range(10, 25)])
        with StreamRegistry.for_store(store) as reg:
            wait_for(lambda: bool(reg.get("acme", "siem").last_error), 30, "a failed delivery")
        rsyslog.start()
        wait_for(lambda: set(rsyslog.uids()) >= set(uids), 60, "every event after the restart")
    finally:
        stop.set()
        thread.join()
        runner.close()
        rsyslog.stop()
    assert first_occurrences(rsyslog.uids()) == uids


def test_syslog_over_tls_reaches_rsyslog_and_an_unknown_ca_is_refused(store: str, tmp_path: Path) -> None:
    ca, cert, key = make_certificates(tmp_path / "certs")
    rsyslog = Rsyslog(tmp_path / "rsyslog", tls=(ca, cert, key)).start()
    try:
        with StreamRegistry.for_store(store) as reg:
            reg.add(
                "tls",
                workspace="acme",
                kind="syslog",
                options={"host": "127.0.0.1", "port": rsyslog.port, "tls": True, "ca_file": str(ca)},
            )
            # The same server, checked against the system's CAs: it is not trusted.
            reg.add(
                "untrusted",
                workspace="acme",
                kind="syslog",
                options={"host": "127.0.0.1", "port": rsyslog.port, "tls": True},
            )
        uids = publish(store, [{"id": f"m:{i}", "action": "monitor.down"} for i in range(12)])
        runner = StreamRunner(store, batch=5, names=["tls"])
        runner.run()
        runner.close()
        wait_for(lambda: len(rsyslog.uids()) >= 12, 30, "rsyslog to write the TLS messages")
        assert rsyslog.uids() == uids
        stop = threading.Event()
        untrusted = StreamRunner(store, names=["untrusted"], backoff=Backoff(0.01, 0.05), stop=stop)
        thread = threading.Thread(target=untrusted.run)
        thread.start()
        with StreamRegistry.for_store(store) as reg:
            wait_for(
                lambda: "CERTIFICATE_VERIFY_FAILED" in (reg.get("acme", "untrusted").last_error or ""),
                30,
                "a refused certificate",
            )
        stop.set()
        thread.join()
        untrusted.close()
        assert rsyslog.uids() == uids  # nothing sent to a server it could not verify
    finally:
        rsyslog.stop()
