"""The keyed answers running in this process, for the duplicates that arrive meanwhile.

A ``Flight`` is one request with an ``Idempotency-Key`` being served here: its task (detached
from the client's connection, so that the answer is completed and kept even when the client
leaves), its headers once known, and a stream's bytes as relayed so far. A duplicate of it in
this process follows it: it gets the bytes so far, then the live ones, to the end (a whole
answer: the answer when it is ready). ``Flights`` finds a running flight by account and key;
a flight leaves it once its answer is kept (or released), so that a later duplicate reads the
store.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Answer:
    """An answer as replayed: its status, the headers worth replaying (lower-case names) and
    its body (a stream's: every SSE byte as relayed)."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    stream: bool


class Flight:
    """One keyed request running in this process. ``pieces``: a stream's bytes so far;
    ``answer``: the whole answer, once ended with one; ``failure``: what it failed with before
    any answer (its key released), and ``failure_event``, how a stream whose 200 has gone says
    it."""

    def __init__(self, digest: str, *, stream: bool, early: Mapping[str, str]) -> None:
        self.digest = digest
        self.stream = stream
        self.early = early  # the headers of a 200 sent before the answer's (keep-alives)
        self.headers: Mapping[str, str] | None = None
        self.pieces: list[bytes] = []
        self.answer: Answer | None = None
        self.failure: BaseException | None = None
        self.failure_event = b""
        self.ended = False
        self.task: asyncio.Future[Any] | None = None  # the detached work, kept referenced
        self._changed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def open(self, headers: Mapping[str, str]) -> None:
        self.headers = headers
        self._notify()

    def append(self, piece: bytes) -> None:
        if piece:
            self.pieces.append(piece)
            self._notify()

    def end(
        self,
        answer: Answer | None,
        failure: BaseException | None = None,
        failure_event: bytes = b"",
    ) -> None:
        if self.ended:
            return
        self.answer = answer
        self.failure = failure
        self.failure_event = failure_event
        self.ended = True
        self._notify()

    async def changed(self, seconds: float | None = None) -> bool:
        """Wait for the next change (headers, a piece, the end); False when ``seconds``
        seconds passed without one."""
        if self.ended:
            return True
        try:
            await asyncio.wait_for(asyncio.shield(self._changed), seconds)
        except TimeoutError:
            return False
        return True

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.get_running_loop().create_future()
        changed.set_result(None)


class Flights:
    """This process's running flights, by account and key."""

    def __init__(self) -> None:
        self._running: dict[tuple[str, str], Flight] = {}
        self._loose: set[asyncio.Future[Any]] = set()  # work no request awaits (a release)

    def keep(self, task: asyncio.Future[Any]) -> None:
        """Hold a reference to ``task`` until it is done."""
        self._loose.add(task)
        task.add_done_callback(self._loose.discard)

    def get(self, account_id: str, key: str) -> Flight | None:
        return self._running.get((account_id, key))

    def start(
        self, account_id: str, key: str, digest: str, *, stream: bool, early: Mapping[str, str]
    ) -> Flight:
        """A new flight for the key (none may be running for it here)."""
        flight = Flight(digest, stream=stream, early=early)
        self._running[(account_id, key)] = flight
        return flight

    def land(
        self,
        account_id: str,
        key: str,
        flight: Flight,
        answer: Answer | None,
        failure: BaseException | None = None,
        failure_event: bytes = b"",
    ) -> None:
        """End ``flight`` (its followers see how) and forget it."""
        if self._running.get((account_id, key)) is flight:
            del self._running[(account_id, key)]
        flight.end(answer, failure, failure_event)

    async def drain(self, seconds: float) -> None:
        """At shutdown: let the running flights end (their answers kept), for ``seconds`` at
        most."""
        tasks = [f.task for f in self._running.values() if f.task is not None]
        if tasks:
            with contextlib.suppress(Exception):
                await asyncio.wait(tasks, timeout=seconds)
