"""The offline export: each line is the RFC 8785 bytes its leaf hashes, and ``verify_export``
accepts the same events however they are spelled, and nothing else, across its chunked fold."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest

from auditbird import AuditLog
from auditbird.provable import tree_root
from auditbird.provable.checkpoint import Checkpoint
from auditbird.provable.verify import MAX_LINE_BYTES, ExportError, verify_export, write_export


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[AuditLog, list[bytes]]:
    """A log of 2,100 events (past two chunks of the fold), some with text that needs escapes,
    non-ASCII, a character beyond the BMP and a float, and its export as lines."""
    db = tmp_path_factory.mktemp("export") / "a.db"
    log = AuditLog(f"sqlite:///{db}", workspace="acme")
    odd = [
        {"note": 'quote " back \\ tab \t nl \n ctl \x01'},
        {"note": "é ☃ \U0001f600", "\U0001f600": 1, "\ufb33": 2},
        {"ratio": 0.1, "big": 10**15},
    ]
    for start in range(0, 2100, 700):
        log.publish_many(
            [
                {
                    "id": f"m:{i % 9}",
                    "action": "monitor.down",
                    "metadata": odd[i % 3] if i % 50 == 0 else {"i": i},
                }
                for i in range(start, start + 700)
            ]
        )
    out = io.BytesIO()
    assert write_export(log, 2100, out) == 2100
    return log, out.getvalue().splitlines(keepends=True)


def _check(log: AuditLog, lines: list[bytes], size: int) -> bool:
    _, root = tree_root(log, size)
    return verify_export(io.BytesIO(b"".join(lines)), Checkpoint("o", size, root)).ok


def test_each_exported_line_hashes_to_its_stored_leaf(exported: tuple[AuditLog, list[bytes]]) -> None:
    log, lines = exported
    leaves = log.store.tree_leaves("acme", 0, 3000)  # type: ignore[attr-defined]
    assert [hashlib.sha256(b"\x00" + line.rstrip(b"\n")).digest() for line in lines] == [
        h for _, _, h in leaves
    ]


@pytest.mark.parametrize("size", [1, 2, 3, 1023, 1024, 1025, 2047, 2048, 2049, 2100])
def test_an_export_verifies_at_every_size_around_the_fold_chunks(
    exported: tuple[AuditLog, list[bytes]], size: int
) -> None:
    log, lines = exported
    assert _check(log, lines, size)
    assert _check(log, lines[:size] + [b"\n"], size)  # a blank line is no event


def test_the_same_events_spelled_otherwise_still_verify(exported: tuple[AuditLog, list[bytes]]) -> None:
    log, lines = exported
    respelled = [
        (
            json.dumps(dict(reversed(json.loads(line).items())), indent=None, ensure_ascii=True) + "\r\n"
        ).encode()
        for line in lines
    ]
    assert respelled != lines
    assert _check(log, respelled, 2100)


@pytest.mark.parametrize("where", [0, 50, 1023, 1024, 1500, 2099])
def test_an_altered_removed_inserted_or_moved_event_fails(
    exported: tuple[AuditLog, list[bytes]], where: int
) -> None:
    log, lines = exported
    event = json.loads(lines[where])
    event["timestamp"] += 1
    changed = lines[:where] + [json.dumps(event).encode() + b"\n"] + lines[where + 1 :]
    assert not _check(log, changed, 2100)
    assert not _check(log, lines[:where] + lines[where + 1 :] + [lines[0]], 2100)  # removed, padded
    assert not _check(log, lines[:where] + [lines[0]] + lines[where:], 2100)  # inserted
    if where < 2099:
        swapped = lines[:where] + [lines[where + 1], lines[where]] + lines[where + 2 :]
        assert not _check(log, swapped, 2100)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (b"uid,workspace\n", "line 1 is not JSON"),
        (b'{"uid":"a"}\n[1,2]\n', "line 2 is not an exported event"),
        (b'{"uid":"a"}\n{"id":"x"}\n', "line 2 is not an exported event"),
        (b'{"uid":"\xff"}\n', "line 1 is not JSON"),
        (b'{"uid":"a","n":1.5,}\n', "line 1 is not JSON"),
        (b'{"uid":"' + b"x" * MAX_LINE_BYTES + b'"}\n', "line 1 is longer than"),
        (b'{"uid":"a"}\n', "the export holds 1 events; the checkpoint covers 5"),
    ],
)
def test_input_that_is_not_an_export_is_refused_naming_the_line(text: bytes, says: str) -> None:
    with pytest.raises(ExportError, match=says):
        verify_export(io.BytesIO(text), Checkpoint("o", 5, b"\0" * 32))


def test_the_cli_export_is_canonical_lines(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from auditbird.cli import app

    db = tmp_path / "a.db"
    log = AuditLog(f"sqlite:///{db}")
    log.publish_many([{"id": "m:1", "action": "a.b", "metadata": {"z": 1, "a": "é"}}] * 3)
    log.close()
    export = tmp_path / "e.ndjson"
    done = CliRunner().invoke(app, ["--store", f"sqlite:///{db}", "checkpoint", "--export", str(export)])
    assert done.exit_code == 0, done.output
    lines = export.read_bytes().splitlines()
    assert len(lines) == 3
    assert all(
        line.startswith(b'{"action":"a.b","actor":') and b'"metadata":{"a":"\xc3\xa9","z":1}' in line
        for line in lines
    )
