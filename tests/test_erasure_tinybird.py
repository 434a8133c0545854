"""The relay into the Tinybird-compatible local server (real subprocess on chDB) ships personal
fields as the ciphertext stored in SQLite: the rows Tinybird holds carry no plaintext, and an
erasure in the source makes them read as [erased] from Tinybird too."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("chdb")

from auditbird import AuditLog, Tinybird  # noqa: E402
from auditbird.erasure import ERASED, erase_subject  # noqa: E402
from auditbird.relay import Relay  # noqa: E402
from auditbird.stores.tinybird import TinybirdStore  # noqa: E402
from tests.plugins.tinybird_server import tinybird_server  # noqa: E402, F401 - the session fixture

ADA = "Ada Lovelace"


def test_the_relay_to_tinybird_ships_ciphertext(tmp_path: Path, tinybird_server: Any) -> None:  # noqa: F811
    workspace = f"erase-{uuid.uuid4().hex[:8]}"  # the server's datasource is shared by the session
    source = tmp_path / "app.db"
    log = AuditLog(f"sqlite:///{source}", workspace=workspace)
    uid = log.publish_audit_log(
        {"id": "org:1", "action": "user.joined", "actor": {"id": "42", "name": ADA}}
    ).uid
    url = f"tinybird+http://{tinybird_server.token}@{tinybird_server.url.removeprefix('http://')}"
    relay = Relay(f"sqlite:///{source}", url, name="tb")
    assert relay.run() == 1
    relay.close()
    # What Tinybird holds, read with SQL on its own Query API (not through auditbird's decode).
    sql = f"SELECT actor FROM audit_log WHERE workspace = '{workspace}' FORMAT JSON"  # noqa: S608 - test-made id
    answer = httpx.get(
        f"{tinybird_server.url}/v0/sql",
        params={"q": sql},
        headers={"Authorization": f"Bearer {tinybird_server.token}"},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    assert ADA not in answer.text and "$erasable:v1:" in answer.text
    with AuditLog(TinybirdStore(Tinybird(token=tinybird_server.token, host=tinybird_server.url))) as remote:
        assert remote.get(uid, workspace=workspace).actor.name == ADA  # this process holds the key file
        erase_subject(log, "user:42")
        assert remote.get(uid, workspace=workspace).actor.name == ERASED
    log.close()
