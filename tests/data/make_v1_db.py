"""Writes tests/data/openstatus-v1.db: OpenStatus events as auditbird wrote them while
``monitor.failed`` had only schema version 1. Committed with its output; never regenerate it
after ``monitor.failed`` v2 exists (the file must stay what old code wrote).

    .venv/bin/python tests/data/make_v1_db.py
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import auditbird.catalog.openstatus  # noqa: F401 - monitor.failed v1, as shipped
from auditbird import AuditLog

HERE = Path(__file__).parent
TARGET = HERE / "openstatus-v1.db"
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z

EVENTS = [
    ("monitor.failed", {"region": "gru", "statusCode": 504, "message": "timeout after 30s"}),
    ("monitor.failed", {"region": "ams", "message": "connection refused"}),
    ("monitor.recovered", {"region": "gru", "statusCode": 200, "latency": 180}),
    ("monitor.failed", {"region": "iad"}),
]


def main() -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{TARGET}{suffix}").unlink(missing_ok=True)
    with AuditLog(f"sqlite:///{TARGET}") as log:
        for i, (action, metadata) in enumerate(EVENTS):
            log.publish_audit_log(
                {
                    "id": "monitor:1",
                    "action": action,
                    "version": 1,
                    "uid": f"0190a000-0000-7000-8000-00000000000{i}",
                    "timestamp": T0 + i * 60_000,
                    "targets": [{"id": "1", "type": "monitor"}],
                    "metadata": metadata,
                }
            )
    conn = sqlite3.connect(TARGET)  # one self-contained file: no -wal beside it
    conn.execute("PRAGMA journal_mode = DELETE")
    conn.close()


if __name__ == "__main__":
    main()
