"""Options an offer's price does not cover never reach a supplier unmetered, and a request to
store data never reaches a supplier declared zero-retention (issue 14, item 6)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.harness import (
    BackgroundLoop,
    GatewayProcess,
    Offer,
    simulators,
    start_gateway,
    stop_gateway,
)

# text-prime: the zero-retention supplier is cheaper; text-standard: only it offers
OFFERS = [
    Offer("sim-zdr", "text-prime", "sim/prime-z", "0.08", "0.30", 40, 196_608, 65_536),
    Offer("sim-keeps", "text-prime", "sim/prime-k", "0.10", "0.40", 40, 196_608, 65_536),
    Offer("sim-zdr", "text-standard", "sim/standard-z", "0.03", "0.06", 20, 128_000, 65_536),
]


@pytest.fixture(scope="module")
def gateway(
    bg: BackgroundLoop, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    with simulators(bg, ["sim-zdr", "sim-keeps"]) as sims:
        keeps = (
            "[[suppliers]]\n"
            'name = "sim-keeps"\n'
            f'base_url = "{sims["sim-keeps"].base_url}"\n'
            "zero_retention = false\n"
        )
        gw = start_gateway(
            tmp_path_factory.mktemp("costly-options"),
            bg,
            {"sim-zdr": sims["sim-zdr"].base_url},  # zero retention: the default
            OFFERS,
            extra_config=keeps,
        )
        gw.sims = sims
        try:
            yield gw
        finally:
            assert stop_gateway(gw) == 0, gw.log_path.read_text()


def sim_stats(gateway: GatewayProcess, name: str) -> dict[str, Any]:
    root = gateway.sims[name].base_url.removesuffix("/v1")
    return httpx.get(f"{root}/sim/stats", timeout=10).json()  # type: ignore[no-any-return]


def requests_seen(gateway: GatewayProcess) -> int:
    return sum(int(sim_stats(gateway, name)["requests_total"]) for name in gateway.sims)


def post(gateway: GatewayProcess, secret: str, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        f"{gateway.base_url}{path}",
        json=body,
        headers={"Authorization": f"Bearer {secret}"},
        timeout=30,
    )


def chat(model: str = "text-prime", **fields: Any) -> dict[str, Any]:
    return {
        "model": model,
        "max_tokens": 5,
        "messages": [{"role": "user", "content": "hi"}],
        **fields,
    }


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"service_tier": "priority"}, "service_tier"),
        ({"service_tier": "flex"}, "service_tier"),
        ({"service_tier": "scale"}, "service_tier"),
        ({"web_search_options": {}}, "web_search_options"),
        ({"web_search_options": {"search_context_size": "high"}}, "web_search_options"),
    ],
)
def test_an_option_no_offer_prices_is_refused_naming_it(
    gateway: GatewayProcess, fields: dict[str, Any], param: str
) -> None:
    account_id, secret = gateway.new_account("1")
    before = requests_seen(gateway)
    for stream in (False, True):
        response = post(gateway, secret, "/chat/completions", chat(stream=stream, **fields))
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["param"] == param and error["type"] == "invalid_request_error"
        assert error["message"].startswith(f"{param}:")
    assert requests_seen(gateway) == before  # no supplier saw it
    assert not gateway.usage(account_id)  # refused before anything was held


def test_the_standard_tier_is_served_and_forwarded_as_sent(gateway: GatewayProcess) -> None:
    _, secret = gateway.new_account("1")
    for tier in ("auto", "default"):
        response = post(gateway, secret, "/chat/completions", chat(service_tier=tier))
        assert response.status_code == 200, response.text
        assert sim_stats(gateway, "sim-zdr")["last_request_body"]["service_tier"] == tier
    # the Messages surface's tiers never ask for a dearer one: accepted, and not forwarded
    body = {"model": "text-prime", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    for tier in ("auto", "standard_only"):
        assert post(gateway, secret, "/messages", {**body, "service_tier": tier}).status_code == 200
        assert "service_tier" not in sim_stats(gateway, "sim-zdr")["last_request_body"]
    # and its equivalent of web_search_options, a server tool, is refused as on the OpenAI surface
    search = {"type": "web_search_20250305", "name": "web_search"}
    refused = post(gateway, secret, "/messages", {**body, "tools": [search]})
    assert refused.status_code == 400 and "tools[0].type" in refused.text  # Anthropic's status


def test_store_true_is_served_only_by_a_supplier_that_keeps_data(gateway: GatewayProcess) -> None:
    _, secret = gateway.new_account("1")
    labels = {"metadata": {"project": "p1"}}
    plain = post(gateway, secret, "/chat/completions", chat(**labels))
    assert plain.headers["x-gridgate-supplier"] == "sim-zdr"  # the cheaper offer
    sent = sim_stats(gateway, "sim-zdr")["last_request_body"]
    assert "metadata" not in sent and "store" not in sent  # labels of stored data: not sent
    stored = post(gateway, secret, "/chat/completions", chat(store=True, **labels))
    assert stored.status_code == 200, stored.text
    assert stored.headers["x-gridgate-supplier"] == "sim-keeps"
    sent = sim_stats(gateway, "sim-keeps")["last_request_body"]
    assert sent["store"] is True and sent["metadata"] == {"project": "p1"}


def test_store_true_with_only_zero_retention_suppliers_is_refused(gateway: GatewayProcess) -> None:
    _, secret = gateway.new_account("1")
    before = sim_stats(gateway, "sim-zdr")["requests_total"]
    response = post(gateway, secret, "/chat/completions", chat("text-standard", store=True))
    assert response.status_code == 422, response.text
    assert response.json()["error"]["param"] == "store"
    assert sim_stats(gateway, "sim-zdr")["requests_total"] == before
    assert post(gateway, secret, "/chat/completions", chat("text-standard", store=False)).is_success
    assert sim_stats(gateway, "sim-zdr")["last_request_body"]["store"] is False
