"""Caller routing preferences (``provider``): every field, their combinations, the errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gridgate.core.catalog.catalog import Catalog
from gridgate.core.exchange.plan import Planner
from gridgate.core.exchange.preferences import DroppedFields, Figures, Preferences, no_figures
from gridgate.core.exchange.routing import Needs, rank
from gridgate.core.health.figures import OfferFigures
from gridgate.errors import NoCapacity, NoQualifyingOffer
from gridgate.money import usd_to_nanos
from gridgate.protocol.openai_chat import ChatRequest, decode_chat_request
from gridgate.providers import anthropic, openai
from gridgate.storage.records import (
    Capability,
    InstrumentRecord,
    OfferRecord,
    SupplierRecord,
    WireFormat,
)

PRIME = InstrumentRecord(
    id="text-prime",
    display_name="Text Prime",
    quality_floor=38,
    ttft_ceiling_ms=4620,
    throughput_floor_tps=40,
    context_floor=128_000,
    max_output_floor=30_000,
    context_length=196_608,
    max_input_tokens=120_000,
    max_completion_tokens=131_072,
)
DROPPED: dict[str, DroppedFields] = {
    "openai": openai.dropped_fields,
    "anthropic": anthropic.dropped_fields,
}
USER = [{"role": "user", "content": "hi"}]


def supplier(
    name: str, *, wire: WireFormat = "openai", zero_retention: bool = True
) -> SupplierRecord:
    return SupplierRecord(
        name=name, wire=wire, base_url=f"http://{name}.invalid/v1", zero_retention=zero_retention
    )


def offer(
    supplier: str,
    usd_in: str,
    usd_out: str,
    *,
    model: str = "m",
    caps: tuple[Capability, ...] = (),
) -> OfferRecord:
    return OfferRecord(
        id=f"{supplier}/text-prime/{model}",
        supplier=supplier,
        instrument="text-prime",
        model=model,
        input_per_m=usd_to_nanos(usd_in),
        output_per_m=usd_to_nanos(usd_out),
        quality=40,
        context=196_608,
        max_output=65_536,
        capabilities=caps,
    )


# a cheapest-first ladder: a < b < c < d (d keeps data; e speaks the Anthropic wire)
SUPPLIERS = [
    supplier("sim-a"),
    supplier("sim-b"),
    supplier("sim-c"),
    supplier("sim-d", zero_retention=False),
    supplier("sim-e", wire="anthropic"),
]
LADDER = [
    offer("sim-a", "1", "4"),
    offer("sim-b", "2", "8"),
    offer("sim-c", "3", "12"),
    offer("sim-d", "4", "16"),
]


def request(provider: Any = None, **fields: Any) -> ChatRequest:
    body: dict[str, Any] = {"model": "text-prime", "messages": USER, **fields}
    if provider is not None:
        body["provider"] = provider
    return decode_chat_request(json.dumps(body).encode())


def needs(*caps: Capability) -> Needs:
    return Needs(capabilities=frozenset(caps), prompt_tokens=100, max_output_tokens=None)


def route(
    provider: Any,
    offers: list[OfferRecord] = LADDER,
    *,
    figures: Figures = no_figures,
    dropped: dict[str, DroppedFields] = DROPPED,
    caps: tuple[Capability, ...] = (),
    **fields: Any,
) -> list[str]:
    """The offer ids in failover order for a request with ``provider`` preferences."""
    catalog = Catalog.build([PRIME], SUPPLIERS, offers)
    prefs = Preferences.of(request(provider, **fields), dropped)
    ranked = rank(PRIME, catalog.offers_for("text-prime"), needs(*caps), prefs, figures)
    return [o.offer.id for o in ranked]


def suppliers(provider: Any, offers: list[OfferRecord] = LADDER, **kw: Any) -> list[str]:
    return [offer_id.split("/")[0] for offer_id in route(provider, offers, **kw)]


def refused(provider: Any, offers: list[OfferRecord] = LADDER, **kw: Any) -> NoQualifyingOffer:
    with pytest.raises(NoQualifyingOffer) as caught:
        route(provider, offers, **kw)
    return caught.value


def figures_of(table: dict[str, tuple[float | None, float | None]]) -> Figures:
    """Fixed figures by supplier: (p50 TTFT ms, p50 tokens/s); a supplier not in the table
    has no figures at all."""

    def figures(offer_id: str) -> OfferFigures | None:
        measured = table.get(offer_id.split("/")[0])
        if measured is None:
            return None
        ttft, tps = measured
        return OfferFigures(
            offer_id=offer_id,
            samples=10,
            ttft_p50_ms=ttft,
            ttft_p90_ms=ttft,
            throughput_p50_tps=tps,
            throughput_p10_tps=tps,
            error_rate=0.0,
            timeout_rate=0.0,
            in_spec_fraction=1.0,
        )

    return figures


# -- no preferences: nothing changes, nothing is done -------------------------------------------
def test_without_preferences_there_is_nothing_to_apply() -> None:
    assert Preferences.of(request(), DROPPED) is None
    assert Preferences.of(request({}), DROPPED) is None
    assert Preferences.of(request(route="fallback"), DROPPED) is None


def test_preferences_stating_only_defaults_are_none() -> None:
    defaults = {
        "order": [],
        "only": [],
        "ignore": [],
        "allow_fallbacks": True,
        "sort": "price",
        "max_price": {},
        "require_parameters": False,
        "data_collection": "allow",
        "zdr": False,
    }
    assert Preferences.of(request(defaults), DROPPED) is None
    nulls = dict.fromkeys(defaults)
    assert Preferences.of(request(nulls), DROPPED) is None
    assert Preferences.of(request({"quantizations": ["fp8"]}), DROPPED) is None  # unknown field


def test_no_preferences_rank_cheapest_first() -> None:
    assert suppliers({}) == ["sim-a", "sim-b", "sim-c", "sim-d"]


def test_figures_are_not_consulted_unless_sorting_by_them() -> None:
    def figures(offer_id: str) -> OfferFigures | None:
        raise AssertionError("figures consulted")

    assert suppliers({}, figures=figures) == ["sim-a", "sim-b", "sim-c", "sim-d"]
    assert suppliers({"order": ["sim-c"]}, figures=figures)[0] == "sim-c"
    assert suppliers({"sort": "price"}, figures=figures)[0] == "sim-a"


# -- order ---------------------------------------------------------------------------------
def test_order_tries_the_named_suppliers_first_then_the_rest_by_price() -> None:
    assert suppliers({"order": ["sim-c"]}) == ["sim-c", "sim-a", "sim-b", "sim-d"]
    assert suppliers({"order": ["sim-d", "sim-b"]}) == ["sim-d", "sim-b", "sim-a", "sim-c"]


def test_order_matches_names_case_insensitively_and_ignores_unknown_and_repeated_names() -> None:
    assert suppliers({"order": ["nowhere", "SIM-C", " Sim-B ", "sim-c"]}) == [
        "sim-c",
        "sim-b",
        "sim-a",
        "sim-d",
    ]


def test_order_keeps_a_suppliers_offers_in_price_order() -> None:
    offers = [
        *LADDER,
        offer("sim-c", "0.5", "1", model="cheap"),
        offer("sim-c", "9", "20", model="z"),
    ]
    assert route({"order": ["sim-c"]}, offers)[:3] == [
        "sim-c/text-prime/cheap",
        "sim-c/text-prime/m",
        "sim-c/text-prime/z",
    ]


# -- allow_fallbacks ---------------------------------------------------------------------------
def test_allow_fallbacks_false_with_order_allows_only_the_named_suppliers() -> None:
    prefs = {"order": ["sim-c", "sim-b"], "allow_fallbacks": False}
    assert suppliers(prefs) == ["sim-c", "sim-b"]


def test_allow_fallbacks_false_without_order_allows_only_the_first_ranked_offer() -> None:
    assert suppliers({"allow_fallbacks": False}) == ["sim-a"]
    assert suppliers({"allow_fallbacks": False, "ignore": ["sim-a"]}) == ["sim-b"]


def test_allow_fallbacks_false_with_order_of_unknown_suppliers_is_a_clear_error() -> None:
    error = refused({"order": ["sim-x", "sim-y"], "allow_fallbacks": False})
    assert error.param == "provider.order"
    assert error.message == (
        "provider.order: no offer of instrument 'text-prime' left by the other preferences is "
        "from sim-x or sim-y, and provider.allow_fallbacks is false"
    )


def test_allow_fallbacks_true_is_the_default_and_route_fallback_says_the_same() -> None:
    order = {"order": ["sim-c"]}
    expected = ["sim-c", "sim-a", "sim-b", "sim-d"]
    assert suppliers({**order, "allow_fallbacks": True}) == expected
    assert suppliers(order, route="fallback") == expected
    # an explicit allow_fallbacks false decides, whatever the legacy switch says
    assert suppliers({**order, "allow_fallbacks": False}, route="fallback") == ["sim-c"]


# -- only / ignore -------------------------------------------------------------------------------
def test_only_restricts_to_the_named_suppliers_case_insensitively() -> None:
    assert suppliers({"only": ["SIM-C", "sim-b", "sim-x"]}) == ["sim-b", "sim-c"]


def test_only_naming_no_supplier_of_the_instrument_is_a_clear_error() -> None:
    error = refused({"only": ["sim-x"]})
    assert error.status == 422
    assert error.param == "provider.only"
    assert error.message == "provider.only: no offer of instrument 'text-prime' is from sim-x"


def test_ignore_excludes_the_named_suppliers() -> None:
    assert suppliers({"ignore": ["Sim-A", "sim-x"]}) == ["sim-b", "sim-c", "sim-d"]
    error = refused({"ignore": ["sim-a", "sim-b", "sim-c", "sim-d"]})
    assert error.param == "provider.ignore"
    assert "every offer of instrument 'text-prime' is from an ignored supplier" in error.message


def test_order_with_only_orders_within_only() -> None:
    prefs = {"only": ["sim-a", "sim-c"], "order": ["sim-d", "sim-c"]}
    assert suppliers(prefs) == ["sim-c", "sim-a"]


def test_order_with_ignore_never_tries_the_ignored_supplier() -> None:
    assert suppliers({"order": ["sim-c"], "ignore": ["sim-c"]}) == ["sim-a", "sim-b", "sim-d"]


def test_only_and_allow_fallbacks_false_with_order_outside_only_is_a_clear_error() -> None:
    error = refused({"only": ["sim-a"], "order": ["sim-b"], "allow_fallbacks": False})
    assert error.param == "provider.order"


# -- max_price ---------------------------------------------------------------------------------
def test_max_price_excludes_offers_priced_above_it() -> None:
    assert suppliers({"max_price": {"prompt": 2}}) == ["sim-a", "sim-b"]
    assert suppliers({"max_price": {"completion": "12"}}) == ["sim-a", "sim-b", "sim-c"]
    assert suppliers({"max_price": {"prompt": 3, "completion": 8}}) == ["sim-a", "sim-b"]
    assert suppliers({"max_price": {"prompt": None, "completion": None}}) == [
        "sim-a",
        "sim-b",
        "sim-c",
        "sim-d",
    ]


def test_max_price_compares_exactly_to_the_nano_dollar() -> None:
    offers = [offer("sim-a", "0.000000002", "0"), offer("sim-b", "0.000000001", "0")]
    # 1.999… nano-dollars per 1M admits a price of 1 nano-dollar, not one of 2
    assert suppliers({"max_price": {"prompt": "0.0000000019999999999999"}}, offers) == ["sim-b"]
    assert suppliers({"max_price": {"prompt": 0.000000002}}, offers) == ["sim-b", "sim-a"]
    # a JSON number is the decimal the caller wrote, not the nearest binary float
    offers = [offer("sim-a", "0.3", "0")]
    assert suppliers({"max_price": {"prompt": 0.3}}, offers) == ["sim-a"]
    assert suppliers({"max_price": {"prompt": "0.3"}}, offers) == ["sim-a"]
    assert refused({"max_price": {"prompt": "0.2999999999"}}, offers).param == (
        "provider.max_price.prompt"
    )


def test_max_price_extremes() -> None:
    assert suppliers({"max_price": {"prompt": "1e30"}}) == ["sim-a", "sim-b", "sim-c", "sim-d"]
    assert suppliers({"max_price": {"prompt": 1e308}}) == ["sim-a", "sim-b", "sim-c", "sim-d"]
    free = [*LADDER, offer("sim-c", "0", "0", model="free")]
    assert route({"max_price": {"prompt": "1e-30", "completion": 0}}, free) == [
        "sim-c/text-prime/free"
    ]


def test_max_price_leaving_no_offer_names_the_price() -> None:
    error = refused({"max_price": {"prompt": "0.5"}})
    assert error.param == "provider.max_price.prompt"
    assert error.message == (
        "provider.max_price.prompt: no offer of instrument 'text-prime' costs at most 0.5 USD "
        "per 1M prompt tokens"
    )
    error = refused({"max_price": {"prompt": 10, "completion": 3}})
    assert error.param == "provider.max_price.completion"


def test_ignore_with_max_price() -> None:
    prefs = {"ignore": ["sim-a"], "max_price": {"prompt": 3}}
    assert suppliers(prefs) == ["sim-b", "sim-c"]
    error = refused({"ignore": ["sim-a"], "max_price": {"prompt": 1}})
    assert error.param == "provider.max_price.prompt"


# -- sort ------------------------------------------------------------------------------------------
def test_sort_latency_puts_lowest_measured_ttft_first_then_the_unmeasured_by_price() -> None:
    figures = figures_of({"sim-d": (120.0, 50.0), "sim-c": (300.0, 90.0), "sim-b": (None, 70.0)})
    # sim-b has figures but no TTFT yet, sim-a none at all: both after the measured, by price
    assert suppliers({"sort": "latency"}, figures=figures) == ["sim-d", "sim-c", "sim-a", "sim-b"]


def test_sort_throughput_puts_highest_measured_tokens_per_second_first() -> None:
    figures = figures_of({"sim-d": (120.0, 50.0), "sim-c": (300.0, 90.0), "sim-b": (80.0, None)})
    assert suppliers({"sort": "throughput"}, figures=figures) == [
        "sim-c",
        "sim-d",
        "sim-a",
        "sim-b",
    ]


def test_sort_ties_and_no_figures_fall_back_to_price() -> None:
    tie = figures_of({"sim-d": (100.0, 60.0), "sim-b": (100.0, 60.0)})
    assert suppliers({"sort": "latency"}, figures=tie) == ["sim-b", "sim-d", "sim-a", "sim-c"]
    assert suppliers({"sort": "throughput"}, figures=tie) == ["sim-b", "sim-d", "sim-a", "sim-c"]
    assert suppliers({"sort": "latency"}) == ["sim-a", "sim-b", "sim-c", "sim-d"]


def test_sort_with_order_order_first_then_the_rest_by_the_sort() -> None:
    figures = figures_of({"sim-d": (100.0, 10.0), "sim-c": (200.0, 20.0)})
    prefs = {"sort": "latency", "order": ["sim-b"]}
    assert suppliers(prefs, figures=figures) == ["sim-b", "sim-d", "sim-c", "sim-a"]


def test_sort_with_allow_fallbacks_false_keeps_only_the_best_by_that_sort() -> None:
    figures = figures_of({"sim-c": (10.0, 900.0)})
    assert suppliers({"sort": "latency", "allow_fallbacks": False}, figures=figures) == ["sim-c"]
    assert suppliers({"sort": "throughput", "allow_fallbacks": False}, figures=figures) == ["sim-c"]


# -- data collection -----------------------------------------------------------------------------
def test_data_collection_deny_and_zdr_keep_only_zero_retention_suppliers() -> None:
    assert "sim-d" in suppliers({"data_collection": "allow"})
    assert suppliers({"data_collection": "deny"}) == ["sim-a", "sim-b", "sim-c"]
    assert suppliers({"zdr": True}) == ["sim-a", "sim-b", "sim-c"]
    assert "sim-d" in suppliers({"zdr": False})


def test_data_collection_leaving_no_offer_names_the_field_that_asked() -> None:
    offers = [offer("sim-d", "1", "1")]
    error = refused({"data_collection": "deny"}, offers)
    assert error.param == "provider.data_collection"
    assert "zero data retention" in error.message
    assert refused({"zdr": True}, offers).param == "provider.zdr"
    assert refused({"zdr": True, "data_collection": "deny"}, offers).param == (
        "provider.data_collection"
    )


# -- require_parameters ---------------------------------------------------------------------------
# sim-e speaks the Anthropic wire and is the cheapest
WITH_ANTHROPIC = [offer("sim-e", "0.5", "2"), *LADDER]


def test_require_parameters_skips_an_offer_whose_wire_would_drop_seed() -> None:
    assert suppliers({}, WITH_ANTHROPIC, seed=7)[0] == "sim-e"  # dropped silently
    assert suppliers({"require_parameters": True}, WITH_ANTHROPIC, seed=7)[0] == "sim-a"
    assert suppliers({"require_parameters": True}, WITH_ANTHROPIC)[0] == "sim-e"  # nothing dropped
    assert suppliers({"require_parameters": True}, WITH_ANTHROPIC, seed=None)[0] == "sim-e"


def test_require_parameters_leaving_no_offer_names_what_would_be_dropped() -> None:
    error = refused(
        {"require_parameters": True}, [offer("sim-e", "1", "1")], seed=7, presence_penalty=0.5
    )
    assert error.param == "provider.require_parameters"
    assert error.message == (
        "provider.require_parameters: no offer of instrument 'text-prime' can carry every "
        "parameter of the request (the anthropic wire format drops presence_penalty, seed)"
    )


def test_require_parameters_leaves_out_a_wire_that_cannot_say_what_it_drops() -> None:
    only_openai = {"openai": openai.dropped_fields}
    prefs = {"require_parameters": True}
    assert suppliers(prefs, WITH_ANTHROPIC, dropped=only_openai)[0] == "sim-a"
    error = refused(prefs, [offer("sim-e", "1", "1")], dropped=only_openai)
    assert "not known to carry them" in error.message


def test_require_parameters_on_the_openai_wire_thinking_disabled_is_dropped() -> None:
    prefs = {"require_parameters": True}
    thinking_off = {"thinking": {"type": "disabled"}}
    assert suppliers(prefs, WITH_ANTHROPIC, **thinking_off) == ["sim-e"]


# -- preferences first, then the request's needs ---------------------------------------------------
def test_needs_unmet_by_the_allowed_offers_say_the_preferences_narrowed_them() -> None:
    offers = [offer("sim-a", "1", "1", caps=("tools",)), offer("sim-b", "1", "1")]
    with pytest.raises(NoQualifyingOffer) as caught:
        route({"only": ["sim-b"]}, offers, caps=("tools",))
    assert caught.value.message == (
        "no supplier offer of instrument 'text-prime' that the provider preferences allow "
        "supports tools"
    )


def test_an_instrument_without_offers_is_still_no_capacity() -> None:
    with pytest.raises(NoCapacity):
        route({"only": ["sim-a"]}, [])


# -- dropped_fields of each wire -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fields", "dropped"),
    [
        ({}, set()),
        ({"seed": 1, "temperature": 0.5, "top_k": 3, "stop": ["x"]}, {"seed"}),
        (
            {"frequency_penalty": 0.1, "presence_penalty": 0.2},
            {"frequency_penalty", "presence_penalty"},
        ),
        (
            {"service_tier": "flex", "store": False, "metadata": {"k": "v"}},
            {"service_tier", "store", "metadata"},
        ),
        (
            {"prompt_cache_key": "k", "prompt_cache_retention": "24h"},
            {"prompt_cache_key", "prompt_cache_retention"},
        ),
        (
            {"verbosity": "low", "prediction": {"type": "content", "content": "x"}},
            {"verbosity", "prediction"},
        ),
        ({"seed": None, "service_tier": None, "metadata": None}, set()),
        ({"user": "u"}, set()),
        ({"user": "u", "safety_identifier": "s"}, {"user"}),
        ({"reasoning_effort": "high"}, set()),
        ({"reasoning_effort": "none"}, set()),
        ({"reasoning_effort": "high", "temperature": 0.2}, {"reasoning_effort"}),
        ({"reasoning_effort": "high", "max_tokens": 1000}, {"reasoning_effort"}),
        (
            {"reasoning_effort": "low", "thinking": {"type": "enabled", "budget_tokens": 2000}},
            {"reasoning_effort"},
        ),
        (
            {
                "reasoning_effort": "low",
                "response_format": {"type": "json_schema", "json_schema": {"name": "o"}},
            },
            {"reasoning_effort"},
        ),
    ],
)
def test_anthropic_dropped_fields(fields: dict[str, Any], dropped: set[str]) -> None:
    assert anthropic.dropped_fields(request(**fields)) == dropped


@pytest.mark.parametrize(
    ("fields", "dropped"),
    [
        ({}, set()),
        ({"seed": 1, "service_tier": "flex", "top_k": 4, "verbosity": "low"}, set()),
        ({"thinking": {"type": "enabled", "budget_tokens": 4096}}, set()),  # → an effort
        ({"thinking": {"type": "disabled"}}, {"thinking"}),
        (
            {"thinking": {"type": "enabled", "budget_tokens": 4096}, "reasoning_effort": "low"},
            {"thinking"},
        ),
    ],
)
def test_openai_dropped_fields(fields: dict[str, Any], dropped: set[str]) -> None:
    assert openai.dropped_fields(request(**fields)) == dropped


# -- the exchange's planner plans with them --------------------------------------------------------
def planner(offers: list[OfferRecord], **kw: Any) -> Planner:
    catalog = Catalog.build([PRIME], SUPPLIERS, offers)
    return Planner(lambda: catalog, **kw)


def test_exchange_plan_candidates_are_the_failover_order() -> None:
    plan = planner(LADDER).plan(request({"order": ["sim-d", "sim-c"]}))
    assert [o.supplier.name for o in plan.candidates] == ["sim-d", "sim-c", "sim-a", "sim-b"]
    plan = planner(LADDER).plan(request({"order": ["sim-d"], "allow_fallbacks": False}))
    assert [o.supplier.name for o in plan.candidates] == ["sim-d"]


def test_exchange_plan_uses_the_wires_dropped_fields_and_the_figures_it_is_given() -> None:
    planned = planner(WITH_ANTHROPIC, dropped_fields=DROPPED).plan(
        request({"require_parameters": True}, seed=1)
    )
    assert planned.candidates[0].supplier.name == "sim-a"
    figures = figures_of({"sim-c": (5.0, 500.0)})
    planned = planner(LADDER, figures=figures).plan(request({"sort": "latency"}))
    assert planned.candidates[0].supplier.name == "sim-c"


def test_exchange_plan_without_preferences_is_cheapest_first() -> None:
    plan = planner(WITH_ANTHROPIC).plan(request(seed=1))
    assert [o.supplier.name for o in plan.candidates] == [
        "sim-e",
        "sim-a",
        "sim-b",
        "sim-c",
        "sim-d",
    ]
