"""Logs: the JSON line, the request-id filter, the access line, the client id rule."""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import re
import sys
from collections.abc import Callable, Iterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gridgate.api.errors import REQUEST_IDS, RequestIds, error_middleware
from gridgate.logs import (
    CURRENT_REQUEST,
    JsonAccessLogger,
    JsonFormatter,
    RequestContext,
    RequestIdFilter,
    TextFormatter,
    configure_logging,
    route_of,
    valid_request_id,
)
from gridgate.settings import SettingsError, parse_settings

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def make_record(msg: str = "hello %s", *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("gridgate.test", logging.WARNING, __file__, 1, msg, args, None)
    record.__dict__.update(extra)
    return record


@pytest.mark.parametrize(
    "value",
    ["a", "trace-123", "0af7651916cd43dd8448eb211c80319c", "svc:job/42@host+x=y.z_w", "x" * 128],
)
def test_client_request_ids_that_are_honoured(value: str) -> None:
    assert valid_request_id(value) == value


@pytest.mark.parametrize(
    "value",
    [None, "", "x" * 129, "has space", "semi;colon", 'quote"', "new\nline", "tab\t", "é", "a,b"],
)
def test_client_request_ids_that_are_ignored(value: str | None) -> None:
    assert valid_request_id(value) is None


def test_json_line_fields() -> None:
    line = JsonFormatter().format(make_record("hello %s", "world", offer="sim-a/x", tries=3))
    data = json.loads(line)
    assert TS.match(data.pop("ts"))
    assert data == {
        "level": "WARNING",
        "logger": "gridgate.test",
        "msg": "hello world",
        "offer": "sim-a/x",
        "tries": 3,
    }
    assert "\n" not in line


def test_json_line_keeps_encodable_extras_only_and_the_exception() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        exc_info = sys.exc_info()
    record = make_record("failed", errors=["a: 500"], thing=object(), nested={"k": [1, 2]})
    record.exc_info = exc_info
    data = json.loads(JsonFormatter().format(record))
    assert data["errors"] == ["a: 500"] and data["nested"] == {"k": [1, 2]}
    assert "thing" not in data
    assert data["exc"].startswith("Traceback") and "ValueError: boom" in data["exc"]


def test_extras_cannot_override_the_line_own_fields() -> None:
    data = json.loads(JsonFormatter().format(make_record("m", level="fake", ts="fake")))
    assert data["level"] == "WARNING" and data["ts"] != "fake"


def test_filter_copies_the_current_request_ids() -> None:
    filt = RequestIdFilter()
    outside = make_record()
    filt.filter(outside)
    assert "request_id" not in outside.__dict__

    def inside(context: RequestContext) -> dict[str, object]:
        CURRENT_REQUEST.set(context)
        # inside a request the current id wins over one passed in extra=
        record = make_record(request_id="req_internal")
        filt.filter(record)
        return json.loads(JsonFormatter().format(record))

    own = contextvars.copy_context().run(inside, RequestContext("req_abc"))
    assert own["request_id"] == "req_abc" and "gridgate_request_id" not in own
    client = contextvars.copy_context().run(inside, RequestContext("trace-1", "req_abc"))
    assert client["request_id"] == "trace-1" and client["gridgate_request_id"] == "req_abc"
    assert CURRENT_REQUEST.get() is None  # nothing leaked out of those contexts


def test_text_format_appends_the_request_id() -> None:
    record = make_record("served")
    assert TextFormatter().format(record).endswith("served")
    record.request_id = "req_1"
    assert TextFormatter().format(record).endswith("served request_id=req_1")


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
            if handler not in handlers:
                handler.close()
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
        logging.captureWarnings(False)


@pytest.mark.usefixtures("restore_root_logger")
def test_configure_logging_writes_json_lines_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("json", "warning")
    log = logging.getLogger("gridgate.sometest")
    log.info("not at this level")
    log.warning("kept", extra={"n": 1})
    lines = capsys.readouterr().err.splitlines()
    assert [json.loads(line)["msg"] for line in lines] == ["kept"]
    assert json.loads(lines[0])["n"] == 1


class Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def test_access_lines_over_a_real_server() -> None:
    """The access line names the route template and the request's id (the middleware's context
    variable lives on into it); never a header, the query string or the body."""

    async def model(request: web.Request) -> web.Response:
        logging.getLogger("gridgate.test.handler").warning("inside")
        return web.Response(text=route_of(request))

    app = web.Application(middlewares=[error_middleware])
    app[REQUEST_IDS] = RequestIds()
    app.router.add_post("/v1/models/{model}", model)
    access = logging.getLogger("gridgate.test.access")
    access.setLevel(logging.INFO)
    access.propagate = False
    keep = Keep()
    keep.addFilter(RequestIdFilter())
    access.addHandler(keep)
    logging.getLogger("gridgate.test.handler").addHandler(keep)
    server = TestServer(app)
    await server.start_server(access_log=access, access_log_class=JsonAccessLogger)
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(
                server.make_url("/v1/models/text-prime?api_key=sk-query-secret"),
                data=b"prompt-body-secret",
                headers={"Authorization": "Bearer sk-header-secret", "X-Request-Id": "trace-9"},
            ) as answer:
                assert await answer.text() == "/v1/models/{model}"
                assert answer.headers["x-request-id"] == "trace-9"
                own = answer.headers["x-gridgate-request-id"]
            async with http.get(server.make_url("/nowhere/sk-path-secret")) as missing:
                assert missing.status == 404
                missing_id = missing.headers["x-request-id"]
                assert "x-gridgate-request-id" not in missing.headers
        await _until(lambda: len(keep.records) == 3)
    finally:
        await server.close()
        logging.getLogger("gridgate.test.handler").removeHandler(keep)
        access.removeHandler(keep)
    lines = [json.loads(JsonFormatter().format(r)) for r in keep.records]
    inside, first, second = sorted(lines, key=lambda line: line["msg"] != "inside")
    assert inside["request_id"] == "trace-9" and inside["gridgate_request_id"] == own
    first, second = sorted([first, second], key=lambda line: line["status"])
    assert first["request_id"] == "trace-9" and first["gridgate_request_id"] == own
    assert (first["method"], first["route"], first["status"]) == ("POST", "/v1/models/{model}", 200)
    assert second["request_id"] == missing_id and (second["route"], second["status"]) == (
        "other",
        404,
    )
    assert "secret" not in json.dumps(lines)


async def _until(predicate: Callable[[], bool], within: float = 5.0) -> None:
    """The access line is written just after the answer's last byte: wait for it, bounded."""
    deadline = asyncio.get_running_loop().time() + within
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        ({"level": "LOUD"}, "logging.level"),
        ({"format": "xml"}, "logging.format"),
        ({"colour": True}, "logging.colour"),
    ],
)
def test_bad_logging_settings_name_their_path(raw: dict[str, object], path: str) -> None:
    with pytest.raises(SettingsError, match=rf"^cfg\.toml: {re.escape(path)}: "):
        parse_settings({"logging": raw}, source="cfg.toml")


def test_logging_settings_default_to_json_at_info() -> None:
    settings = parse_settings({"logging": {"level": "debug"}})
    assert (settings.logging.format, settings.logging.level) == ("json", "debug")
    assert parse_settings({}).logging.format == "json"
