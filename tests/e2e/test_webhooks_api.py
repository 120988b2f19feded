"""The management API's webhooks against the shared `gridgate serve`: an owner adds an endpoint
(the secret in that answer only), a key revoked through the API writes ``key.revoked`` (listed
with its delivery), the threshold is set and read, an event is replayed; another account's
owner sees none of it and gets 404s; a member may read but not change."""

from __future__ import annotations

from typing import Any

import httpx

from tests.e2e.test_management_api import make_user, not_found, signed_in, with_token
from tests.harness import GatewayProcess, wait_until


def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else {}


def test_an_owner_manages_webhooks_and_sees_a_revocation_event(gateway: GatewayProcess) -> None:
    a, _ = gateway.new_account("5", name="hooks-a")
    b, _ = gateway.new_account("5", name="hooks-b")
    owner = with_token(gateway, make_user(gateway, "owner", a))
    member = signed_in(gateway, make_user(gateway, "member", a))
    stranger = with_token(gateway, make_user(gateway, "owner", b))
    operator = with_token(gateway, make_user(gateway, "operator", None))

    made = _ok(
        owner.request(
            "POST",
            "/webhooks",
            json={"webhook": {"url": "http://127.0.0.1:9/hook", "events": ["key.revoked"]}},
        ),
        201,
    )["data"]
    assert made["account_id"] == a and str(made["secret"]).startswith("whsec_")
    listed = _ok(owner.request("GET", "/webhooks"))["data"]
    assert [e["id"] for e in listed] == [made["id"]]
    assert listed[0]["secret"] is None
    assert _ok(stranger.request("GET", "/webhooks"))["data"] == []
    assert _ok(member.request("GET", "/webhooks"))["data"] == listed
    refused = member.request("POST", "/webhooks", json={"webhook": {"url": "http://x.example"}})
    assert refused.status_code == 403, refused.text
    bad = owner.request("POST", "/webhooks", json={"webhook": {"url": "gopher://x"}})
    assert bad.status_code == 422 and bad.json()["error"]["param"] == "url"

    key = _ok(owner.request("POST", "/api-keys", json={"api_key": {"name": "k"}}), 201)["data"]
    _ok(owner.request("DELETE", f"/api-keys/{key['id']}"), 204)

    def revoked_event() -> Any:
        events = _ok(owner.request("GET", "/webhook-events"))["data"]
        return next((e for e in events if e["type"] == "key.revoked" and e["deliveries"]), None)

    event = wait_until(revoked_event, timeout=15)
    assert event["data"] == {
        "account_id": a,
        "key_id": key["id"],
        "name": "k",
        "prefix": key["key_prefix"],
    }
    [delivery] = event["deliveries"]
    assert delivery["endpoint_id"] == made["id"]
    assert _ok(stranger.request("GET", "/webhook-events"))["data"] == []
    not_found(stranger.request("POST", f"/webhook-events/{event['id']}/replay"))
    replayed = _ok(owner.request("POST", f"/webhook-events/{event['id']}/replay"))["data"]
    assert replayed == {"event_id": event["id"], "deliveries": 1}
    every = _ok(operator.request("GET", "/webhook-events", params={"account_id": a}))["data"]
    assert event["id"] in [e["id"] for e in every]

    path = f"/accounts/{a}/balance-threshold"
    shown = _ok(owner.request("PUT", path, json={"threshold_usd": "2.50"}))["data"]
    assert shown == {"account_id": a, "threshold_usd": "2.5", "threshold_nanos": 2_500_000_000}
    assert _ok(member.request("GET", path))["data"] == shown
    not_found(stranger.request("GET", path))
    wrong = owner.request("PUT", path, json={"threshold_usd": "lots"})
    assert wrong.status_code == 422, wrong.text
    _ok(owner.request("PUT", path, json={"threshold_usd": None}))

    not_found(stranger.request("DELETE", f"/webhooks/{made['id']}"))
    _ok(owner.request("DELETE", f"/webhooks/{made['id']}"), 204)
    assert _ok(owner.request("GET", "/webhooks"))["data"] == []
