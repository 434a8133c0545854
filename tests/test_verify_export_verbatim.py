"""The fast check of an export (each event line hashed as it stands, the file read in blocks)
accepts an untouched ``checkpoint --export`` in the forms files take (CRLF, a byte order mark,
blank lines, no final newline), and never accepts what the exact check (every line parsed and
re-canonicalised) would not: for anything else it gives way, and the exact check's report or
error is what ``verify_export`` returns."""

from __future__ import annotations

import io
import json
import random
import tracemalloc
from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import BaseModel

from auditbird import AuditLog, Personal, action
from auditbird.actions import ActionRegistry
from auditbird.erasure import erase_subject
from auditbird.provable import export_verbatim, tree_root
from auditbird.provable.checkpoint import Checkpoint
from auditbird.provable.export import _verify_exact
from auditbird.provable.export_record import fold_chunk
from auditbird.provable.export_verbatim import BLOCK, verify_verbatim
from auditbird.provable.verify import MAX_LINE_BYTES, ExportError, verify_export, write_export
from auditbird.retention import apply_retention, set_policy
from auditbird.stores.merkle import fold, leaf_hash, root_of

DAY = 86_400_000


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Checkpoint, list[bytes]]:
    """2,100 events (past two chunks of the fold; text needing escapes, non-ASCII, a character
    beyond the BMP, a float, a nested key named like an export's own lines), 40 of them
    expired by retention, and the export as lines (the tree's records between them)."""
    log = AuditLog(f"sqlite:///{tmp_path_factory.mktemp('verbatim') / 'a.db'}", workspace="acme")
    odd = [
        {"note": 'quote " back \\ tab \t nl \n cr \r ctl \x01'},
        {"note": "é ☃ \U0001f600", "\U0001f600": 1},
        {"ratio": 0.1, "big": 10**15},
        {"tree_leaves": {"from": 0, "x": {"expired": True}}},
    ]
    old = 1_700_000_000_000 - 500 * DAY
    log.publish_many(
        [
            {
                "id": f"m:{i % 9}",
                "action": "monitor.down",
                "metadata": odd[i % 4] if i % 25 == 0 else {"i": i},
                **({"timestamp": old} if i % 50 == 7 or 1020 <= i < 1030 else {}),
            }
            for i in range(2100)
        ]
    )
    set_policy(log, "365d")
    assert apply_retention(log).removed == 52
    size, root = tree_root(log)
    out = io.BytesIO()
    assert write_export(log, size, out) == size
    log.close()
    return Checkpoint("o", size, root), out.getvalue().splitlines(keepends=True)


def _both(text: bytes, checkpoint: Checkpoint) -> tuple[Any, Any]:
    """The fast check's answer and the exact check's (its report or its error's message)."""
    fast = verify_verbatim(io.BytesIO(text), checkpoint, MAX_LINE_BYTES)
    try:
        exact: Any = _verify_exact(io.BytesIO(text), checkpoint)
    except ExportError as exc:
        exact = str(exc)
    return fast, exact


def _answer(text: bytes, checkpoint: Checkpoint) -> Any:
    try:
        return verify_export(io.BytesIO(text), checkpoint)
    except ExportError as exc:
        return str(exc)


def test_an_untouched_export_is_accepted_by_the_fast_check_as_by_the_exact_one(
    exported: tuple[Checkpoint, list[bytes]],
) -> None:
    checkpoint, lines = exported
    fast, exact = _both(b"".join(lines), checkpoint)
    assert fast is not None and fast == exact
    assert fast.ok and fast.events == checkpoint.size == 2102  # + retention.set, retention.apply
    assert fast.expired == (52, 8, 2058)
    nested = b'{"tree_leaves":{"from":0,"x":{"expired":true}}}'
    assert sum(line.startswith(b'{"action"') and nested in line for line in lines) == 21


@pytest.mark.parametrize(
    "reshape",
    [
        pytest.param(lambda t: t.replace(b"\n", b"\r\n"), id="crlf"),
        pytest.param(lambda t: t.rstrip(b"\n"), id="no-final-newline"),
        pytest.param(lambda t: t.replace(b"\n", b"\r\n").rstrip(b"\n"), id="crlf-ending-in-cr"),
        pytest.param(lambda t: b"\xef\xbb\xbf" + t, id="bom"),
        pytest.param(lambda t: b"\n\n" + t.replace(b"\n", b"\n\n", 30) + b"\n\n", id="blank-lines"),
        pytest.param(lambda t: b"\xef\xbb\xbf\n" + t, id="bom-on-a-blank-line"),
    ],
)
def test_line_ends_blank_lines_and_a_byte_order_mark_keep_the_fast_check(
    exported: tuple[Checkpoint, list[bytes]], reshape: Any
) -> None:
    checkpoint, lines = exported
    fast, exact = _both(reshape(b"".join(lines)), checkpoint)
    assert fast is not None and fast.ok
    assert fast == exact


def _respelled(line: bytes, **changes: Any) -> bytes:
    """The line's event with ``changes``, as json.dumps writes it (spaces, keys reversed)."""
    event = json.loads(line)
    event.update(changes)
    return json.dumps(dict(reversed(event.items()))).encode() + b"\n"


def test_a_line_spelled_otherwise_leaves_the_fast_check_and_verifies_as_the_same_event(
    exported: tuple[Checkpoint, list[bytes]],
) -> None:
    """The checkpoint signs each event's RFC 8785 bytes: another spelling of the line hashes to
    another leaf, so the fast check cannot accept it; the exact check re-canonicalises it and
    finds the signed event. A space is enough to leave the fast check."""
    checkpoint, lines = exported
    at = 1500
    assert lines[at].startswith(b'{"action"')
    spaced = lines[at].replace(b'":', b'": ', 1)
    for line in (spaced, _respelled(lines[at])):
        text = b"".join([*lines[:at], line, *lines[at + 1 :]])
        fast, exact = _both(text, checkpoint)
        assert fast is None
        assert exact.ok and verify_export(io.BytesIO(text), checkpoint) == exact


def test_a_line_spelled_otherwise_and_changed_is_named_at_its_position(
    exported: tuple[Checkpoint, list[bytes]],
) -> None:
    checkpoint, lines = exported
    at = 1500
    number = sum(1 for line in lines[: at + 1] if not line.startswith(b'{"tree_leaves"'))
    changed = _respelled(lines[at], version=2)
    report = _answer(b"".join([*lines[:at], changed, *lines[at + 1 :]]), checkpoint)
    assert (report.ok, report.number, report.problem) == (False, number, "changed")
    assert report.message() == (
        f"event #{number}: changed: event #{number} no longer hashes to the leaf the tree recorded for it"
    )


def test_a_whitespace_line_leaves_the_fast_check_and_is_skipped_by_the_exact_one(
    exported: tuple[Checkpoint, list[bytes]],
) -> None:
    checkpoint, lines = exported
    fast, exact = _both(b"".join([*lines[:10], b" \t\n", *lines[10:]]), checkpoint)
    assert fast is None and exact.ok


def test_a_byte_order_mark_past_the_first_line_is_not_json(exported: tuple[Checkpoint, list[bytes]]) -> None:
    checkpoint, lines = exported
    text = b"".join([lines[0], b"\xef\xbb\xbf" + lines[1], *lines[2:]])
    with pytest.raises(ExportError, match="^line 2 is not JSON"):
        verify_export(io.BytesIO(text), checkpoint)


@pytest.mark.parametrize("length", [10 * 1024 * 1024, 40 * 1024 * 1024])
def test_a_huge_line_is_refused_naming_it_in_bounded_memory(
    exported: tuple[Checkpoint, list[bytes]], tmp_path: Path, length: int
) -> None:
    checkpoint, lines = exported
    path = tmp_path / "huge.ndjson"
    with path.open("wb") as f:
        f.write(b"".join(lines[:5]))
        f.write(b'{"uid":"' + b"x" * length + b'"}\n')
        f.write(b"".join(lines[5:]))
    tracemalloc.start()
    try:
        with path.open("rb") as f, pytest.raises(ExportError) as raised:
            verify_export(f, checkpoint)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(raised.value) == f"line 6 is longer than {MAX_LINE_BYTES} bytes: not an event export"
    assert peak < 3 * MAX_LINE_BYTES + 2 * BLOCK  # never the whole line: its head, a block, copies


def test_a_stream_that_cannot_seek_gets_the_exact_check(exported: tuple[Checkpoint, list[bytes]]) -> None:
    class OneWay(io.BytesIO):  # a pipe: read once, never rewound
        def seekable(self) -> bool:
            return False

        def seek(self, *_: Any) -> int:
            raise io.UnsupportedOperation("seek")

    checkpoint, lines = exported
    for text in (b"".join(lines), b"".join([*lines[:9], *lines[10:]])):
        report = verify_export(OneWay(text), checkpoint)
        assert report == _verify_exact(io.BytesIO(text), checkpoint)
        assert report.ok is (text == b"".join(lines))


def _mutate(lines: list[bytes], rng: random.Random) -> bytes:
    """One random edit of the kind a file suffers: a byte changed, added or cut, a line removed,
    repeated, moved, re-spelled, given other line ends, a blank line, the records dropped, the
    tail cut off, an expired line edited."""
    lines = list(lines)
    at = rng.randrange(len(lines))
    kind = rng.randrange(11)
    if kind == 0:
        line = bytearray(lines[at])
        line[rng.randrange(len(line))] ^= 1 << rng.randrange(8)
        lines[at] = bytes(line)
    elif kind == 1:
        cut = rng.randrange(len(lines[at]))
        lines[at] = lines[at][:cut] + rng.choice([b" ", b"\r", b"\n", b"0", b"\x00", b"{"]) + lines[at][cut:]
    elif kind == 2:
        cut = rng.randrange(len(lines[at]))
        lines[at] = lines[at][:cut] + lines[at][cut + 1 :]
    elif kind == 3:
        del lines[at]
    elif kind == 4:
        lines.insert(rng.randrange(len(lines)), lines[at])
    elif kind == 5 and at + 1 < len(lines):
        lines[at], lines[at + 1] = lines[at + 1], lines[at]
    elif kind == 6 and lines[at].startswith(b'{"action"'):
        lines[at] = _respelled(lines[at], **rng.choice([{}, {"version": 2}, {"id": "x"}]))
    elif kind == 7:
        lines[at] = lines[at].rstrip(b"\n") + rng.choice([b"\r\n", b"\r", b"\n\n", b" \n", b""])
    elif kind == 8:
        lines = [line for line in lines if not line.startswith(b'{"tree_leaves"')]
    elif kind == 9:
        return b"".join(lines)[: rng.randrange(len(b"".join(lines)))]
    else:
        gone = [i for i, line in enumerate(lines) if line.startswith(b'{"expired"')]
        at = rng.choice(gone)
        value = json.loads(lines[at])
        value["index"] += rng.choice([-1, 1])
        lines[at] = json.dumps(value, separators=(",", ":")).encode() + b"\n"
    return b"".join(lines)


def test_whatever_the_edit_the_answer_is_the_exact_checks(exported: tuple[Checkpoint, list[bytes]]) -> None:
    """The fast check only ever accepts, and only what the exact check accepts: across random
    edits, verify_export answers exactly as the exact check alone does (report or error)."""
    checkpoint, lines = exported
    rng = random.Random(14)
    accepted = 0
    for _ in range(120):
        text = _mutate(lines, rng)
        fast, exact = _both(text, checkpoint)
        assert fast is None or fast == exact
        assert _answer(text, checkpoint) == exact
        accepted += fast is not None
    assert 0 < accepted < 120  # some edits (line ends, blank lines, no records) keep the fast path


@pytest.mark.parametrize("block", [61, 64, 250, 251, 997, 4096])
def test_where_the_blocks_end_does_not_matter(
    exported: tuple[Checkpoint, list[bytes]], monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    """Blocks shorter and longer than a line, ending mid-line, between CR and LF, at a BOM."""
    checkpoint, lines = exported
    monkeypatch.setattr(export_verbatim, "BLOCK", block)
    for text in (b"".join(lines), b"\xef\xbb\xbf" + b"".join(lines).replace(b"\n", b"\r\n")):
        fast = verify_verbatim(io.BytesIO(text), checkpoint, MAX_LINE_BYTES)
        assert fast is not None and fast.ok and fast.events == 2102


def test_the_cli_verifies_a_crlf_export_with_a_bom_and_names_a_respelled_change(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from auditbird.cli import app

    db, export, cp, key = (tmp_path / name for name in ("a.db", "e.ndjson", "cp.txt", "key.txt"))
    log = AuditLog(f"sqlite:///{db}")
    log.publish_many([{"id": f"m:{i}", "action": "a.b", "metadata": {"i": i}} for i in range(1500)])
    log.close()
    store = ["--store", f"sqlite:///{db}"]
    signed = CliRunner().invoke(app, [*store, "checkpoint", "--export", str(export)])
    assert signed.exit_code == 0, signed.output
    cp.write_text(signed.stdout)
    key.write_text(CliRunner().invoke(app, [*store, "checkpoint", "--public-key"]).stdout)
    lines = export.read_bytes().splitlines(keepends=True)
    offline = ["verify", "--export", str(export), "--checkpoint", str(cp), "--public-key", str(key)]
    export.write_bytes(b"\xef\xbb\xbf" + b"".join(lines).replace(b"\n", b"\r\n"))
    done = CliRunner().invoke(app, offline)
    assert (done.exit_code, done.stdout) == (0, "verified 1500 events up to checkpoint 1500\n")
    at = 1199 + 2  # event #1200 (index 1199), past the records before leaves #1 and #1025
    assert json.loads(lines[at])["metadata"] == {"i": 1199}
    export.write_bytes(b"".join([*lines[:at], _respelled(lines[at], version=3), *lines[at + 1 :]]))
    failed = CliRunner().invoke(app, offline)
    assert (failed.exit_code, failed.stdout) == (
        1,
        "FAILED event #1200: changed: event #1200 no longer hashes to the leaf the tree recorded for it\n",
    )


def test_an_export_of_sealed_and_erased_fields_keeps_the_fast_check(tmp_path: Path) -> None:
    """Leaves hash the stored ciphertext; the export writes it as stored, before and after the
    subject's key is destroyed, so both exports are checked line by line as they stand."""
    registry = ActionRegistry()

    @action("user.invited", registry=registry)
    class UserInvited(BaseModel):
        email: Annotated[str, Personal()]

    log = AuditLog(f"sqlite:///{tmp_path / 'a.db'}", workspace="acme", registry=registry)
    for n in range(3):
        log.publish_audit_log(
            {
                "id": "org:1",
                "action": "user.invited",
                "actor": {"id": str(40 + n), "name": f"Person {n}"},
                "metadata": {"email": f"p{n}@example.org"},
            }
        )
    exports = []
    for erase in (False, True):
        if erase:
            erase_subject(log, "user:41")
        size, root = tree_root(log)
        out = io.BytesIO()
        write_export(log, size, out)
        assert b"p1@example.org" not in out.getvalue() and b"$erasable:v1:" in out.getvalue()
        fast = verify_verbatim(io.BytesIO(out.getvalue()), Checkpoint("o", size, root), MAX_LINE_BYTES)
        assert fast is not None and fast.ok
        exports.append(out.getvalue().splitlines()[1:])  # the events, past the tree's record
    log.close()
    assert exports[1][:3] == exports[0]  # the erasure rewrote nothing; it is one event more


@pytest.mark.parametrize("count", [1, 2, 4, 64, 1024])
def test_the_inlined_fold_is_rfc_9162s(count: int) -> None:
    leaves = [leaf_hash(b"event %d" % i) for i in range(count)]
    assert fold_chunk(leaves) == fold(leaves) == root_of(leaves)


@pytest.fixture(scope="module")
def grown(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[int, Checkpoint], bytes]:
    """An export of 1,100 events and the checkpoints the log had at smaller sizes."""
    log = AuditLog(f"sqlite:///{tmp_path_factory.mktemp('grown') / 'a.db'}")
    log.publish_many([{"id": f"m:{i}", "action": "a.b", "metadata": {"i": i}} for i in range(1100)])
    checkpoints = {size: Checkpoint("o", size, tree_root(log, size)[1]) for size in SIZES}
    out = io.BytesIO()
    write_export(log, 1100, out)
    log.close()
    return checkpoints, out.getvalue()


SIZES = [1, 2, 1023, 1024, 1025, 1099, 1100]


@pytest.mark.parametrize("size", SIZES)
def test_an_export_checked_against_an_older_checkpoint_keeps_the_fast_check(
    grown: tuple[dict[int, Checkpoint], bytes], size: int
) -> None:
    """The lines past the checkpoint are read as JSON only, as the exact check reads them."""
    checkpoints, text = grown
    fast, exact = _both(text, checkpoints[size])
    assert fast is not None and fast == exact and fast.ok and fast.events == size
    junk = text + b"not json\n"
    assert _both(junk, checkpoints[size]) == (
        None,
        "line 1103 is not JSON (Expecting value: line 1 column 1 "
        "(char 0)): pass an NDJSON export (auditbird checkpoint --export)",
    )
