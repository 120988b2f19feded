"""The error tree. Every error a client can cause or see is one of these classes.

Each class declares its HTTP status and its OpenAI ``type``/``code`` and renders the body that
every SDK understands: the reference exchange's envelope ``{"errors": {"detail": ...}}`` together
with OpenAI's ``{"error": {message, type, param, code}}``. Each also declares what the Anthropic
Messages surface answers for it, as Anthropic's API would: the error ``type``, and the status
where Anthropic's differs (``anthropic_http_status``): every invalid request is 400 there, an
instrument that cannot serve now is 529 ``overloaded_error``. Foreign exceptions are translated
into this tree once, at each boundary (HTTP edge, upstream adapter, storage); nothing outside
``gridgate`` leaks to a client, and no message carries a secret.

    GridgateError                         500 api_error          (never raised for client input)
    ├── BadRequest                        400 malformed JSON, wrong types
    │   └── ThreadUnsupported             400 a Messages request with ``thread`` (Anthropic's only)
    ├── ValidationFailed                  422 value out of range / structurally invalid (names param)
    │   ├── Untranslatable                422 a part the chosen supplier's wire format cannot carry
    │   └── PromptTooLong                 422 a prompt over the instrument's input cap
    ├── Unauthorized                      401 missing, malformed, unknown, expired or revoked key
    ├── InsufficientBalance               402 balance cannot cover the request
    ├── PermissionDenied                  403
    ├── NotFound                          404 unknown path or object
    │   ├── UnknownInstrument             404 unknown instrument in ``model``
    │   └── ResponseNotFound              404 a stored response absent, expired or another's
    ├── MethodNotAllowed                  405
    ├── RequestTimeout                    408 the request's headers or body came too slowly
    ├── PayloadTooLarge                   413 body over the configured limit
    ├── UnsupportedMediaType              415 a body in a Content-Encoding gridgate does not decode
    ├── RateLimited                       429 (carries Retry-After)
    ├── NoQualifyingOffer                 422 the request needs what no offer of the instrument has
    ├── NoCapacity                        503 the instrument has no offer able to serve right now
    ├── ServiceUnavailable                503 the database is unreachable for now (carries Retry-After)
    ├── Overloaded                        503 the process holds as many connections as it may
    └── UpstreamError                     an upstream answered badly (translated in providers/)
        ├── UpstreamRejected              4xx the caller's fault: surfaced with the upstream's message
        └── SupplierFailed                502 the supplier's fault (fail over to the next offer)
            └── SupplierTimeout           504

On the Anthropic Messages surface 422 and 415 are 400 ``invalid_request_error``, 503 is 529
``overloaded_error`` and 504 is ``timeout_error``; every other status is the same.
"""

from __future__ import annotations

from typing import Any, ClassVar, Final

import msgspec

from gridgate.echo import capped

MESSAGE_LIMIT: Final = 2000


class GridgateError(Exception):
    status: ClassVar[int] = 500
    openai_type: ClassVar[str] = "api_error"
    anthropic_type: ClassVar[str] = "api_error"
    # the status on the Anthropic Messages surface, where Anthropic's API answers another
    anthropic_status: ClassVar[int | None] = None
    default_code: ClassVar[str | None] = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        # what an error quotes of the caller's input is capped where it is quoted; this bounds
        # the whole message too, whatever it quotes (it is echoed twice in every body)
        message = capped(message, MESSAGE_LIMIT)
        super().__init__(message)
        self.message = message
        self.param = capped(param)
        self.code = code if code is not None else self.default_code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The OpenAI-surface body: reference envelope plus OpenAI's ``error`` object."""
        return {
            "errors": {"detail": self.message},
            "error": {
                "message": self.message,
                "type": self.openai_type,
                "param": self.param,
                "code": self.code,
            },
        }

    @property
    def anthropic_message(self) -> str:
        """The message in Anthropic's words, where they differ (and clients match them)."""
        return self.message

    def anthropic_body(self) -> dict[str, Any]:
        """The Anthropic-surface body."""
        return {
            "type": "error",
            "error": {"type": self.anthropic_type, "message": self.anthropic_message},
        }

    def render(self) -> bytes:
        return msgspec.json.encode(self.body())


class BadRequest(GridgateError):
    status = 400
    openai_type = "invalid_request_error"
    anthropic_type = "invalid_request_error"


class ThreadUnsupported(BadRequest):
    """A Messages request with ``thread`` (Anthropic's conversations held by the server between
    turns, beta ``message-threads-2026-08-12``): this exchange holds none. ``error.details``
    carries Anthropic's ``error_code``, on which the SDKs' tool runners resend the whole
    conversation without ``thread``."""

    default_code = "thread_unsupported_request"

    def anthropic_body(self) -> dict[str, Any]:
        body = super().anthropic_body()
        body["error"]["details"] = {"error_code": self.default_code}
        return body


class ValidationFailed(GridgateError):
    status = 422
    anthropic_status = 400
    openai_type = "invalid_request_error"
    anthropic_type = "invalid_request_error"


class Untranslatable(ValidationFailed):
    """The request has a part that a supplier's wire format cannot carry (an audio part for an
    Anthropic-format supplier, say). Raised by an adapter's request mapping before anything is
    sent; the exchange tries the next offer, and surfaces this (naming the part) when no offer
    could carry the request."""

    default_code = "untranslatable"


class PromptTooLong(ValidationFailed):
    """A prompt over the instrument's input cap. It carries both numbers: on the Anthropic
    surface the message is Anthropic's own, ``prompt is too long: N tokens > M maximum``, which
    clients match (Claude Code compacts the conversation on it)."""

    default_code = "context_length_exceeded"

    def __init__(self, message: str, *, tokens: int, maximum: int, param: str) -> None:
        super().__init__(message, param=param)
        self.tokens = tokens
        self.maximum = maximum

    @property
    def anthropic_message(self) -> str:
        return f"prompt is too long: {self.tokens} tokens > {self.maximum} maximum"


class Unauthorized(GridgateError):
    status = 401
    openai_type = "authentication_error"
    anthropic_type = "authentication_error"
    default_code = "invalid_api_key"


class InsufficientBalance(GridgateError):
    status = 402
    openai_type = "insufficient_quota"
    anthropic_type = "billing_error"
    default_code = "insufficient_balance"


class SpendCapReached(InsufficientBalance):
    """A spend cap of the key or its account cannot cover the request's worst case."""

    default_code = "spend_cap_reached"


class PermissionDenied(GridgateError):
    status = 403
    openai_type = "permission_error"
    anthropic_type = "permission_error"


class NotFound(GridgateError):
    status = 404
    openai_type = "not_found_error"
    anthropic_type = "not_found_error"


class ResponseNotFound(NotFound):
    """A stored response (Responses API) that is absent, expired or another account's: typed
    as OpenAI types it."""

    openai_type = "invalid_request_error"


class UnknownInstrument(NotFound):
    default_code = "model_not_found"


class MethodNotAllowed(GridgateError):
    status = 405
    openai_type = "invalid_request_error"
    anthropic_type = "invalid_request_error"


class RequestTimeout(GridgateError):
    status = 408
    openai_type = "invalid_request_error"
    anthropic_type = "invalid_request_error"
    default_code = "request_timeout"


class PayloadTooLarge(GridgateError):
    status = 413
    openai_type = "invalid_request_error"
    anthropic_type = "request_too_large"


class UnsupportedMediaType(GridgateError):
    status = 415
    anthropic_status = 400  # Anthropic: 400, code request_body_encoding_unsupported
    openai_type = "invalid_request_error"
    anthropic_type = "invalid_request_error"
    default_code = "unsupported_content_encoding"


class RateLimited(GridgateError):
    status = 429
    openai_type = "rate_limit_error"
    anthropic_type = "rate_limit_error"
    default_code = "rate_limit_exceeded"


class NoQualifyingOffer(GridgateError):
    status = 422
    anthropic_status = 400
    openai_type = "invalid_request_error"
    anthropic_type = "invalid_request_error"
    default_code = "no_qualifying_offer"


class NoCapacity(GridgateError):
    status = 503
    anthropic_status = 529
    openai_type = "service_unavailable"
    anthropic_type = "overloaded_error"
    default_code = "no_capacity"


class ServiceUnavailable(GridgateError):
    status = 503
    anthropic_status = 529
    openai_type = "service_unavailable"
    anthropic_type = "overloaded_error"
    default_code = "temporarily_unavailable"


class Overloaded(GridgateError):
    status = 503
    anthropic_status = 529
    openai_type = "service_unavailable"
    anthropic_type = "overloaded_error"
    default_code = "server_busy"


class UpstreamError(GridgateError):
    status = 502
    openai_type = "upstream_error"
    anthropic_type = "api_error"


class UpstreamRejected(UpstreamError):
    """The upstream refused the request for a reason that is the caller's (a 4xx other than 408/429)."""

    openai_type = "invalid_request_error"
    anthropic_type = "invalid_request_error"

    def __init__(
        self, message: str, *, status: int, param: str | None = None, code: str | None = None
    ) -> None:
        super().__init__(message, param=param, code=code)
        self.upstream_status = status

    @property
    def http_status(self) -> int:
        return self.upstream_status

    def anthropic_body(self) -> dict[str, Any]:
        body = super().anthropic_body()
        if self.upstream_status == 413:
            body["error"]["type"] = "request_too_large"
        return body


class SupplierFailed(UpstreamError):
    """The supplier failed (connect error, 5xx, 429, malformed answer): the next offer may serve."""

    status = 502
    default_code = "supplier_failed"


class SupplierTimeout(SupplierFailed):
    status = 504
    openai_type = "timeout_error"
    anthropic_type = "timeout_error"
    default_code = "supplier_timeout"


def http_status(error: GridgateError) -> int:
    """The status to send for ``error`` (an upstream rejection keeps the upstream's 4xx)."""
    if isinstance(error, UpstreamRejected):
        return error.upstream_status
    return error.status


def anthropic_http_status(error: GridgateError) -> int:
    """The status to send for ``error`` on the Anthropic Messages surface: Anthropic's for the
    same failure (an invalid request is 400 there, also when an upstream said 422)."""
    if isinstance(error, UpstreamRejected):
        return 400 if error.upstream_status == 422 else error.upstream_status
    return error.anthropic_status or error.status
