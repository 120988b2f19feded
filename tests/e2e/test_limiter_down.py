"""When the rate limiter's Redis cannot be reached: 503 by default (closed), or served without
limits and a loud log (open); /readyz names Redis either way (503 when closed, still ready when
open)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

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

OFFERS = [Offer("sim-a", "text-prime", "sim/a", "0.10", "0.40", 40, 196_608, 131_072)]
BODY = {"model": "text-prime", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
DEAD_REDIS = "redis://:hunter2-secret@127.0.0.1:1/0"  # nothing listens on port 1


def _gateway(bg: BackgroundLoop, tmp: Path, policy: str) -> Iterator[GatewayProcess]:
    config = (
        f'[redis]\nurl = "{DEAD_REDIS}"\n'
        f'[limits]\non_backend_failure = "{policy}"\n'
        "[limits.key]\nrequests_per_minute = 100\n"
    )
    with simulators(bg, ["sim-a"]) as sims:
        gateway = start_gateway(
            tmp, bg, {"sim-a": sims["sim-a"].base_url}, OFFERS, extra_config=config
        )
        try:
            yield gateway
        finally:
            stop_gateway(gateway)


@pytest.fixture
def closed(bg: BackgroundLoop, tmp_path: Path) -> Iterator[GatewayProcess]:
    yield from _gateway(bg, tmp_path, "closed")


@pytest.fixture
def open_(bg: BackgroundLoop, tmp_path: Path) -> Iterator[GatewayProcess]:
    yield from _gateway(bg, tmp_path, "open")


def _post(gateway: GatewayProcess, key: str) -> httpx.Response:
    return httpx.post(
        f"{gateway.base_url}/chat/completions",
        json=BODY,
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )


def test_closed_answers_503_charges_nothing_and_readyz_names_redis(
    closed: GatewayProcess,
) -> None:
    account, key = closed.new_account("1")
    response = _post(closed, key)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    error = response.json()["error"]
    assert error["code"] == "rate_limiter_unavailable"
    assert "hunter2" not in response.text
    assert closed.usage(account) == []
    closed.assert_balance(account, 1_000_000_000)
    ready = httpx.get(closed.base_url.removesuffix("/v1") + "/readyz", timeout=10)
    assert ready.status_code == 503
    assert ready.json()["checks"]["redis"] != "ok"
    assert ready.json()["checks"]["database"] == "ok"
    assert "hunter2" not in ready.text
    assert "hunter2" not in closed.log_path.read_text()


def test_open_serves_without_limits_and_says_so_in_the_log(open_: GatewayProcess) -> None:
    _, key = open_.new_account("1")
    for _ in range(3):
        response = _post(open_, key)
        assert response.status_code == 200
        assert "X-RateLimit-Limit" not in response.headers
    log = open_.log_path.read_text()
    assert "WITHOUT rate limits" in log
    assert log.count("WITHOUT rate limits") == 1  # once per 10 s, not once per request
    assert "hunter2" not in log


def test_open_stays_ready_and_names_redis_in_the_checks(open_: GatewayProcess) -> None:
    ready = httpx.get(open_.base_url.removesuffix("/v1") + "/readyz", timeout=10)
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["status"] == "ready"
    assert body["checks"]["redis"] == "failed (open: serving unlimited)"
    assert body["checks"]["database"] == "ok"
    assert "failing" not in body
    assert "hunter2" not in ready.text
