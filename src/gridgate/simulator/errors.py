"""OpenAI-shaped error answers: ``{"error": {"message", "type", "param", "code"}}``."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec
from aiohttp import web

# The ``type`` OpenAI puts in its error envelope for each status it answers with.
_TYPES: Mapping[int, str] = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    422: "invalid_request_error",
    429: "requests",
    500: "server_error",
    502: "server_error",
    503: "server_error",
    504: "server_error",
}

_CODES: Mapping[int, str] = {
    401: "invalid_api_key",
    404: "model_not_found",
    429: "rate_limit_exceeded",
    500: "internal_error",
    503: "service_unavailable",
}


class SimulatorError(Exception):
    """A request the simulator refuses; rendered as an OpenAI error body here, and in
    Anthropic's shape by the Messages endpoint (:mod:`.anthropic_errors`, by ``status``)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        type_: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type = type_

    def response(self, headers: Mapping[str, str] | None = None) -> web.Response:
        return error_response(
            self.status,
            self.message,
            param=self.param,
            code=self.code,
            type_=self.type,
            headers=headers,
        )


def error_body(
    status: int,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    type_: str | None = None,
) -> bytes:
    """The encoded envelope; ``type`` and ``code`` default to what OpenAI sends for ``status``."""
    error = {
        "message": message,
        "type": type_
        or _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error"),
        "param": param,
        "code": code if code is not None else _CODES.get(status),
    }
    return msgspec.json.encode({"error": error})


def error_response(
    status: int,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    type_: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    return web.Response(
        status=status,
        body=error_body(status, message, param=param, code=code, type_=type_),
        content_type="application/json",
        headers=headers,
    )
