"""The relay from PostgreSQL into the Tinybird-compatible local server: a crash between the
destination's acknowledgement and the saved position ships nothing twice."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

pytest.importorskip("chdb")

from auditbird import AuditLog, Tinybird  # noqa: E402
from auditbird.relay import Relay  # noqa: E402
from auditbird.stores.tinybird import TinybirdStore  # noqa: E402
from tests.test_es_relay import CrashAfterAppend  # noqa: E402

N = 1_500


def test_relay_from_postgres_into_the_local_tinybird_server_survives_a_crash(
    postgres_url: str, tinybird_server: Any
) -> None:
    workspace = f"pgrelay-{uuid.uuid4().hex[:8]}"  # the server's datasource is shared by the session
    with AuditLog(postgres_url, workspace=workspace) as log:
        log.publish_many(
            [{"id": f"monitor:{i % 7}", "action": "monitor.checked", "metadata": {"i": i}} for i in range(N)]
        )
    url = f"tinybird+http://{tinybird_server.token}@{tinybird_server.url.removeprefix('http://')}"
    crashing = CrashAfterAppend(TinybirdStore.from_url(url), crash_on=2)
    with pytest.raises(KeyboardInterrupt):
        Relay(postgres_url, crashing, name="tb", batch=500).run()
    resumed = Relay(postgres_url, url, name="tb", batch=500)
    assert resumed.position == 500  # batch 2 reached Tinybird; its position was never saved
    assert resumed.run() == N - 500
    resumed.close()
    with AuditLog(TinybirdStore(Tinybird(token=tinybird_server.token, host=tinybird_server.url))) as remote:
        got = list(remote.iter_events(workspace=workspace, page_size=1_000))
        assert len(got) == N and len({e.uid for e in got}) == N
        assert sorted(e.metadata["i"] for e in got) == list(range(N))
        ours = [e.metadata["i"] for e in remote.history("monitor:3", workspace=workspace)]
    assert ours == [i for i in range(N) if i % 7 == 3]
