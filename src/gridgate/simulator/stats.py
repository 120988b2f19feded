"""Counters and the last request seen, for tests to assert on (``GET /sim/stats``)."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

_BEARER = "bearer "
_SECRET = frozenset(("authorization", "x-api-key"))


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(slots=True)
class Stats:
    """One simulator's counters. ``client_disconnects`` counts requests whose client went
    away before the answer was complete (mid-stream, or during a ``hang``)."""

    requests_total: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    by_endpoint: Counter[str] = field(default_factory=Counter)
    """Requests per path (``/v1/chat/completions``, ``/v1/messages``)."""
    streams_started: int = 0
    streams_completed: int = 0
    client_disconnects: int = 0
    in_flight: int = 0  # requests being answered right now (a stream until its last byte)
    max_in_flight: int = 0  # the most ever answered at once since the last reset
    last_request_body: Any = None
    last_request_headers: Mapping[str, str] | None = None

    def record_request(self, body: Any, headers: Mapping[str, str], endpoint: str = "") -> None:
        self.requests_total += 1
        if endpoint:
            self.by_endpoint[endpoint] += 1
        self.last_request_body = body
        self.last_request_headers = headers

    def begin(self) -> None:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def end(self) -> None:
        self.in_flight -= 1

    def record_outcome(self, outcome: int | str) -> None:
        self.by_status[str(outcome)] += 1

    def reset(self) -> None:
        self.requests_total = 0
        self.by_status.clear()
        self.by_endpoint.clear()
        self.streams_started = 0
        self.streams_completed = 0
        self.client_disconnects = 0
        self.max_in_flight = self.in_flight
        self.last_request_body = None
        self.last_request_headers = None

    def snapshot(self) -> dict[str, Any]:
        """The JSON document of ``GET /sim/stats``.

        ``authorization`` tells whether the last request carried an ``Authorization`` header
        and gives SHA-256 hex digests of its value and of its bearer token, never the secret;
        ``x_api_key`` does the same for the Anthropic wire's ``x-api-key`` header.
        ``last_request_headers`` leaves both headers out.
        """
        headers = self.last_request_headers or {}
        authorization = headers.get("Authorization")
        api_key = headers.get("x-api-key")
        token = None
        if authorization is not None and authorization[: len(_BEARER)].lower() == _BEARER:
            token = authorization[len(_BEARER) :].strip()
        return {
            "requests_total": self.requests_total,
            "by_status": dict(self.by_status),
            "by_endpoint": dict(self.by_endpoint),
            "streams_started": self.streams_started,
            "streams_completed": self.streams_completed,
            "client_disconnects": self.client_disconnects,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "last_request_body": self.last_request_body,
            "last_request_headers": {
                name: value for name, value in headers.items() if name.lower() not in _SECRET
            },
            "authorization": {
                "present": authorization is not None,
                "sha256": None if authorization is None else sha256_hex(authorization),
                "bearer_sha256": None if token is None else sha256_hex(token),
            },
            "x_api_key": {
                "present": api_key is not None,
                "sha256": None if api_key is None else sha256_hex(api_key),
            },
        }
