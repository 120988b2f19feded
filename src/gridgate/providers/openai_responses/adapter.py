"""The Responses-wire adapter: ``complete()`` and ``stream()`` against ``{base_url}/responses``.
Errors come in OpenAI's envelope, so an error answer is translated as on the OpenAI wire."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Mapping

import aiohttp

from gridgate.errors import SupplierFailed
from gridgate.protocol.sse import SSEEvent
from gridgate.providers.base import Chunk, Completion, UpstreamCall
from gridgate.providers.http_wire import HttpWire
from gridgate.providers.openai import bearer_headers, upstream_error
from gridgate.providers.openai_responses.answer import map_response
from gridgate.providers.openai_responses.request import map_request
from gridgate.providers.openai_responses.stream import StreamTranslator
from gridgate.settings import UpstreamSettings


class OpenAIResponsesAdapter:
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
            path="/responses",
            headers=bearer_headers,
            map_request=map_request,
            reject=upstream_error,
        )

    async def complete(self, call: UpstreamCall) -> Completion:
        return map_response(await self._wire.post(call), prompt_estimate=call.prompt_estimate)

    def stream(self, call: UpstreamCall) -> AsyncIterator[list[Chunk]]:
        translator = StreamTranslator(prompt_estimate=call.prompt_estimate)
        return self._wire.stream(
            call,
            translate=functools.partial(_batch, translator),
            finished=lambda _: translator.done,
        )


def _batch(
    translator: StreamTranslator, events: list[SSEEvent]
) -> tuple[list[Chunk], SupplierFailed | None]:
    """The chunks of the events that arrived together, up to the response's end; and the
    failure that ended them early, if one did (what came before it is still relayed)."""
    batch: list[Chunk] = []
    for event in events:
        if not event.data or event.data == b"[DONE]":
            continue
        try:
            batch.extend(translator.feed(event))
        except SupplierFailed as exc:
            return batch, exc
        if translator.done:
            break
    return batch, None
