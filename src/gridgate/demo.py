"""``gridgate demo``: the gateway on SQLite, three simulated suppliers at different prices so every
default instrument is served and routing is visible, and a funded demo account with a fresh key.

Prices (USD per 1M tokens, input/output) make the choice visible: a plain text-prime request goes
to sim-beta (cheapest), one with tools to sim-alpha (sim-beta declares no tool support). sim-gamma
(text-max) is called over the Anthropic wire, so both wire formats are at work behind both
surfaces (``/v1/chat/completions`` and ``/v1/messages``).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
from dataclasses import dataclass
from decimal import Decimal

import msgspec

from gridgate.core.access import CLI
from gridgate.core.accounts.accounts import Accounts
from gridgate.core.accounts.api_keys import ApiKeys
from gridgate.core.clock import SystemClock
from gridgate.core.people.directory import People
from gridgate.errors import NotFound
from gridgate.server import _use_uvloop, run_gateway
from gridgate.settings import OfferSettings, Settings, SupplierSettings
from gridgate.simulator.options import SimulatorOptions
from gridgate.simulator.server import RunningSimulator, start_simulator
from gridgate.state import open_store

DEMO_ACCOUNT = "demo"
DEMO_CREDIT_USD = "10"
DEMO_OWNER = "demo@example.com"  # the demo account's owner, on the dashboard
DEMO_OPERATOR = "operator@example.com"
_ALL = ["tools", "json_schema", "logprobs"]


@dataclass(frozen=True)
class _DemoOffer:
    supplier: str
    instrument: str
    model: str
    usd_in: str
    usd_out: str
    quality: float
    context: int
    max_output: int
    capabilities: tuple[str, ...]


DEMO_OFFERS = (
    _DemoOffer(
        "sim-alpha",
        "text-standard",
        "sim/standard-a",
        "0.03",
        "0.06",
        20,
        128_000,
        65_536,
        tuple(_ALL),
    ),
    _DemoOffer(
        "sim-beta",
        "text-standard",
        "sim/standard-b",
        "0.02",
        "0.05",
        19,
        128_000,
        32_768,
        ("json_schema",),
    ),
    _DemoOffer(
        "sim-alpha", "text-prime", "sim/prime-a", "0.10", "0.40", 40, 196_608, 131_072, tuple(_ALL)
    ),
    _DemoOffer(
        "sim-beta",
        "text-prime",
        "sim/prime-b",
        "0.08",
        "0.30",
        39,
        196_608,
        65_536,
        ("json_schema",),
    ),
    _DemoOffer(
        "sim-gamma",
        "text-max",
        "sim/max-g",
        "1.20",
        "4.80",
        55,
        1_000_000,
        128_000,
        (*_ALL, "vision"),
    ),
    _DemoOffer(
        "sim-alpha",
        "text-max",
        "sim/max-a",
        "1.50",
        "6.00",
        54,
        1_000_000,
        128_000,
        (*_ALL, "vision"),
    ),
)
DEMO_SUPPLIERS = ("sim-alpha", "sim-beta", "sim-gamma")
_ANTHROPIC_WIRE = frozenset({"sim-gamma"})


def demo_settings(base: Settings, simulators: dict[str, RunningSimulator], port: int) -> Settings:
    suppliers = [
        SupplierSettings(
            name=name,
            base_url=sim.base_url,
            wire="anthropic" if name in _ANTHROPIC_WIRE else "openai",
        )
        for name, sim in simulators.items()
    ]
    offers = [
        OfferSettings(
            supplier=o.supplier,
            instrument=o.instrument,
            model=o.model,
            input_usd_per_m=Decimal(o.usd_in),
            output_usd_per_m=Decimal(o.usd_out),
            quality=o.quality,
            context=o.context,
            max_output=o.max_output,
            capabilities=list(o.capabilities),  # type: ignore[arg-type]
        )
        for o in DEMO_OFFERS
    ]
    server = msgspec.structs.replace(base.server, port=port)
    return msgspec.structs.replace(
        base, server=server, suppliers=[*base.suppliers, *suppliers], offers=[*base.offers, *offers]
    )


@dataclass(frozen=True, slots=True)
class DemoAccount:
    account_id: str
    api_key: str
    people: tuple[tuple[str, str, str], ...]  # (role, email, password) for the dashboard


async def _sign_in_as(people: People, role: str, email: str, account_id: str | None) -> str:
    """A dashboard user of the demo, with a fresh password every start (printed once)."""
    password = secrets.token_urlsafe(12)
    try:
        existing = await people.get_user_by_email(email)
    except NotFound:
        await people.create_user(email, f"Demo {role}", role, account_id, password)
    else:
        await people.set_password(existing.id, password)
    return password


async def _prepare_account(settings: Settings) -> DemoAccount:
    store = await open_store(settings)
    try:
        clock = SystemClock()
        accounts = Accounts(store, clock)
        existing = [a for a in await accounts.list(CLI) if a.name == DEMO_ACCOUNT]
        account = existing[0] if existing else await accounts.create(CLI, DEMO_ACCOUNT)
        await accounts.credit(
            CLI, account.id, DEMO_CREDIT_USD, idempotency_key=f"demo-initial-credit-{account.id}"
        )
        new = await ApiKeys(store, clock).create(CLI, account.id, "demo")
        people = People(store, clock)
        owner = await _sign_in_as(people, "owner", DEMO_OWNER, account.id)
        operator = await _sign_in_as(people, "operator", DEMO_OPERATOR, None)
        return DemoAccount(
            account.id,
            new.secret,
            (("owner", DEMO_OWNER, owner), ("operator", DEMO_OPERATOR, operator)),
        )
    finally:
        await store.close()


async def _demo(settings: Settings, port: int, as_json: bool) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    simulators: dict[str, RunningSimulator] = {}
    try:
        for name in DEMO_SUPPLIERS:
            simulators[name] = await start_simulator(
                SimulatorOptions(name=name, ttft_ms=80, tokens_per_second=250)
            )
        full = demo_settings(settings, simulators, port)
        demo = await _prepare_account(full)
        root = f"http://{full.server.host}:{full.server.port}"
        base_url = f"{root}/v1"

        def ready(_: str) -> None:
            if as_json:
                line = {
                    "base_url": base_url,
                    "api_key": demo.api_key,
                    "account_id": demo.account_id,
                    "dashboard_url": f"{root}/dashboard/",
                    "users": [
                        {"role": role, "email": email, "password": password}
                        for role, email, password in demo.people
                    ],
                }
                print(json.dumps(line), flush=True)
            else:
                print(_banner(root, demo), flush=True)

        await run_gateway(full, ready=ready, stop=stop)
    finally:
        for sim in simulators.values():
            await sim.close()


def _banner(root: str, demo: DemoAccount) -> str:
    base_url, secret = f"{root}/v1", demo.api_key
    people = "\n".join(
        f"             {role:<8} {email}  password {password}"
        for role, email, password in demo.people
    )
    return f"""
gridgate demo is running.

  base URL   {base_url}
  API key    {secret}
  account    {demo.account_id} (credited ${DEMO_CREDIT_USD} once)
  dashboard  {root}/dashboard/  (passwords are new at every start)
{people}

Try it:

  curl -s {base_url}/chat/completions \\
    -H "Authorization: Bearer {secret}" -H "Content-Type: application/json" \\
    -d '{{"model": "text-prime", "messages": [{{"role": "user", "content": "Hello!"}}]}}'

  python -c "from openai import OpenAI; c = OpenAI(base_url='{base_url}', api_key='{secret}'); \\
print(c.chat.completions.create(model='text-prime', messages=[{{'role':'user','content':'Hi'}}]).choices[0].message.content)"

  The Anthropic Messages surface (what the anthropic SDK and Claude Code speak):

  curl -s {base_url}/messages -H "x-api-key: {secret}" -H "Content-Type: application/json" \
    -d '{{"model": "text-max", "max_tokens": 64, "messages": [{{"role": "user", "content": "Hello!"}}]}}'

Instruments: GET {base_url}/models. Press Ctrl+C to stop.
"""


def run_demo(settings: Settings, *, port: int, as_json: bool) -> int:
    _use_uvloop()
    asyncio.run(_demo(settings, port, as_json))
    return 0
