"""A request's body, decoded from its ``Content-Encoding``, never larger than the limit.

aiohttp's own decompression is off (``auto_decompress=False``): it answered a body that does not
decode with a 500 and refused some encodings as plain text. Here ``identity`` passes as it is,
``gzip`` (``x-gzip``) and ``deflate`` (zlib, or raw deflate as some clients send it) are
decompressed in bounded steps — a decompressed body over ``server.max_body_bytes`` is 413 as soon
as it gets there, so a small "zip bomb" never grows in memory — a body that does not decode is
400, and any other encoding (``br``, ``zstd``, a list of several) is 415.
"""

from __future__ import annotations

import zlib
from typing import Final

from aiohttp import web

from gridgate.echo import capped
from gridgate.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

DECODED: Final = ("gzip", "x-gzip", "deflate")
_STEP: Final = 64 * 1024


def content_encoding(request: web.BaseRequest) -> str:
    """The body's encoding, lower-cased; ``identity`` when none is named."""
    return request.headers.get("Content-Encoding", "").strip().lower() or "identity"


def refuse_encoded(request: web.BaseRequest) -> None:
    """For readers that take the body only as sent (forms): any encoding is 415."""
    encoding = content_encoding(request)
    if encoding != "identity":
        raise UnsupportedMediaType(_unsupported(encoding))


async def read_body(request: web.Request, limit: int) -> bytes:
    """The body as the client meant it, at most ``limit`` bytes once decoded."""
    encoding = content_encoding(request)
    if encoding == "identity":
        return await request.read()
    if encoding not in DECODED:
        raise UnsupportedMediaType(_unsupported(encoding))
    raw = await request.read()
    if encoding == "deflate":
        try:
            return inflate(raw, limit, zlib.MAX_WBITS)
        except BadRequest:
            return inflate(raw, limit, -zlib.MAX_WBITS)  # raw deflate, no zlib header
    return inflate(raw, limit, 16 + zlib.MAX_WBITS)


def inflate(raw: bytes, limit: int, wbits: int) -> bytes:
    """``raw`` decompressed, in steps of at most 64 KiB of output; 413 past ``limit``."""
    decompressor = zlib.decompressobj(wbits)
    parts: list[bytes] = []
    size = 0
    pending = raw
    try:
        while True:
            chunk = decompressor.decompress(pending, _STEP)
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(
                    f"request body too large once decompressed: at most {limit} bytes"
                )
            parts.append(chunk)
            pending = decompressor.unconsumed_tail
            if decompressor.eof or (not pending and not chunk):
                break
    except zlib.error:
        raise BadRequest(
            "request body does not decode as its Content-Encoding says", code="invalid_encoding"
        ) from None
    if not decompressor.eof or decompressor.unused_data:
        raise BadRequest(
            "request body does not decode as its Content-Encoding says (truncated or with "
            "trailing data)",
            code="invalid_encoding",
        )
    return b"".join(parts)


def _unsupported(encoding: str) -> str:
    return (
        f"Content-Encoding {capped(encoding, 40)!r} is not supported; send the body as is "
        "(identity), gzip or deflate"
    )
