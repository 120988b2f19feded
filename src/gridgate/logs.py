"""Logs: one JSON object per line (or plain text), every line of a request carrying its id.

``configure_logging`` installs one stderr handler on the root logger. The middleware puts the
current request's ids in ``CURRENT_REQUEST`` (a context variable: aiohttp runs every request in a
task of its own, so the value belongs to that request alone, its access-log line included);
``RequestIdFilter`` copies them onto every record logged meanwhile. ``JsonAccessLogger`` writes
one line per request: method, route (the route's canonical path, never the raw path or query),
status, duration, response bytes and request id — never headers or bodies.

Nothing here logs a key, a header or prompt text; what callers pass in ``extra=`` is theirs to
keep secret-free.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from contextvars import ContextVar
from dataclasses import dataclass
from time import perf_counter
from typing import Any, Literal

import msgspec
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

LogFormat = Literal["json", "text"]
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

_CLIENT_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")


def valid_request_id(value: str | None) -> str | None:
    """A client's ``X-Request-Id`` when it is 1–128 chars of ``[A-Za-z0-9._:@/+=-]``, else None."""
    if value is None or _CLIENT_ID.fullmatch(value) is None:
        return None
    return value


@dataclass(frozen=True, slots=True)
class RequestContext:
    request_id: str  # the visible id: the client's X-Request-Id when honoured, else gridgate's
    gridgate_id: str | None = None  # gridgate's own id (the usage record's key) when it differs
    started: float | None = None  # time.perf_counter() at arrival (the loop clock is coarse)


CURRENT_REQUEST: ContextVar[RequestContext | None] = ContextVar(
    "gridgate_current_request", default=None
)


class RequestIdFilter(logging.Filter):
    """Copy the current request's ids onto every record (inside a request, they win over a
    ``request_id`` passed in ``extra=``: every line of the request names it the same way)."""

    def filter(self, record: logging.LogRecord) -> bool:
        current = CURRENT_REQUEST.get()
        if current is not None:
            record.request_id = current.request_id
            if current.gridgate_id is not None:
                record.gridgate_request_id = current.gridgate_id
        return True


# what every LogRecord carries; anything else on a record came from ``extra=``
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
_OWN = frozenset({"request_id", "gridgate_request_id"})


def _timestamp(record: logging.LogRecord) -> str:
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{whole}.{int(record.msecs):03d}Z"


def _encodable(value: object) -> bool:
    try:
        msgspec.json.encode(value)
    except (TypeError, ValueError, OverflowError):
        return False
    return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts`` (ISO-8601 UTC, ms), ``level``, ``logger``, ``msg``,
    ``request_id`` (and ``gridgate_request_id``) when known, ``exc`` when an exception is
    attached, then the JSON-encodable ``extra=`` fields (others are left out)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name in ("request_id", "gridgate_request_id"):
            value = record.__dict__.get(name)
            if value is not None:
                out[name] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        extras = {
            k: v
            for k, v in record.__dict__.items()
            if k not in _STANDARD and k not in _OWN and k not in out
        }
        if extras:
            if not _encodable(extras):
                extras = {k: v for k, v in extras.items() if _encodable(v)}
            out.update(extras)
        return msgspec.json.encode(out).decode()


class TextFormatter(logging.Formatter):
    """The classic line, with ``request_id=…`` appended inside a request."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = record.__dict__.get("request_id")
        return line if request_id is None else f"{line} request_id={request_id}"


def configure_logging(fmt: LogFormat, level: str) -> None:
    """Send every log record to stderr in ``fmt`` at ``level`` (replacing earlier handlers)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.captureWarnings(True)  # Python warnings become records too: every line is a record


def route_of(request: web.BaseRequest) -> str:
    """The matched route's canonical path (``/v1/models/{model}``), or ``other``: a label of
    bounded cardinality, never the raw path."""
    try:
        match_info = getattr(request, "match_info", None)
    except AssertionError:  # never routed: a request the HTTP parser refused
        return "other"
    route = getattr(match_info, "route", None)
    resource = getattr(route, "resource", None)
    if resource is None:
        return "other"
    canonical: str = resource.canonical
    return canonical


class JsonAccessLogger(AbstractAccessLogger):
    """One record per request on the ``aiohttp.access`` logger; with ``JsonFormatter`` a line
    like ``{"msg": "POST /v1/chat/completions 200", "method": "POST", "route":
    "/v1/chat/completions", "status": 200, "duration_ms": 12.3, "bytes": 512, "request_id":
    "req_…"}`` (the text format shows the message and the request id)."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        route = route_of(request)
        current = CURRENT_REQUEST.get()
        if current is not None and current.started is not None:
            time = perf_counter() - current.started
        duration_ms = round(time * 1000, 3)
        self.logger.info(
            "%s %s %d %.1f ms %d bytes",
            request.method,
            route,
            response.status,
            duration_ms,
            response.body_length,
            extra={
                "method": request.method,
                "route": route,
                "status": response.status,
                "duration_ms": duration_ms,
                "bytes": response.body_length,
            },
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)
