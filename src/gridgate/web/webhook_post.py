"""The webhook deliverer's HTTP client (``core/webhooks/delivery.py:WebhookPost``) on aiohttp:
one POST, no redirects followed (a 3xx is not a delivery), the answer's body read and dropped
(at most 64 KiB). A failure is named by its kind only (``PostFailed``), never with the URL's
credentials or the receiver's body."""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp

from gridgate.core.webhooks.delivery import PostFailed

_MAX_READ = 64 * 1024


class AiohttpWebhookPost:
    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout_s: float
    ) -> int:
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        try:
            async with self._session.post(
                url, data=body, headers=dict(headers), timeout=timeout, allow_redirects=False
            ) as answer:
                await answer.content.read(_MAX_READ)
                return answer.status
        except TimeoutError as exc:
            raise PostFailed("timed out") from exc
        except aiohttp.ClientConnectorError as exc:
            raise PostFailed(f"connection failed: {exc.os_error.strerror or 'refused'}") from exc
        except aiohttp.ClientError as exc:
            raise PostFailed(f"HTTP client error: {type(exc).__name__}") from exc
