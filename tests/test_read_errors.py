"""A read's bad parameter is an error about the read: it never says "nothing was stored"."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from auditbird import AuditLog, AuditValidationError

from .live_server import serving


def test_a_bad_since_in_the_library_does_not_mention_storing(tmp_path: Path) -> None:
    with AuditLog(f"sqlite:///{tmp_path / 'a.db'}") as log, pytest.raises(AuditValidationError) as caught:
        log.list(since="yesterday")
    assert "since" in str(caught.value)
    assert "stored" not in str(caught.value)


def test_a_bad_write_still_says_nothing_was_stored(tmp_path: Path) -> None:
    log = AuditLog(f"sqlite:///{tmp_path / 'a.db'}")
    with log, pytest.raises(AuditValidationError, match="nothing was stored"):
        log.publish_audit_log({"id": "", "action": "nodot"})


def test_a_bad_since_on_the_service_does_not_mention_storing(tmp_path: Path) -> None:
    from auditbird.service import KeyStore

    keys = KeyStore(tmp_path / "audit.keys.db")
    key = keys.create(workspace="acme", scope="read").secret
    keys.close()
    with serving("--store", "sqlite:///audit.db", cwd=tmp_path) as base:
        answer = httpx.get(
            f"{base}/v1/events", params={"since": "yesterday"}, headers={"Authorization": f"Bearer {key}"}
        )
    assert answer.status_code == 422
    assert "stored" not in answer.text
    assert "since" in answer.text
