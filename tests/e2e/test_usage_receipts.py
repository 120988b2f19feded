"""Usage receipts on the Consumption API, over two ``gridgate serve`` processes sharing one
database (SQLite, then PostgreSQL), read with the official openai SDK:

- every answer of the three surfaces, errors included, carries ``x-grid-request-id``;
- its receipt is found at once through the *other* process, priced as the ledger charged it;
- another account's key gets 404, a key made ``own_usage_only`` sees its own requests only;
- ``GET /v1/usage`` filters, orders and pages; bad parameters are 400s naming them;
- ``GET /v1/usage/summary`` totals equal ``gridgate accounts statement``'s for the window;
- a signed receipt verifies with the published key (``cryptography``), a tampered one fails.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import anthropic
import httpx
import openai
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from openai import OpenAI

from gridgate.money import Price, format_usd_fixed
from tests.harness import (
    BackgroundLoop,
    GatewayProcess,
    Offer,
    nanos,
    simulators,
    site,
    start_gateway,
    stop_gateway,
    wait_until,
)
from tests.postgres import create_database, drop_database, require_postgres

OFFERS = [
    Offer("sim-a", "text-prime", "sim/prime-a", "0.10", "0.40", 40, 196_608, 65_536),
    Offer("sim-a", "text-standard", "sim/standard-a", "0.03", "0.06", 20, 128_000, 65_536),
]
PRIME = Price(nanos("0.10"), nanos("0.40"))
USER = [{"role": "user", "content": "Say something about receipts."}]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def fleet(
    request: pytest.FixtureRequest, bg: BackgroundLoop, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[GatewayProcess]]:
    """Two processes on one database; leases close 0.2 s after their last request."""
    if request.param == "postgres":
        require_postgres()
        url = bg.run(create_database())
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'gridgate.db'}"
    gateways: list[GatewayProcess] = []
    with simulators(bg, ["sim-a"]) as sims:
        try:
            for name in ("one", "two"):
                gateway = start_gateway(
                    tmp_path_factory.mktemp(name),
                    bg,
                    {n: s.base_url for n, s in sims.items()},
                    OFFERS,
                    database_url=url,
                    billing="lease_idle_seconds = 0.2\nlease_tick_seconds = 0.1",
                )
                gateway.sims = sims
                gateways.append(gateway)
            yield gateways
        finally:
            for gateway in gateways:
                assert stop_gateway(gateway) == 0, gateway.log_path.read_text()
            if request.param == "postgres":
                bg.run(drop_database(url))


@pytest.fixture
def clients(fleet: list[GatewayProcess]) -> Iterator[tuple[str, OpenAI, OpenAI]]:
    """A fresh account, and a client of it on each process: (account id, one, two)."""
    account_id, secret = fleet[0].new_account("5")
    one, two = (OpenAI(base_url=g.base_url, api_key=secret, max_retries=0) for g in fleet)
    try:
        yield account_id, one, two
    finally:
        one.close()
        two.close()


def receipt(client: OpenAI, request_id: str, **params: str) -> dict[str, Any]:
    found: dict[str, Any] = client.get(
        f"/usage/{request_id}", cast_to=object, options={"params": params}
    )
    return found


def listing(client: OpenAI, **params: Any) -> dict[str, Any]:
    found: dict[str, Any] = client.get("/usage", cast_to=object, options={"params": params})
    return found


def chat(client: OpenAI, content: str = "hello", max_tokens: int = 8) -> str:
    raw = client.chat.completions.with_raw_response.create(
        model="text-prime", messages=[{"role": "user", "content": content}], max_tokens=max_tokens
    )
    return raw.headers["x-grid-request-id"]


def test_every_surface_answers_with_its_grid_request_id(
    fleet: list[GatewayProcess], clients: tuple[str, OpenAI, OpenAI]
) -> None:
    _, one, _ = clients
    secret = one.api_key
    plain = one.chat.completions.with_raw_response.create(
        model="text-prime", messages=USER, max_tokens=5
    )
    with one.chat.completions.with_streaming_response.create(
        model="text-prime", messages=USER, max_tokens=5, stream=True
    ) as streamed:
        streamed.read()
    responses = one.responses.with_raw_response.create(
        model="text-prime", input="hi", max_output_tokens=16
    )
    with anthropic.Anthropic(base_url=site(fleet[0]), api_key=secret, max_retries=0) as claude:
        messages = claude.messages.with_raw_response.create(
            model="text-prime", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
        )
        with pytest.raises(anthropic.NotFoundError) as missing:
            claude.messages.create(
                model="no-such-model", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
            )
    with pytest.raises(openai.UnprocessableEntityError) as refused:
        one.chat.completions.create(model="text-prime", messages=[], max_tokens=5)
    chosen = one.chat.completions.with_raw_response.create(
        model="text-prime", messages=USER, max_tokens=5, extra_headers={"X-Request-Id": "mine-1"}
    )
    answers = [plain.headers, streamed.headers, responses.headers, messages.headers]
    errors = [missing.value.response.headers, refused.value.response.headers]
    ids = [h["x-grid-request-id"] for h in answers + errors]
    assert all(i.startswith("req_") for i in ids) and len(set(ids)) == len(ids)
    assert all(h["x-request-id"] == h["x-grid-request-id"] for h in answers + errors)
    # a client's own X-Request-Id is the visible id; x-grid-request-id stays gridgate's own
    assert chosen.headers["x-request-id"] == "mine-1"
    assert chosen.headers["x-grid-request-id"] == chosen.headers["x-gridgate-request-id"]
    # each surface is named on its receipt
    endpoints = [receipt(one, h["x-grid-request-id"])["endpoint"] for h in answers]
    assert endpoints == ["/v1/chat/completions"] * 2 + ["/v1/responses", "/v1/messages"]


def test_a_receipt_is_found_at_once_through_the_other_process(
    fleet: list[GatewayProcess], clients: tuple[str, OpenAI, OpenAI]
) -> None:
    account_id, one, two = clients
    body = json.dumps({"model": "text-prime", "messages": USER, "max_tokens": 9}).encode()
    answer = httpx.post(
        f"{fleet[0].base_url}/chat/completions",
        content=body,
        headers={"Authorization": f"Bearer {one.api_key}", "Content-Type": "application/json"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    request_id = answer.headers["x-grid-request-id"]
    usage = answer.json()["usage"]
    # no wait: the other process reads it now (it waits a batch interval itself if it must)
    found = receipt(two, request_id)
    cost = PRIME.cost(usage["prompt_tokens"], usage["completion_tokens"])
    assert found["request_id"] == request_id
    assert found["status"] == "reconciled"
    assert found["requested_model"] == "text-prime"
    assert found["serving_model"] == "sim/prime-a"
    assert found["endpoint"] == "/v1/chat/completions"
    assert found["usage"]["input_tokens"] == usage["prompt_tokens"]
    assert found["usage"]["output_tokens"] == usage["completion_tokens"]
    assert found["usage"]["total_tokens"] == usage["total_tokens"]
    assert found["cost"]["amount"] == format_usd_fixed(cost)
    assert found["cost"]["amount"] == usage["cost"]  # the answer's inline cost, to the character
    assert found["cost"]["currency"] == "USD"
    assert found["cost"]["status"] == "reconciled"
    assert found["cost"]["reconciled_at"] is not None
    [line] = found["cost"]["breakdown"]
    assert line["offer"] == "sim-a/text-prime/sim/prime-a" and line["supplier"] == "sim-a"
    assert line["price_per_input_token"] == "0.0000001"  # $0.10 per 1M tokens
    assert line["price_per_output_token"] == "0.0000004"
    assert line["subtotal"] == format_usd_fixed(cost)
    assert found["timing"]["duration_ms"] > 0
    assert set(found["spec"]) == {"in_spec", "note"}
    # the same as its process's own answer, and as the usage record the ledger charged
    assert receipt(one, request_id) == found
    record = fleet[0].run(fleet[0].store.get_usage(request_id))
    assert record is not None and record.cost == cost and record.account_id == account_id
    assert record.request_hash == hashlib.sha256(body).hexdigest()


def test_another_accounts_key_gets_404_and_an_own_usage_key_sees_its_own(
    fleet: list[GatewayProcess], clients: tuple[str, OpenAI, OpenAI]
) -> None:
    account_id, one, _ = clients
    request_id = chat(one)
    _, stranger = fleet[0].new_account("1", name="stranger")
    with OpenAI(base_url=fleet[1].base_url, api_key=stranger, max_retries=0) as other:
        with pytest.raises(openai.NotFoundError) as theirs:
            receipt(other, request_id)
        with pytest.raises(openai.NotFoundError) as unknown:
            receipt(other, "req_000000000000000000000")
        assert listing(other)["data"] == []
    # answered alike: nothing says the request exists
    for refused in (theirs.value, unknown.value):
        assert refused.status_code == 404
        assert isinstance(refused.body, dict) and refused.body["type"] == "not_found_error"
    made = fleet[0].cli(
        "keys", "create", "--account", account_id, "--name", "ci", "--own-usage-only", "--json"
    )
    assert made.returncode == 0, made.stderr
    created = json.loads(made.stdout)
    assert created["own_usage_only"] is True
    with OpenAI(base_url=fleet[1].base_url, api_key=created["key"], max_retries=0) as own:
        mine = chat(own)
        assert receipt(own, mine)["api_key_id"] == created["id"]
        with pytest.raises(openai.NotFoundError):
            receipt(own, request_id)  # the account's, by another key
        assert [r["request_id"] for r in listing(own)["data"]] == [mine]
        with pytest.raises(openai.NotFoundError):
            listing(own, api_key_id=receipt(one, request_id)["api_key_id"])
    # the account's other key sees both
    assert {request_id, mine} <= {r["request_id"] for r in listing(one)["data"]}


def test_the_list_filters_orders_and_pages(
    fleet: list[GatewayProcess], clients: tuple[str, OpenAI, OpenAI]
) -> None:
    _, one, two = clients
    made = [chat(one, f"request {i}", max_tokens=4 + 3 * i) for i in range(5)]
    with pytest.raises(openai.BadRequestError):
        one.chat.completions.create(
            model="text-prime",
            messages=[{"role": "user", "content": "no [[sim:mode=status,status=400]]"}],
            max_tokens=5,
        )
    failed = listing(one, status="error")["data"]  # this process's: at once
    assert [r["cost"]["status"] for r in failed] == ["cancelled"]
    assert failed[0]["cost"]["amount"] == "0.000000000"
    assert listing(one, cost_status="cancelled")["data"] == failed
    # through the other process once its batch is written (~50 ms)
    wait_until(lambda: listing(two, cost_status="cancelled")["data"] == failed or None)

    newest_first = [r["request_id"] for r in listing(one, status="reconciled")["data"]]
    assert newest_first == made[::-1]
    first = listing(one, status="reconciled", limit=2)
    assert [r["request_id"] for r in first["data"]] == made[:2:-1][:2]
    assert first["paging"]["has_more"] and first["paging"]["prev_cursor"] is None
    second = listing(one, status="reconciled", limit=2, next=first["paging"]["next_cursor"])
    assert [r["request_id"] for r in second["data"]] == [made[2], made[1]]
    back = listing(one, status="reconciled", limit=2, prev=second["paging"]["prev_cursor"])
    assert back["data"] == first["data"]
    last = listing(one, status="reconciled", limit=2, next=second["paging"]["next_cursor"])
    assert [r["request_id"] for r in last["data"]] == [made[0]]
    assert not last["paging"]["has_more"] and last["paging"]["next_cursor"] is None

    by_cost = listing(one, cost_status="reconciled", order_by="cost", order_direction="asc")
    amounts = [nanos(r["cost"]["amount"]) for r in by_cost["data"]]
    assert amounts == sorted(amounts) and len(amounts) == 5
    assert listing(one, model="text-standard")["data"] == []
    assert len(listing(one, model="TEXT-PRIME", status="reconciled")["data"]) == 5


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"order_by": "tokens"}, "order_by"),
        ({"order_direction": "up"}, "order_direction"),
        ({"status": "done"}, "status"),
        ({"cost_status": "free"}, "cost_status"),
        ({"from": "yesterday"}, "from"),
        ({"from": "2026-01-02", "to": "2026-01-01"}, "to"),
        ({"next": "!!"}, "next"),
    ],
)
def test_a_bad_list_parameter_is_a_400_naming_it(
    clients: tuple[str, OpenAI, OpenAI], params: dict[str, str], param: str
) -> None:
    _, one, _ = clients
    with pytest.raises(openai.BadRequestError) as refused:
        listing(one, **params)
    assert refused.value.status_code == 400
    assert isinstance(refused.value.body, dict) and refused.value.body["param"] == param


def test_the_summary_equals_the_ledger_statement_to_the_nano_dollar(
    fleet: list[GatewayProcess], clients: tuple[str, OpenAI, OpenAI]
) -> None:
    account_id, one, two = clients
    assert listing(one)["data"] == []  # a fresh account
    for i, client in enumerate([one, two, one, two]):
        chat(client, f"sum {i}", max_tokens=5 + i)
    # one's last request reaches two's list within one's batch interval
    records: list[dict[str, Any]] = wait_until(
        lambda: (found := listing(two, order_direction="asc")["data"]) and len(found) == 4 and found
    )
    window = {"from": records[0]["created_at"], "to": "2100-01-01T00:00:00Z"}
    with pytest.raises(openai.BadRequestError) as too_long:
        two.get("/usage/summary", cast_to=object, options={"params": window})
    assert isinstance(too_long.value.body, dict) and too_long.value.body["param"] == "from"
    frm = records[0]["created_at"]
    to = _plus_seconds(records[-1]["created_at"], 1)
    summary: dict[str, Any] = two.get(
        "/usage/summary", cast_to=object, options={"params": {"from": frm, "to": to}}
    )
    totals = summary["totals"]
    assert totals["request_count"] == 4 and totals["cost"]["reconciled_requests"] == 4
    expected = sum(nanos(r["cost"]["amount"]) for r in records)
    assert nanos(totals["cost"]["amount"]) == expected

    # both processes' leases close once idle: their hold and settle entries then net to
    # exactly the requests' costs
    def statement() -> dict[str, Any] | None:
        shown = fleet[0].cli("accounts", "statement", account_id, "--from", frm, "--to", to)
        assert shown.returncode == 0, shown.stderr
        document: dict[str, Any] = json.loads(shown.stdout)
        return document if -document["totals"]["lease_net_nanos"] == expected else None

    document = wait_until(statement)
    assert document["totals"]["usage_cost_nanos"] == nanos(totals["cost"]["amount"])
    assert document["totals"]["requests"] == totals["request_count"]
    for group_by in ("day", "model", "api_key"):
        grouped: dict[str, Any] = one.get(
            "/usage/summary",
            cast_to=object,
            options={"params": {"from": frm, "to": to, "group_by": group_by}},
        )
        assert grouped["totals"] == totals
        assert sum(nanos(b["cost"]["amount"]) for b in grouped["buckets"]) == expected
    assert [b["key"] for b in grouped["buckets"]] == [records[0]["api_key_id"]]


def _plus_seconds(iso: str, seconds: int) -> str:
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00")) + timedelta(seconds=seconds)
    return moment.isoformat().replace("+00:00", "Z")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_a_signed_receipt_verifies_with_the_published_key_and_a_tampered_one_fails(
    fleet: list[GatewayProcess], clients: tuple[str, OpenAI, OpenAI]
) -> None:
    account_id, one, two = clients
    body = json.dumps({"model": "text-prime", "messages": USER, "max_tokens": 6}).encode()
    answer = httpx.post(
        f"{fleet[0].base_url}/chat/completions",
        content=body,
        headers={"Authorization": f"Bearer {one.api_key}", "Content-Type": "application/json"},
        timeout=30,
    )
    request_id = answer.headers["x-grid-request-id"]
    signed = receipt(two, request_id, signed="true")
    by_header: dict[str, Any] = one.get(
        f"/usage/{request_id}",
        cast_to=object,
        options={"headers": {"Grid-Receipt-Signature": "true"}},
    )
    signature = signed["signature"]
    assert signature["alg"] == "Ed25519"
    assert by_header["signature"]["kid"] == signature["kid"]  # one key for the fleet
    keys = [httpx.get(f"{site(g)}/.well-known/gridgate-receipt-keys").json() for g in fleet]
    assert keys[0] == keys[1]
    [jwk] = [k for k in keys[0]["keys"] if k["kid"] == signature["kid"]]
    assert (jwk["kty"], jwk["crv"]) == ("OKP", "Ed25519")
    public = Ed25519PublicKey.from_public_bytes(_unb64(jwk["x"]))
    payload = _unb64(signature["payload"])
    public.verify(_unb64(signature["value"]), payload)  # raises if it does not verify

    attested = json.loads(payload)
    assert attested["request_id"] == request_id
    assert attested["request_hash"] == "sha256:" + hashlib.sha256(body).hexdigest()
    assert attested["amount"] == signed["cost"]["amount"]
    assert attested["tokens"]["output"] == signed["usage"]["output_tokens"]
    assert attested["instrument"]["id"] == "text-prime"
    assert attested["instrument"]["spec"]["ttft_ceiling_ms"] == 4620
    assert attested["offer"] == "sim-a/text-prime/sim/prime-a" and attested["supplier"] == "sim-a"
    assert attested["serving_model"] == "sim/prime-a"
    assert attested["unit_prices"]["output_per_token"] == "0.0000004"
    assert attested["ledger"]["hold_id"].startswith("lease_")
    assert payload == json.dumps(attested, sort_keys=True, separators=(",", ":")).encode()

    tampered = json.dumps(attested | {"amount": "0"}, sort_keys=True, separators=(",", ":"))
    with pytest.raises(InvalidSignature):
        public.verify(_unb64(signature["value"]), tampered.encode())

    # once the lease has closed, the receipt names the ledger entry that settled it
    def settled() -> int | None:
        again = _unb64(receipt(one, request_id, signed="true")["signature"]["payload"])
        entry: int | None = json.loads(again)["ledger"]["settle_entry_id"]
        return entry

    entry_id = wait_until(settled)
    entries = fleet[0].run(fleet[0].store.entries(account_id))
    [closing] = [e for e in entries if e.id == entry_id]
    assert closing.kind == "settle" and closing.hold_id == attested["ledger"]["hold_id"]


def test_an_out_of_spec_delivery_is_waived(
    fleet: list[GatewayProcess], clients: tuple[str, OpenAI, OpenAI]
) -> None:
    _, one, two = clients
    with one.chat.completions.with_streaming_response.create(
        model="text-standard",  # TTFT ceiling 1,320 ms
        messages=[{"role": "user", "content": "Hi [[sim:mode=slow,ttft_ms=1600]]"}],
        max_tokens=5,
        stream=True,
    ) as streamed:
        streamed.read()
        request_id = streamed.headers["x-grid-request-id"]
    found = receipt(two, request_id)
    assert found["status"] == "reconciled"
    assert found["cost"]["status"] == "waived" and found["cost"]["amount"] == "0.000000000"
    assert found["spec"]["in_spec"] is False
    assert "first token after" in found["spec"]["note"]
    assert found["timing"]["ttft_ms"] >= 1600
    assert listing(two, cost_status="waived")["data"][0]["request_id"] == request_id
