"""Rate-limit headers on every answer of a limited request, errors included."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from gridgate.errors import GridgateError


@contextmanager
def on_errors_too(headers: dict[str, str]) -> Iterator[None]:
    """An error raised inside carries ``headers`` too (its own take precedence: a 429's
    ``X-RateLimit-*`` name the limit that refused)."""
    try:
        yield
    except GridgateError as exc:
        for name, value in headers.items():
            exc.headers.setdefault(name, value)
        raise
