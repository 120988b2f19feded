"""What an error may quote of a caller's input: at most ``ECHO_LIMIT`` characters.

An error names the value it refuses (a model, a parameter, a header, a path) so the caller can
see what was wrong; it never repeats an arbitrarily long value back (a 15 MB model name must not
make a 30 MB answer, nor a 15 MB log line).
"""

from __future__ import annotations

from typing import Final, TypeVar, cast

T = TypeVar("T")
ECHO_LIMIT: Final = 200


def capped(value: T, limit: int = ECHO_LIMIT) -> T:
    """A string ``value``, or its first ``limit - 1`` characters and an ellipsis when longer;
    anything else as it is."""
    if not isinstance(value, str) or len(value) <= limit:
        return value
    return cast(T, value[: limit - 1] + "…")
