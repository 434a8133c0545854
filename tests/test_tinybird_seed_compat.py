"""OpenStatus workspaces: the seed's own datafiles, unchanged, on the local server; the Python
store reading and writing them; nothing quarantined without an error.

The datafiles are OpenStatus's (tests/data/openstatus-tinybird/, see its README): the Classic
CLI names ``audit_log.datasource`` with ``VERSION 0`` ``audit_log__v0``, the name the seed's
client uses. Their rows carry no uid and no workspace, and ``targets`` is Nullable.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from typing import Any

import httpx
import pytest

from auditbird import AuditLog, Tinybird, UnsupportedOperation
from auditbird.stores.base import Row
from auditbird.stores.tinybird import QuarantinedRows, TinybirdStore
from auditbird.stores.tinybird_seed import row_from_seed, seed_uid

from .tinybird_seed_support import (
    SEED_DATAFILES,
    SEED_EXAMPLE,
    post_seed,
    seed_line,
    seed_log,
    seed_pipe,
    seed_server,
    stream,
)

pytestmark = pytest.mark.timeout(180)
__all__ = ["seed_server", "stream"]  # fixtures


@pytest.mark.parametrize(
    ("path", "blob"),
    [
        ("datasources/audit_log.datasource", "4fa11660f7c8a99031b295822f6155df0b78b6a7"),
        ("pipes/endpoint_audit_log.pipe", "50d27b92fc528c39b546e87914b0864f82f4869a"),
    ],
)
def test_seed_datafiles_are_openstatus_files_unchanged(path: str, blob: str) -> None:
    """The git blob ids of openstatusHQ/openstatus@74a234dc (see the folder's README)."""
    data = (SEED_DATAFILES / path).read_bytes()
    assert hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest() == blob  # noqa: S324 - git's id


def test_local_server_loads_the_seed_datafiles_under_their_versioned_names(seed_server: Any) -> None:
    datasources = httpx.get(f"{seed_server.url}/v0/datasources", headers=seed_server.headers).json()
    by_name = {d["name"]: d for d in datasources["datasources"]}
    assert {"audit_log", "audit_log__v0"} <= set(by_name)  # auditbird's own is not replaced
    assert [(c["name"], c["type"]) for c in by_name["audit_log__v0"]["columns"]] == [
        ("action", "String"),
        ("actor", "String"),
        ("id", "String"),
        ("targets", "Nullable(String)"),
        ("metadata", "Nullable(String)"),
        ("timestamp", "Int64"),
        ("version", "Int16"),
    ]
    assert "uid" in {c["name"] for c in by_name["audit_log"]["columns"]}
    pipes = httpx.get(f"{seed_server.url}/v0/pipes", headers=seed_server.headers).json()
    assert {"endpoint_audit_log", "endpoint_audit_log__v0"} <= {p["name"] for p in pipes["pipes"]}


def test_seed_example_ingested_as_the_seed_client_sends_it_reads_back_through_the_seed_pipe(
    seed_server: Any, stream: str
) -> None:
    before = int(time.time() * 1000)
    answer = post_seed(seed_server, [seed_line({**SEED_EXAMPLE, "id": stream})])
    assert answer == {"successful_rows": 1, "quarantined_rows": 0}
    no_targets = {
        "id": stream,
        "action": "monitor.recovered",
        "metadata": {"region": "gru", "statusCode": 200},
    }
    assert post_seed(seed_server, [seed_line(no_targets, before + 60_000)])["successful_rows"] == 1

    rows = seed_pipe(seed_server, stream)
    assert [r["action"] for r in rows] == ["monitor.recovered", "monitor.down"]  # ORDER BY timestamp DESC
    down = rows[1]
    assert set(down) == {"action", "actor", "id", "targets", "metadata", "timestamp", "version"}
    assert json.loads(down["actor"]) == {"id": "server", "type": "system"}
    assert json.loads(down["targets"]) == SEED_EXAMPLE["targets"]
    assert json.loads(down["metadata"]) == SEED_EXAMPLE["metadata"]
    assert down["version"] == 1 and down["timestamp"] >= before
    assert rows[0]["targets"] is None  # Nullable: the seed's client left the key out


# -- the Python store over a seed workspace -------------------------------------------------


def test_store_reads_seed_rows_with_deterministic_uids(seed_server: Any, stream: str) -> None:
    post_seed(seed_server, [seed_line({**SEED_EXAMPLE, "id": stream}, 1_700_000_000_000)])
    post_seed(
        seed_server, [seed_line({"id": stream, "action": "monitor.up", "metadata": {}}, 1_700_000_000_500)]
    )

    with seed_log(seed_server) as log:
        events = log.get_audit_log(stream)
        again = log.get_audit_log(stream)
    url = f"tinybird+http://{seed_server.token}@127.0.0.1:{seed_server.port}?datasource=audit_log__v0"
    with AuditLog(url) as other:
        from_url = other.get_audit_log(stream)

    assert [e.action for e in events] == ["monitor.up", "monitor.down"]
    down = events[1]
    assert down.workspace == "" and down.schema_error is None
    assert down.actor.id == "server" and down.actor.type == "system"
    assert [t.model_dump(exclude_none=True) for t in down.targets] == SEED_EXAMPLE["targets"]
    assert down.metadata == SEED_EXAMPLE["metadata"] and down.timestamp == 1_700_000_000_000
    assert events[0].targets == []  # NULL targets read as none
    uids = [e.uid for e in events]
    assert uuid.UUID(uids[0]).version == 5 and uids[0] != uids[1]
    assert [e.uid for e in again] == uids == [e.uid for e in from_url]


def test_copies_of_a_seed_row_are_read_once(seed_server: Any, stream: str) -> None:
    line = seed_line({**SEED_EXAMPLE, "id": stream}, 1_700_000_001_000)
    post_seed(seed_server, [line, line])
    post_seed(seed_server, [line])
    assert len(seed_pipe(seed_server, stream)) == 3
    with seed_log(seed_server) as log:
        events = log.get_audit_log(stream)
        assert len(events) == 1
        with pytest.raises(UnsupportedOperation):  # a uid alone: the seed's pipe reads by event_id
            log.get(events[0].uid)
        assert [e.uid for e in log.list(event_id=stream).events] == [events[0].uid]


def test_store_writes_seed_workspace_as_the_seed_client_reads_it(seed_server: Any, stream: str) -> None:
    with seed_log(seed_server) as log:
        published = log.publish_audit_log(
            {**SEED_EXAMPLE, "id": stream, "actor": {"id": "1", "name": "mxkaske"}}
        )
        events = log.get_audit_log(stream)
    [row] = seed_pipe(seed_server, stream)  # what the seed's getAuditLog receives
    assert json.loads(row["actor"]) == {"id": "1", "name": "mxkaske"}
    assert json.loads(row["metadata"]) == SEED_EXAMPLE["metadata"] and row["timestamp"] == published.timestamp
    [event] = events
    assert event.to_dict() | {"uid": ""} == published.to_dict() | {"uid": ""}
    # The seed's datasource keeps no uid: the one read back is derived from the content.
    assert event.uid == seed_uid(row_from_seed(row))


def test_store_refuses_other_workspaces_on_a_seed_datasource(seed_server: Any, stream: str) -> None:
    with seed_log(seed_server) as log:
        with pytest.raises(UnsupportedOperation, match="no workspace column"):
            log.publish_audit_log({**SEED_EXAMPLE, "id": stream, "workspace": "acme"})
        assert log.get_audit_log(stream, workspace="acme") == []
    assert seed_pipe(seed_server, stream) == []  # nothing was sent


def test_a_row_the_seed_datasource_quarantines_raises_with_count_and_reason(
    seed_server: Any, stream: str
) -> None:
    with seed_log(seed_server) as log, pytest.raises(QuarantinedRows) as caught:
        log.publish_many(
            [
                {**SEED_EXAMPLE, "id": stream},
                {**SEED_EXAMPLE, "id": stream, "version": 40_000},  # the seed's version is Int16
            ]
        )
    assert caught.value.quarantined == 1 and caught.value.successful == 1
    assert "version" in " ".join(caught.value.reasons) and "Int16" in " ".join(caught.value.reasons)
    assert "1 row(s) were quarantined in audit_log__v0_quarantine" in str(caught.value)


def test_a_seed_shaped_row_sent_to_auditbirds_datasource_raises_naming_the_uid(
    seed_server: Any, stream: str
) -> None:
    store = TinybirdStore(Tinybird(token=seed_server.token, host=seed_server.url))
    from auditbird.stores._tinybird_http import run_sync

    try:
        with pytest.raises(QuarantinedRows) as caught:
            run_sync(store.client, store.protocol.ingest([seed_line({**SEED_EXAMPLE, "id": stream})]))
    finally:
        store.close()
    assert caught.value.quarantined == 1 and caught.value.successful == 0
    assert any("'uid'" in reason for reason in caught.value.reasons), caught.value.reasons


# -- derived uids ---------------------------------------------------------------------------


def _row(**kw: Any) -> Row:
    base = Row(
        "", "", "monitor:1", "monitor.down", '{"id":"server","type":"system"}', "[]", '{"a":1,"b":2}', 5, 1
    )
    return base._replace(**kw)


def test_seed_uid_depends_on_content_not_on_json_formatting() -> None:
    assert seed_uid(_row()) == seed_uid(_row(metadata='{ "b": 2, "a": 1 }'))
    assert seed_uid(_row()) == seed_uid(_row(uid="x", workspace="ignored"))
    changed = [
        _row(id="monitor:2"),
        _row(action="monitor.up"),
        _row(actor='{"id":"1","type":"user"}'),
        _row(targets='[{"id":"1","type":"monitor"}]'),
        _row(metadata='{"a":1,"b":3}'),
        _row(metadata=None),
        _row(timestamp=6),
        _row(version=2),
    ]
    assert len({seed_uid(r) for r in [_row(), *changed]}) == 1 + len(changed)


def test_seed_rows_with_null_or_missing_columns_read_as_auditbird_rows() -> None:
    row = row_from_seed(
        {
            "id": "m:1",
            "action": "a.b",
            "actor": "",
            "targets": None,
            "metadata": None,
            "timestamp": "7",
            "version": 3,
        }
    )
    assert row[1:] == ("", "m:1", "a.b", '{"id":"","name":"system"}', "[]", None, 7, 3, None)
    assert row.uid == seed_uid(row)


def test_async_store_reads_and_guards_a_seed_workspace(seed_server: Any, stream: str) -> None:
    import asyncio

    from auditbird import AsyncAuditLog

    post_seed(seed_server, [seed_line({**SEED_EXAMPLE, "id": stream}, 1_700_000_003_000)])

    async def main() -> tuple[list[Any], Exception | None]:
        tb = Tinybird(token=seed_server.token, host=seed_server.url, datasource="audit_log__v0")
        async with AsyncAuditLog(tb=tb) as log:
            events = await log.get_audit_log(stream)
            try:
                await log.publish_audit_log({**SEED_EXAMPLE, "id": stream, "workspace": "acme"})
            except UnsupportedOperation as exc:
                return events, exc
        return events, None

    events, refused = asyncio.run(main())
    assert [e.action for e in events] == ["monitor.down"] and uuid.UUID(events[0].uid).version == 5
    assert refused is not None and "no workspace column" in str(refused)
    assert len(seed_pipe(seed_server, stream)) == 1


def test_version_names_a_datafile_as_the_classic_cli_does() -> None:
    from auditbird.tinybird.datafiles import DatafileError, parse_datasource, parse_pipe

    ds = parse_datasource("VERSION 3\nSCHEMA >\n    `a` String `json:$.a`\n", "events")
    pipe = parse_pipe("VERSION 0\n\nNODE n\nSQL >\n    SELECT 1\n", "endpoint_events")
    assert (ds.name, pipe.name) == ("events__v3", "endpoint_events__v0")
    assert parse_datasource("SCHEMA >\n    `a` String\n", "plain").name == "plain"
    with pytest.raises(DatafileError, match=r"x\.datasource.*VERSION must be a whole number"):
        parse_datasource("VERSION beta\nSCHEMA >\n    `a` String\n", "x")
