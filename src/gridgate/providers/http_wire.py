"""What every HTTP wire's adapter does alike: POST the mapped request to one path of the
supplier's base URL, read a whole answer or open a stream for ``relay``, and translate a non-200
answer with the wire's own reading of its error body. An adapter is this plus its pure ``map_*``
functions."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Protocol

import aiohttp

from gridgate.errors import SupplierFailed, UpstreamRejected
from gridgate.providers.base import Chunk, UpstreamCall
from gridgate.providers.failures import translate_errors
from gridgate.providers.headers import HeaderBuilder, SupplierHeaders
from gridgate.providers.relay import Translate, relay
from gridgate.settings import UpstreamSettings


class Reject(Protocol):
    """The failure a non-200 answer means, read from its body (the supplier's secret redacted)."""

    def __call__(
        self, status: int, body: bytes, *, secret: str | None
    ) -> SupplierFailed | UpstreamRejected: ...


class HttpWire:
    __slots__ = (
        "_connect",
        "_headers",
        "_map_request",
        "_path",
        "_reject",
        "_session",
        "_settings",
        "_whole",
    )

    def __init__(
        self,
        session: aiohttp.ClientSession,
        settings: UpstreamSettings,
        environ: Mapping[str, str] | None,
        *,
        path: str,
        headers: HeaderBuilder,
        map_request: Callable[[UpstreamCall], bytes],
        reject: Reject,
    ) -> None:
        self._session = session
        self._settings = settings
        self._path = path
        self._headers = SupplierHeaders(headers, os.environ if environ is None else environ)
        self._map_request = map_request
        self._reject = reject
        # a stream's own timeouts are the relay's (first byte, idle); a whole answer's total
        # is aiohttp's, body read included: one timer per call, no asyncio.timeout around it
        self._connect = aiohttp.ClientTimeout(
            total=None, sock_connect=settings.connect_timeout_seconds
        )
        self._whole = aiohttp.ClientTimeout(
            total=settings.total_timeout_seconds, sock_connect=settings.connect_timeout_seconds
        )

    async def post(self, call: UpstreamCall) -> bytes:
        """The body of a whole answer; a non-200 answer raises the wire's failure."""
        url = call.supplier.base_url + self._path
        data = self._map_request(call)
        with translate_errors():
            async with self._session.post(
                url,
                data=data,
                headers=self._headers.get(call.supplier, stream=False),
                timeout=self._whole,
            ) as response:
                body = await response.read()
                status = response.status
        if status != 200:
            raise self._reject(status, body, secret=self._headers.secret(call.supplier))
        return body

    def stream(
        self,
        call: UpstreamCall,
        *,
        translate: Translate,
        finished: Callable[[list[Chunk]], bool],
    ) -> AsyncIterator[list[Chunk]]:
        """The streamed answer as ``relay`` gives it: batches of chunks, one per read."""
        return relay(
            lambda: self._open(call),
            first_byte_timeout=self._settings.first_byte_timeout_seconds,
            idle_timeout=self._settings.idle_timeout_seconds,
            reject=lambda status, body: self._reject(
                status, body, secret=self._headers.secret(call.supplier)
            ),
            translate=translate,
            finished=finished,
        )

    async def _open(self, call: UpstreamCall) -> aiohttp.ClientResponse:
        """Send the streamed request: nothing is sent when the request is untranslatable."""
        url = call.supplier.base_url + self._path
        data = self._map_request(call)
        headers = self._headers.get(call.supplier, stream=True)
        with translate_errors():
            async with asyncio.timeout(self._settings.first_byte_timeout_seconds):
                return await self._session.post(
                    url, data=data, headers=headers, timeout=self._connect
                )
