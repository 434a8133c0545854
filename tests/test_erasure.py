"""Erasure by crypto-shredding on a SQLite file (docs/erasure.md): personal fields are stored
sealed, read back in the clear while the subject's key exists, and as ``[erased]`` everywhere
once it is destroyed, while the Merkle tree still verifies. Raw bytes of every file are grepped."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from pathlib import Path
from typing import Annotated

import pytest
from pydantic import BaseModel, Field

from auditbird import (
    ActionRegistry,
    AuditLog,
    AuditValidationError,
    Event,
    NotFound,
    Personal,
    Projection,
    action,
    on,
)
from auditbird.erasure import ERASED, ERASED_ACTION, UNREADABLE, erase_subject, personal_fields
from auditbird.export import csv_lines, ndjson_lines
from auditbird.provable.verify import verify_store

ADA, ADA_MAIL, BOB, BOB_MAIL = "Ada Lovelace", "ada@example.org", "Bob Babbage", "bob@example.org"
ADA_INVITEE = "Grace Hopper"


def _registry() -> ActionRegistry:
    reg = ActionRegistry()

    @action("user.invited", registry=reg)
    class UserInvited(BaseModel):
        email: Annotated[str, Personal()]
        invitee: Annotated[str, Personal(subject="invitee_id")] | None = None
        invitee_id: str | None = None
        plan: str = "free"

    return reg


def _publish(log: AuditLog, actor_id: str, name: str, email: str, **extra: str) -> str:
    event = log.publish_audit_log(
        {
            "id": "org:1",
            "action": "user.invited",
            "actor": {"id": actor_id, "name": name},
            "metadata": {"email": email, **extra},
        }
    )
    return event.uid


def _raw(path: Path) -> bytes:
    """Every byte of the database and whatever journal/WAL it has beside it."""
    out = b""
    for suffix in ("", "-wal", "-journal", "-shm"):
        p = Path(str(path) + suffix)
        if p.exists():
            out += p.read_bytes()
    return out


@pytest.fixture
def log(tmp_path: Path) -> AuditLog:
    return AuditLog(f"sqlite:///{tmp_path / 'audit.db'}", workspace="acme", registry=_registry())


def test_personal_fields_are_stored_sealed_and_read_in_the_clear(log: AuditLog, tmp_path: Path) -> None:
    uid = _publish(log, "42", ADA, ADA_MAIL, invitee=ADA_INVITEE, invitee_id="7")
    event = log.get(uid)
    assert (event.actor.name, event.metadata.email, event.metadata.invitee) == (ADA, ADA_MAIL, ADA_INVITEE)
    assert event.schema_error is None
    raw = _raw(tmp_path / "audit.db")
    for secret in (ADA, ADA_MAIL, ADA_INVITEE):
        assert secret.encode() not in raw  # never written: sealed before the append
    assert raw.count(b"$erasable:v1:") >= 3  # actor name, email, invitee
    keys = tmp_path / "audit.subjects.db"
    assert stat.S_IMODE(os.stat(keys).st_mode) == 0o600
    conn = sqlite3.connect(keys)
    subjects = sorted(r[0] for r in conn.execute("SELECT subject FROM subject_keys"))
    conn.close()
    assert subjects == ["user:42", "user:7"]


def test_erase_destroys_the_key_and_every_copy_reads_erased(log: AuditLog, tmp_path: Path) -> None:
    ada = _publish(log, "42", ADA, ADA_MAIL, invitee=ADA_INVITEE, invitee_id="7")
    bob = _publish(log, "43", BOB, BOB_MAIL)
    conn = sqlite3.connect(tmp_path / "audit.subjects.db")
    ada_key = conn.execute("SELECT key FROM subject_keys WHERE subject = 'user:42'").fetchone()[0]
    conn.close()

    erased = erase_subject(log, "user:42")
    assert (erased.action, erased.id, erased.workspace) == (ERASED_ACTION, "user:42", "acme")
    assert erased.to_dict()["metadata"] == {"subject": "user:42", "keys_destroyed": 1}

    event = log.get(ada)
    assert (event.actor.id, event.actor.name, event.metadata.email) == ("42", ERASED, ERASED)
    assert event.metadata.invitee == ADA_INVITEE  # user:7's data: another subject, still readable
    assert event.schema_error is None
    other = log.get(bob)
    assert (other.actor.name, other.metadata.email) == (BOB, BOB_MAIL)

    events = list(log.iter_events())
    ndjson = "".join(ndjson_lines(events))
    csv = "".join(csv_lines(events))
    history = log.get_audit_log(event_id="org:1")
    for text in (ndjson, csv, json.dumps([e.to_dict() for e in history])):
        assert ADA not in text and ADA_MAIL not in text
        assert BOB in text and ERASED in text
    recorded = log.get_audit_log(event_id="user:42")
    assert [e.action for e in recorded] == [ERASED_ACTION]
    assert ADA not in json.dumps(recorded[0].to_dict())

    for path in (tmp_path / "audit.db", tmp_path / "audit.subjects.db"):
        raw = _raw(path)
        assert ADA.encode() not in raw and ADA_MAIL.encode() not in raw
    assert ada_key not in _raw(tmp_path / "audit.subjects.db")  # zeroed, not just unlinked

    report = verify_store(log)
    assert report.ok, report.message()
    assert report.events == 3


def test_an_unknown_or_already_erased_subject_changes_nothing(log: AuditLog, tmp_path: Path) -> None:
    _publish(log, "42", ADA, ADA_MAIL)
    before = (tmp_path / "audit.db").read_bytes(), (tmp_path / "audit.subjects.db").read_bytes()
    with pytest.raises(NotFound, match="user:99"):
        erase_subject(log, "user:99")
    with pytest.raises(NotFound, match="workspace 'other'"):
        erase_subject(log, "user:42", workspace="other")  # the same id in another workspace
    with pytest.raises(AuditValidationError, match="kind:id"):
        erase_subject(log, "42")
    assert ((tmp_path / "audit.db").read_bytes(), (tmp_path / "audit.subjects.db").read_bytes()) == before
    assert log.list().events[0].actor.name == ADA
    erase_subject(log, "user:42")
    with pytest.raises(NotFound):
        erase_subject(log, "user:42")
    assert [e.action for e in log.list().events].count(ERASED_ACTION) == 1


def test_a_tampered_or_moved_ciphertext_fails_authentication_without_failing_the_read(
    log: AuditLog, tmp_path: Path
) -> None:
    first = _publish(log, "42", ADA, ADA_MAIL)
    second = _publish(log, "42", ADA, "other@example.org")
    conn = sqlite3.connect(tmp_path / "audit.db")
    (actor,) = conn.execute("SELECT actor FROM audit_log WHERE uid = ?", (first,)).fetchone()
    sealed = json.loads(actor)["name"]
    flipped = sealed[:-3] + ("A" if sealed[-3] != "A" else "B") + sealed[-2:]
    (meta,) = conn.execute("SELECT metadata FROM audit_log WHERE uid = ?", (first,)).fetchone()
    with conn:
        conn.execute("UPDATE audit_log SET actor = ? WHERE uid = ?", (actor.replace(sealed, flipped), first))
        # The first event's sealed email copied into the second: same key, other event.
        conn.execute("UPDATE audit_log SET metadata = ? WHERE uid = ?", (meta, second))
    conn.close()

    changed, moved = log.get(first), log.get(second)
    assert changed.actor.name == UNREADABLE and changed.metadata.email == ADA_MAIL
    assert changed.schema_error is not None and "actor.name" in changed.schema_error
    assert "fails authentication" in changed.schema_error
    assert moved.metadata.email == UNREADABLE and moved.actor.name == ADA
    assert moved.schema_error is not None and "metadata.email" in moved.schema_error
    assert len(log.list().events) == 2  # the page still reads
    assert "[unreadable]" in "".join(csv_lines(log.iter_events()))


def test_personal_data_needs_a_subject_and_a_string_field(log: AuditLog) -> None:
    with pytest.raises(AuditValidationError) as info:
        log.publish_audit_log(
            {"id": "org:1", "action": "user.invited", "actor": {"name": ADA}, "metadata": {"email": ADA_MAIL}}
        )
    assert "actor.id" in str(info.value)
    with pytest.raises(AuditValidationError, match="invitee_id"):
        _publish(log, "42", ADA, ADA_MAIL, invitee=ADA_INVITEE)  # whose? no invitee_id
    assert log.list().events == []  # nothing of a rejected event is stored

    class Bad(BaseModel):
        age: Annotated[int, Personal()]

    with pytest.raises(TypeError, match="not a str field"):
        personal_fields(Bad)
    with pytest.raises(ValueError, match="subject"):
        Personal(subject="")


def test_a_system_actor_and_machine_actors_are_not_sealed(log: AuditLog, tmp_path: Path) -> None:
    log.publish_audit_log({"id": "m:1", "action": "monitor.down"})
    log.publish_audit_log(
        {"id": "m:1", "action": "monitor.down", "actor": {"id": "k1", "name": "ci", "type": "api_key"}}
    )
    raw = _raw(tmp_path / "audit.db")
    assert b'"name":"system"' in raw and b'"name":"ci"' in raw
    assert not (tmp_path / "audit.subjects.db").exists()  # no person, no key file


def test_another_process_erasing_is_seen_by_a_log_already_holding_the_key(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    reader, writer = AuditLog(url, registry=_registry()), AuditLog(url, registry=_registry())
    uid = _publish(writer, "42", ADA, ADA_MAIL)
    assert reader.get(uid).actor.name == ADA  # the key is cached now
    from auditbird.erasure import SubjectKeys

    other = SubjectKeys(tmp_path / "audit.subjects.db")  # another connection, as another process has
    assert other.destroy("", "user:42") == 1
    other.close()
    assert reader.get(uid).actor.name == ERASED
    again = _publish(writer, "42", ADA, ADA_MAIL)  # a new key: erasure covers what came before
    assert reader.get(again).actor.name == ADA and reader.get(uid).actor.name == ERASED


def test_projections_and_history_read_the_erased_marker(log: AuditLog) -> None:
    uid = _publish(log, "42", ADA, ADA_MAIL)
    erase_subject(log, "user:42")
    state = log.project("org:1", Emails, snapshots=False)
    assert state.emails == [ERASED]
    assert [e.metadata.email for e in log.history("org:1")] == [ERASED]
    assert log.get(uid).actor.name == ERASED


class Emails(Projection):
    emails: list[str] = Field(default_factory=list)

    @on("user.invited")
    def _invited(self, event: Event) -> None:
        self.emails.append(event.metadata.email)


def test_emit_in_the_callers_transaction_seals_too(tmp_path: Path) -> None:
    from auditbird import emit

    reg = _registry()
    with sqlite3.connect(tmp_path / "app.db") as conn:
        conn.execute("BEGIN")
        emit(
            conn,
            {
                "id": "org:1",
                "action": "user.invited",
                "actor": {"id": "42", "name": ADA},
                "metadata": {"email": ADA_MAIL},
            },
            registry=reg,
        )
    conn.close()
    assert ADA.encode() not in _raw(tmp_path / "app.db")
    log = AuditLog(f"sqlite:///{tmp_path / 'app.db'}", registry=reg)
    (event,) = log.list().events
    assert (event.actor.name, event.metadata.email) == (ADA, ADA_MAIL)
    erase_subject(log, "user:42")
    assert log.get(event.uid).metadata.email == ERASED


def test_the_relay_ships_ciphertext_so_erasure_reaches_the_copy(tmp_path: Path) -> None:
    from auditbird.relay import Relay

    reg = _registry()
    source = AuditLog(f"sqlite:///{tmp_path / 'app.db'}", registry=reg)
    uid = _publish(source, "42", ADA, ADA_MAIL)
    relay = Relay(f"sqlite:///{tmp_path / 'app.db'}", f"sqlite:///{tmp_path / 'copy.db'}")
    relay.run()
    relay.close()
    assert ADA.encode() not in _raw(tmp_path / "copy.db")
    assert b"$erasable:v1:" in _raw(tmp_path / "copy.db")
    copy = AuditLog(f"sqlite:///{tmp_path / 'copy.db'}", registry=reg)
    assert copy.get(uid).metadata.email == ADA_MAIL  # this process holds app.db's key file
    erase_subject(source, "user:42")
    assert (copy.get(uid).actor.name, copy.get(uid).metadata.email) == (ERASED, ERASED)


def test_a_failed_record_after_the_key_is_gone_says_so(tmp_path: Path) -> None:
    from auditbird import AuditError

    reg = _registry()

    @action(ERASED_ACTION, registry=reg)
    class Other(BaseModel):  # an application's own schema for the action, which ours does not fit
        reason: str

    log = AuditLog(f"sqlite:///{tmp_path / 'audit.db'}", registry=reg)
    uid = _publish(log, "42", ADA, ADA_MAIL)
    with pytest.raises(AuditError, match="key was destroyed .* recording the erasure failed"):
        erase_subject(log, "user:42")
    assert log.get(uid).actor.name == ERASED  # erased all the same


def test_an_actor_id_spelling_the_name_key_is_left_intact(log: AuditLog, tmp_path: Path) -> None:
    tricky = '"name":"Ada Lovelace"'
    for name in (ADA, 'we"ird\\ \u2028 \x01 😀'):
        uid = log.publish_audit_log(
            {"id": "m:1", "action": "monitor.down", "actor": {"id": tricky, "name": name}}
        ).uid
        assert (log.get(uid).actor.id, log.get(uid).actor.name) == (tricky, name)
    conn = sqlite3.connect(tmp_path / "audit.db")
    stored = [json.loads(a) for (a,) in conn.execute("SELECT actor FROM audit_log")]
    conn.close()
    assert [a["id"] for a in stored] == [tricky, tricky]  # ids are not personal: stored as given
    assert all(a["name"].startswith("$erasable:v1:") for a in stored)
