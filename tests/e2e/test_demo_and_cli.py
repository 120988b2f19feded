"""A newcomer's path (the demo gives a working key) and the CLI, as separate processes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
from anthropic import Anthropic
from openai import OpenAI

from tests.harness import free_port, run_cli

gridgate = run_cli


def test_the_demo_serves_a_completion_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gridgate",
            "demo",
            "--json",
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    killer = threading.Timer(60, process.kill)
    killer.start()
    try:
        assert process.stdout is not None
        ready = json.loads(process.stdout.readline())
        assert ready["base_url"] == f"http://127.0.0.1:{port}/v1"
        assert ready["account_id"].startswith("acct_")
        client = OpenAI(base_url=ready["base_url"], api_key=ready["api_key"], max_retries=0)
        for model in ("text-standard", "text-prime", "text-max"):
            completion = client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "Hello!"}]
            )
            assert completion.choices[0].message.content
        root = ready["base_url"].removesuffix("/v1")
        with Anthropic(base_url=root, api_key=ready["api_key"], max_retries=0) as messages:
            for model in ("text-standard", "text-max"):  # an OpenAI- and an Anthropic-wire supplier
                message = messages.messages.create(
                    model=model, max_tokens=64, messages=[{"role": "user", "content": "Hello!"}]
                )
                assert message.content[0].type == "text" and message.content[0].text
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0
    finally:
        killer.cancel()
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def test_accounts_and_keys_through_the_cli(tmp_path: Path) -> None:
    created = gridgate("accounts", "create", "--name", "acme", "--json", data_dir=tmp_path)
    assert created.returncode == 0, created.stderr
    account = json.loads(created.stdout)
    assert account["balance_usd"] == "0" and account["name"] == "acme"

    for _ in range(2):  # the same idempotency key applies once
        credited = gridgate(
            "accounts",
            "credit",
            account["id"],
            "12.5",
            "--idempotency-key",
            "topup-1",
            "--json",
            data_dir=tmp_path,
        )
        assert credited.returncode == 0, credited.stderr
    shown = json.loads(
        gridgate("accounts", "show", account["id"], "--json", data_dir=tmp_path).stdout
    )
    assert shown["balance_usd"] == "12.5" and shown["balance_nanos"] == 12_500_000_000

    made = gridgate(
        "keys",
        "create",
        "--account",
        account["id"],
        "--name",
        "ci",
        "--expires-at",
        "2099-01-01T00:00:00Z",
        "--json",
        data_dir=tmp_path,
    )
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)
    assert key["key"].startswith(key["key_prefix"]) and key["is_active"]
    assert key["expires_at"] == "2099-01-01T00:00:00Z"

    listed = json.loads(
        gridgate("keys", "list", "--account", account["id"], "--json", data_dir=tmp_path).stdout
    )
    assert [k["id"] for k in listed] == [key["id"]]
    assert listed[0]["key"] is None and key["key"] not in json.dumps(listed)

    revoked = json.loads(gridgate("keys", "revoke", key["id"], "--json", data_dir=tmp_path).stdout)
    assert revoked["is_active"] is False and revoked["revoked_at"]
    human = gridgate("accounts", "list", data_dir=tmp_path)
    assert account["id"] in human.stdout and "12.5" in human.stdout


def test_cli_errors_are_clear(tmp_path: Path) -> None:
    missing = gridgate("accounts", "show", "acct_nope", data_dir=tmp_path)
    assert missing.returncode == 1 and "no account 'acct_nope'" in missing.stderr
    bad_amount = gridgate("accounts", "credit", "acct_nope", "0.0000000001", data_dir=tmp_path)
    assert bad_amount.returncode == 1 and "nano-dollar" in bad_amount.stderr
    config = tmp_path / "bad.toml"
    config.write_text("[server]\nprot = 1\n")
    bad_config = subprocess.run(
        [sys.executable, "-m", "gridgate", "migrate", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad_config.returncode == 2 and "server.prot: unknown key" in bad_config.stderr


def test_serve_takes_workers_host_and_port_on_the_command_line(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "gridgate", "serve", "--data-dir", str(tmp_path)),
            *("--workers", "2", "--host", "127.0.0.1", "--port", str(port)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    killer = threading.Timer(60, process.kill)
    killer.start()
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.strip() == f"gridgate serving on http://127.0.0.1:{port}/v1 with 2 workers"
        health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
        assert health.json() == {"status": "ok"}
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        killer.cancel()
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
    bad = gridgate("serve", "--workers", "0", data_dir=tmp_path)
    assert bad.returncode == 2
    assert "command line: server.workers: must be at least 1" in bad.stderr
