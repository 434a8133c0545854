"""Group commit is fair: requests are committed in the order they queued, none is starved.

The groups are formed deterministically (never by timing): a gate held inside the commit
callback plays the in-flight fsync while the other requests queue behind it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from auditbird.stores.group_commit import GroupCommit


def wait_until(check: Callable[[], bool], what: str, seconds: float = 30.0) -> None:
    """Poll ``check`` (a condition, not a timing threshold: the deadline only ends a hang)."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.002)


class GatedCommit:
    """A commit callback that records each group, and blocks the first one on a gate."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.groups: list[list[int]] = []

    def __call__(self, items: Sequence[int]) -> list[int]:
        if not self.groups:
            self.gate.wait(60)
        self.groups.append(list(items))
        return [item * 10 for item in items]


def queue_behind_a_commit(group: GroupCommit[int, int], commit: GatedCommit, n: int) -> dict[int, Any]:
    """Request 0 leads and blocks in its commit; requests 1..n queue behind it one at a time
    (so the queue's order is known); then the gate opens. Each request's answer, by request."""
    answers: dict[int, Any] = {}

    def submit(i: int) -> None:
        answers[i] = group.submit(i)

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(n + 1)]
    threads[0].start()
    wait_until(lambda: len(group._queue) == 1, "the leader in its commit")
    for i, t in enumerate(threads[1:], 2):
        t.start()
        wait_until(lambda i=i: len(group._queue) == i, f"{i} queued requests")
    commit.gate.set()
    for t in threads:
        t.join(60)
    return answers


def test_a_size_cap_splits_the_queue_in_arrival_order_and_starves_nobody() -> None:
    """15 requests behind a commit, at most 4 per commit: they go in arrival order, 4, 4, 4, 3;
    a request is never overtaken by one that queued after it."""
    commit = GatedCommit()
    group: GroupCommit[int, int] = GroupCommit(commit, max_size=4)
    answers = queue_behind_a_commit(group, commit, 15)
    assert answers == {i: i * 10 for i in range(16)}  # each got its own answer
    assert commit.groups == [[0], [1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15]]
    assert (group.commits, group.requests) == (5, 16)


def test_without_a_cap_everyone_queued_behind_a_commit_goes_in_the_next_one() -> None:
    """The bound on a publish's wait: the commit in flight when it queued, then its own."""
    commit = GatedCommit()
    group: GroupCommit[int, int] = GroupCommit(commit)
    answers = queue_behind_a_commit(group, commit, 15)
    assert answers == {i: i * 10 for i in range(16)}
    assert commit.groups == [[0], list(range(1, 16))]


def test_sixteen_threads_publishing_in_loops_all_finish_and_each_keeps_its_order() -> None:
    """16 threads, 40 requests each, commits that take a while (as an fsync does): every thread
    finishes all of its requests (no starved publisher), each request is answered by its own
    result, and each thread's requests are committed in the order it made them."""
    groups: list[list[tuple[int, int]]] = []

    def slow_commit(items: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
        time.sleep(0.001)  # holds the "disk", not a threshold: nothing here is timed
        groups.append(list(items))
        return list(items)

    group: GroupCommit[tuple[int, int], tuple[int, int]] = GroupCommit(slow_commit)
    done = [0] * 16

    def publisher(t: int) -> None:
        for i in range(40):
            assert group.submit((t, i)) == (t, i)
            done[t] += 1

    threads = [threading.Thread(target=publisher, args=(t,)) for t in range(16)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    assert done == [40] * 16
    committed = [item for g in groups for item in g]
    assert sorted(committed) == [(t, i) for t in range(16) for i in range(40)]  # each once
    for t in range(16):
        assert [i for (owner, i) in committed if owner == t] == list(range(40))
    assert group.requests == 16 * 40
