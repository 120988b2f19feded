"""The operator's side of the management API against a real `gridgate serve` of its own (these
tests change the catalog): accounts and money with idempotency keys, limits that bite, people,
management tokens, the catalog edited at run time — routing follows at once and the edit
outlives a restart — instruments with their price history, offer health, usage sums and CSV,
and the audit log of it all."""

from __future__ import annotations

import csv
import io
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from gridgate.core.clock import SystemClock
from gridgate.core.people.directory import People
from tests.e2e.test_management_api import PASSWORD, Caller, api_root, signed_in, with_token
from tests.harness import (
    BackgroundLoop,
    GatewayProcess,
    Offer,
    nanos,
    own_gateway,
    restart_gateway,
    wait_until,
)

OFFERS = [
    Offer("sim-alpha", "text-prime", "sim/prime-a", "0.10", "0.40", 40, 196_608, 131_072),
    Offer("sim-beta", "text-prime", "sim/prime-b", "0.08", "0.30", 39, 196_608, 65_536),
]
BETA = "sim-beta/text-prime/sim/prime-b"


@pytest.fixture(scope="module")
def ops_gateway(
    bg: BackgroundLoop, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    with own_gateway(bg, tmp_path_factory.mktemp("operator-api"), OFFERS) as gw:
        yield gw


def person(gw: GatewayProcess, role: str, account: str | None) -> str:
    email = f"{role}-{secrets.token_hex(4)}@example.com"
    gw.run(People(gw.store, SystemClock()).create_user(email, role, role, account, PASSWORD))
    return email


@pytest.fixture(scope="module")
def operator(ops_gateway: GatewayProcess) -> Caller:
    return with_token(ops_gateway, person(ops_gateway, "operator", None))


def served_by(gw: GatewayProcess, secret: str) -> str:
    response = httpx.post(
        f"{gw.base_url}/chat/completions",
        headers={"Authorization": f"Bearer {secret}"},
        json={
            "model": "text-prime",
            "max_tokens": 8,
            "messages": [{"role": "user", "content": "x"}],
        },
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response.headers["x-gridgate-supplier"]


def data(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()["data"]


def test_accounts_are_created_and_credited_once_per_idempotency_key(
    ops_gateway: GatewayProcess, operator: Caller
) -> None:
    account = data(operator.request("POST", "/accounts", json={"account": {"name": "acme"}}), 201)
    assert (account["name"], account["balance_nanos"]) == ("acme", 0)
    path = f"/accounts/{account['id']}/credits"
    body = {"amount_usd": "12.5", "memo": "top-up"}
    first = data(operator.request("POST", path, json=body, headers={"Idempotency-Key": "t-1"}), 201)
    again = data(operator.request("POST", path, json={**body, "idempotency_key": "t-1"}), 201)
    assert first["entry"] == again["entry"]  # the retry is the same entry, applied once
    assert again["account"]["balance_nanos"] == nanos("12.5") == ops_gateway.balance(account["id"])
    conflict = operator.request("POST", path, json={"amount_usd": "13", "idempotency_key": "t-1"})
    assert conflict.status_code == 422
    assert conflict.json()["error"]["code"] == "idempotency_conflict"
    missing = operator.request("POST", path, json={"amount_usd": "1"})
    assert missing.status_code == 422 and missing.json()["error"]["param"] == "idempotency_key"
    for bad in ("-1", "0", "1e400", "0.0000000001", "lots"):
        refused = operator.request("POST", path, json={"amount_usd": bad, "idempotency_key": bad})
        assert refused.status_code == 422, (bad, refused.text)
        assert refused.json()["error"]["param"] == "amount"

    adjust = f"/accounts/{account['id']}/adjustments"
    down = data(
        operator.request("POST", adjust, json={"amount_usd": "-2.5", "idempotency_key": "a"}), 201
    )
    assert down["account"]["balance_nanos"] == nanos("10")
    below = operator.request("POST", adjust, json={"amount_usd": "-11", "idempotency_key": "b"})
    assert below.status_code == 402
    assert ops_gateway.balance(account["id"]) == nanos("10")
    actions = [
        (e.action, e.detail.get("amount_nanos"))
        for e in ops_gateway.run(ops_gateway.store.list_audit(subject=account["id"]))
    ]
    assert actions == [
        ("account.adjustment", -nanos("2.5")),
        ("account.credit", nanos("12.5")),
        ("account.create", None),
    ]  # one entry per change; the replay and the refusals left none


def test_limits_set_here_bite_on_the_next_request(
    ops_gateway: GatewayProcess, operator: Caller
) -> None:
    account, secret = ops_gateway.new_account("1")
    key = ops_gateway.run(ops_gateway.store.list_keys(account))[0].id
    shown = data(operator.request("PUT", f"/api-keys/{key}/limits",
                                  json={"limits": {"requests_per_minute": 0}}))  # fmt: skip
    assert shown["overrides"]["requests_per_minute"] == 0
    assert shown["effective"]["requests_per_minute"] == 0
    refused = httpx.post(
        f"{ops_gateway.base_url}/chat/completions",
        headers={"Authorization": f"Bearer {secret}"},
        json={"model": "text-prime", "messages": [{"role": "user", "content": "x"}]},
        timeout=30,
    )
    assert refused.status_code == 429
    back = data(operator.request("PUT", f"/api-keys/{key}/limits",
                                 json={"limits": {"requests_per_minute": "default"}}))  # fmt: skip
    assert back["overrides"]["requests_per_minute"] is None
    wait_until(lambda: served_by(ops_gateway, secret), timeout=10)
    bad = operator.request("PUT", f"/accounts/{account}/limits",
                           json={"limits": {"tokens_per_minute": -3}})  # fmt: skip
    assert bad.status_code == 422 and bad.json()["error"]["param"] == "tokens_per_minute"


def test_owners_manage_their_people_and_members_do_not(
    ops_gateway: GatewayProcess, operator: Caller
) -> None:
    account, _ = ops_gateway.new_account("1")
    other, _ = ops_gateway.new_account("1")
    owner = signed_in(ops_gateway, person(ops_gateway, "owner", account))
    made = data(owner.request("POST", "/users", json={"user": {
        "email": "New@Example.com", "name": "New", "password": PASSWORD}}), 201)  # fmt: skip
    assert (made["email"], made["role"], made["account_id"]) == (
        "new@example.com",
        "member",
        account,
    )
    member = signed_in(ops_gateway, "new@example.com")
    refused = member.request("POST", "/users", json={"user": {
        "email": "m2@example.com", "name": "M2", "password": PASSWORD}})  # fmt: skip
    assert refused.status_code == 403
    elsewhere = owner.request("POST", "/users", json={"user": {
        "email": "e@example.com", "name": "E", "password": PASSWORD, "account_id": other}})  # fmt: skip
    assert elsewhere.status_code == 404
    weak = owner.request("POST", "/users", json={"user": {
        "email": "w@example.com", "name": "W", "password": "short"}})  # fmt: skip
    assert weak.status_code == 422 and weak.json()["error"]["param"] == "password"

    off = data(owner.request("PATCH", f"/users/{made['id']}", json={"user": {"is_active": False}}))
    assert off["is_active"] is False
    assert member.request("GET", "/me").status_code == 401  # the session ended with it
    myself = owner.request(
        "PATCH", f"/users/{owner.user['id']}", json={"user": {"is_active": False}}
    )
    assert myself.status_code == 422
    on = data(operator.request("PATCH", f"/users/{made['id']}", json={"user": {"is_active": True}}))
    assert on["is_active"] is True


def test_a_person_changes_their_password(ops_gateway: GatewayProcess) -> None:
    email = person(ops_gateway, "member", ops_gateway.new_account("1")[0])
    caller = signed_in(ops_gateway, email)
    wrong = caller.request("PUT", "/me/password", json={
        "current_password": "not it at all", "new_password": "another long password"})  # fmt: skip
    assert wrong.status_code == 422 and wrong.json()["error"]["param"] == "current_password"
    done = caller.request("PUT", "/me/password", json={
        "current_password": PASSWORD, "new_password": "another long password"})  # fmt: skip
    assert done.status_code == 204
    old = httpx.post(f"{api_root(ops_gateway)}/session",
                     json={"email": email, "password": PASSWORD}, timeout=30)  # fmt: skip
    assert old.status_code == 401
    new = httpx.post(f"{api_root(ops_gateway)}/session",
                     json={"email": email, "password": "another long password"}, timeout=30)  # fmt: skip
    assert new.status_code == 200


def test_management_tokens_are_made_by_people_not_by_tokens(ops_gateway: GatewayProcess) -> None:
    email = person(ops_gateway, "owner", ops_gateway.new_account("1")[0])
    caller = signed_in(ops_gateway, email)
    made = data(caller.request("POST", "/tokens", json={"token": {"name": "ci"}}), 201)
    assert made["token"].startswith("ggm_") and made["token"].startswith(made["token_prefix"])
    script = Caller(api_root(ops_gateway), token=made["token"])
    assert data(script.request("GET", "/me"))["user"]["email"] == email
    listed = data(script.request("GET", "/tokens"))
    assert [t["id"] for t in listed] == [made["id"]] and listed[0]["token"] is None
    chained = script.request("POST", "/tokens", json={"token": {"name": "another"}})
    assert chained.status_code == 403
    assert caller.request("DELETE", f"/tokens/{made['id']}").status_code == 204
    assert script.request("GET", "/me").status_code == 401


def test_an_offer_edited_here_routes_at_once_and_outlives_a_restart(
    ops_gateway: GatewayProcess, operator: Caller
) -> None:
    _, secret = ops_gateway.new_account("5")
    assert served_by(ops_gateway, secret) == "sim-beta"  # the cheaper one
    path = f"/offers/{quote(BETA, safe='')}"
    edited = data(operator.request("PATCH", path, json={"offer": {"input_usd_per_m": "0.50",
                                                                  "output_usd_per_m": "2"}}))  # fmt: skip
    assert (edited["input_usd_per_m"], edited["output_usd_per_m"]) == ("0.5", "2")
    assert edited["edited_at"] is not None
    assert served_by(ops_gateway, secret) == "sim-alpha"  # this process reloaded at once

    off = data(operator.request("PATCH", path, json={"offer": {"enabled": False}}))
    assert off["enabled"] is False and off["disabled_at"] is not None
    listed = {o["id"]: o for o in data(operator.request("GET", "/offers?instrument=text-prime"))}
    assert listed[BETA]["enabled"] is False
    cheap = data(operator.request("PATCH", path, json={"offer": {"input_usd_per_m": "0.01",
                                                                 "output_usd_per_m": "0.01",
                                                                 "enabled": True}}))  # fmt: skip
    assert cheap["enabled"] is True
    assert served_by(ops_gateway, secret) == "sim-beta"

    # the config still says 0.08 / 0.30: a restart seeds it, and the operator's price stands
    restart_gateway(ops_gateway)
    offer = data(operator.request("GET", path))
    assert (offer["input_usd_per_m"], offer["output_usd_per_m"]) == ("0.01", "0.01")
    assert served_by(ops_gateway, secret) == "sim-beta"
    actions = [e.action for e in ops_gateway.run(ops_gateway.store.list_audit(subject=BETA))]
    assert actions == ["offer.enable", "offer.update", "offer.disable", "offer.update"]


def test_suppliers_and_offers_are_created_and_checked(
    ops_gateway: GatewayProcess, operator: Caller
) -> None:
    url = ops_gateway.sims["sim-alpha"].base_url
    made = data(operator.request("POST", "/suppliers", json={"supplier": {
        "name": "sim-alpha-2", "base_url": url + "/", "api_key_env": "SIM_ALPHA_2_KEY"}}), 201)  # fmt: skip
    assert (made["base_url"], made["wire"], made["enabled"]) == (url, "openai", True)
    native = data(operator.request("POST", "/suppliers", json={"supplier": {
        "name": "sim-alpha-3", "base_url": url, "wire": "openai-responses"}}), 201)  # fmt: skip
    assert native["wire"] == "openai-responses"
    unknown_wire = operator.request("POST", "/suppliers", json={"supplier": {
        "name": "sim-alpha-4", "base_url": url, "wire": "grpc"}})  # fmt: skip
    assert (
        unknown_wire.status_code == 422 and unknown_wire.json()["error"]["param"] == "supplier.wire"
    )
    taken = operator.request("POST", "/suppliers", json={"supplier": {"name": "sim-alpha-2",
                                                                       "base_url": url}})  # fmt: skip
    assert taken.status_code == 422 and taken.json()["error"]["code"] == "taken"
    for field, value in (("base_url", "ftp://x"), ("api_key_env", "sk-live-not-a-name!"),
                         ("name", "Bad Name")):  # fmt: skip
        body = {"name": "sim-x", "base_url": url, field: value}
        bad = operator.request("POST", "/suppliers", json={"supplier": body})
        assert bad.status_code == 422 and bad.json()["error"]["param"] == field, bad.text

    offer = {"supplier": "sim-alpha-2", "instrument": "TEXT-PRIME", "model": "m2",
             "input_usd_per_m": "0.2", "output_usd_per_m": "0.9", "quality": 45,
             "context": 196608, "max_output": 65536, "capabilities": ["tools", "tools"]}  # fmt: skip
    created = data(operator.request("POST", "/offers", json={"offer": offer}), 201)
    assert created["id"] == "sim-alpha-2/text-prime/m2"
    assert created["capabilities"] == ["tools"] and created["instrument"] == "text-prime"
    wrong: list[tuple[str, object]] = [("supplier", "nobody"), ("instrument", "text-none"),
        ("quality", 101), ("max_output", 999_999), ("input_usd_per_m", "-1")]  # fmt: skip
    for field, wrong_value in wrong:
        bad = operator.request("POST", "/offers", json={"offer": {**offer, "model": "m3",
                                                                  field: wrong_value}})  # fmt: skip
        assert bad.status_code == 422 and bad.json()["error"]["param"] == field, bad.text
    unknown = operator.request("PATCH", "/offers/nope", json={"offer": {"quality": 50}})
    assert unknown.status_code == 404
    fixed = operator.request("PATCH", f"/offers/{quote(created['id'], safe='')}",
                             json={"offer": {"id": "other"}})  # fmt: skip
    assert fixed.status_code == 422 and fixed.json()["error"]["param"] == "id"


def test_instruments_show_their_price_and_history(
    ops_gateway: GatewayProcess, operator: Caller
) -> None:
    listed = data(operator.request("GET", "/instruments"))
    prime = next(i for i in listed if i["id"] == "text-prime")
    assert prime["best_price"] is not None and prime["available_offers"] >= 2
    assert len(prime["price_history"]) == 30
    assert prime["price_history"][-1]["price"] == prime["best_price"]  # today is the price now
    assert prime["average_price_30d"] is not None
    renamed = data(operator.request("PATCH", "/instruments/text-prime",
                                    json={"instrument": {"display_name": "Prime"}}))  # fmt: skip
    assert renamed["display_name"] == "Prime"
    bad = operator.request("PATCH", "/instruments/text-prime",
                           json={"instrument": {"max_input_tokens": 10**9}})  # fmt: skip
    assert bad.status_code == 422 and bad.json()["error"]["param"] == "max_input_tokens"
    member = Caller(api_root(ops_gateway), token=with_token(
        ops_gateway, person(ops_gateway, "member", ops_gateway.new_account("1")[0])).token)  # fmt: skip
    assert [i["id"] for i in data(member.request("GET", "/instruments"))] == [
        i["id"] for i in listed
    ]
    assert operator.request("GET", "/instruments/text-nothing").status_code == 404


def test_offer_health_usage_sums_and_the_csv_agree(
    ops_gateway: GatewayProcess, operator: Caller
) -> None:
    account, secret = ops_gateway.new_account("5")
    for _ in range(3):
        served_by(ops_gateway, secret)
    wait_until(lambda: len(ops_gateway.usage(account)) == 3)
    records = ops_gateway.usage(account)
    health = data(operator.request("GET", "/offer-health?window_seconds=600"))
    assert {row["offer_id"] for row in health} >= {BETA}
    assert all("verdict" in row and "spec" in row for row in health)
    assert operator.request("GET", "/offer-health?window_seconds=0").status_code == 422

    daily = data(operator.request("GET", f"/usage/daily?account_id={account}"))
    assert [(d["requests"], d["cost_nanos"]) for d in daily] == [(3, sum(r.cost for r in records))]
    exported = operator.request("GET", f"/usage.csv?account_id={account}")
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [r["request_id"] for r in rows] == [r.request_id for r in records]
    assert [int(r["cost_nanos"]) for r in rows] == [r.cost for r in records]
    assert rows[0]["billed"] == "true"
    bad = operator.request("GET", f"/usage.csv?account_id={account}&since=tomorrow")
    assert bad.status_code == 422 and bad.json()["error"]["param"] == "since"


def test_the_audit_log_pages_and_filters(ops_gateway: GatewayProcess, operator: Caller) -> None:
    for i in range(3):
        operator.request("POST", "/accounts", json={"account": {"name": f"audited-{i}"}})
    first = operator.request("GET", "/audit-log?action=account.create&limit=2").json()
    assert len(first["data"]) == 2 and first["next_cursor"]
    second = operator.request(
        "GET", f"/audit-log?action=account.create&limit=2&cursor={first['next_cursor']}"
    ).json()
    ids = [e["id"] for e in first["data"] + second["data"]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids)
    assert {e["action"] for e in first["data"] + second["data"]} == {"account.create"}
    assert all(e["actor"] == first["data"][0]["actor"] for e in first["data"])
    text = repr(first)
    assert "password" not in text and "ggm_" not in text
    assert operator.request("GET", "/audit-log?cursor=abc").status_code == 422
