"""A size limit per event in the library (and so the CLI), named in the error, before encoding."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from auditbird import AuditLog, AuditValidationError, Limits
from auditbird.service.limits import ServiceLimits
from auditbird.validation import DEFAULT_LIMITS

from .live_server import EXE


def big_event(total_chars: int) -> dict[str, object]:
    """Metadata within every per-field limit (500-char strings, 1,000-item arrays), large in sum."""
    per_key = 400 * 1000
    keys = max(1, total_chars // per_key)
    return {
        "id": "m:1",
        "action": "blob.stored",
        "metadata": {f"k{i}": ["x" * 400] * 1000 for i in range(keys)},
    }


def test_the_default_matches_the_services_per_event_limit() -> None:
    assert DEFAULT_LIMITS.max_event_bytes == ServiceLimits().max_event_bytes


def test_an_event_over_the_limit_is_refused_naming_the_limit(tmp_path: Path) -> None:
    with AuditLog(f"sqlite:///{tmp_path / 'a.db'}") as log:
        with pytest.raises(AuditValidationError) as caught:
            log.publish_audit_log(big_event(2_000_000))
        assert "at most 1,048,576" in str(caught.value)
        assert "nothing was stored" in str(caught.value)
        assert log.list().events == []


def test_the_limit_is_configurable(tmp_path: Path) -> None:
    event = {"id": "m:1", "action": "a.b", "metadata": {"note": "x" * 400}}
    small = AuditLog(f"sqlite:///{tmp_path / 'a.db'}", limits=Limits(max_event_bytes=300))
    with small, pytest.raises(AuditValidationError, match="at most 300"):
        small.publish_audit_log(event)
    with AuditLog(f"sqlite:///{tmp_path / 'b.db'}", limits=Limits(max_event_bytes=5_000_000)) as large:
        assert large.publish_audit_log(big_event(2_000_000)).uid


def test_a_batch_names_the_index_of_the_event_over_the_limit(tmp_path: Path) -> None:
    with AuditLog(f"sqlite:///{tmp_path / 'a.db'}") as log:
        with pytest.raises(AuditValidationError) as caught:
            log.publish_many([{"id": "m:1", "action": "a.b"}, big_event(2_000_000)])
        assert [p.index for p in caught.value.problems] == [1]
        assert log.list().events == []


def test_an_event_just_under_the_limit_is_stored(tmp_path: Path) -> None:
    event = big_event(400_000)
    size = len(json.dumps(event))
    assert size < DEFAULT_LIMITS.max_event_bytes
    with AuditLog(f"sqlite:///{tmp_path / 'a.db'}") as log:
        assert log.publish_audit_log(event).uid


def test_the_cli_refuses_an_event_over_the_limit(tmp_path: Path) -> None:
    env = {**os.environ, "AUDITBIRD_URL": f"sqlite:///{tmp_path / 'cli.db'}"}
    result = subprocess.run(
        [EXE, "publish", "-"],
        input=json.dumps(big_event(2_000_000)) + "\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert "at most 1,048,576" in result.stderr
