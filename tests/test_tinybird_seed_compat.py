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
from pathlib import Path
from typing import Any

import httpx
import pytest

from auditbird import AuditLog, Tinybird, UnsupportedOperation
from auditbird.stores.base import Row
from auditbird.stores.tinybird import QuarantinedRows, TinybirdStore
from auditbird.stores.tinybird_seed import row_from_seed, seed_uid

pytestmark = pytest.mark.timeout(180)

SEED_DATAFILES = Path(__file__).parent / "data" / "openstatus-tinybird"
# The seed's README example, as the seed's own client sends it (client.ts + base-validation.ts of
# openstatus@74a234dc): actor, targets and metadata JSON-stringified by zod, the default actor
# {id: "server", type: "system"}, timestamp Date.now() in ms, version 1, no uid, no workspace.
SEED_EXAMPLE = {
    "id": "monitor:1",
    "action": "monitor.down",
    "targets": [{"id": "1", "type": "monitor"}],
    "metadata": {"region": "gru", "statusCode": 400, "message": "timeout"},
}


def seed_line(event: dict[str, Any], timestamp: int | None = None) -> str:
    """One NDJSON line as the seed's ingestActionEventSchema turns ``event`` into."""
    out: dict[str, Any] = {
        "id": event["id"],
        "action": event["action"],
        "timestamp": timestamp if timestamp is not None else int(time.time() * 1000),
        "version": event.get("version", 1),
        "actor": json.dumps(event.get("actor", {"id": "server", "type": "system"}), separators=(",", ":")),
        "metadata": json.dumps(event.get("metadata"), separators=(",", ":")),
    }
    if event.get("targets") is not None:  # JSON.stringify(undefined) leaves the key out
        out["targets"] = json.dumps(event["targets"], separators=(",", ":"))
    return json.dumps(out, separators=(",", ":"))


@pytest.fixture(scope="module")
def seed_server(tinybird_server_factory: Any) -> Any:
    """A local server that loads OpenStatus's datafiles beside auditbird's own."""
    return tinybird_server_factory(datafiles=[SEED_DATAFILES])


@pytest.fixture
def stream() -> str:
    """A stream id of this test's own: seed rows have no workspace to keep tests apart."""
    return f"monitor:{uuid.uuid4().hex[:10]}"


def post_seed(server: Any, lines: list[str]) -> dict[str, Any]:
    response = httpx.post(
        f"{server.url}/v0/events",
        params={"name": "audit_log__v0"},
        headers=server.headers,
        content=("\n".join(lines) + "\n").encode(),
        timeout=30,
    )
    assert response.status_code in (200, 202), response.text
    answer: dict[str, Any] = response.json()
    return answer


def seed_pipe(server: Any, event_id: str) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{server.url}/v0/pipes/endpoint_audit_log__v0.json",
        params={"event_id": event_id},
        headers=server.headers,
        timeout=30,
    )
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def seed_log(server: Any) -> AuditLog:
    return AuditLog(tb=Tinybird(token=server.token, host=server.url, datasource="audit_log__v0"))


# -- the seed's datafiles run unchanged ----------------------------------------------------


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


def test_store_pages_a_seed_stream_with_cursors_and_filters(seed_server: Any, stream: str) -> None:
    lines = [
        seed_line(
            {"id": stream, "action": "monitor.down" if i % 2 else "monitor.up", "metadata": {"i": i}},
            1_700_000_002_000 + i // 2,
        )
        for i in range(7)
    ]
    post_seed(seed_server, lines)
    with seed_log(seed_server) as log:
        everything = log.get_audit_log(stream)
        paged, cursor = [], None
        while True:
            page = log.list(event_id=stream, limit=3, cursor=cursor)
            paged += page.events
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        downs = log.list(event_id=stream, action="monitor.down", since=1_700_000_002_001, limit=50).events
    keys = [(e.timestamp, e.uid) for e in everything]
    assert len(everything) == 7 and keys == sorted(keys, reverse=True)
    assert [e.uid for e in paged] == [e.uid for e in everything]
    assert sorted(e.metadata["i"] for e in downs) == [3, 5]


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


def test_a_read_by_uid_alone_names_the_migration(seed_server: Any) -> None:
    with (
        seed_log(seed_server) as log,
        pytest.raises(UnsupportedOperation, match="auditbird tinybird migrate"),
    ):
        log.get("5eed0000-0000-5000-8000-000000000000")


def _filter_events(prefix: str, t0: int) -> list[dict[str, Any]]:
    """Events that tell the filters apart (one timestamp each, so the order is the same everywhere)."""
    shapes: list[dict[str, Any]] = [
        {
            "action": "monitor.down",
            "actor": {"id": "u1", "name": "ann"},
            "targets": [{"id": "1", "type": "monitor"}],
        },
        {"action": "monitor.up", "targets": [{"id": "b:c", "type": "a"}], "metadata": {"city": "GRU"}},
        {
            "action": "incident.create",
            "actor": {"id": "u2", "name": "bob"},
            "targets": [{"id": "2", "name": "page"}],
        },
        {"action": "monitor.down", "targets": [{"id": "c", "type": "a:b"}], "metadata": {"city": "Émile"}},
        {"action": "monitor.up", "actor": {"id": "u1", "name": "ann"}, "metadata": {"city": "émile gru"}},
        {"action": "monitor.down", "targets": [{"id": "1", "type": "page"}, {"id": "2", "type": "monitor"}]},
    ]
    out = []
    for i, shape in enumerate(shapes * 2):
        event = {"id": f"{prefix}:{'ab'[i % 2]}", "timestamp": t0 + 10 * i, "metadata": {"n": i}, **shape}
        out.append(event)
    return out


def _seen(events: list[Any]) -> list[tuple[str, str, int]]:
    return [(e.id, e.action, e.timestamp) for e in events]


FILTERS: list[dict[str, Any]] = [
    {},
    {"action": "monitor.down"},
    {"action": ["monitor.up", "incident.create"]},
    {"actor_id": "u1"},
    {"actor_id": ""},
    {"target_type": "monitor"},
    {"target_id": "2"},
    {"target_type": "a", "target_id": "b:c"},
    {"target_type": "a:b", "target_id": "c"},
    {"target_type": "page", "target_id": "2"},
    {"target_type": "page", "target_id": "1"},
    {"target_type": "monitor", "target_id": "1"},
    {"text": "gru"},
    {"text": "ÉMILE"},
    {"text": "émile"},
    {"text": "ab:b"},
]


@pytest.mark.parametrize("filters", FILTERS, ids=[json.dumps(f, ensure_ascii=False) for f in FILTERS])
def test_every_list_filter_answers_as_sqlite_does(
    seed_server: Any, tmp_path: Path, filters: dict[str, Any]
) -> None:
    prefix, t0 = f"ab{uuid.uuid4().hex[:8]}", 1_600_000_000_000 + uuid.uuid4().int % 10**9 * 1000
    events = _filter_events(prefix, t0)
    window = {"since": t0, "until": t0 + 10 * len(events)}
    with AuditLog(f"sqlite:///{tmp_path / 'a.db'}") as sqlite, seed_log(seed_server) as seed:
        sqlite.publish_many(events)
        seed.publish_many(events)
        expected = _seen(sqlite.list(**window, **filters, limit=100).events)
        got = seed.list(**window, **filters, limit=100).events
    assert _seen(got) == expected
    if not filters:
        assert len(expected) == len(events)


def test_query_api_reads_page_with_cursors_in_both_orders(seed_server: Any) -> None:
    t0 = 1_500_000_000_000 + uuid.uuid4().int % 10**9 * 1000
    # 11 rows on 4 timestamps (ties), 2 of them copies: 9 events.
    lines = [
        seed_line({"id": f"s{i}", "action": "monitor.down", "metadata": {"i": i}}, t0 + i // 3)
        for i in range(9)
    ]
    post_seed(seed_server, lines + lines[:2])
    window = {"since": t0, "until": t0 + 10}
    with seed_log(seed_server) as log:
        whole = log.list(**window, limit=100).events
        assert len(whole) == 9 and len({e.uid for e in whole}) == 9
        keys = [(e.timestamp, e.uid) for e in whole]
        assert keys == sorted(keys, reverse=True)
        paged = list(log.iter_events(**window, page_size=2))
        assert [e.uid for e in paged] == [e.uid for e in whole]
        store = log.store
        from auditbird import Query

        asc = store.query(
            Query(since=t0, until=t0 + 10, order="asc", limit=4, after=(whole[-3].timestamp, whole[-3].uid))
        )
        assert [r.uid for r in asc] == [e.uid for e in reversed(whole[:-3])][:4]


# -- nothing lost silently ------------------------------------------------------------------


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
