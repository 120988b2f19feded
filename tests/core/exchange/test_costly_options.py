"""Options an offer's token price does not cover are refused, naming them; a request to store
the completion goes only to a supplier that keeps data."""

from __future__ import annotations

import json

import pytest

from gridgate.core.catalog.catalog import Catalog
from gridgate.core.exchange.costly_options import keeping_data, refuse_unpriced
from gridgate.errors import BadRequest, NoQualifyingOffer
from gridgate.protocol.openai_chat import ChatRequest, decode_chat_request
from gridgate.storage.records import SupplierRecord
from tests.core.exchange.test_routing import PRIME, offer


def chat(**fields: object) -> ChatRequest:
    body = {"model": "text-prime", "messages": [{"role": "user", "content": "hi"}], **fields}
    return decode_chat_request(json.dumps(body).encode())


@pytest.mark.parametrize("tier", ["flex", "scale", "priority"])
def test_a_tier_no_offer_prices_is_refused_naming_it(tier: str) -> None:
    with pytest.raises(BadRequest) as caught:
        refuse_unpriced(chat(service_tier=tier))
    assert caught.value.param == "service_tier" and tier in caught.value.message


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"service_tier": "auto"},
        {"service_tier": "default"},
        {"service_tier": None},
        {"web_search_options": None},
    ],
)
def test_the_standard_tier_and_nulls_pass(fields: dict[str, object]) -> None:
    refuse_unpriced(chat(**fields))


@pytest.mark.parametrize("options", [{}, {"search_context_size": "low"}])
def test_web_search_is_refused_naming_it(options: dict[str, object]) -> None:
    with pytest.raises(BadRequest) as caught:
        refuse_unpriced(chat(web_search_options=options))
    assert caught.value.param == "web_search_options"


def offers(*keeps: bool) -> Catalog:
    suppliers = [
        SupplierRecord(
            name=name, wire="openai", base_url=f"http://{name}.invalid/v1", zero_retention=not k
        )
        for name, k in zip("abc", keeps, strict=False)
    ]
    records = [offer(s.name, usd_in=10, usd_out=40) for s in suppliers]
    return Catalog.build([PRIME], suppliers, records)


def test_store_true_goes_only_to_suppliers_that_keep_data() -> None:
    catalog = offers(False, True, False)
    every = catalog.offers_for("text-prime")
    kept = keeping_data(chat(store=True), PRIME, every)
    assert [o.supplier.name for o in kept] == ["b"]
    for fields in ({}, {"store": False}, {"store": None}):
        assert keeping_data(chat(**fields), PRIME, every) == every


def test_store_true_with_only_zero_retention_suppliers_is_refused_naming_it() -> None:
    every = offers(False, False).offers_for("text-prime")
    with pytest.raises(NoQualifyingOffer) as caught:
        keeping_data(chat(store=True), PRIME, every)
    assert caught.value.param == "store"
    assert keeping_data(chat(store=True), PRIME, ()) == ()  # no offer at all: routing says so
