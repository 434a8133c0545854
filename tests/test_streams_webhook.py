"""Webhook log streams: signed per Standard Webhooks, in order, retried, dead-lettered, replayed."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from auditbird import AuditLog
from auditbird.streams import (
    Backoff,
    StreamFilter,
    StreamRegistry,
    StreamRunner,
    new_secret,
    replay_dead_letters,
)

from .streams_support import WebhookReceiver, first_occurrences, wait_for

FAST = Backoff(0.001, 0.02)


@pytest.fixture
def store(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'audit.db'}"


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver().start()
    yield r
    r.stop()


def publish(
    store: str, n: int, workspace: str = "acme", action: str = "monitor.down", actor: str = "u1"
) -> list[str]:
    with AuditLog(store, workspace=workspace) as log:
        events = log.publish_many(
            [
                {"id": f"monitor:{i % 3}", "action": action, "actor": {"id": actor, "name": actor}}
                for i in range(n)
            ]
        )
    return [e.uid for e in events]


def add_webhook(store: str, url: str, secret: str, **kw: object) -> None:
    batched = bool(kw.pop("batched", False))
    with StreamRegistry.for_store(store) as reg:
        reg.add(
            "hook",
            workspace="acme",
            kind="webhook",
            options={"url": url, "secret": secret, "batched": batched},
            **kw,
        )  # type: ignore[arg-type]


def run_once(store: str, **kw: object) -> int:
    runner = StreamRunner(store, backoff=FAST, batch=7, **kw)  # type: ignore[arg-type]
    try:
        total = runner.run()
        assert not runner.errors, runner.errors
        return total
    finally:
        runner.close()


def test_webhook_delivers_every_event_of_its_workspace_in_order_signed(
    store: str, receiver: WebhookReceiver
) -> None:
    secret = new_secret()
    add_webhook(store, receiver.url, secret)
    uids = publish(store, 20)
    publish(store, 5, workspace="other")  # another tenant's events never reach this stream
    uids += publish(store, 3)
    run_once(store)
    assert receiver.uids() == uids
    for headers, body in receiver.requests:
        payload = Webhook(secret).verify(body, headers)
        assert payload["type"] == "audit_log.event"
        assert headers["webhook-id"] == payload["data"]["uid"]
        assert payload["data"]["workspace"] == "acme"
    # A second run delivers nothing again: the position is durable.
    run_once(store)
    assert len(receiver.requests) == len(uids)


def test_webhook_bad_signature_is_refused_by_the_verifier(store: str, receiver: WebhookReceiver) -> None:
    secret = new_secret()
    add_webhook(store, receiver.url, secret)
    publish(store, 1)
    run_once(store)
    headers, body = receiver.requests[0]
    tampered = body.replace(b"monitor.down", b"monitor.up_")
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(tampered, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)
    forged = dict(headers, **{"webhook-signature": "v1," + "A" * 44})
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, forged)


def test_batched_webhook_sends_one_signed_request_per_batch(store: str, receiver: WebhookReceiver) -> None:
    secret = new_secret()
    add_webhook(store, receiver.url, secret, batched=True)
    uids = publish(store, 20)
    run_once(store)  # batches of 7
    assert [len(json.loads(b)["data"]) for _, b in receiver.requests] == [7, 7, 6]
    assert receiver.uids() == uids
    for headers, body in receiver.requests:
        assert Webhook(secret).verify(body, headers)["type"] == "audit_log.batch"


def test_rotated_secret_keeps_the_old_one_valid_for_the_grace_period(
    store: str, receiver: WebhookReceiver
) -> None:
    old = new_secret()
    add_webhook(store, receiver.url, old)
    with StreamRegistry.for_store(store) as reg:
        fresh = reg.rotate_secret("acme", "hook", grace_ms=3_600_000)
    publish(store, 1)
    run_once(store)
    headers, body = receiver.requests[-1]
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(fresh).verify(body, headers)
    Webhook(old).verify(body, headers)  # receivers not yet switched still accept it
    # A rotation without grace: only the newest secret signs.
    with StreamRegistry.for_store(store) as reg:
        newest = reg.rotate_secret("acme", "hook", grace_ms=0)
    publish(store, 1)
    run_once(store)
    headers, body = receiver.requests[-1]
    Webhook(newest).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(fresh).verify(body, headers)


def test_receiver_answering_4xx_forever_gets_dead_letters_and_nothing_is_skipped(
    store: str, receiver: WebhookReceiver
) -> None:
    receiver.status = 400
    add_webhook(store, receiver.url + "?token=hunter2", new_secret(), max_attempts=2)
    uids = publish(store, 10)
    run_once(store)
    with StreamRegistry.for_store(store) as reg:
        stream = reg.get("acme", "hook")
        letters = reg.dead_letters(stream.id)
        assert [letter.row.uid for letter in letters] == uids
        assert all("answered 400" in letter.error and letter.attempts == 2 for letter in letters)
        assert stream.dead_letters == 10 and "answered 400" in (stream.last_error or "")
        assert "hunter2" not in (stream.last_error or "") + str(stream.public_options())
        # The receiver is fixed: an admin replays; everything arrives, in order, and is forgotten.
        receiver.status = 200
        replayed, error = replay_dead_letters(reg, stream)
        assert (replayed, error) == (10, None)
        assert receiver.uids() == uids
        assert reg.dead_letters(stream.id) == []


def test_one_refused_event_is_dead_lettered_alone_and_the_others_arrive_once(
    store: str, receiver: WebhookReceiver
) -> None:
    receiver.refuse = lambda body: b"monitor.poison" in body
    add_webhook(store, receiver.url, new_secret(), max_attempts=3)
    before = publish(store, 3)
    poison = publish(store, 1, action="monitor.poison")
    after = publish(store, 5)
    run_once(store)  # batches of 7: the poison event is the 4th of the first
    assert receiver.uids() == before + after  # each exactly once, in order
    with StreamRegistry.for_store(store) as reg:
        stream = reg.get("acme", "hook")
        assert [letter.row.uid for letter in reg.dead_letters(stream.id)] == poison
        assert stream.delivered == 8


def test_receiver_down_for_a_while_gets_everything_when_it_comes_back(store: str, tmp_path: Path) -> None:
    receiver = WebhookReceiver()  # not started: connection refused
    add_webhook(store, receiver.url, new_secret(), max_attempts=1)
    uids = publish(store, 15)
    stop = threading.Event()
    runner = StreamRunner(store, backoff=Backoff(0.01, 0.05), batch=4, stop=stop)
    thread = threading.Thread(target=runner.run, kwargs={"follow": True, "poll_interval": 0.02})
    thread.start()
    try:
        with StreamRegistry.for_store(store) as reg:
            wait_for(
                lambda: "ConnectError" in (reg.get("acme", "hook").last_error or ""),
                what="a refused delivery",
            )
        uids += publish(store, 5)
        receiver.start()
        wait_for(lambda: len(set(receiver.uids())) == len(uids), what="every event")
    finally:
        stop.set()
        thread.join()
        runner.close()
        receiver.stop()
    assert first_occurrences(receiver.uids()) == uids
    with StreamRegistry.for_store(store) as reg:
        assert reg.get("acme", "hook").dead_letters == 0  # transient failures never dead-letter


def test_filter_delivers_only_matching_actions_and_targets(store: str, receiver: WebhookReceiver) -> None:
    add_webhook(store, receiver.url, new_secret(), filter=StreamFilter(actions=("monitor.deleted",)))
    publish(store, 3)
    wanted = publish(store, 2, action="monitor.deleted")
    run_once(store)
    assert receiver.uids() == wanted


def test_alert_delivers_a_deletion_only_by_someone_outside_the_group(
    store: str, receiver: WebhookReceiver
) -> None:
    rule = StreamFilter(actions=("monitor.deleted",), actor_not_in=("alice", "bob"))
    add_webhook(store, receiver.url, new_secret(), filter=rule)
    publish(store, 2, action="monitor.deleted", actor="alice")
    publish(store, 2, action="monitor.down", actor="eve")
    breach = publish(store, 1, action="monitor.deleted", actor="eve")
    publish(store, 1, action="monitor.deleted", actor="bob")
    run_once(store)
    assert receiver.uids() == breach
    assert receiver.events()[0]["actor"]["id"] == "eve"


def test_a_following_runner_starts_added_streams_and_picks_up_a_rotated_secret(
    store: str, receiver: WebhookReceiver
) -> None:
    first = new_secret()
    add_webhook(store, receiver.url, first)
    stop = threading.Event()
    runner = StreamRunner(store, backoff=FAST, stop=stop, reload_interval=0.05)
    thread = threading.Thread(target=runner.run, kwargs={"follow": True, "poll_interval": 0.02})
    thread.start()
    second = WebhookReceiver().start()
    try:
        uids = publish(store, 3)
        wait_for(lambda: receiver.uids() == uids, what="the first stream")
        with StreamRegistry.for_store(store) as reg:
            reg.add(
                "late", workspace="acme", kind="webhook", options={"url": second.url, "secret": new_secret()}
            )
            fresh = reg.rotate_secret("acme", "hook", grace_ms=0)
        wait_for(lambda: second.uids() == uids, what="the added stream to catch up")
        wait_for(
            lambda: any(s.options["secret"] == fresh for s in runner.streams),
            what="the runner to reload the stream",
        )
        more = publish(store, 2)
        wait_for(lambda: receiver.uids() == uids + more and second.uids() == uids + more, what="both streams")
        headers, body = receiver.requests[-1]
        Webhook(fresh).verify(body, headers)  # the running stream signs with the rotated secret
        with pytest.raises(WebhookVerificationError):
            Webhook(first).verify(body, headers)
        with StreamRegistry.for_store(store) as reg:
            reg.remove("acme", "late")
        wait_for(lambda: [s.name for s in runner.streams] == ["hook"], what="the removed stream to stop")
    finally:
        stop.set()
        thread.join()
        runner.close()
        second.stop()


def test_a_following_runner_stops_a_paused_stream_and_resumes_it_where_it_was(
    store: str, receiver: WebhookReceiver
) -> None:
    add_webhook(store, receiver.url, new_secret())
    stop = threading.Event()
    runner = StreamRunner(store, backoff=FAST, stop=stop, reload_interval=0.05)
    thread = threading.Thread(target=runner.run, kwargs={"follow": True, "poll_interval": 0.02})
    thread.start()
    try:
        before = publish(store, 3)
        wait_for(lambda: receiver.uids() == before, what="delivery before the pause")
        with StreamRegistry.for_store(store) as reg:
            assert reg.set_paused("acme", "hook", True).paused
        wait_for(lambda: runner.streams == [], what="the runner to stop the paused stream")
        during = publish(store, 4)
        with StreamRegistry.for_store(store) as reg:
            reg.set_paused("acme", "hook", False)
        wait_for(lambda: len(receiver.uids()) >= 7, what="the resumed stream to catch up")
    finally:
        stop.set()
        thread.join()
        runner.close()
    assert receiver.uids() == before + during  # nothing skipped, nothing twice
