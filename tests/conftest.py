"""Shared fixtures: the OpenAI spec validator, simulated suppliers and a real gateway process."""

from __future__ import annotations

from collections.abc import Iterator
import pytest

from tests.openai_spec import OpenAISpec, load_spec
from tests.harness import (
    BackgroundLoop,
    GatewayProcess,
    Offer,
    simulators,
    start_gateway,
    stop_gateway,
)

# The catalog the end-to-end gateway serves. Prices make routing visible: a plain text-prime
# request goes to sim-beta (cheapest, but no tools/logprobs), one with tools to sim-alpha.
E2E_OFFERS = [
    Offer("sim-alpha", "text-prime", "sim/prime-a", "0.10", "0.40", 40, 196_608, 131_072),
    Offer("sim-beta", "text-prime", "sim/prime-b", "0.08", "0.30", 39, 196_608, 65_536,
          ("json_schema",)),
    Offer("sim-alpha", "text-standard", "sim/standard-a", "0.03", "0.06", 20, 128_000, 65_536),
    Offer("sim-gamma", "text-max", "sim/max-g", "1.20", "4.80", 55, 1_000_000, 128_000,
          ("tools", "json_schema", "logprobs", "vision")),
]


@pytest.fixture(scope="session")
def bg() -> Iterator[BackgroundLoop]:
    loop = BackgroundLoop()
    yield loop
    loop.close()


@pytest.fixture(scope="session")
def gateway(bg: BackgroundLoop, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """One `gridgate serve` process for the session, over three simulators (no delays)."""
    with simulators(bg, ["sim-alpha", "sim-beta", "sim-gamma"], realtime=False) as sims:
        gw = start_gateway(
            tmp_path_factory.mktemp("gateway"), bg,
            {name: sim.base_url for name, sim in sims.items()}, E2E_OFFERS,
        )
        gw.sims = sims
        try:
            yield gw
        finally:
            stop_gateway(gw)


@pytest.fixture(scope="session")
def spec() -> OpenAISpec:
    return load_spec()
