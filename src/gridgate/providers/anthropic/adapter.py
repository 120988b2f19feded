"""The Anthropic-wire adapter: ``complete()`` and ``stream()`` against ``/messages``, and the
translation of an upstream's error answer."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Mapping

import aiohttp

from gridgate.errors import SupplierFailed, SupplierTimeout, UpstreamRejected
from gridgate.protocol.sse import SSEEvent
from gridgate.providers.anthropic.answer import map_response
from gridgate.providers.anthropic.request import map_request
from gridgate.providers.anthropic.stream import StreamTranslator
from gridgate.providers.anthropic.wire import ANTHROPIC_VERSION
from gridgate.providers.base import Chunk, Completion, UpstreamCall
from gridgate.providers.failures import error_message
from gridgate.providers.http_wire import HttpWire
from gridgate.settings import UpstreamSettings


def upstream_error(
    status: int, body: bytes, *, secret: str | None
) -> SupplierFailed | UpstreamRejected:
    """Translate a non-200 answer (``{"type":"error","error":{"type","message"}}``). The
    caller's fault — 400 invalid_request_error, 413 request_too_large, 422, and any other 4xx
    not listed below — is surfaced with the upstream's message (secret redacted, clipped).
    401/403 (the supplier's credentials), 402 (its billing), 404 (a model the supplier does not
    have: a configuration fault), 409, 429 and 5xx/529 are the supplier's; 408/504 its
    timeouts."""
    if 400 <= status < 500 and status not in (401, 402, 403, 404, 408, 409, 429):
        message = (
            error_message(body, secret) or f"the supplier rejected the request (HTTP {status})"
        )
        return UpstreamRejected(message, status=400 if status == 415 else status)
    if status in (408, 504):
        return SupplierTimeout(f"the supplier timed out (HTTP {status})")
    return SupplierFailed(f"the supplier failed (HTTP {status})")


# -- the adapter -----------------------------------------------------------------------------------
def _headers(accept: str, secret: str | None) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "Accept": accept,
        "anthropic-version": ANTHROPIC_VERSION,
    }
    if secret:
        headers["x-api-key"] = secret
    return headers


class AnthropicAdapter:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        settings: UpstreamSettings,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._wire = HttpWire(
            session,
            settings,
            environ,
            path="/messages",
            headers=_headers,
            map_request=map_request,
            reject=upstream_error,
        )

    async def complete(self, call: UpstreamCall) -> Completion:
        body = await self._wire.post(call)
        return map_response(body, request=call.request, prompt_estimate=call.prompt_estimate)

    def stream(self, call: UpstreamCall) -> AsyncIterator[list[Chunk]]:
        translator = StreamTranslator(request=call.request, prompt_estimate=call.prompt_estimate)
        return self._wire.stream(
            call,
            translate=functools.partial(_batch, translator),
            finished=lambda _: translator.done,
        )


def _batch(
    translator: StreamTranslator, events: list[SSEEvent]
) -> tuple[list[Chunk], SupplierFailed | None]:
    """The chunks of the events that arrived together, up to and including ``message_stop``;
    and the failure that ended them early, if one did (what came before it is still relayed)."""
    batch: list[Chunk] = []
    for event in events:
        if not event.data:
            continue
        try:
            batch.extend(translator.feed(event))
        except SupplierFailed as exc:
            return batch, exc
        if translator.done:
            break
    return batch, None
