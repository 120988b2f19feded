"""A database outage as this process sees it.

While the database cannot be reached, requests that need it answer 503 with ``Retry-After``
(those that do not — a cached key on an open lease — are still served; their usage records wait
in the usage writer), and background tasks keep retrying. Without a single place that knows an
outage is under way, each of them would log every failure: hundreds of lines, a traceback each.
Everything that meets ``StoreUnavailable`` reports it here instead; this logs one line when the
outage starts and one when it ends (with how long it lasted and how many requests it refused).
The end is noticed by the next database call that succeeds: the usage writer's next batch, or the
upkeep's ping while the outage lasts.
"""

from __future__ import annotations

import logging

from gridgate.core.clock import Clock
from gridgate.storage.ports.errors import StoreUnavailable

log = logging.getLogger("gridgate.store")

RETRY_AFTER_SECONDS = 2


class Outage:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._since: float | None = None
        self._refused = 0
        self._outages = 0

    @property
    def down(self) -> bool:
        return self._since is not None

    @property
    def count(self) -> int:
        """Outages this process has seen begin."""
        return self._outages

    def failed(self, exc: BaseException, where: str) -> None:
        """A call to the database found it unreachable."""
        if self._since is not None:
            return
        self._since = self._clock.monotonic()
        self._outages += 1
        log.error(
            "database unreachable (%s, in %s): requests that need it answer 503 until it is back",
            type(exc.__cause__ or exc).__name__,
            where,
        )

    def noted(self, exc: BaseException, where: str) -> bool:
        """Whether ``exc`` is the database being unreachable (then noted here, so the caller
        need not log it); any other failure is the caller's to log."""
        if isinstance(exc, StoreUnavailable):
            self.failed(exc, where)
            return True
        return False

    def refused(self, exc: BaseException) -> None:
        """A request was answered 503 for it."""
        self.failed(exc, "a request")
        self._refused += 1

    def recovered(self) -> None:
        """A call to the database succeeded."""
        since = self._since
        if since is None:
            return
        self._since = None
        log.warning(
            "database reachable again after %.1f s; %d requests were answered 503 meanwhile",
            self._clock.monotonic() - since,
            self._refused,
        )
        self._refused = 0
