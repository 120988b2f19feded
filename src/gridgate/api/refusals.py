"""What the HTTP parser refuses leaves in the envelope too.

aiohttp answers a request its parser cannot read (a bad chunk size, a duplicate
``Content-Length``, an over-long header line) itself, before any handler or middleware runs,
with a plain-text body and a logged traceback. ``GatewayRunner`` serves the app with a request
handler that answers such a refusal in the reference exchange's envelope (the surface is not
known: the request line may not even have been read) with a request id, logs no traceback, and
leaves the access-log line to say what happened. Failures of gridgate's own (5xx) keep aiohttp's
path; the error middleware answers those before they get here.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from gridgate.api.errors import RequestIds
from gridgate.echo import capped
from gridgate.errors import BadRequest, GridgateError
from gridgate.logs import CURRENT_REQUEST, RequestContext

log = logging.getLogger("gridgate.api")


class EnvelopedRequestHandler(RequestHandler):
    """aiohttp's connection handler, with the parser's refusals answered in the envelope."""

    def __init__(self, manager: GatewayServer, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._request_ids = manager.request_ids

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500 or request.writer.output_size > 0:
            return super().handle_error(request, status, exc, message)
        request_id = self._request_ids()
        CURRENT_REQUEST.set(RequestContext(request_id))  # for the access-log line
        log.debug("refused an unreadable request: %s", capped(message or "bad request"))
        error: GridgateError = BadRequest(
            f"the HTTP request could not be read: {capped(message or 'bad request')}",
            code="malformed_http",
        )
        body = msgspec.json.encode(error.body())
        response = web.Response(
            body=body,
            status=status,
            content_type="application/json",
            headers={"x-request-id": request_id},
        )
        response.force_close()
        return response


class GatewayServer(web.Server):
    """aiohttp's low-level server, making ``EnvelopedRequestHandler`` connections."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.request_ids = RequestIds()

    def __call__(self) -> RequestHandler:
        return EnvelopedRequestHandler(self, loop=self._loop, **self._kwargs)


class GatewayRunner(web.AppRunner):
    """``web.AppRunner`` whose server is a ``GatewayServer`` (the app's own handler, request
    factory and settings, as ``AppRunner`` would build them)."""

    @property
    def gateway_server(self) -> GatewayServer:
        """The server, once ``setup`` has built it."""
        server = self.server
        assert isinstance(server, GatewayServer), "GatewayRunner.setup() first"
        return server

    async def _make_server(self) -> web.Server:
        built = await super()._make_server()
        return GatewayServer(
            built.request_handler,
            request_factory=built.request_factory,
            handler_cancellation=built.handler_cancellation,
            loop=built._loop,
            **built._kwargs,
        )
