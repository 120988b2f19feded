"""HEAD answers wherever GET does (clients probe with it: Claude Code every session): the route
table walked, each GET resource asked both ways of a real gateway process, the HEAD answer the
GET's status and headers without a body."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from aiohttp import web

from gridgate.app import build_app
from gridgate.dashboard import STATIC
from gridgate.settings import Settings
from tests.harness import GatewayProcess

# headers that differ between any two answers
VARYING = {
    "date",
    "x-request-id",
    "x-gridgate-request-id",
    "x-grid-request-id",
    "set-cookie",
    "content-length",
}


def get_paths() -> list[str]:
    """A concrete path for every resource that answers GET, placeholders filled in."""
    paths = []
    for resource in build_app(Settings()).router.resources():
        if not any(route.method == "GET" for route in resource):
            continue
        if isinstance(resource, web.StaticResource):
            paths.append(f"{resource.canonical}/{sorted(p.name for p in STATIC.iterdir())[0]}")
        else:
            paths.append(re.sub(r"\{[^}]+\}", "text-prime", resource.canonical))
    return paths


PATHS = get_paths()


@pytest.fixture(scope="module")
def http(gateway: GatewayProcess) -> Iterator[httpx.Client]:
    root = gateway.base_url.removesuffix("/v1")
    with httpx.Client(base_url=root, timeout=30, follow_redirects=False) as client:
        yield client


def test_the_walk_covers_every_surface() -> None:
    for path in ("/", "/api/hello", "/v1/models", "/v1/models/text-prime", "/healthz"):
        assert path in PATHS
    assert any(p.startswith("/api/v1/") for p in PATHS)
    assert any(p.startswith("/dashboard/static/") for p in PATHS)
    assert "/dashboard/keys" in PATHS


@pytest.mark.parametrize("path", PATHS)
def test_head_answers_like_get(http: httpx.Client, path: str) -> None:
    got = http.get(path)
    head = http.head(path)
    assert head.status_code != 405, head.text
    assert head.status_code == got.status_code, (head.status_code, got.text)
    assert head.content == b""
    same = {k for k in got.headers if k not in VARYING}
    assert {k: head.headers.get(k) for k in same} == {k: got.headers[k] for k in same}


@pytest.mark.parametrize("path", ["/healthz", "/api/hello", "/v1/models", "/dashboard/login"])
def test_head_of_a_public_page_is_200_with_its_length(http: httpx.Client, path: str) -> None:
    got, head = http.get(path), http.head(path)
    assert got.status_code == head.status_code == 200
    if path != "/dashboard/login":  # the login form carries a fresh CSRF token each time
        assert int(head.headers["content-length"]) == len(got.content)


def test_head_of_the_root_redirects_like_get(http: httpx.Client) -> None:
    head = http.head("/")
    assert head.status_code == 302 and head.headers["location"] == "/dashboard/"
