"""How an upstream failure is read and translated, once, at the adapter boundary (every wire).

Transport failures (connect errors, resets, timeouts) are always the supplier's fault; an error
body's message is surfaced only when the failure is the caller's, with the supplier's secret
redacted.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Final

import aiohttp
import msgspec

from gridgate.errors import SupplierFailed, SupplierTimeout

MAX_ERROR_MESSAGE: Final = 500


class _ErrorBody(msgspec.Struct):
    """``{"error": {"message"}}`` (OpenAI, Anthropic), ``{"errors": {"detail"}}``, ``{"message"}``."""

    error: dict[str, Any] | str | None = None
    errors: dict[str, Any] | None = None
    message: str | None = None


_ERROR_DECODER: Final = msgspec.json.Decoder(_ErrorBody)


def error_message(body: bytes, secret: str | None) -> str | None:
    """The message of an upstream's error body in any common shape (OpenAI's, Anthropic's, the
    reference exchange's), with the supplier's secret redacted and clipped; None if it has none."""
    try:
        parsed = _ERROR_DECODER.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    message: Any = None
    if isinstance(parsed.error, dict):
        message = parsed.error.get("message")
    elif isinstance(parsed.error, str):
        message = parsed.error
    elif parsed.errors is not None:
        message = parsed.errors.get("detail")
    elif parsed.message is not None:
        message = parsed.message
    if not isinstance(message, str) or not message:
        return None
    text: str = message
    if secret:
        text = text.replace(secret, "[redacted]")
    return text[:MAX_ERROR_MESSAGE]


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """Every transport failure of an upstream call, once, as the supplier's fault."""
    try:
        yield
    except TimeoutError as exc:
        raise SupplierTimeout("the supplier did not answer in time") from exc
    except aiohttp.ClientError as exc:
        raise SupplierFailed("the supplier connection failed") from exc
    except OSError as exc:
        raise SupplierFailed("the supplier connection failed") from exc
