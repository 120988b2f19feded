"""Webhooks against real `gridgate serve` processes and a real HTTP receiver: the events fire
(a balance crossing its threshold on a request's hold, a key revoked with the CLI), a receiver
that refuses connections for a while gets every event once it is up, signed, with the event id
the outbox gave it; and a gateway SIGKILLed between the event and its delivery delivers it after
a restart, with the same id; an offer ejected by offer health reaches a global endpoint."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import aiohttp
from openai import OpenAI

from tests.harness import (
    BackgroundLoop,
    GatewayProcess,
    Offer,
    simulators,
    start_gateway,
    stop_gateway,
    wait_until,
)
from tests.webhook_receiver import Receiver, free_port, signed_by

OFFERS = [Offer("sim-one", "text-prime", "sim/one", "0.10", "0.40", 40, 196_608, 131_072)]
QUICK = """[webhooks]
poll_seconds = 0.1
backoff_seconds = 0.2
max_backoff_seconds = 0.5
"""


def _cli_json(gw: GatewayProcess, *args: str) -> dict[str, object]:
    done = gw.cli(*args, "--json")
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def _ask(gw: GatewayProcess, secret: str) -> None:
    with OpenAI(base_url=gw.base_url, api_key=secret, timeout=30, max_retries=0) as client:
        client.chat.completions.create(
            model="text-prime", max_tokens=16, messages=[{"role": "user", "content": "hi"}]
        )


def _attempted(gw: GatewayProcess, event_type: str) -> bool:
    """Some process has tried (and failed) to deliver an event of ``event_type``."""
    events = gw.run(gw.store.list_events(None, event_type=event_type))
    return any(d.attempts >= 1 for e in events for d in e.deliveries)


def test_events_reach_a_receiver_that_was_down_signed_and_once_each(
    bg: BackgroundLoop, tmp_path: Path
) -> None:
    receiver = Receiver(free_port())  # not listening yet: every attempt is refused
    with simulators(bg, ["sim-one"]) as sims:
        gw = start_gateway(
            tmp_path, bg, {"sim-one": sims["sim-one"].base_url}, OFFERS, extra_config=QUICK
        )
        try:
            account, secret = gw.new_account("1")
            hook = _cli_json(gw, "webhooks", "add", "--account", account, "--url", receiver.url)
            _cli_json(gw, "webhooks", "threshold", "--account", account, "--set", "0.999")
            _ask(gw, secret)  # its hold takes the balance below $0.999: balance.low
            [key] = gw.run(gw.store.list_keys(account))
            assert gw.cli("keys", "revoke", key.id).returncode == 0  # key.revoked
            wait_until(lambda: _attempted(gw, "key.revoked"), timeout=15)
            assert _attempted(gw, "balance.low")
            assert receiver.received == []

            bg.run(receiver.start())
            listed = wait_until(
                lambda: (
                    (es := gw.run(gw.store.list_events(account)))
                    and all(d.status == "delivered" for e in es for d in e.deliveries)
                    and es
                ),
                timeout=15,
            )
            assert sorted(e.event.type for e in listed) == ["balance.low", "key.revoked"]
            ids = {e.event.id for e in listed}
            assert all(d.attempts >= 2 for e in listed for d in e.deliveries)  # refused first
            sent = receiver.events()
            assert {s["id"] for s in sent} == ids
            assert len(sent) == len(ids)  # once each: nothing delivered twice
            for headers, body in receiver.received:
                assert signed_by(str(hook["secret"]), headers, body)
                assert headers["Gridgate-Webhook-Id"] == json.loads(body)["id"]
            low = next(s for s in sent if s["type"] == "balance.low")
            assert low["data"]["account_id"] == account
            assert low["data"]["threshold_nanos"] == 999_000_000
            assert low["data"]["threshold_usd"] == "0.999"
            assert low["data"]["balance_nanos"] < 999_000_000
            revoked = next(s for s in sent if s["type"] == "key.revoked")
            assert revoked["data"]["key_id"] == key.id
            assert secret not in json.dumps(sent)  # never a secret in an event
        finally:
            bg.run(receiver.stop())
            assert stop_gateway(gw) == 0, gw.log_path.read_text()


def test_a_gateway_killed_before_delivering_delivers_after_its_restart(
    bg: BackgroundLoop, tmp_path: Path
) -> None:
    receiver = Receiver(free_port())
    with simulators(bg, ["sim-one"]) as sims:
        suppliers = {"sim-one": sims["sim-one"].base_url}
        first = start_gateway(tmp_path, bg, suppliers, OFFERS, extra_config=QUICK)
        account, secret = first.new_account("1")
        _cli_json(first, "webhooks", "add", "--url", receiver.url)  # global
        _cli_json(first, "webhooks", "threshold", "--account", account, "--set", "0.999")
        _ask(first, secret)  # the event is written by this process, in its hold's transaction
        wait_until(lambda: _attempted(first, "balance.low"), timeout=15)
        first.process.send_signal(signal.SIGKILL)
        assert first.process.wait(10) == -signal.SIGKILL
        [event] = first.run(first.store.list_events(None, event_type="balance.low"))
        assert event.deliveries[0].status == "pending"
        first.run(first.store.close())
        if first.process.stdout is not None:
            first.process.stdout.close()

        bg.run(receiver.start())
        second = start_gateway(tmp_path, bg, suppliers, OFFERS, extra_config=QUICK)
        try:
            wait_until(lambda: any(s["id"] == event.event.id for s in receiver.events()))
            done = wait_until(
                lambda: (
                    (d := second.run(second.store.list_events(None, event_type="balance.low")))
                    and d[0].deliveries[0].status == "delivered"
                    and d[0]
                )
            )
            assert done.event.id == event.event.id
            assert done.deliveries[0].attempts >= 2
            assert [s["id"] for s in receiver.events()] == [event.event.id]
        finally:
            bg.run(receiver.stop())
            assert stop_gateway(second) == 0, second.log_path.read_text()


FLAKY_OFFERS = [
    Offer("flaky", "text-prime", "sim/f", "0.10", "0.40", 40, 200_000, 64_000),
    Offer("steady", "text-prime", "sim/s", "0.20", "0.80", 40, 200_000, 64_000),
]
BREAKER = """
[health]
breaker_failures = 2
cooldown_seconds = 30
"""


def test_an_offer_ejected_by_offer_health_reaches_a_global_endpoint(
    bg: BackgroundLoop, tmp_path: Path
) -> None:
    receiver = Receiver(free_port())
    bg.run(receiver.start())
    with simulators(bg, ["flaky", "steady"]) as sims:
        gw = start_gateway(
            tmp_path,
            bg,
            {name: sim.base_url for name, sim in sims.items()},
            FLAKY_OFFERS,
            extra_config=QUICK + BREAKER,
        )
        try:
            hook = _cli_json(
                gw, "webhooks", "add", "--url", receiver.url, "--events", "offer.ejected"
            )
            _, secret = gw.new_account("5")
            gw.run(_fault(sims["flaky"].root_url))
            for _ in range(3):  # two failures in a row open flaky's circuit; steady serves
                _ask(gw, secret)
            sent = wait_until(lambda: receiver.events(), timeout=15)
            assert [s["type"] for s in sent] == ["offer.ejected"]
            assert sent[0]["data"]["offer_id"] == "flaky/text-prime/sim/f"
            assert "2 failures in a row" in sent[0]["data"]["cause"]
            assert sent[0]["id"].startswith("evt_ej_")
            [(headers, body)] = receiver.received
            assert signed_by(str(hook["secret"]), headers, body)
        finally:
            bg.run(receiver.stop())
            assert stop_gateway(gw) == 0, gw.log_path.read_text()


async def _fault(root_url: str) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{root_url}/sim/faults", json={"mode": "status", "status": 500}) as answer,
    ):
        assert answer.status < 300
