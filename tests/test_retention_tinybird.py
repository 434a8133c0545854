"""Retention on Tinybird: the opt-in TTL datafile is what both Tinybird CLIs accept, and
ClickHouse (chDB) really expires old rows with it while keeping young ones."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from auditbird.retention import RetentionError
from auditbird.retention_tinybird import datasource_with_ttl, ttl_expression
from auditbird.tinybird.datafiles import SHIPPED, load_dir, shipped_files

Parse = Callable[..., list[dict[str, Any]]]


def _write(dest: Path, period: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "auditbird", "retention", "datafiles", str(dest), period],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_shipped_datasource_keeps_events_forever() -> None:
    """Opt-in: a TTL deletes evidence on Tinybird's schedule, so only the user may choose one."""
    datasources, _ = load_dir(SHIPPED)
    assert datasources["audit_log"].ttl is None


def test_ttl_expression_follows_the_period() -> None:
    assert ttl_expression("365d") == "toDateTime(intDiv(timestamp, 1000)) + toIntervalDay(365)"
    assert ttl_expression("2w").endswith("toIntervalDay(14)")
    assert ttl_expression("36h").endswith("toIntervalHour(36)")
    text = datasource_with_ttl(
        datasource_with_ttl((SHIPPED / "datasources/audit_log.datasource").read_text(), "1y"), "2y"
    )
    assert text.count("ENGINE_TTL") == 1 and "toIntervalDay(730)" in text


def test_ttl_datafiles_parse_clean_under_both_tinybird_clis(
    tmp_path: Path, tinybird_parse: Parse, tb_cli_python: Path, tb_classic_python: Path
) -> None:
    dest = tmp_path / "tb"
    done = _write(dest, "365d")
    assert done.returncode == 0, done.stderr
    files = [dest / rel for rel in shipped_files()]
    assert done.stdout.split() == [str(p) for p in files]
    for python in (tb_cli_python, tb_classic_python):
        for result in tinybird_parse(python, *files):
            assert result["ok"], f"{python} refuses {result['path']}: {result['error']}"
            assert result["warnings"] == [], result["warnings"]
    datasources, _ = load_dir(dest)
    assert datasources["audit_log"].ttl == ttl_expression("365d")


def test_a_bad_period_writes_nothing_and_exits_2(tmp_path: Path) -> None:
    done = _write(tmp_path / "tb", "forever")
    assert done.returncode == 2 and "retention period 'forever'" in done.stderr
    assert not (tmp_path / "tb").exists()
    with pytest.raises(RetentionError):
        ttl_expression("0d")


def test_clickhouse_expires_old_rows_with_the_ttl(tmp_path: Path) -> None:
    chdb_session = pytest.importorskip("chdb.session")
    _write(tmp_path / "tb", "365d")
    ds = load_dir(tmp_path / "tb")[0]["audit_log"]
    session = chdb_session.Session(str(tmp_path / "ch"))
    try:
        session.query(ds.create_table_sql("audit_log"))
        # Timestamps from ClickHouse's own clock: one 400 days old, one an hour old.
        session.query(
            "INSERT INTO audit_log (uid, workspace, id, action, actor, timestamp) "
            "SELECT if(number = 0, 'old', 'young'), 'w', 'm:1', 'monitor.down', '{}', "
            "toUnixTimestamp64Milli(now64(3)) - if(number = 0, 400 * 86400000, 3600000) FROM numbers(2)"
        )
        session.query("OPTIMIZE TABLE audit_log FINAL")
        rows = session.query("SELECT uid FROM audit_log ORDER BY uid", "JSONEachRow").bytes()
        assert [json.loads(line)["uid"] for line in rows.decode().splitlines()] == ["young"]
    finally:
        session.close()
