"""Server-Sent Events framing (no I/O): an encoder and an incremental parser.

The parser follows the WHATWG EventSource "interpreting an event stream" rules: lines end with
CRLF, LF or CR; a line starting with ``:`` is a comment; ``field: value`` drops one space after
the colon; ``data`` lines are joined with LF; a blank line dispatches the event, unless no
``data`` line was seen (then nothing is dispatched); a leading UTF-8 BOM is ignored; unknown
fields, ``id`` and ``retry`` are read and ignored. Two deliberate differences, for a relay:

- Every event keeps ``raw``, the exact bytes it was read from — any comments or data-less blocks
  before it, its lines and its terminating blank line — so the concatenated ``raw`` of all
  events is the input, byte for byte, and an event can be forwarded without re-encoding. (So an
  event whose blank line ends in CR at the very end of a chunk waits for the next byte: it may
  be the LF of a CRLF. ``flush()`` releases it at the end of the stream.)
- ``flush()`` at the end of the stream dispatches a last event that lacks its blank line
  (the standard discards it; upstreams that omit the final blank line exist).
"""

from __future__ import annotations

import re
from typing import Final

import msgspec

__all__ = ["SSEEvent", "SSEFormatError", "SSEParser", "encode_event"]

_LINE_END: Final = re.compile(rb"\r\n?|\n")
_BOM: Final = b"\xef\xbb\xbf"


class SSEFormatError(ValueError):
    """A stream broke a limit given to the parser (an event larger than ``max_event_size``)."""


class SSEEvent(msgspec.Struct, frozen=True, gc=False):
    event: str | None  # the ``event`` field; None means the default type, "message"
    data: bytes  # ``data`` lines joined with LF
    raw: bytes  # the exact bytes of the event, including its terminating blank line

    @property
    def is_done(self) -> bool:
        """The OpenAI stream terminator ``data: [DONE]``."""
        return self.data == b"[DONE]"


def encode_event(data: bytes, event: str | None = None) -> bytes:
    """One SSE event: an optional ``event:`` line, one ``data:`` line per line of ``data`` (split
    at CRLF, LF or CR, which the format cannot carry inside a line) and a blank line."""
    if b"\n" in data or b"\r" in data:
        body = b"".join(b"data: " + line + b"\n" for line in _LINE_END.split(data))
    else:
        body = b"data: " + data + b"\n"
    if event is None:
        return body + b"\n"
    if "\n" in event or "\r" in event:
        raise ValueError("an SSE event name cannot contain a line break")
    return b"event: " + event.encode() + b"\n" + body + b"\n"


class SSEParser:
    """Feed it chunks as they arrive; it returns the events completed so far."""

    __slots__ = ("_buf", "_data", "_event", "_max", "_pending", "_pos", "_skip_lf", "_started")

    def __init__(self, max_event_size: int | None = None) -> None:
        self._buf = bytearray()  # raw bytes of the event being read, from its first byte
        self._pos = 0  # where the next unread line starts in _buf
        self._data: list[bytes] | None = None  # data lines of the event; None: no data line yet
        self._event: bytes | None = None  # the event field of the event
        self._skip_lf = False  # the last chunk ended in CR: a LF right after it is no new line
        self._pending = False  # that CR ended an event, dispatched once the next byte is seen
        self._started = False  # a first line was read (a BOM may only precede it)
        self._max = max_event_size

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if not self._buf and chunk.endswith(b"\n\n"):
            simple = self._feed_simple(chunk)
            if simple is not None:
                return simple
        buf = self._buf
        buf += chunk
        pos = self._pos
        events: list[SSEEvent] = []
        if self._skip_lf:  # the previous chunk ended in CR: a LF now is part of that line end
            if pos == len(buf):
                return events
            self._skip_lf = False
            if buf[pos] == 0x0A:
                pos += 1
            if self._pending:  # the CR closed an event: it is complete now
                self._pending = False
                events.append(self._dispatch(buf, pos))
                del buf[:pos]
                pos = 0
        size = len(buf)
        while True:
            match = _LINE_END.search(buf, pos)
            if match is None:
                break
            start, end = match.span()
            cr_at_end = end == size and end - start == 1 and buf[start] == 0x0D
            if start > pos:
                self._line(bytes(buf[pos:start]))
                pos = end
                self._skip_lf = cr_at_end
                continue
            pos = end
            self._started = True
            if self._data is None:  # a blank line after no data line dispatches nothing
                self._event = None
            elif cr_at_end:  # wait for the next byte: a LF would belong to this event
                self._skip_lf = self._pending = True
            else:
                events.append(self._dispatch(buf, pos))
                del buf[:pos]
                size = len(buf)
                pos = 0
        self._pos = pos
        if self._max is not None and len(buf) > self._max:
            raise SSEFormatError(f"an SSE event exceeded {self._max} bytes")
        return events

    def _feed_simple(self, chunk: bytes) -> list[SSEEvent] | None:
        """The common case, fast: nothing pending and a read of whole one-line ``data:`` events
        with LF line ends (what OpenAI-compatible servers send). None: use the general path."""
        if self._skip_lf or self._data is not None or self._event is not None or b"\r" in chunk:
            return None
        if not self._started and chunk.startswith(_BOM):
            return None
        parts = chunk.split(b"\n\n")
        parts.pop()  # the empty tail after the final blank line
        events: list[SSEEvent] = []
        for part in parts:
            if not part.startswith(b"data:") or b"\n" in part:
                return None
            data = part[6:] if part[5:6] == b" " else part[5:]
            events.append(SSEEvent(event=None, data=data, raw=part + b"\n\n"))
        self._started = True
        return events

    def flush(self) -> list[SSEEvent]:
        """End of stream: dispatch a last event still waiting, or one that lacks its terminating
        blank line. Bytes after the last event that make no event (comments) are dropped."""
        buf = self._buf
        if self._pos < len(buf):
            self._line(bytes(buf[self._pos :]))
        events = [self._dispatch(buf, len(buf))] if self._data is not None else []
        self._buf = bytearray()
        self._pos = 0
        self._data = None
        self._event = None
        self._skip_lf = self._pending = False
        return events

    def _line(self, line: bytes) -> None:
        if not self._started:
            self._started = True
            if line.startswith(_BOM):
                line = line[3:]
                if not line:
                    return
        if line[0] == 0x3A:  # ":" comment
            return
        name, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            if self._data is None:
                self._data = [value]
            else:
                self._data.append(value)
        elif name == b"event":
            self._event = value
        # "id", "retry" and unknown fields are read and ignored

    def _dispatch(self, buf: bytearray, end: int) -> SSEEvent:
        data = self._data or [b""]
        kind = self._event
        self._data = None
        self._event = None
        return SSEEvent(
            event=kind.decode("utf-8", "replace") if kind else None,
            data=data[0] if len(data) == 1 else b"\n".join(data),
            raw=bytes(buf[:end]),
        )
