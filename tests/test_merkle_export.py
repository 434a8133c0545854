"""The offline export: each line is the RFC 8785 bytes its leaf hashes, and ``verify_export``
accepts the same events however they are spelled, and nothing else, across its chunked fold."""

from __future__ import annotations

import base64
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


def _bare(lines: list[bytes]) -> list[bytes]:
    """The event lines alone, without the tree's record of the leaves between them."""
    return [line for line in lines if not line.startswith(b'{"tree_leaves"')]


def _check(log: AuditLog, lines: list[bytes], size: int) -> bool:
    _, root = tree_root(log, size)
    return verify_export(io.BytesIO(b"".join(lines)), Checkpoint("o", size, root)).ok


def test_each_exported_line_hashes_to_its_stored_leaf(exported: tuple[AuditLog, list[bytes]]) -> None:
    log, lines = exported
    leaves = log.store.tree_leaves("acme", 0, 3000)  # type: ignore[attr-defined]
    assert [hashlib.sha256(b"\x00" + line.rstrip(b"\n")).digest() for line in _bare(lines)] == [
        h for _, _, h in leaves
    ]
    records = [json.loads(line)["tree_leaves"] for line in lines if line not in _bare(lines)]
    assert [r["from"] for r in records] == [0, 1024, 2048]
    assert b"".join(base64.b64decode(r["hashes"]) for r in records) == b"".join(h for _, _, h in leaves)
    assert [lines.index(line) for line in lines if line not in _bare(lines)] == [0, 1025, 2050]


@pytest.mark.parametrize("size", [1, 2, 3, 1023, 1024, 1025, 2047, 2048, 2049, 2100])
def test_an_export_verifies_at_every_size_around_the_fold_chunks(
    exported: tuple[AuditLog, list[bytes]], size: int
) -> None:
    log, lines = exported
    assert _check(log, lines, size)
    assert _check(log, _bare(lines), size)  # the record is optional
    assert _check(log, _bare(lines)[:size] + [b"\n"], size)  # a blank line is no event


def test_the_same_events_spelled_otherwise_still_verify(exported: tuple[AuditLog, list[bytes]]) -> None:
    log, lines = exported
    lines = _bare(lines)
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
    lines = _bare(lines)  # without the record: it fails, but where is unknown
    event = json.loads(lines[where])
    event["timestamp"] += 1
    changed = lines[:where] + [json.dumps(event).encode() + b"\n"] + lines[where + 1 :]
    assert not _check(log, changed, 2100)
    assert not _check(log, lines[:where] + lines[where + 1 :] + [lines[0]], 2100)  # removed, padded
    assert not _check(log, lines[:where] + [lines[0]] + lines[where:], 2100)  # inserted
    if where < 2099:
        swapped = lines[:where] + [lines[where + 1], lines[where]] + lines[where + 2 :]
        assert not _check(log, swapped, 2100)


def _named(log: AuditLog, lines: list[bytes]) -> tuple[int | None, str]:
    _, root = tree_root(log, 2100)
    report = verify_export(io.BytesIO(b"".join(lines)), Checkpoint("o", 2100, root))
    assert not report.ok
    return report.number, report.problem


@pytest.mark.parametrize("where", [0, 50, 1022, 1023, 1024, 1500, 2047, 2048, 2098, 2099])
def test_with_the_record_the_first_bad_event_is_named(
    exported: tuple[AuditLog, list[bytes]], where: int
) -> None:
    log, lines = exported
    at = [i for i, line in enumerate(lines) if line in set(_bare(lines))][where]  # past the records
    event = json.loads(lines[at])
    event["timestamp"] += 1
    other = json.dumps(event).encode() + b"\n"
    n = where + 1
    assert _named(log, [*lines[:at], other, *lines[at + 1 :]]) == (n, "changed")
    assert _named(log, [*lines[:at], *lines[at + 1 :]]) == (n, "missing")
    assert _named(log, [*lines[:at], other, *lines[at:]]) == (n, "inserted")
    if where < 2099:
        follows = at + 1 if not lines[at + 1].startswith(b'{"tree_leaves"') else at + 2
        swapped = [*lines[:at], lines[follows], *lines[at + 1 : follows], lines[at], *lines[follows + 1 :]]
        assert _named(log, swapped) == (n, "reordered")


def test_a_record_that_does_not_fold_to_the_root_names_nothing(
    exported: tuple[AuditLog, list[bytes]],
) -> None:
    log, lines = exported
    record = json.loads(lines[1025])
    blob = bytearray(base64.b64decode(record["tree_leaves"]["hashes"]))
    blob[40] ^= 1  # the record of leaf #1026, altered along with the event
    record["tree_leaves"]["hashes"] = base64.b64encode(bytes(blob)).decode()
    altered = [*lines[:1025], json.dumps(record).encode() + b"\n", *lines[1026:]]
    assert _check(log, altered, 2100)  # the events are intact: a bad record is not their fault
    event = json.loads(altered[1027])
    event["timestamp"] += 1
    both = [*altered[:1027], json.dumps(event).encode() + b"\n", *altered[1028:]]
    assert _named(log, both) == (None, "changed")


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
        (b'{"tree_leaves":{"from":0}}\n', "line 1 is a malformed record of the tree's leaves"),
        (b'{"tree_leaves":{"from":0,"hashes":"AA=="}}\n', "not the base64 of up to 1024"),
        (b'{"tree_leaves":{"from":3,"hashes":"' + b"A" * 43 + b'="}}\n', "leaves from #4, not #1"),
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
    lines = _bare(export.read_bytes().splitlines(keepends=True))
    assert len(lines) == 3
    assert all(
        line.startswith(b'{"action":"a.b","actor":') and b'"metadata":{"a":"\xc3\xa9","z":1}' in line
        for line in lines
    )
