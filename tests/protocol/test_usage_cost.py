"""``usage.cost`` written into a canonical answer: spliced into the body as it stands (every
other byte kept) when the top-level ``usage`` can be told apart, else decoded and encoded; the
answer always reads as before plus ``usage.cost``."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridgate.money import format_usd_fixed
from gridgate.protocol.usage_cost import event_with_cost, usage_end, with_cost

COST = "0.000123450"
USAGE = {"prompt_tokens": 20, "completion_tokens": 60, "total_tokens": 80}


def _body(**extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}],
        "usage": dict(USAGE),
        **extra,
    }


def _compact(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def test_the_cost_is_spliced_in_and_every_other_byte_is_kept() -> None:
    body = _compact(_body(system_fingerprint="fp"))
    out = with_cost(body, COST)
    assert out == body.replace(b'"total_tokens":80}', b'"total_tokens":80,"cost":"0.000123450"}')


def test_a_pretty_printed_body_keeps_its_layout() -> None:
    body = json.dumps(_body(), indent=2).encode()
    out = with_cost(body, COST)
    assert out.replace(b',"cost":"0.000123450"', b"") == body
    assert json.loads(out) == {**_body(), "usage": {**USAGE, "cost": COST}}


def test_an_empty_usage_gets_the_cost_alone() -> None:
    assert json.loads(with_cost(b'{"usage":{ }}', COST)) == {"usage": {"cost": COST}}


def test_the_top_level_usage_is_the_one_written_when_a_copy_of_it_is_nested() -> None:
    """A choice (or anything) carrying a copy of the usage: the splice cannot tell which
    occurrence is the top-level one, so the body is decoded; only the top level gets the cost."""
    document = _body(choices=[{"index": 0, "usage": dict(USAGE)}])
    out = json.loads(with_cost(_compact(document), COST))
    assert out["usage"] == {**USAGE, "cost": COST}
    assert out["choices"][0]["usage"] == USAGE


def test_usage_text_inside_a_string_is_not_mistaken_for_the_usage() -> None:
    document = _body()
    document["choices"][0]["message"]["content"] = json.dumps({"usage": USAGE})
    out = json.loads(with_cost(_compact(document), COST))
    assert out["usage"] == {**USAGE, "cost": COST}
    assert out["choices"][0]["message"]["content"] == json.dumps({"usage": USAGE})


def test_a_suppliers_own_cost_is_replaced() -> None:
    document = _body()
    document["usage"]["cost"] = 0.0042  # a router's own figure (a number, in its terms)
    out = json.loads(with_cost(_compact(document), COST))
    assert out["usage"] == {**USAGE, "cost": COST}


def test_a_usage_with_an_escaped_key_is_decoded_not_spliced() -> None:
    """``"co\\u0073t"`` is the key ``cost``: a splice would write it twice."""
    body = b'{"usage":{"prompt_tokens":1,"co\\u0073t":0.5}}'
    assert with_cost(body, COST) == b'{"usage":{"prompt_tokens":1,"cost":"0.000123450"}}'


def test_a_known_place_is_used_and_a_wrong_one_is_not() -> None:
    body = _compact(_body())
    at = usage_end(body, _compact(USAGE))
    assert body[at : at + 1] == b"}" and with_cost(body, COST, at) == with_cost(body, COST)
    assert with_cost(body, COST, at - 1) == with_cost(body, COST)  # not a brace: found again


def test_a_document_without_usage_is_left_as_it_is() -> None:
    body = b'{"id":"x","usage":null}'
    assert with_cost(body, COST) is body
    assert with_cost(b'{"id":"x"}', COST) == b'{"id":"x"}'


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    before=st.dictionaries(st.sampled_from(["id", "a", "choices", "z"]), _json),
    usage=st.dictionaries(st.sampled_from(["prompt_tokens", "x", "details"]), _json),
    copies=st.booleans(),
    indent=st.sampled_from([None, 1]),
)
def test_any_document_reads_as_before_with_the_cost_in_its_top_level_usage(
    before: dict[str, Any], usage: dict[str, Any], copies: bool, indent: int | None
) -> None:
    document: dict[str, Any] = {**before, "usage": usage}
    if copies:  # the same usage object elsewhere too, and its text in a string
        document["nested"] = {"usage": usage, "text": json.dumps(usage)}
    body = json.dumps(document, indent=indent).encode()
    out = json.loads(with_cost(body, COST))
    assert out == {**document, "usage": {**usage, "cost": COST}}


def test_an_event_keeps_its_framing_and_name() -> None:
    chunk = {"id": "c", "choices": [], "usage": USAGE}
    raw = b"data: " + _compact(chunk) + b"\n\n"
    out = event_with_cost(raw, COST)
    assert out == raw.replace(b'"total_tokens":80}', b'"total_tokens":80,"cost":"0.000123450"}')
    named = event_with_cost(b"event: chunk\r\ndata: " + _compact(chunk) + b"\r\n\r\n", COST)
    assert named.startswith(b"event: chunk\ndata: {")
    assert json.loads(named.split(b"data: ")[1])["usage"]["cost"] == COST


def test_an_event_split_over_data_lines_is_written_again_on_one() -> None:
    raw = b'data: {"choices":[],\ndata: "usage":{"prompt_tokens":1}}\n\n'
    assert event_with_cost(raw, COST) == (
        b'data: {"choices":[],\ndata: "usage":{"prompt_tokens":1,"cost":"0.000123450"}}\n\n'
    )


def test_what_is_not_a_usage_event_is_left_as_it_is() -> None:
    for raw in (b"data: [DONE]\n\n", b"data: {not json}\n\n", b'data: {"choices":[]}\n\n'):
        assert event_with_cost(raw, COST) == raw


def test_the_cost_has_every_nano_dollar() -> None:
    assert format_usd_fixed(123_450) == "0.000123450"
    assert format_usd_fixed(0) == "0.000000000"
    assert format_usd_fixed(12_000_000_001) == "12.000000001"
    assert format_usd_fixed(-5) == "-0.000000005"
