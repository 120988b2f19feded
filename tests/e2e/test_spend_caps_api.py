"""Spend caps through the management API against a real `gridgate serve`: an owner caps a key
and the account, answers carry what is left (read with the official openai SDK), a request the
cap cannot cover is 402 on both surfaces naming the cap and its reset, bad values are 422
naming the field, and nobody reaches another account's caps."""

from __future__ import annotations

import anthropic
import openai
import pytest
from openai import OpenAI

from gridgate.money import format_usd
from tests.e2e.test_management_api import make_user, not_found, signed_in, with_token
from tests.harness import GatewayProcess, wait_until


def key_id(gw: GatewayProcess, account_id: str) -> str:
    (key,) = gw.run(gw.store.list_keys(account_id))
    return key.id


def test_an_owner_caps_a_key_and_answers_say_what_is_left(gateway: GatewayProcess) -> None:
    account_id, secret = gateway.new_account("5", name="capped")
    owner = signed_in(gateway, make_user(gateway, "owner", account_id))
    key = key_id(gateway, account_id)
    put = owner.request("PUT", f"/api-keys/{key}/spend-caps/daily", json={"limit_usd": "0.5"})
    assert put.status_code == 200, put.text
    cap = put.json()["data"]
    assert (cap["scope"], cap["subject"], cap["period"]) == ("key", key, "daily")
    assert (cap["limit_usd"], cap["spent_usd"], cap["remaining_usd"]) == ("0.5", "0", "0.5")
    assert cap["resets_at"].endswith("T00:00:00Z")

    with OpenAI(base_url=gateway.base_url, api_key=secret, max_retries=0) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="text-prime", max_tokens=8, messages=[{"role": "user", "content": "hi"}]
        )
    request_id = raw.headers["x-request-id"]
    record = wait_until(
        lambda: next((r for r in gateway.usage(account_id) if r.request_id == request_id), None)
    )
    assert record is not None and record.cost > 0
    # a whole answer: what is left after its charge
    assert raw.headers["x-gridgate-spend-cap-remaining"] == format_usd(500_000_000 - record.cost)
    assert raw.headers["x-gridgate-spend-cap-reset"] == cap["resets_at"]

    def spent() -> object:
        (listed,) = owner.request("GET", f"/accounts/{account_id}/spend-caps").json()["data"]
        return listed["spent_nanos"]

    wait_until(lambda: spent() == record.cost)

    # an account cap of $0 on top: refused on both surfaces, naming the cap and its reset
    put = owner.request(
        "PUT", f"/accounts/{account_id}/spend-caps/monthly", json={"limit_usd": "0"}
    )
    assert put.status_code == 200, put.text
    monthly = put.json()["data"]
    with (
        OpenAI(base_url=gateway.base_url, api_key=secret, max_retries=0) as client,
        pytest.raises(openai.APIStatusError) as refused,
    ):
        client.chat.completions.create(
            model="text-prime", max_tokens=8, messages=[{"role": "user", "content": "hi"}]
        )
    assert (refused.value.status_code, refused.value.code) == (402, "spend_cap_reached")
    assert monthly["id"] in refused.value.message
    assert f"resets at {monthly['resets_at']}" in refused.value.message
    assert refused.value.response.headers["x-gridgate-spend-cap-remaining"] == "0"
    with (
        anthropic.Anthropic(
            base_url=gateway.base_url.removesuffix("/v1"), api_key=secret, max_retries=0
        ) as claude,
        pytest.raises(anthropic.APIStatusError) as billing,
    ):
        claude.messages.create(
            model="text-prime", max_tokens=8, messages=[{"role": "user", "content": "hi"}]
        )
    assert billing.value.status_code == 402
    assert billing.value.body["error"]["type"] == "billing_error"  # type: ignore[index]

    removed = owner.request("DELETE", f"/spend-caps/{monthly['id']}")
    assert removed.status_code == 204
    with OpenAI(base_url=gateway.base_url, api_key=secret, max_retries=0) as client:
        assert client.chat.completions.create(
            model="text-prime", max_tokens=8, messages=[{"role": "user", "content": "hi"}]
        ).choices


def test_bad_caps_are_422_and_nobody_reaches_another_accounts_caps(
    gateway: GatewayProcess,
) -> None:
    a, _ = gateway.new_account("1", name="A")
    b, _ = gateway.new_account("1", name="B")
    owner_a = signed_in(gateway, make_user(gateway, "owner", a))
    member_a = with_token(gateway, make_user(gateway, "member", a))
    operator = with_token(gateway, make_user(gateway, "operator", None))
    key_a, key_b = key_id(gateway, a), key_id(gateway, b)
    for path, body, field in (
        (f"/api-keys/{key_a}/spend-caps/hourly", {"limit_usd": "1"}, "period"),
        (f"/api-keys/{key_a}/spend-caps/daily", {"limit_usd": "-1"}, "limit_usd"),
        (f"/api-keys/{key_a}/spend-caps/daily", {"limit_usd": "1e3"}, "limit_usd"),
        (f"/api-keys/{key_a}/spend-caps/daily", {"limit": "1"}, None),
    ):
        answer = owner_a.request("PUT", path, json=body)
        assert answer.status_code == 422, answer.text
        if field is not None:
            assert answer.json()["error"]["param"] == field
    # another account's key, account and cap: not there
    not_found(
        owner_a.request("PUT", f"/api-keys/{key_b}/spend-caps/daily", json={"limit_usd": "1"})
    )
    not_found(owner_a.request("GET", f"/accounts/{b}/spend-caps"))
    b_cap = operator.request("PUT", f"/accounts/{b}/spend-caps/weekly", json={"limit_usd": "2"})
    assert b_cap.status_code == 200, b_cap.text
    not_found(owner_a.request("DELETE", f"/spend-caps/{b_cap.json()['data']['id']}"))
    # a member reads the caps of their account and sets none
    assert member_a.request("GET", f"/accounts/{a}/spend-caps").status_code == 200
    denied = member_a.request("PUT", f"/accounts/{a}/spend-caps/daily", json={"limit_usd": "1"})
    assert denied.status_code == 403, denied.text
