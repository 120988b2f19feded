"""Schemathesis against a real `gridgate serve` of its own (the operator's calls change its
catalog), driven by the OpenAPI document the app serves: every operation, with generated
parameters and bodies, as an operator and as an account's member. No answer is a 5xx, and each
is one the document allows — its status, its content type and its body's schema.

Bounded: a fixed number of examples per operation, derandomized, so a run is the same run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gridgate.api.manage.openapi import load_document
from tests.e2e.test_management_api import make_user, with_token
from tests.harness import (
    BackgroundLoop,
    GatewayProcess,
    Offer,
    own_gateway,
    site,
)

OFFERS = [
    Offer("sim-alpha", "text-prime", "sim/prime-a", "0.10", "0.40", 40, 196_608, 131_072),
]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES = 25

schema = schemathesis.openapi.from_dict(json.loads(load_document()))
schema.config.generation.update(modes=list(GenerationMode))


@pytest.fixture(scope="module")
def fuzzed_gateway(
    bg: BackgroundLoop, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    with own_gateway(bg, tmp_path_factory.mktemp("schemathesis"), OFFERS) as gw:
        yield gw


@pytest.fixture(scope="module")
def tokens(fuzzed_gateway: GatewayProcess) -> dict[str, str]:
    account, _ = fuzzed_gateway.new_account("5")
    callers = {
        "operator": with_token(fuzzed_gateway, make_user(fuzzed_gateway, "operator", None)),
        "member": with_token(fuzzed_gateway, make_user(fuzzed_gateway, "member", account)),
    }
    return {role: caller.token for role, caller in callers.items() if caller.token}


@pytest.fixture(scope="module")
def gateway_url(fuzzed_gateway: GatewayProcess) -> str:
    return site(fuzzed_gateway)


def test_the_document_served_is_the_one_tested(gateway_url: str) -> None:
    served = httpx.get(f"{gateway_url}/api/v1/openapi.json", timeout=10)
    assert served.status_code == 200
    assert served.json() == json.loads(load_document())


@pytest.mark.parametrize("role", ["operator", "member"])
@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_input_makes_a_5xx_or_an_undocumented_answer(
    case: schemathesis.Case[Any], role: str, tokens: dict[str, str], gateway_url: str
) -> None:
    case.call_and_validate(
        base_url=gateway_url,
        headers={"Authorization": f"Bearer {tokens[role]}"},
        checks=CHECKS,
        timeout=10,
    )
