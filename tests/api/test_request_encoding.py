"""Compressed request bodies and what the HTTP parser refuses, over a real gateway process with
its access log on: gzip/deflate bodies that decode are served, one that does not is 400, an
encoding gridgate does not decode is 415 (400 on the Messages surface, as Anthropic answers
it), a decompressed body is bounded by
``server.max_body_bytes``, and a request the parser cannot read leaves in the JSON envelope with
one access-log line and no traceback."""

from __future__ import annotations

import gzip
import json
import socket
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import E2E_OFFERS
from tests.harness import (
    BackgroundLoop,
    GatewayProcess,
    simulators,
    site,
    start_gateway,
    stop_gateway,
    wait_until,
)

MAX_BODY = 64 * 1024
CHAT = {"model": "text-prime", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


@pytest.fixture(scope="module")
def gw(bg: BackgroundLoop, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    offers = [o for o in E2E_OFFERS if o.supplier != "sim-delta"]
    names = list(dict.fromkeys(o.supplier for o in offers))
    with simulators(bg, names) as sims:
        gateway = start_gateway(
            tmp_path_factory.mktemp("encoding"),
            bg,
            {n: s.base_url for n, s in sims.items()},
            offers,
            server=f"access_log = true\nmax_body_bytes = {MAX_BODY}",
        )
        try:
            yield gateway
        finally:
            assert stop_gateway(gateway) == 0, gateway.log_path.read_text()


@pytest.fixture(scope="module")
def http(gw: GatewayProcess) -> Iterator[httpx.Client]:
    _, secret = gw.new_account("5")
    with httpx.Client(
        base_url=site(gw), headers={"Authorization": f"Bearer {secret}"}, timeout=30
    ) as client:
        yield client


def envelope(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert body["errors"]["detail"] == body["error"]["message"]
    assert response.headers["x-request-id"].startswith("req_")
    return body


def post(
    http: httpx.Client, body: bytes, encoding: str, path: str = "/v1/chat/completions"
) -> httpx.Response:
    headers = {"Content-Type": "application/json", "Content-Encoding": encoding}
    return http.post(path, content=body, headers=headers)


def test_gzip_and_deflate_bodies_that_decode_are_served(http: httpx.Client) -> None:
    raw = json.dumps(CHAT).encode()
    for body, encoding in (
        (gzip.compress(raw), "gzip"),
        (zlib.compress(raw), "deflate"),
        (zlib.compress(raw)[2:-4], "deflate"),  # raw deflate, as some clients send it
    ):
        response = post(http, body, encoding)
        assert response.status_code == 200, response.text
        assert response.json()["object"] == "chat.completion"


def test_a_body_that_does_not_decode_is_400_not_500(http: httpx.Client) -> None:
    raw = json.dumps(CHAT).encode()
    body = envelope(post(http, raw, "gzip"), 400)
    assert body["error"]["code"] == "invalid_encoding"
    envelope(post(http, raw, "deflate"), 400)
    envelope(post(http, gzip.compress(raw)[:-8], "gzip"), 400)  # truncated
    anthropic = post(http, raw, "gzip", "/v1/messages")
    assert anthropic.status_code == 400
    assert anthropic.json()["type"] == "error"


@pytest.mark.parametrize("encoding", ["br", "zstd", "compress", "gzip, br", "x-unknown"])
def test_an_encoding_gridgate_does_not_decode_is_415(http: httpx.Client, encoding: str) -> None:
    body = envelope(post(http, b"\x00\x01\x02 not decodable", encoding), 415)
    assert body["error"]["code"] == "unsupported_content_encoding"
    # the Messages surface: 400, as Anthropic's API answers an encoding it does not decode
    anthropic = post(http, b"\x00\x01\x02 not decodable", encoding, "/v1/messages")
    assert anthropic.status_code == 400
    assert anthropic.json()["error"]["type"] == "invalid_request_error"


def test_a_decompressed_body_is_bounded_by_max_body_bytes(http: httpx.Client) -> None:
    # a 50 MB "zip bomb" in ~50 KB: refused once the decompressed body passes the limit
    bomb = gzip.compress(b"\x00" * (50 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < MAX_BODY
    envelope(post(http, bomb, "gzip"), 413)
    anthropic = post(http, bomb, "gzip", "/v1/messages")
    assert anthropic.status_code == 413
    assert anthropic.json()["error"]["type"] == "request_too_large"


def raw_exchange(gw: GatewayProcess, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``request`` as it is and read the answer (the gateway closes the connection)."""
    port = int(site(gw).rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


PARSER_REFUSALS = {
    "bad chunk size": (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Type: application/json\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"
    ),
    "duplicate content-length": (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
        b"Content-Length: 2\r\n\r\n{}"
    ),
    "bad request line": b"GET\x01 / HTTP/1.1\r\nHost: x\r\n\r\n",
}


@pytest.mark.parametrize("name", list(PARSER_REFUSALS))
def test_what_the_parser_refuses_is_enveloped(gw: GatewayProcess, name: str) -> None:
    status, headers, body = raw_exchange(gw, PARSER_REFUSALS[name])
    assert status == 400
    assert headers["content-type"].startswith("application/json")
    assert headers["x-request-id"].startswith("req_")
    envelope_ = json.loads(body)
    assert envelope_["error"]["type"] == "invalid_request_error"
    assert envelope_["errors"]["detail"] == envelope_["error"]["message"]


def _access_lines(log: Path) -> list[dict[str, Any]]:
    lines = []
    for line in log.read_text().splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("logger") == "aiohttp.access":
                lines.append(record)
    return lines


def test_a_refused_request_writes_one_access_line_and_no_traceback(gw: GatewayProcess) -> None:
    before = gw.log_path.read_text()
    seen = len(_access_lines(gw.log_path))
    status, headers, _ = raw_exchange(gw, PARSER_REFUSALS["bad chunk size"])
    assert status == 400
    new = wait_until(lambda: _access_lines(gw.log_path)[seen:])
    assert len(new) == 1
    assert new[0]["status"] == 400
    assert new[0]["route"] == "other"
    assert new[0]["request_id"] == headers["x-request-id"]
    added = gw.log_path.read_text()[len(before) :]
    assert "Traceback" not in added
    assert '"exc"' not in added
