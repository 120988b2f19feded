"""A webhook receiver for tests: a real aiohttp server on 127.0.0.1 that answers each POST with
the next status queued in ``statuses`` (then ``default``) and keeps what it received; nothing
listens on its port before ``start()`` (a refused connection)."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
from typing import Any

from aiohttp import web


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def signed_by(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """The receiver's check, written out: v1= hex HMAC-SHA256(secret, f"{timestamp}.{body}")."""
    timestamp = headers["Gridgate-Webhook-Timestamp"]
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return hmac.compare_digest(headers["Gridgate-Webhook-Signature"], "v1=" + mac.hexdigest())


class Receiver:
    """An HTTP receiver that answers each POST with the next status of ``statuses`` (then 200),
    keeping what it received."""

    def __init__(self, port: int, default: int = 200) -> None:
        self.port = port
        self.default = default
        self.statuses: list[int] = []
        self.received: list[tuple[dict[str, str], bytes]] = []
        self._runner: web.AppRunner | None = None

    async def _hook(self, request: web.Request) -> web.Response:
        self.received.append((dict(request.headers), await request.read()))
        return web.Response(status=self.statuses.pop(0) if self.statuses else self.default)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def events(self) -> list[dict[str, Any]]:
        """The bodies received, decoded, with the status each was answered."""
        return [json.loads(body) for _, body in self.received]
