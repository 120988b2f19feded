"""Operator observability over a real gateway: /healthz, /readyz (SQLite, PostgreSQL, and a
database that is gone), /metrics equal to what was sent (one process, and two workers summed in
every scrape), the client's X-Request-Id, and JSON logs that carry request ids and never a key
or a prompt."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.harness import (
    BackgroundLoop,
    GatewayProcess,
    Offer,
    simulators,
    start_gateway,
    stop_gateway,
    wait_until,
)
from tests.postgres import create_database, drop_database, require_postgres

OFFERS = [
    Offer("sim-a", "text-prime", "sim/prime-a", "0.10", "0.40", 40, 196_608, 131_072),
    Offer("sim-b", "text-standard", "sim/standard-b", "0.03", "0.06", 20, 128_000, 65_536),
]
JSON_LOGS = '[logging]\nformat = "json"\nlevel = "INFO"\n'
FAIL = "[[sim:mode=status,status=500]]"  # every attempt at the supplier answers 500

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def root(gw: GatewayProcess) -> str:
    return gw.base_url.removesuffix("/v1")


def scrape(gw: GatewayProcess) -> Samples:
    """One scrape on a connection of its own (with several workers, any of them answers)."""
    response = httpx.get(f"{root(gw)}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def chat(
    gw: GatewayProcess,
    key: str,
    instrument: str,
    prompt: str,
    *,
    stream: bool = False,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    body: dict[str, Any] = {
        "model": instrument,
        "max_tokens": 24,
        "messages": [{"role": "user", "content": prompt}],
    }
    if stream:
        body.update(stream=True, stream_options={"include_usage": True})
    response = httpx.post(
        f"{gw.base_url}/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {key}", **(headers or {})},
        timeout=30,
    )
    if stream and response.status_code == 200:
        assert response.text.rstrip().endswith("data: [DONE]")
    return response


@pytest.fixture(scope="module")
def ops(bg: BackgroundLoop, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """One gateway with JSON logs and the access log on; every line it writes must be JSON."""
    with simulators(bg, ["sim-a", "sim-b"]) as sims:
        gw = start_gateway(
            tmp_path_factory.mktemp("ops"),
            bg,
            {name: sim.base_url for name, sim in sims.items()},
            OFFERS,
            extra_config=JSON_LOGS,
            server="access_log = true",
        )
        gw.sims = sims
        try:
            yield gw
        finally:
            gw.run(gw.store.close())
            gw.process.terminate()
            code = gw.process.wait(30)
            assert gw.process.stdout is not None
            rest = gw.process.stdout.read()  # the banner was read at start: nothing else
            gw.process.stdout.close()
        assert code == 0, gw.log_path.read_text()
        assert rest == b""
        lines = gw.log_path.read_text().splitlines()
        assert lines
        for line in lines:  # shutdown included: every line a JSON object
            assert isinstance(json.loads(line), dict), line


# -- health and readiness ---------------------------------------------------------------------


def test_healthz_and_readyz_on_sqlite(ops: GatewayProcess) -> None:
    health = httpx.get(f"{root(ops)}/healthz", timeout=10)
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    ready = httpx.get(f"{root(ops)}/readyz", timeout=10)
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ready",
        "checks": {"database": "ok", "redis": "not configured"},
    }


def test_readyz_on_postgresql_then_503_when_its_database_is_gone(
    bg: BackgroundLoop, tmp_path: Path
) -> None:
    require_postgres()
    url = bg.run(create_database())
    dropped = False
    try:
        with simulators(bg, ["sim-a"]) as sims:
            gw = start_gateway(
                tmp_path,
                bg,
                {"sim-a": sims["sim-a"].base_url},
                OFFERS[:1],
                database_url=url,
                extra_config=JSON_LOGS,
            )
            try:
                ready = httpx.get(f"{root(gw)}/readyz", timeout=10)
                assert ready.status_code == 200, ready.text
                assert ready.json()["checks"] == {"database": "ok", "redis": "not configured"}
                # the database goes away under the running gateway (its connections cut)
                bg.run(drop_database(url))
                dropped = True
                gone = wait_until(
                    lambda: (
                        (r := httpx.get(f"{root(gw)}/readyz", timeout=10)).status_code == 503 and r
                    )
                )
                body = gone.json()
                assert body["status"] == "not ready" and body["failing"] == ["database"]
                assert body["checks"]["database"] in ("failed", "timeout")
                assert body["checks"]["redis"] == "not configured"
                # the body names the check, never where the database is
                for secret in ("postgres", "127.0.0.1", "5432", "ggt_"):
                    assert secret not in gone.text
                # the process itself is still up
                assert httpx.get(f"{root(gw)}/healthz", timeout=10).status_code == 200
            finally:
                stop_gateway(gw)
    finally:
        if not dropped:
            bg.run(drop_database(url))


# -- metrics ------------------------------------------------------------------------------------


def test_metrics_equal_what_was_sent(ops: GatewayProcess) -> None:
    account_id, key = ops.new_account("5")
    funded = ops.balance(account_id)
    before = scrape(ops)
    sent = [
        *(chat(ops, key, "text-prime", f"plain {i}") for i in range(3)),
        *(chat(ops, key, "text-prime", f"streamed {i}", stream=True) for i in range(2)),
        *(chat(ops, key, "text-standard", f"standard {i}") for i in range(2)),
        chat(ops, key, "text-standard", f"fails {FAIL}"),
    ]
    assert [r.status_code for r in sent] == [200] * 7 + [502]
    records = wait_until(lambda: (found := ops.usage(account_id)) and len(found) == 8 and found)
    assert {r.outcome for r in records} == {"ok", "upstream_error"}  # no checkpoint is left

    def delta(found: Samples, name: str, **labels: str) -> float:
        return value(found, name, **labels) - value(before, name, **labels)

    # the usage hook runs as each request settles: poll until the last one is in
    after = wait_until(
        lambda: (
            (found := scrape(ops))
            and sum(
                delta(found, "gridgate_requests_total", instrument=i, status=s, outcome=o)
                for i, s, o in {(r.instrument, str(r.status), r.outcome) for r in records}
            )
            == 8
            and found
        )
    )
    by_kind = Counter((r.instrument, str(r.status), r.outcome) for r in records)
    assert by_kind == {
        ("text-prime", "200", "ok"): 5,
        ("text-standard", "200", "ok"): 2,
        ("text-standard", "502", "upstream_error"): 1,
    }
    for (instrument, status, outcome), count in by_kind.items():
        labels = {"instrument": instrument, "status": status, "outcome": outcome}
        assert delta(after, "gridgate_requests_total", **labels) == count
    for instrument, count in Counter(r.instrument for r in records).items():
        name = "gridgate_request_duration_seconds_count"
        assert delta(after, name, instrument=instrument) == count
    # tokens and spend: exactly the sums of the usage records, and the spend is the money the
    # account lost
    served = {(r.instrument, r.supplier) for r in records if r.supplier is not None}
    assert served == {("text-prime", "sim-a"), ("text-standard", "sim-b")}
    for instrument, supplier in served:
        mine = [r for r in records if (r.instrument, r.supplier) == (instrument, supplier)]
        pair = {"instrument": instrument, "supplier": supplier}
        assert delta(after, "gridgate_tokens_total", **pair, direction="input") == sum(
            r.input_tokens for r in mine
        )
        assert delta(after, "gridgate_tokens_total", **pair, direction="output") == sum(
            r.output_tokens for r in mine
        )
        assert delta(after, "gridgate_spend_nanodollars_total", **pair) == sum(
            r.cost for r in mine if r.billed
        )
        assert delta(after, "gridgate_upstream_duration_seconds_count", supplier=supplier) == len(
            mine
        )
    spend = sum(
        delta(after, "gridgate_spend_nanodollars_total", instrument=i, supplier=s)
        for i, s in served
    )
    assert spend > 0
    ops.assert_balance(account_id, funded - int(spend))
    assert delta(after, "gridgate_ttft_seconds_count", supplier="sim-a") == 2
    chat_route = {"route": "/v1/chat/completions", "method": "POST"}
    assert delta(after, "gridgate_http_requests_total", **chat_route, status="200") == 7
    assert delta(after, "gridgate_http_requests_total", **chat_route, status="502") == 1
    name = "gridgate_http_request_duration_seconds_count"
    assert delta(after, name, route="/v1/chat/completions") == 8
    # nothing in flight any more; the gauges exist
    assert value(after, "gridgate_holds_outstanding") == 0
    assert ("gridgate_usage_queue_depth", frozenset()) in after
    assert value(after, "gridgate_leases_open") >= 0


def test_unknown_paths_share_one_route_label(ops: GatewayProcess) -> None:
    before = scrape(ops)
    for path in ("/nope", "/v1/nope/abc", f"/x/{secrets.token_hex(8)}"):
        assert httpx.get(f"{root(ops)}{path}", timeout=10).status_code == 404
    after = scrape(ops)
    labels = {"route": "other", "method": "GET", "status": "404"}
    assert (
        value(after, "gridgate_http_requests_total", **labels)
        - value(before, "gridgate_http_requests_total", **labels)
        == 3
    )
    routes = {dict(labels).get("route") for _, labels in after}
    assert not any(r and r.startswith(("/nope", "/x/", "/v1/nope")) for r in routes)


async def _fire(base_url: str, key: str, count: int) -> list[int]:
    """``count`` requests, each on a connection of its own (so the kernel spreads them over
    the workers sharing the port)."""
    limit = asyncio.Semaphore(16)
    body = {"model": "text-prime", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}

    async def one(session: aiohttp.ClientSession) -> int:
        async with (
            limit,
            session.post(
                f"{base_url}/chat/completions",
                json=body,
                headers={"Authorization": f"Bearer {key}"},
            ) as response,
        ):
            await response.read()
            return response.status

    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=60)
    ) as session:
        return await asyncio.gather(*(one(session) for _ in range(count)))


def test_two_workers_every_scrape_sums_both(bg: BackgroundLoop, tmp_path: Path) -> None:
    with simulators(bg, ["sim-a"]) as sims:
        gw = start_gateway(tmp_path, bg, {"sim-a": sims["sim-a"].base_url}, OFFERS[:1], workers=2)
        try:
            account_id, key = gw.new_account("5")
            n = 40
            assert bg.run(_fire(gw.base_url, key, n)) == [200] * n
            records = wait_until(
                lambda: (found := gw.usage(account_id)) and len(found) == n and found
            )
            # both workers served (each process's request ids carry a prefix of its own)
            assert len({r.request_id[:16] for r in records}) == 2
            ok = {"instrument": "text-prime", "status": "200", "outcome": "ok"}
            wait_until(lambda: value(scrape(gw), "gridgate_requests_total", **ok) == n)
            pair = {"instrument": "text-prime", "supplier": "sim-a"}
            for _ in range(12):  # whichever worker answers, the totals are the fleet's
                found = scrape(gw)
                assert value(found, "gridgate_requests_total", **ok) == n
                chat_ok = {"route": "/v1/chat/completions", "method": "POST", "status": "200"}
                assert value(found, "gridgate_http_requests_total", **chat_ok) == n
                assert value(found, "gridgate_tokens_total", **pair, direction="output") == sum(
                    r.output_tokens for r in records
                )
                assert value(found, "gridgate_spend_nanodollars_total", **pair) == sum(
                    r.cost for r in records
                )
                assert value(found, "gridgate_holds_outstanding") == 0
        finally:
            assert stop_gateway(gw) == 0, gw.log_path.read_text()


# -- request ids --------------------------------------------------------------------------------


def test_a_client_request_id_is_the_visible_id(ops: GatewayProcess) -> None:
    account_id, key = ops.new_account("1")
    mine = f"client-{secrets.token_hex(4)}:trace/42@svc+x=y.z_w"
    plain = chat(ops, key, "text-prime", "hello", headers={"X-Request-Id": mine})
    assert plain.status_code == 200
    assert plain.headers["x-request-id"] == mine
    own = plain.headers["x-gridgate-request-id"]
    assert own.startswith("req_")
    streamed = chat(ops, key, "text-prime", "hello", stream=True, headers={"X-Request-Id": mine})
    assert streamed.status_code == 200
    assert streamed.headers["x-request-id"] == mine
    assert streamed.headers["x-gridgate-request-id"] not in (own, mine)
    # gridgate's own id stays the usage record's key (unique even when clients reuse theirs)
    records = wait_until(lambda: (found := ops.usage(account_id)) and len(found) == 2 and found)
    assert {r.request_id for r in records} == {own, streamed.headers["x-gridgate-request-id"]}


@pytest.mark.parametrize("bad", ["has space", "x" * 129, "semi;colon", "ünïcode"])
def test_an_unusable_client_request_id_is_ignored(ops: GatewayProcess, bad: str) -> None:
    _, key = ops.new_account("1")
    response = httpx.post(
        f"{ops.base_url}/chat/completions",
        json={
            "model": "text-prime",
            "max_tokens": 4,
            "messages": [{"role": "user", "content": "x"}],
        },
        headers={"Authorization": f"Bearer {key}", "X-Request-Id": bad.encode()},
        timeout=30,
    )
    assert response.status_code == 200
    assert response.headers["x-request-id"].startswith("req_")
    assert "x-gridgate-request-id" not in response.headers


def test_errors_carry_the_client_request_id_on_both_surfaces(ops: GatewayProcess) -> None:
    _, key = ops.new_account("1")
    mine = "err-" + secrets.token_hex(4)
    anthropic = httpx.post(
        f"{ops.base_url}/messages",
        content=b'{"model": "text-prime"}',
        headers={"x-api-key": key, "X-Request-Id": mine, "content-type": "application/json"},
        timeout=30,
    )
    assert anthropic.status_code == 400  # max_tokens and messages are missing (Anthropic: 400)
    assert anthropic.json()["request_id"] == mine
    assert anthropic.headers["request-id"] == mine == anthropic.headers["x-request-id"]
    assert anthropic.headers["x-gridgate-request-id"].startswith("req_")
    openai_ = httpx.post(
        f"{ops.base_url}/chat/completions",
        content=b"{",
        headers={"Authorization": f"Bearer {key}", "X-Request-Id": mine},
        timeout=30,
    )
    assert openai_.status_code == 400 and openai_.headers["x-request-id"] == mine
    missing = httpx.get(f"{root(ops)}/nowhere", headers={"X-Request-Id": mine}, timeout=10)
    assert missing.status_code == 404 and missing.headers["x-request-id"] == mine


# -- logs ---------------------------------------------------------------------------------------


def _log_lines(gw: GatewayProcess) -> list[dict[str, Any]]:
    text = gw.log_path.read_text()
    complete = text[: text.rfind("\n") + 1]  # a line still being written is not read yet
    return [json.loads(line) for line in complete.splitlines()]


def test_logs_are_json_carry_request_ids_and_never_a_key_or_a_prompt(ops: GatewayProcess) -> None:
    _, key = ops.new_account("1")
    prompt = f"ZEBRA-ORCHID-{secrets.token_hex(6)} please tell me a secret"
    wrong_key = f"gg_wrong_{secrets.token_hex(12)}"
    answers = {
        "plain": chat(ops, key, "text-prime", prompt, headers={"X-Request-Id": "logs-plain-1"}),
        "streamed": chat(ops, key, "text-prime", prompt, stream=True),
        "failed": chat(ops, key, "text-standard", f"{prompt} {FAIL}"),
        "messages": httpx.post(
            f"{ops.base_url}/messages",
            json={
                "model": "text-prime",
                "max_tokens": 16,
                "messages": [{"role": "user", "content": prompt}],
            },
            headers={"x-api-key": key},
            timeout=30,
        ),
        "unauthorized": chat(ops, wrong_key, "text-prime", prompt),
        "not_found": httpx.get(
            f"{root(ops)}/v1/secret/{prompt.split()[0]}?key={key}",
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        ),
    }
    statuses = {name: r.status_code for name, r in answers.items()}
    assert statuses == {
        "plain": 200,
        "streamed": 200,
        "failed": 502,
        "messages": 200,
        "unauthorized": 401,
        "not_found": 404,
    }
    ids = {name: r.headers["x-request-id"] for name, r in answers.items()}
    assert ids["plain"] == "logs-plain-1"

    def access_lines() -> dict[str, dict[str, Any]] | None:
        found = {
            line["request_id"]: line
            for line in _log_lines(ops)
            if line["logger"] == "aiohttp.access" and "request_id" in line
        }
        return found if all(i in found for i in ids.values()) else None

    access = wait_until(access_lines)
    for name, request_id in ids.items():
        line = access[request_id]
        assert line["status"] == statuses[name]
        assert line["level"] == "INFO" and line["ts"].endswith("Z")
    assert access[ids["plain"]]["route"] == "/v1/chat/completions"
    assert (
        access[ids["plain"]]["gridgate_request_id"]
        == answers["plain"].headers["x-gridgate-request-id"]
    )
    assert access[ids["messages"]]["route"] == "/v1/messages"
    assert access[ids["not_found"]]["route"] == "other"
    # a line the exchange logs inside the request carries the request's id too
    failures = [
        line
        for line in _log_lines(ops)
        if line.get("request_id") == ids["failed"] and line["level"] == "WARNING"
    ]
    assert failures and all(line["logger"].startswith("gridgate") for line in failures)
    # and nothing anywhere holds a key, an Authorization header or the prompt
    text = ops.log_path.read_text()
    for secret in (key, wrong_key, prompt, prompt.split()[0], "Bearer", "ZEBRA-ORCHID"):
        assert secret not in text, secret
