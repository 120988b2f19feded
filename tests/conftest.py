"""Shared fixtures: the OpenAI spec validator, simulated suppliers and a real gateway process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness import (
    BackgroundLoop,
    GatewayProcess,
    Offer,
    simulators,
    start_gateway,
    stop_gateway,
)
from tests.openai_spec import OpenAISpec, load_spec

# The catalog the end-to-end gateway serves. Prices make routing visible: a plain text-prime
# request goes to sim-beta (cheapest, but no tools/logprobs), one with tools to sim-alpha.
SIM_DELTA_SECRET = "sk-sim-delta-0123456789abcdef"
E2E_OFFERS = [
    Offer("sim-alpha", "text-prime", "sim/prime-a", "0.10", "0.40", 40, 196_608, 131_072),
    Offer(
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
    Offer("sim-alpha", "text-standard", "sim/standard-a", "0.03", "0.06", 20, 128_000, 65_536),
    # the cheapest text-standard offer needs a credential the gateway holds and callers never see
    Offer("sim-delta", "text-standard", "sim/standard-d", "0.02", "0.05", 20, 128_000, 65_536),
    Offer(
        "sim-gamma",
        "text-max",
        "sim/max-g",
        "1.20",
        "4.80",
        55,
        1_000_000,
        128_000,
        ("tools", "json_schema", "logprobs", "vision"),
    ),
]


@pytest.fixture(scope="session")
def bg() -> Iterator[BackgroundLoop]:
    loop = BackgroundLoop()
    yield loop
    loop.close()


@pytest.fixture(scope="session")
def gateway(
    bg: BackgroundLoop, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    """One `gridgate serve` process for the session, over four simulators answering as fast as
    they can (a prompt directive can still slow one down)."""
    with (
        simulators(bg, ["sim-alpha", "sim-beta", "sim-gamma"]) as sims,
        simulators(bg, ["sim-delta"], api_key=SIM_DELTA_SECRET) as secured,
    ):
        sims = {**sims, **secured}
        gw = start_gateway(
            tmp_path_factory.mktemp("gateway"),
            bg,
            {name: sim.base_url for name, sim in sims.items()},
            E2E_OFFERS,
            env={"SIM_DELTA_KEY": SIM_DELTA_SECRET},
            key_envs={"sim-delta": "SIM_DELTA_KEY"},
        )
        gw.sims = sims
        try:
            yield gw
        finally:
            code = stop_gateway(gw)
        assert code == 0, f"gridgate serve did not shut down cleanly: {gw.log_path.read_text()}"


@pytest.fixture(scope="session")
def anthropic_wire_gateway(
    bg: BackgroundLoop, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    """The same catalog as ``gateway``, every supplier called over the Anthropic wire."""
    with (
        simulators(bg, ["sim-alpha", "sim-beta", "sim-gamma"]) as sims,
        simulators(bg, ["sim-delta"], api_key=SIM_DELTA_SECRET) as secured,
    ):
        sims = {**sims, **secured}
        gw = start_gateway(
            tmp_path_factory.mktemp("gateway-anthropic-wire"),
            bg,
            {name: sim.base_url for name, sim in sims.items()},
            E2E_OFFERS,
            env={"SIM_DELTA_KEY": SIM_DELTA_SECRET},
            key_envs={"sim-delta": "SIM_DELTA_KEY"},
            wires=dict.fromkeys(sims, "anthropic"),
        )
        gw.sims = sims
        try:
            yield gw
        finally:
            code = stop_gateway(gw)
        assert code == 0, f"gridgate serve did not shut down cleanly: {gw.log_path.read_text()}"


@pytest.fixture(scope="session")
def responses_wire_gateway(
    bg: BackgroundLoop, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    """The same catalog as ``gateway``, every supplier called over the Responses wire."""
    with (
        simulators(bg, ["sim-alpha", "sim-beta", "sim-gamma"]) as sims,
        simulators(bg, ["sim-delta"], api_key=SIM_DELTA_SECRET) as secured,
    ):
        sims = {**sims, **secured}
        gw = start_gateway(
            tmp_path_factory.mktemp("gateway-responses-wire"),
            bg,
            {name: sim.base_url for name, sim in sims.items()},
            E2E_OFFERS,
            env={"SIM_DELTA_KEY": SIM_DELTA_SECRET},
            key_envs={"sim-delta": "SIM_DELTA_KEY"},
            wires=dict.fromkeys(sims, "openai-responses"),
        )
        gw.sims = sims
        try:
            yield gw
        finally:
            code = stop_gateway(gw)
        assert code == 0, f"gridgate serve did not shut down cleanly: {gw.log_path.read_text()}"


@pytest.fixture(scope="session")
def spec() -> OpenAISpec:
    return load_spec()
