"""Reading an Anthropic conversation (pure): the normalised messages, the prefix boundaries
prompt caching counts on, the thinking signer and the cache itself."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gridgate.simulator.anthropic_request import read_messages_request
from gridgate.simulator.prompt import read_prompt
from gridgate.simulator.prompt_cache import Boundary, PromptCache
from gridgate.simulator.signature import ThinkingSigner
from gridgate.simulator.transcript import read_transcript

SIGNER = ThinkingSigner.for_identity("sim", "")
_text = st.text(min_size=1, max_size=30).filter(lambda t: t.strip() and t == t.rstrip())
_image = st.just({"type": "image", "source": {"type": "url", "url": "https://x/y.png"}})
_user = st.one_of(
    _text,
    st.lists(st.one_of(_text.map(lambda t: {"type": "text", "text": t}), _image), min_size=1),
)
_assistant = st.one_of(
    _text, st.lists(_text.map(lambda t: {"type": "text", "text": t}), min_size=1)
)
_system = st.one_of(
    st.just(None), _text, st.lists(_text.map(lambda t: {"type": "text", "text": t}), min_size=1)
)


@st.composite
def conversations(draw: st.DrawFn) -> dict[str, Any]:
    turns = draw(st.integers(1, 4))
    messages: list[dict[str, Any]] = []
    for _ in range(turns):
        messages.append({"role": "user", "content": draw(_user)})
        messages.append({"role": "assistant", "content": draw(_assistant)})
    if draw(st.booleans()):
        use = {
            "type": "tool_use",
            "id": "t1",
            "name": "f",
            "input": draw(st.dictionaries(_text, st.integers())),
        }
        result = {"type": "tool_result", "tool_use_id": "t1", "content": draw(_text)}
        messages += [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": [{"type": "text", "text": "Calling."}, use]},
            {"role": "user", "content": [result, {"type": "text", "text": "thanks"}]},
        ]
    body: dict[str, Any] = {"model": "m", "max_tokens": 5, "messages": messages}
    system = draw(_system)
    if system is not None:
        body["system"] = system
    return body


@settings(max_examples=150, deadline=None)
@given(body=conversations())
def test_the_last_boundary_counts_the_whole_prompt(body: dict[str, Any]) -> None:
    transcript = read_transcript(read_messages_request(body), SIGNER)
    tokens = [boundary.tokens for boundary in transcript.boundaries]
    assert tokens == sorted(tokens)
    assert tokens[-1] == read_prompt(transcript.messages).tokens
    assert len({boundary.digest for boundary in transcript.boundaries}) == len(tokens)


def test_normalised_messages() -> None:
    body = {
        "model": "m",
        "max_tokens": 5,
        "system": [{"type": "text", "text": "Be brief."}],
        "messages": [
            {"role": "user", "content": "Weather?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "Hm.", "signature": SIGNER.sign("Hm.")},
                    {"type": "tool_use", "id": "t1", "name": "f", "input": {"b": 1, "a": [2.5]}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t1",
                        "content": [{"type": "text", "text": "ok"}],
                    },
                    {"type": "text", "text": "Thanks."},
                ],
            },
        ],
    }
    transcript = read_transcript(read_messages_request(body), SIGNER)
    assert transcript.messages == [
        {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "t1",
                    "type": "function",
                    "function": {"name": "f", "arguments": '{"b":1,"a":[2.5]}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "t1", "content": [{"type": "text", "text": "ok"}]},
        {"role": "user", "content": [{"type": "text", "text": "Thanks."}]},
    ]


def test_signer() -> None:
    signature = SIGNER.sign("Some thought.")
    assert SIGNER.sign("Some thought.") == signature
    assert len(signature) == 64
    assert SIGNER.verify("Some thought.", signature)
    assert not SIGNER.verify("Some thought!", signature)
    assert not SIGNER.verify("Some thought.", signature[:-1])
    assert not ThinkingSigner.for_identity("other", "").verify("Some thought.", signature)
    assert not ThinkingSigner.for_identity("sim", "salt").verify("Some thought.", signature)


def test_cache_is_bounded() -> None:
    cache = PromptCache(capacity=2)

    def mark(name: bytes) -> list[Boundary]:
        return [Boundary(name, 10, "5m")]

    assert cache.use(mark(b"a")).written == 10
    assert cache.use(mark(b"b")).written == 10
    assert cache.use(mark(b"a")).read == 10  # used again: now the most recent
    assert cache.use(mark(b"c")).written == 10  # evicts b, the least recently used
    assert cache.use(mark(b"a")).read == 10
    assert cache.use(mark(b"b")).written == 10
    assert cache.use([Boundary(b"x", 10)]).written == 0  # no breakpoint: no cache
