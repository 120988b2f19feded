"""SSE framing: encoder/parser round trips over arbitrary chunking, and the WHATWG edge cases."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridgate.protocol.sse import SSEEvent, SSEFormatError, SSEParser, encode_event


def parse(stream: bytes, cuts: list[int] | None = None) -> list[SSEEvent]:
    parser = SSEParser()
    events: list[SSEEvent] = []
    start = 0
    for cut in sorted(cuts or []):
        events += parser.feed(stream[start:cut])
        start = cut
    events += parser.feed(stream[start:])
    events += parser.flush()
    return events


def one_byte_at_a_time(stream: bytes) -> list[SSEEvent]:
    return parse(stream, list(range(len(stream) + 1)))


# data without CR (the format cannot carry one inside a line); any bytes otherwise
data_bytes = st.binary(max_size=60).map(lambda b: b.replace(b"\r", b""))
event_names = st.none() | st.text(
    alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=["Cs"]),
    min_size=1,
    max_size=10,
)
line_ends = st.sampled_from([b"\n", b"\r\n", b"\r"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(data_bytes, event_names), max_size=8), st.data())
def test_round_trip_at_random_chunk_boundaries(
    items: list[tuple[bytes, str | None]], data: st.DataObject
) -> None:
    stream = b"".join(encode_event(payload, name) for payload, name in items)
    cuts = data.draw(st.lists(st.integers(min_value=0, max_value=len(stream)), max_size=12))
    events = parse(stream, cuts)
    assert [(e.data, e.event) for e in events] == items
    assert b"".join(e.raw for e in events) == stream
    for event, (payload, name) in zip(events, items, strict=True):
        assert event.raw == encode_event(payload, name)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.lists(data_bytes.map(lambda b: b.replace(b"\n", b"")), min_size=1, max_size=3),
            st.booleans(),  # a comment line before the data
        ),
        min_size=1,
        max_size=6,
    ),
    line_ends,
    st.data(),
)
def test_any_line_ending_at_random_chunk_boundaries(
    items: list[tuple[list[bytes], bool]], eol: bytes, data: st.DataObject
) -> None:
    blocks = []
    for lines, comment in items:
        block = b": keep-alive" + eol if comment else b""
        block += b"".join(b"data:" + line + eol for line in lines) + eol
        blocks.append(block)
    stream = b"".join(blocks)
    cuts = data.draw(st.lists(st.integers(min_value=0, max_value=len(stream)), max_size=12))
    events = parse(stream, cuts)
    expected = [
        b"\n".join(line[1:] if line[:1] == b" " else line for line in lines) for lines, _ in items
    ]
    assert [e.data for e in events] == expected
    assert [e.raw for e in events] == blocks
    assert b"".join(e.raw for e in events) == stream


def test_openai_stream() -> None:
    stream = b'data: {"a":1}\n\ndata: {"a":2}\n\ndata: [DONE]\n\n'
    events = parse(stream)
    assert [e.data for e in events] == [b'{"a":1}', b'{"a":2}', b"[DONE]"]
    assert [e.is_done for e in events] == [False, False, True]
    assert all(e.event is None for e in events)
    assert [e.raw for e in events] == [
        b'data: {"a":1}\n\n',
        b'data: {"a":2}\n\n',
        b"data: [DONE]\n\n",
    ]


def test_anthropic_style_named_events_with_crlf() -> None:
    stream = (
        b'event: message_start\r\ndata: {"type":"message_start"}\r\n\r\n'
        b"event: ping\r\ndata: {}\r\n\r\n"
    )
    for events in (parse(stream), one_byte_at_a_time(stream)):
        assert [(e.event, e.data) for e in events] == [
            ("message_start", b'{"type":"message_start"}'),
            ("ping", b"{}"),
        ]
        assert b"".join(e.raw for e in events) == stream


def test_cr_only_line_endings() -> None:
    stream = b"data: a\rdata: b\r\rdata: c\r\r"
    for events in (parse(stream), one_byte_at_a_time(stream)):
        assert [e.data for e in events] == [b"a\nb", b"c"]
        assert b"".join(e.raw for e in events) == stream


def test_crlf_split_between_cr_and_lf_keeps_raw_whole() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: x\r\n\r") == []  # the next byte may be the LF of this event
    events = parser.feed(b"\ndata: y\r\n\r\n")
    assert [e.raw for e in events] == [b"data: x\r\n\r\n", b"data: y\r\n\r\n"]


def test_comments_are_skipped_but_do_not_break_events() -> None:
    stream = b": hello\n\ndata: a\n: inside\ndata: b\n\n:\n\n"
    events = parse(stream)
    assert [e.data for e in events] == [b"a\nb"]
    assert events[0].raw == b": hello\n\ndata: a\n: inside\ndata: b\n\n"


def test_multiline_data_and_space_rules() -> None:
    events = parse(b"data:no space\ndata:  two spaces\ndata\ndata:\n\n")
    assert events[0].data == b"no space\n two spaces\n\n"


def test_empty_data_is_an_event_and_no_data_is_not() -> None:
    assert [e.data for e in parse(b"data:\n\n")] == [b""]
    assert parse(b"event: x\n\n") == []
    # an event field without data does not leak into the next event
    assert [(e.event, e.data) for e in parse(b"event: x\n\ndata: y\n\n")] == [(None, b"y")]


def test_other_fields_are_ignored() -> None:
    events = parse(b"id: 7\nretry: 100\nfoo: bar\nData: no\ndata: yes\n\n")
    assert [(e.event, e.data) for e in events] == [(None, b"yes")]


def test_event_name_field_rules() -> None:
    events = parse(b"event:\ndata: a\n\nevent: b\nevent: c\ndata: d\n\n")
    assert [(e.event, e.data) for e in events] == [(None, b"a"), ("c", b"d")]


def test_bom_at_start_is_ignored() -> None:
    stream = b"\xef\xbb\xbfdata: a\n\n"
    for events in (parse(stream), one_byte_at_a_time(stream)):
        assert [e.data for e in events] == [b"a"]
        assert events[0].raw == stream


def test_flush_dispatches_an_unterminated_event() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\n\ndata: b") == [SSEEvent(None, b"a", b"data: a\n\n")]
    assert parser.flush() == [SSEEvent(None, b"b", b"data: b")]
    assert parser.flush() == []
    parser = SSEParser()
    assert parser.feed(b"data: c\n") == []
    assert parser.flush() == [SSEEvent(None, b"c", b"data: c\n")]
    parser = SSEParser()
    parser.feed(b": only a comment\n")
    assert parser.flush() == []


def test_parser_is_reusable_after_flush() -> None:
    parser = SSEParser()
    parser.feed(b"data: a")
    parser.flush()
    assert [e.data for e in parser.feed(b"data: b\n\n")] == [b"b"]


def test_max_event_size() -> None:
    parser = SSEParser(max_event_size=16)
    assert [e.data for e in parser.feed(b"data: 0123456789\n\n")] == [b"0123456789"]
    with pytest.raises(SSEFormatError):
        parser.feed(b"data: " + b"x" * 32)


def test_encode_event() -> None:
    assert encode_event(b'{"a":1}') == b'data: {"a":1}\n\n'
    assert encode_event(b"a\nb", "x") == b"event: x\ndata: a\ndata: b\n\n"
    assert encode_event(b"a\r\nb\rc") == b"data: a\ndata: b\ndata: c\n\n"
    assert encode_event(b"") == b"data: \n\n"
    assert encode_event(b" lead") == b"data:  lead\n\n"
    assert [e.data for e in parse(encode_event(b" lead"))] == [b" lead"]
    with pytest.raises(ValueError, match=re.escape("line break")):
        encode_event(b"x", "a\nb")


@given(
    st.lists(
        st.binary(min_size=0, max_size=40).filter(lambda b: b"\n" not in b and b"\r" not in b),
        min_size=1,
        max_size=12,
    ),
    st.booleans(),
)
def test_the_fast_path_agrees_with_the_general_parser(payloads: list[bytes], spaced: bool) -> None:
    """A read of whole one-line data events takes the fast path; fed byte by byte, the same
    bytes take the general path. Both give the same events, raw bytes included."""
    sep = b"data: " if spaced else b"data:"
    body = b"".join(sep + p + b"\n\n" for p in payloads)
    fast = SSEParser().feed(body)
    general = SSEParser()
    slow = [e for i in range(len(body)) for e in general.feed(body[i : i + 1])]
    assert fast == slow
    assert b"".join(e.raw for e in fast) == body
