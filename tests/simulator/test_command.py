"""``gridgate simulate`` entry point: flags, the ready line, a clean exit on SIGTERM / SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import sys

import aiohttp
import pytest

from gridgate.simulator.command import add_arguments, options_from

# Runs the command the way the CLI wires it: add_arguments + run.
DRIVER = """
import argparse, sys
from gridgate.simulator import command
parser = argparse.ArgumentParser()
command.add_arguments(parser)
sys.exit(command.run(parser.parse_args(sys.argv[1:])))
"""


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_defaults_and_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    args = parse()
    assert (args.host, args.port) == ("127.0.0.1", 9100)
    options = options_from(args)
    assert options.models is None
    assert options.api_key is None
    assert options.default_max_tokens == 64
    monkeypatch.setenv("SIM_TEST_KEY", "sk-from-env")
    args = parse(
        "--ttft-ms=120",
        "--tokens-per-second=40",
        "--default-max-tokens=9",
        "--model=a",
        "--model=b",
        "--api-key-env=SIM_TEST_KEY",
    )
    options = options_from(args)
    assert (options.ttft_ms, options.tokens_per_second, options.default_max_tokens) == (120, 40, 9)
    assert options.models == ("a", "b")
    assert options.api_key == "sk-from-env"
    monkeypatch.delenv("SIM_TEST_KEY")
    with pytest.raises(ValueError, match="SIM_TEST_KEY"):
        options_from(args)


async def start(*argv: str, env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        DRIVER,
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_serves_until_signal(sig: signal.Signals) -> None:
    process = await start("--port=0", "--api-key-env=SIM_KEY", env={"SIM_KEY": "sk-cli"})
    assert process.stdout is not None
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
        match = re.fullmatch(r"simulator listening on (http://127\.0\.0\.1:\d+/v1)\n", line)
        assert match, line
        base_url = match.group(1)
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{base_url}/chat/completions", json=body) as resp:
                assert resp.status == 401
            headers = {"Authorization": "Bearer sk-cli"}
            async with http.post(
                f"{base_url}/chat/completions", json=body, headers=headers
            ) as resp:
                assert resp.status == 200
        process.send_signal(sig)
        stdout, stderr = await asyncio.wait_for(process.communicate(), 20)
        assert process.returncode == 0, stderr.decode()
        assert stdout == b""
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_missing_key_variable_exits_2() -> None:
    process = await start("--port=0", "--api-key-env=SIM_KEY_THAT_IS_NOT_SET")
    _, stderr = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 2
    assert b"SIM_KEY_THAT_IS_NOT_SET" in stderr
