"""The relay into the Tinybird-compatible local server (real subprocess, Events API, Pipes)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("chdb")

from auditbird import AuditLog, Tinybird  # noqa: E402
from auditbird.relay import Relay  # noqa: E402
from auditbird.stores.tinybird import TinybirdStore  # noqa: E402
from tests.plugins.tinybird_server import tinybird_server  # noqa: E402, F401 - the session fixture
from tests.test_es_relay import CrashAfterAppend  # noqa: E402

N = 1_500


def test_relay_into_the_local_tinybird_server_survives_a_crash_without_duplicates(
    tmp_path: Path,
    tinybird_server: Any,  # noqa: F811 - the fixture imported above
) -> None:
    workspace = f"relay-{uuid.uuid4().hex[:8]}"  # the server's datasource is shared by the session
    source = tmp_path / "app.db"
    with AuditLog(f"sqlite:///{source}", workspace=workspace) as log:
        log.publish_many(
            [{"id": f"monitor:{i % 7}", "action": "monitor.checked", "metadata": {"i": i}} for i in range(N)]
        )
    url = f"tinybird+http://{tinybird_server.token}@{tinybird_server.url.removeprefix('http://')}"
    crashing = CrashAfterAppend(TinybirdStore.from_url(url), crash_on=2)
    with pytest.raises(KeyboardInterrupt):
        Relay(f"sqlite:///{source}", crashing, name="tb", batch=500).run()
    resumed = Relay(f"sqlite:///{source}", url, name="tb", batch=500)
    assert resumed.position == 500  # batch 2 reached Tinybird; its position was never saved
    assert resumed.run() == N - 500
    resumed.close()
    with AuditLog(TinybirdStore(Tinybird(token=tinybird_server.token, host=tinybird_server.url))) as remote:
        got = list(remote.iter_events(workspace=workspace, page_size=1_000))
        assert len(got) == N and len({e.uid for e in got}) == N
        assert sorted(e.metadata["i"] for e in got) == list(range(N))
        ours = [e.metadata["i"] for e in remote.history("monitor:3", workspace=workspace)]
    assert ours == [i for i in range(N) if i % 7 == 3]  # a stream's order survives the trip
