"""Group commit: concurrent writers share one transaction (and so one fsync).

With synchronous=FULL every COMMIT waits for the disk; doing that once per event caps the audit
trail at the disk's fsync rate. Here callers queue their work and one of them - the leader -
writes everything queued so far in ONE transaction, then wakes the others. Nobody returns
before the commit that holds their work has returned (never acknowledge before it is durable).

Leader/follower rather than a committer thread: there is nothing to start or stop, a lone
writer pays no thread hand-off, and the leader role passes to the oldest waiting caller after
each batch so no caller commits other people's work forever. Written here (about 100 lines)
because no maintained library offers group commit over a DB-API connection.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class _Request(Generic[T, R]):
    __slots__ = ("error", "finished", "lead", "payload", "result", "size", "wake")

    def __init__(self, payload: T, size: int) -> None:
        self.payload = payload
        self.size = size
        self.result: R | None = None
        self.error: BaseException | None = None
        self.finished = False  # its batch's transaction ended (committed or failed)
        self.lead = False  # this caller must write the next batch
        self.wake = threading.Event()


class GroupCommit(Generic[T, R]):
    """Batch ``submit`` calls from many threads into calls of ``commit(payloads)``.

    ``commit`` runs one durable transaction for the whole batch and returns one result per
    payload, in order; if it raises, every caller in that batch gets the exception (and none
    of their work was acknowledged). A batch holds at most ``max_items`` sizes' worth of
    requests, but never splits a request (an ``append_many`` stays atomic).
    """

    def __init__(self, commit: Callable[[Sequence[T]], Sequence[R]], max_items: int = 1000):
        self._commit = commit
        self._max_items = max_items
        self._mutex = threading.Lock()
        self._queue: deque[_Request[T, R]] = deque()
        self._leading = False
        self.batches = 0  # committed transactions, for benchmarks and tests
        self.items = 0

    def submit(self, payload: T, size: int = 1) -> R:
        """Queue ``payload``; return its result once the transaction holding it committed."""
        request: _Request[T, R] = _Request(payload, size)
        with self._mutex:
            self._queue.append(request)
            if not self._leading:
                self._leading = True
                request.lead = True
        if not request.lead:
            try:
                request.wake.wait()
            except BaseException:
                self._abandon(request)  # e.g. Ctrl-C while waiting: do not strand the queue
                raise
        if not request.finished:
            self._lead()
        if request.error is not None:
            raise request.error
        return request.result  # type: ignore[return-value]  # set with finished, no error

    def _take_batch(self) -> list[_Request[T, R]]:
        batch: list[_Request[T, R]] = []
        total = 0
        while self._queue and (not batch or total + self._queue[0].size <= self._max_items):
            request = self._queue.popleft()
            batch.append(request)
            total += request.size
        return batch

    def _lead(self) -> None:
        """Write one batch (the leader's own request is at the head), then pass the role on."""
        with self._mutex:
            batch = self._take_batch()
        try:
            results = self._commit([r.payload for r in batch])
            for request, result in zip(batch, results, strict=True):
                request.result = result
            self.batches += 1
            self.items += sum(r.size for r in batch)
        except BaseException as exc:  # noqa: BLE001 - re-raised in every caller of the batch
            for request in batch:
                request.result, request.error = None, exc
        with self._mutex:
            for request in batch:
                request.finished = True
            successor = self._promote_next()
        if successor is not None:
            successor.wake.set()  # first: the next commit is the critical path
        for request in batch:
            request.wake.set()

    def _promote_next(self) -> _Request[T, R] | None:
        """Under the mutex: make the oldest waiting caller the leader, or stop leading."""
        if self._queue:
            successor = self._queue[0]
            successor.lead = True
            return successor
        self._leading = False
        return None

    def _abandon(self, request: _Request[T, R]) -> None:
        """A waiting caller gave up: drop its unwritten request, hand on a role it was given."""
        successor = None
        with self._mutex:
            if request in self._queue:
                self._queue.remove(request)
                if request.lead and not request.finished:
                    successor = self._promote_next()
        if successor is not None:
            successor.wake.set()
