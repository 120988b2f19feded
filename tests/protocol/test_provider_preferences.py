"""The ``provider`` routing preferences on the wire: decoded into a typed struct on both surfaces,
invalid ones refused naming the field, carried to the canonical request, never sent upstream."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from gridgate.errors import BadRequest, GridgateError, ValidationFailed
from gridgate.protocol.anthropic.request import decode_messages_request
from gridgate.protocol.anthropic.to_chat import to_chat_request
from gridgate.protocol.openai_chat import UNSET, ChatRequest, decode_chat_request
from gridgate.protocol.provider_preferences import MaxPrice, ProviderPreferences
from gridgate.providers import anthropic, openai, openai_responses
from gridgate.providers.base import UpstreamCall
from gridgate.storage.records import OfferRecord, SupplierRecord

FULL = {
    "order": ["sim-b", "Sim-A"],
    "only": ["sim-a", "sim-b"],
    "ignore": ["sim-c"],
    "allow_fallbacks": False,
    "sort": "latency",
    "max_price": {"prompt": 1.25, "completion": "4"},
    "require_parameters": True,
    "data_collection": "deny",
    "zdr": True,
}
FULL_STRUCT = ProviderPreferences(
    order=["sim-b", "Sim-A"],
    only=["sim-a", "sim-b"],
    ignore=["sim-c"],
    allow_fallbacks=False,
    sort="latency",
    max_price=MaxPrice(prompt=Decimal("1.25"), completion=Decimal("4")),
    require_parameters=True,
    data_collection="deny",
    zdr=True,
)


def chat(provider: Any, **fields: Any) -> ChatRequest:
    body = {"model": "text-prime", "messages": [{"role": "user", "content": "hi"}], **fields}
    body["provider"] = provider
    return decode_chat_request(json.dumps(body).encode())


def messages(provider: Any, **fields: Any) -> ChatRequest:
    body = {
        "model": "text-prime",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": "hi"}],
        **fields,
    }
    body["provider"] = provider
    return to_chat_request(decode_messages_request(json.dumps(body).encode()))


SURFACES: dict[str, Callable[..., ChatRequest]] = {"chat": chat, "messages": messages}
surfaces = pytest.mark.parametrize("decode", SURFACES.values(), ids=SURFACES.keys())


# -- valid -----------------------------------------------------------------------------------------
@surfaces
def test_every_field_decodes_into_the_typed_struct(decode: Callable[..., ChatRequest]) -> None:
    assert decode(FULL).provider == FULL_STRUCT


def test_absent_provider_stays_unset() -> None:
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    raw = json.dumps(body).encode()
    assert decode_chat_request(raw).provider is UNSET
    assert to_chat_request(decode_messages_request(raw)).provider is UNSET


@surfaces
def test_null_fields_and_unknown_fields_are_accepted(decode: Callable[..., ChatRequest]) -> None:
    nulls = dict.fromkeys(FULL)
    assert decode({**nulls, "quantizations": ["fp8"], "max_price": {"request": 1}}).provider == (
        ProviderPreferences(
            order=None,
            only=None,
            ignore=None,
            allow_fallbacks=None,
            sort=None,
            max_price=MaxPrice(),
            require_parameters=None,
            data_collection=None,
            zdr=None,
        )
    )


@pytest.mark.parametrize("sort", ["price", "latency", "throughput"])
def test_every_sort(sort: str) -> None:
    assert chat({"sort": sort}).provider == ProviderPreferences(sort=sort)  # type: ignore[arg-type]


def test_prices_keep_the_decimal_the_caller_wrote() -> None:
    prefs = chat({"max_price": {"prompt": 0.1, "completion": "0.0000000015"}}).provider
    assert isinstance(prefs, ProviderPreferences)
    assert prefs.max_price == MaxPrice(prompt=Decimal("0.1"), completion=Decimal("0.0000000015"))


def test_route_fallback_is_accepted_beside_provider() -> None:
    request = chat({"allow_fallbacks": True}, route="fallback")
    assert request.route == "fallback"


# -- invalid: 422 naming the field -----------------------------------------------------------------
V, B = ValidationFailed, BadRequest
INVALID: list[tuple[str, Any, type[GridgateError], str]] = [
    ("sort unknown", {"sort": "fastest"}, V, "provider.sort"),
    ("sort number", {"sort": 1}, V, "provider.sort"),
    ("data_collection unknown", {"data_collection": "maybe"}, V, "provider.data_collection"),
    ("order not a list", {"order": "sim-a"}, V, "provider.order"),
    ("order item number", {"order": ["sim-a", 2]}, V, "provider.order[1]"),
    ("order item empty", {"order": ["sim-a", ""]}, V, "provider.order[1]"),
    ("order item blank", {"order": ["  "]}, V, "provider.order[0]"),
    ("order item too long", {"order": ["x" * 257]}, V, "provider.order[0]"),
    ("only item empty", {"only": [""]}, V, "provider.only[0]"),
    ("only item null", {"only": [None]}, V, "provider.only[0]"),
    ("ignore item empty", {"ignore": ["a", "b", ""]}, V, "provider.ignore[2]"),
    ("allow_fallbacks string", {"allow_fallbacks": "no"}, V, "provider.allow_fallbacks"),
    ("require_parameters number", {"require_parameters": 1}, V, "provider.require_parameters"),
    ("zdr string", {"zdr": "yes"}, V, "provider.zdr"),
    ("max_price number", {"max_price": 5}, V, "provider.max_price"),
    ("max_price prompt negative", {"max_price": {"prompt": -1}}, V, "provider.max_price.prompt"),
    (
        "max_price completion negative",
        {"max_price": {"completion": "-0.01"}},
        V,
        "provider.max_price.completion",
    ),
    ("max_price prompt bool", {"max_price": {"prompt": True}}, V, "provider.max_price.prompt"),
    ("max_price prompt text", {"max_price": {"prompt": "cheap"}}, V, "provider.max_price.prompt"),
    ("max_price prompt NaN", {"max_price": {"prompt": "NaN"}}, V, "provider.max_price.prompt"),
    (
        "max_price completion infinite",
        {"max_price": {"completion": "-Infinity"}},
        V,
        "provider.max_price.completion",
    ),
    # a wrong JSON type at the top level is 400, like every other top-level field
    ("provider string", "sim-a", B, "provider"),
    ("provider list", ["sim-a"], B, "provider"),
    ("provider null", None, B, "provider"),
]


@surfaces
@pytest.mark.parametrize(
    ("provider", "error", "param"),
    [case[1:] for case in INVALID],
    ids=[case[0] for case in INVALID],
)
def test_invalid_preferences_are_refused_naming_the_field(
    decode: Callable[..., ChatRequest],
    provider: Any,
    error: type[GridgateError],
    param: str,
) -> None:
    with pytest.raises(GridgateError) as caught:
        decode(provider)
    assert type(caught.value) is error
    assert caught.value.param == param
    assert caught.value.message.startswith(f"{param}: ")


def test_invalid_messages_name_the_problem() -> None:
    cases = {
        "provider.sort: must be one of 'price', 'latency', 'throughput' (got 'fastest')": {
            "sort": "fastest"
        },
        "provider.order[1]: must be a supplier name (got an empty string)": {"order": ["a", ""]},
        "provider.max_price.prompt: must be at least 0 USD per 1M tokens (got -1)": {
            "max_price": {"prompt": -1}
        },
        "provider.max_price.completion: must be a finite number of USD per 1M tokens (got NaN)": {
            "max_price": {"completion": "NaN"}
        },
        "provider.max_price.prompt: expected a number or null, got a boolean": {
            "max_price": {"prompt": False}
        },
        "provider.allow_fallbacks: expected a boolean or null, got a string": {
            "allow_fallbacks": "false"
        },
    }
    for message, provider in cases.items():
        with pytest.raises(ValidationFailed) as caught:
            chat(provider)
        assert caught.value.message == message
        assert caught.value.status == 422


# -- never sent upstream ---------------------------------------------------------------------------
def call(request: ChatRequest, wire: str) -> UpstreamCall:
    supplier = SupplierRecord(name="s", wire=wire, base_url="http://127.0.0.1:1/v1")  # type: ignore[arg-type]
    offer = OfferRecord(
        id="s/text-prime/up",
        supplier="s",
        instrument="text-prime",
        model="up",
        input_per_m=1,
        output_per_m=1,
        quality=40,
        context=200_000,
        max_output=64_000,
    )
    return UpstreamCall(
        supplier=supplier,
        offer=offer,
        request=request,
        max_output_tokens=16,
        stream=False,
        prompt_estimate=1,
    )


@surfaces
@pytest.mark.parametrize(
    ("wire", "map_request"),
    [
        ("openai", openai.map_request),
        ("anthropic", anthropic.map_request),
        ("openai-responses", openai_responses.map_request),
    ],
    ids=["openai", "anthropic", "openai-responses"],
)
def test_the_upstream_never_sees_the_preferences(
    decode: Callable[..., ChatRequest], wire: str, map_request: Callable[[UpstreamCall], bytes]
) -> None:
    request = decode(FULL)
    sent = json.loads(map_request(call(request, wire)))
    assert "provider" not in sent
    assert "route" not in sent
    assert sent["model"] == "up"
