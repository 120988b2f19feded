"""The Redis the tests use: ``$GRIDGATE_TEST_REDIS_URL`` (default redis://127.0.0.1:6379/0).

Tests never flush it: each uses its own key namespace (``gridgate_namespace()``), so runs and
tests never see each other's counters. An unreachable Redis skips loudly — or fails when ``CI``
is set.
"""

from __future__ import annotations

import os
import secrets
import socket

import pytest

REDIS_URL = os.environ.get("GRIDGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def require_redis() -> str:
    """The URL once Redis answers PING; otherwise skip loudly, or fail on CI."""
    host, _, port = REDIS_URL.split("//", 1)[1].split("/", 1)[0].rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=2) as conn:
            conn.sendall(b"PING\r\n")
            answer = conn.recv(64)
        if not answer.startswith(b"+PONG"):
            raise OSError(f"unexpected answer {answer!r}")
    except OSError as exc:
        reason = (
            f"Redis at {REDIS_URL} is unreachable ({type(exc).__name__}: {exc}); "
            "the tests that need it did NOT run"
        )
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return REDIS_URL


def gridgate_namespace() -> str:
    """A Redis key namespace of one's own."""
    return "t" + secrets.token_hex(6)
