"""Stored responses across processes on one PostgreSQL database: two ``gridgate serve``
processes answer for the same responses (a delete through one is gone from the other), and
both sweep expired ones without an error, each deleting what it took exactly once."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from openai import OpenAI

from gridgate.storage.ports.responses import StoredItem
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
from tests.storage.conftest import raw_sql

OFFERS = [Offer("sim-a", "text-prime", "sim/prime-a", "0.10", "0.40", 40, 196_608, 65_536)]
SWEPT = re.compile(r"deleted (\d+) expired stored responses")


@pytest.fixture(scope="module")
def pair(
    bg: BackgroundLoop, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[GatewayProcess]]:
    require_postgres()
    database_url = bg.run(create_database())
    gateways: list[GatewayProcess] = []
    with simulators(bg, ["sim-a"]) as sims:
        try:
            for name in ("one", "two"):
                gateway = start_gateway(
                    tmp_path_factory.mktemp(name),
                    bg,
                    {n: s.base_url for n, s in sims.items()},
                    OFFERS,
                    extra_config="[responses]\nsweep_seconds = 0.1\n",
                    database_url=database_url,
                )
                gateways.append(gateway)
            yield gateways
        finally:
            for gateway in gateways:
                assert stop_gateway(gateway) == 0, gateway.log_path.read_text()
            bg.run(drop_database(database_url))


def _save(gateway: GatewayProcess, response_id: str, account_id: str, expires_us: int) -> None:
    item = json.dumps({"type": "message", "role": "user", "content": "hello"})
    gateway.run(
        gateway.store.save_response(
            response_id=response_id,
            account_id=account_id,
            key_id=None,
            previous_response_id=None,
            response=json.dumps({"id": response_id, "object": "response"}),
            items=[StoredItem(kind="input", item_id=f"msg_{response_id}", item=item)],
            created_us=1,
            expires_us=expires_us,
        )
    )


def _count(gateway: GatewayProcess, table: str) -> int:
    [(n,)] = gateway.run(raw_sql(gateway.store_url, f"SELECT count(*) FROM {table}"))
    return int(n)


def _swept(log: Path) -> int:
    return sum(int(m.group(1)) for m in SWEPT.finditer(log.read_text()))


def test_processes_share_responses_and_sweep_them_once(pair: list[GatewayProcess]) -> None:
    one, two = pair
    account_id, secret = one.new_account()
    _save(one, "resp_kept", account_id, expires_us=2**62)
    clients = [OpenAI(base_url=g.base_url, api_key=secret, max_retries=0) for g in pair]
    try:
        for client in clients:
            assert client.responses.retrieve("resp_kept").id == "resp_kept"
        clients[1].responses.delete("resp_kept")
        with pytest.raises(openai.NotFoundError):
            clients[0].responses.retrieve("resp_kept")
    finally:
        for client in clients:
            client.close()

    before = _swept(one.log_path) + _swept(two.log_path)
    for n in range(200):
        _save(one, f"resp_old{n}", account_id, expires_us=2)
    wait_until(lambda: _count(one, "responses") == 0)
    assert _count(one, "response_items") == 0
    wait_until(lambda: _swept(one.log_path) + _swept(two.log_path) - before == 200)
    for gateway in pair:
        assert "sweep failed" not in gateway.log_path.read_text()
        assert "hello" not in gateway.log_path.read_text()  # stored content is never logged
