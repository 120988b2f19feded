"""Rate-limit headers on every answer of a limited request, errors included."""

from __future__ import annotations

from types import TracebackType

from gridgate.errors import GridgateError


class on_errors_too:  # lower case: used like a function, ``with on_errors_too(headers):``
    """An error raised inside carries ``headers`` too (its own take precedence: a 429's
    ``X-RateLimit-*`` name the limit that refused). A class rather than a generator-based
    context manager: it is on every request's path, and costs a third as much."""

    __slots__ = ("_headers",)

    def __init__(self, headers: dict[str, str]) -> None:
        self._headers = headers

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(exc, GridgateError):
            for name, value in self._headers.items():
                exc.headers.setdefault(name, value)
