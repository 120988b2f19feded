"""Caller routing preferences (``provider``) over a real gateway and simulated suppliers.

Three simulators stand behind five suppliers. ``text-prime`` is offered by sim-cheap < sim-mid <
sim-keeps < sim-dear (by price); sim-keeps shares sim-cheap's simulator and is the one supplier
that retains data. ``text-standard`` is offered by sim-anth (the Anthropic wire, on sim-cheap's
simulator, cheapest) and sim-mid. Faults are standing faults posted to one simulator with a count
of one, so they hit exactly the next request that reaches it; every test clears them after.
The ``x-gridgate-supplier`` header says who served; balances and usage records say who was paid.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
from openai import OpenAI

from gridgate.money import Price
from gridgate.simulator.server import RunningSimulator
from tests.harness import (
    BackgroundLoop,
    GatewayProcess,
    Offer,
    nanos,
    simulators,
    start_gateway,
    stop_gateway,
    wait_until,
)

CAPS = ("tools", "json_schema")
OFFERS = [
    Offer("sim-cheap", "text-prime", "sim/prime-cheap", "0.10", "0.40", 40, 196_608, 65_536, CAPS),
    Offer("sim-mid", "text-prime", "sim/prime-mid", "0.20", "0.80", 40, 196_608, 65_536, CAPS),
    Offer("sim-keeps", "text-prime", "sim/prime-keeps", "0.30", "1.20", 40, 196_608, 65_536, CAPS),
    Offer("sim-dear", "text-prime", "sim/prime-dear", "0.40", "1.60", 40, 196_608, 65_536, CAPS),
    Offer("sim-anth", "text-standard", "sim/std-anth", "0.01", "0.02", 20, 128_000, 65_536, CAPS),
    Offer("sim-mid", "text-standard", "sim/std-mid", "0.03", "0.06", 20, 128_000, 65_536, CAPS),
]
USER: Any = [{"role": "user", "content": "Say something about the weather."}]


@pytest.fixture(scope="module")
def gw(bg: BackgroundLoop, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    with simulators(bg, ["sim-cheap", "sim-mid", "sim-dear"]) as sims:
        cheap = sims["sim-cheap"].base_url
        # a supplier that keeps data: not expressible through the harness's supplier rows
        keeps = f'[[suppliers]]\nname = "sim-keeps"\nbase_url = "{cheap}"\nzero_retention = false\n'
        gateway = start_gateway(
            tmp_path_factory.mktemp("preferences"),
            bg,
            {
                "sim-cheap": cheap,
                "sim-mid": sims["sim-mid"].base_url,
                "sim-dear": sims["sim-dear"].base_url,
                "sim-anth": cheap,  # the same simulator, on its Messages endpoint
            },
            OFFERS,
            extra_config=keeps,
            wires={"sim-anth": "anthropic"},
        )
        gateway.sims = sims
        try:
            yield gateway
        finally:
            stop_gateway(gateway)


@pytest.fixture(autouse=True)
def no_standing_faults(gw: GatewayProcess) -> Iterator[None]:
    yield
    for sim in gw.sims.values():
        gw.run(_control(sim, "DELETE", "/sim/faults"))


@pytest.fixture
def account(gw: GatewayProcess) -> tuple[str, str]:
    return gw.new_account("1")


@pytest.fixture
def client(gw: GatewayProcess, account: tuple[str, str]) -> OpenAI:
    return OpenAI(base_url=gw.base_url, api_key=account[1], max_retries=0)


async def _control(sim: RunningSimulator, method: str, path: str, body: Any = None) -> Any:
    import aiohttp

    async with (
        aiohttp.ClientSession() as session,
        session.request(method, f"{sim.root_url}{path}", json=body) as response,
    ):
        assert response.status < 300, await response.text()
        return await response.json()


def fail_next(gw: GatewayProcess, supplier: str, status: int = 503) -> None:
    """The next request reaching ``supplier``'s simulator is answered with ``status``."""
    fault = {"mode": "status", "status": status, "count": 1}
    gw.run(_control(gw.sims[supplier], "POST", "/sim/faults", fault))


def requests_seen(gw: GatewayProcess, sim: str) -> int:
    return int(gw.run(_control(gw.sims[sim], "GET", "/sim/stats"))["requests_total"])


def price(supplier: str, instrument: str = "text-prime") -> Price:
    o = next(o for o in OFFERS if o.supplier == supplier and o.instrument == instrument)
    return Price(nanos(o.usd_in), nanos(o.usd_out))


def served_by(client: OpenAI, provider: Any, model: str = "text-prime", **fields: Any) -> str:
    """Who served a request with these preferences (and any other body ``fields``)."""
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=USER, max_tokens=4, extra_body={"provider": provider, **fields}
    )
    assert raw.parse().choices[0].message.content
    return raw.headers["x-gridgate-supplier"]


def refused(client: OpenAI, provider: Any) -> dict[str, Any]:
    """The OpenAI ``error`` object of a request refused with 422."""
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        client.chat.completions.create(
            model="text-prime", messages=USER, max_tokens=4, extra_body={"provider": provider}
        )
    body = caught.value.response.json()
    assert body["errors"]["detail"] == body["error"]["message"]
    error: dict[str, Any] = body["error"]
    assert caught.value.param == error["param"]
    return error


# -- order -----------------------------------------------------------------------------------------
def test_without_preferences_the_cheapest_offer_serves(client: OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="text-prime", messages=USER, max_tokens=4
    )
    assert raw.headers["x-gridgate-supplier"] == "sim-cheap"


def test_order_picks_the_named_supplier_over_a_cheaper_one_and_charges_its_price(
    gw: GatewayProcess, client: OpenAI, account: tuple[str, str]
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="text-prime",
        messages=USER,
        max_tokens=4,
        extra_body={"provider": {"order": ["SIM-DEAR", "sim-mid"]}},
    )
    assert raw.headers["x-gridgate-supplier"] == "sim-dear"
    usage = raw.parse().usage
    assert usage is not None
    cost = price("sim-dear").cost(usage.prompt_tokens, usage.completion_tokens)
    gw.assert_balance(account[0], nanos("1") - cost)
    # the supplier never sees the preferences
    sent = gw.run(_control(gw.sims["sim-dear"], "GET", "/sim/stats"))["last_request_body"]
    assert sent["model"] == "sim/prime-dear"
    assert "provider" not in sent


def test_failover_follows_order_when_the_first_named_supplier_fails(
    gw: GatewayProcess, client: OpenAI, account: tuple[str, str]
) -> None:
    fail_next(gw, "sim-dear")
    cheap_before = requests_seen(gw, "sim-cheap")
    raw = client.chat.completions.with_raw_response.create(
        model="text-prime",
        messages=USER,
        max_tokens=4,
        extra_body={"provider": {"order": ["sim-dear", "sim-mid"]}},
    )
    assert raw.headers["x-gridgate-supplier"] == "sim-mid"  # not the cheaper sim-cheap
    assert requests_seen(gw, "sim-cheap") == cheap_before
    usage = raw.parse().usage
    assert usage is not None
    cost = price("sim-mid").cost(usage.prompt_tokens, usage.completion_tokens)
    gw.assert_balance(account[0], nanos("1") - cost)


def test_a_streamed_request_fails_over_in_the_order_too(gw: GatewayProcess, client: OpenAI) -> None:
    fail_next(gw, "sim-dear")
    with client.chat.completions.with_streaming_response.create(
        model="text-prime",
        messages=USER,
        max_tokens=4,
        stream=True,
        extra_body={"provider": {"order": ["sim-dear", "sim-mid"]}},
    ) as response:
        assert response.headers["x-gridgate-supplier"] == "sim-mid"
        text = "".join(
            chunk.choices[0].delta.content or "" for chunk in response.parse() if chunk.choices
        )
    assert text


def test_when_the_named_suppliers_are_gone_the_rest_follow_by_price(
    gw: GatewayProcess, client: OpenAI
) -> None:
    fail_next(gw, "sim-dear")
    assert served_by(client, {"order": ["sim-dear"]}) == "sim-cheap"


# -- allow_fallbacks -------------------------------------------------------------------------------
def test_allow_fallbacks_false_returns_the_failure_and_charges_nothing(
    gw: GatewayProcess, client: OpenAI, account: tuple[str, str]
) -> None:
    fail_next(gw, "sim-dear")
    others_before = {name: requests_seen(gw, name) for name in ("sim-cheap", "sim-mid")}
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(
            model="text-prime",
            messages=USER,
            max_tokens=4,
            extra_body={"provider": {"order": ["sim-dear"], "allow_fallbacks": False}},
        )
    assert caught.value.status_code == 502
    assert "not charged" in caught.value.message
    assert {name: requests_seen(gw, name) for name in others_before} == others_before
    records = wait_until(lambda: gw.usage(account[0]))
    assert [(r.outcome, r.billed, r.cost) for r in records] == [("upstream_error", False, 0)]
    gw.assert_balance(account[0], nanos("1"))


def test_allow_fallbacks_false_without_order_serves_only_the_first_ranked_offer(
    gw: GatewayProcess, client: OpenAI
) -> None:
    assert served_by(client, {"allow_fallbacks": False}) == "sim-cheap"
    fail_next(gw, "sim-cheap")
    with pytest.raises(openai.APIStatusError) as caught:
        served_by(client, {"allow_fallbacks": False})
    assert caught.value.status_code == 502


def test_route_fallback_is_accepted_and_fails_over(gw: GatewayProcess, client: OpenAI) -> None:
    fail_next(gw, "sim-cheap")
    assert served_by(client, {"order": ["sim-cheap"]}, route="fallback") == "sim-mid"


# -- only / ignore / max_price / data collection / require_parameters ------------------------------
def test_only_and_ignore(client: OpenAI) -> None:
    assert served_by(client, {"only": ["sim-dear", "Sim-Mid"]}) == "sim-mid"
    assert served_by(client, {"ignore": ["sim-cheap", "sim-mid"]}) == "sim-keeps"
    assert served_by(client, {"only": ["sim-dear", "sim-mid"], "ignore": ["sim-mid"]}) == (
        "sim-dear"
    )


def test_max_price_excludes_an_offer_priced_above_it(client: OpenAI) -> None:
    # sim-dear is asked for first, but its 1.60 per 1M completion tokens is over the ceiling
    assert served_by(client, {"order": ["sim-dear"], "max_price": {"completion": 1.5}}) == (
        "sim-cheap"
    )
    assert served_by(client, {"ignore": ["sim-cheap"], "max_price": {"prompt": "0.2"}}) == (
        "sim-mid"
    )


def test_data_collection_deny_keeps_to_zero_retention_suppliers(client: OpenAI) -> None:
    assert served_by(client, {"order": ["sim-keeps"]}) == "sim-keeps"
    assert served_by(client, {"order": ["sim-keeps"], "data_collection": "deny"}) == "sim-cheap"
    assert served_by(client, {"order": ["sim-keeps"], "zdr": True}) == "sim-cheap"


def test_require_parameters_avoids_a_wire_that_would_drop_seed(client: OpenAI) -> None:
    assert served_by(client, {}, model="text-standard", seed=7) == "sim-anth"
    require = {"require_parameters": True}
    assert served_by(client, require, model="text-standard", seed=7) == "sim-mid"
    assert served_by(client, require, model="text-standard") == "sim-anth"


# -- when the preferences leave nothing ------------------------------------------------------------
def test_preferences_leaving_no_offer_are_a_clear_422_and_not_charged(
    gw: GatewayProcess, client: OpenAI, account: tuple[str, str]
) -> None:
    error = refused(client, {"only": ["sim-x"]})
    assert error["code"] == "no_qualifying_offer"
    assert error["param"] == "provider.only"
    assert error["message"] == "provider.only: no offer of instrument 'text-prime' is from sim-x"

    error = refused(client, {"max_price": {"prompt": 0.05}})
    assert error["param"] == "provider.max_price.prompt"
    assert "costs at most 0.05 USD per 1M prompt tokens" in error["message"]

    error = refused(client, {"order": ["sim-x"], "allow_fallbacks": False})
    assert error["param"] == "provider.order"
    assert gw.balance(account[0]) == nanos("1")  # refused while planning: nothing was held


def test_invalid_preferences_are_422_naming_the_field(client: OpenAI) -> None:
    assert refused(client, {"sort": "fastest"})["param"] == "provider.sort"
    assert refused(client, {"order": ["sim-dear", ""]})["param"] == "provider.order[1]"
    error = refused(client, {"max_price": {"completion": -1}})
    assert error["param"] == "provider.max_price.completion"
    assert error["message"] == (
        "provider.max_price.completion: must be at least 0 USD per 1M tokens (got -1)"
    )


# -- the Anthropic Messages surface ----------------------------------------------------------------
def test_the_messages_surface_takes_the_same_preferences(
    gw: GatewayProcess, account: tuple[str, str]
) -> None:
    root = gw.base_url.removesuffix("/v1")
    with anthropic.Anthropic(base_url=root, api_key=account[1], max_retries=0) as sdk:
        fail_next(gw, "sim-dear")
        raw = sdk.messages.with_raw_response.create(
            model="text-prime",
            max_tokens=4,
            messages=USER,
            extra_body={"provider": {"order": ["sim-dear", "sim-keeps"]}},
        )
        assert raw.headers["x-gridgate-supplier"] == "sim-keeps"
        assert raw.parse().content

        with pytest.raises(anthropic.BadRequestError) as caught:  # Anthropic: 400
            sdk.messages.create(
                model="text-prime",
                max_tokens=4,
                messages=USER,
                extra_body={"provider": {"only": ["sim-x"]}},
            )
        error = caught.value.body["error"]  # type: ignore[index]
        assert error["type"] == "invalid_request_error"
        assert error["message"].startswith("provider.only: no offer of instrument 'text-prime'")

        with pytest.raises(anthropic.BadRequestError) as caught:  # Anthropic: 400
            sdk.messages.create(
                model="text-prime",
                max_tokens=4,
                messages=USER,
                extra_body={"provider": {"max_price": {"prompt": "free"}}},
            )
        assert json.loads(caught.value.response.text)["error"]["message"].startswith(
            "provider.max_price.prompt:"
        )
