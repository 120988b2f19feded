"""The Responses-wire adapter: ``complete()`` and ``stream()`` against ``{base_url}/responses``.
Errors come in OpenAI's envelope, so an error answer is translated as on the OpenAI wire."""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import AsyncIterator, Mapping

import aiohttp

from gridgate.errors import SupplierFailed
from gridgate.protocol.sse import SSEEvent
from gridgate.providers.base import Chunk, Completion, UpstreamCall
from gridgate.providers.failures import translate_errors
from gridgate.providers.headers import SupplierHeaders
from gridgate.providers.openai import upstream_error
from gridgate.providers.openai_responses.answer import map_response
from gridgate.providers.openai_responses.request import map_request
from gridgate.providers.openai_responses.stream import StreamTranslator
from gridgate.providers.relay import relay
from gridgate.settings import UpstreamSettings


def _headers(accept: str, secret: str | None) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "Accept": accept}
    if secret:
        headers["Authorization"] = f"Bearer {secret}"
    return headers


class OpenAIResponsesAdapter:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        settings: UpstreamSettings,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._session = session
        self._settings = settings
        self._headers = SupplierHeaders(_headers, os.environ if environ is None else environ)
        self._connect = aiohttp.ClientTimeout(
            total=None, sock_connect=settings.connect_timeout_seconds
        )

    async def complete(self, call: UpstreamCall) -> Completion:
        url = call.supplier.base_url + "/responses"
        data = map_request(call)
        with translate_errors():
            async with asyncio.timeout(self._settings.total_timeout_seconds):
                async with self._session.post(
                    url,
                    data=data,
                    headers=self._headers.get(call.supplier, stream=False),
                    timeout=self._connect,
                ) as response:
                    body = await response.read()
                    status = response.status
        if status != 200:
            raise upstream_error(status, body, secret=self._headers.secret(call.supplier))
        return map_response(body, prompt_estimate=call.prompt_estimate)

    def stream(self, call: UpstreamCall) -> AsyncIterator[list[Chunk]]:
        translator = StreamTranslator(prompt_estimate=call.prompt_estimate)
        return relay(
            lambda: self._open_stream(call),
            first_byte_timeout=self._settings.first_byte_timeout_seconds,
            idle_timeout=self._settings.idle_timeout_seconds,
            reject=lambda status, body: upstream_error(
                status, body, secret=self._headers.secret(call.supplier)
            ),
            translate=functools.partial(_batch, translator),
            finished=lambda _: translator.done,
        )

    async def _open_stream(self, call: UpstreamCall) -> aiohttp.ClientResponse:
        """Send the streamed request: nothing is sent when the request is untranslatable."""
        url = call.supplier.base_url + "/responses"
        data = map_request(call)
        headers = self._headers.get(call.supplier, stream=True)
        with translate_errors():
            async with asyncio.timeout(self._settings.first_byte_timeout_seconds):
                return await self._session.post(
                    url, data=data, headers=headers, timeout=self._connect
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
