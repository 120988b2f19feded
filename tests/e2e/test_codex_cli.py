"""Codex CLI (npm ``@openai/codex``, pinned) runs ``codex exec`` against a real ``gridgate serve``.

Codex speaks only the Responses API (``wire_api = "responses"``). Its config, in a temporary
``CODEX_HOME``, names gridgate as a custom model provider, as the README tells users to::

    model = "text-prime"
    model_provider = "gridgate"
    [model_providers.gridgate]
    name = "gridgate"
    base_url = "http://127.0.0.1:PORT/v1"
    env_key = "GRIDGATE_API_KEY"
    wire_api = "responses"

Codex sends a streamed request with a long ``instructions``-like developer message, its function
tools (``exec_command`` and others), ``namespace`` groups, the hosted ``web_search`` tool,
``tool_choice: "auto"``, ``parallel_tool_calls``, ``reasoning``, ``store: false``,
``include: ["reasoning.encrypted_content"]``, ``prompt_cache_key`` and ``client_metadata``. The
prompt names ``exec_command`` with its arguments written out (``exec_command({"cmd": "echo
hi"})``), which the simulator answers with exactly that call: Codex runs ``echo hi`` (in its
read-only sandbox), sends its output back, and the simulator's second answer quotes it. The turn
has to complete, with exit 0, with the suppliers on each of the three wires.

Codex is installed with npm into ``.cache/codex-VERSION`` (ignored by git) the first time; without
npm these tests are skipped, loudly — and fail under CI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.harness import GatewayProcess, wait_until

CODEX_VERSION = "0.171.0"  # pinned: Codex changes what it sends from release to release
REPO = Path(__file__).resolve().parents[2]
CODEX_DIR = REPO / ".cache" / f"codex-{CODEX_VERSION}"
CODEX_BIN = CODEX_DIR / "node_modules" / ".bin" / "codex"
NPM_QUIET = ("--no-audit", "--no-fund", "--no-save")
# non-interactive, JSONL events on stdout, no git repository needed, no session files kept, the
# config checked strictly (a key this version does not know is an error), commands sandboxed
EXEC_FLAGS = ("--json", "--skip-git-repo-check", "--ephemeral", "--strict-config")
EXEC_FLAGS += ("--sandbox", "read-only")
PROMPT = 'Say hi from the shell: call exec_command({"cmd": "echo hi"}) and tell me what it printed.'


# Every supplier wire behind the Responses surface: the same catalog called over each.
WIRES = {"anthropic-wire": "anthropic_wire_gateway", "responses-wire": "responses_wire_gateway"}


@pytest.fixture(scope="module", params=["openai-wire", *WIRES])
def gateway(request: pytest.FixtureRequest, gateway: GatewayProcess) -> GatewayProcess:
    if request.param == "openai-wire":
        return gateway
    served: GatewayProcess = request.getfixturevalue(WIRES[request.param])
    return served


def _missing(message: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def codex() -> Path:
    """The pinned Codex CLI, installed from npm on first use."""
    if CODEX_BIN.exists():
        return CODEX_BIN
    npm = shutil.which("npm")
    if npm is None:
        _missing("npm is not installed: Codex CLI (@openai/codex) cannot be installed or run")
    assert npm is not None
    CODEX_DIR.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [npm, "install", "--prefix", str(CODEX_DIR), *NPM_QUIET, f"@openai/codex@{CODEX_VERSION}"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0 or not CODEX_BIN.exists():
        _missing(f"npm install @openai/codex@{CODEX_VERSION} failed:\n{done.stderr[-2000:]}")
    return CODEX_BIN


def codex_home(path: Path, base_url: str) -> Path:
    path.mkdir()
    (path / "config.toml").write_text(
        "\n".join(
            [
                'model = "text-prime"',
                'model_provider = "gridgate"',
                'approval_policy = "never"',
                "[analytics]",
                "enabled = false",
                "[model_providers.gridgate]",
                'name = "gridgate"',
                f'base_url = "{base_url}"',
                'env_key = "GRIDGATE_API_KEY"',
                'wire_api = "responses"',
                # a failed request is an answer for this test, not something to retry
                "request_max_retries = 0",
                "stream_max_retries = 0",
            ]
        )
        + "\n"
    )
    return path


def run_codex(
    codex: Path, tmp_path: Path, base_url: str, secret: str
) -> subprocess.CompletedProcess[str]:
    home = codex_home(tmp_path / "codex-home", base_url)
    work = tmp_path / "work"
    work.mkdir()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "CODEX_HOME": str(home),
        "GRIDGATE_API_KEY": secret,
        "NO_COLOR": "1",
    }
    return subprocess.run(
        [str(codex), "exec", *EXEC_FLAGS, "--cd", str(work), PROMPT],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def events(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def test_codex_exec_completes_a_turn_that_runs_a_command(
    codex: Path, gateway: GatewayProcess, tmp_path: Path
) -> None:
    account, secret = gateway.new_account("5")
    done = run_codex(codex, tmp_path, gateway.base_url, secret)
    assert done.returncode == 0, f"codex exited {done.returncode}\n{done.stdout}\n{done.stderr}"

    seen = events(done.stdout)
    kinds = [e["type"] for e in seen]
    assert "turn.completed" in kinds and "turn.failed" not in kinds, done.stdout
    commands = [
        e["item"]
        for e in seen
        if e["type"] == "item.completed" and e["item"].get("type") == "command_execution"
    ]
    assert len(commands) == 1, done.stdout
    assert "echo hi" in commands[0]["command"]
    assert commands[0]["exit_code"] == 0 and "hi" in commands[0]["aggregated_output"]
    messages = [
        e["item"]["text"]
        for e in seen
        if e["type"] == "item.completed" and e["item"].get("type") == "agent_message"
    ]
    # the second answer quotes the tool result Codex sent back (the simulator's way)
    assert messages and messages[-1].startswith("The tool returned:"), done.stdout
    usage = next(e["usage"] for e in seen if e["type"] == "turn.completed")
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0

    # Two requests through the exchange (the tool call, then the answer), both streamed and billed.
    records = wait_until(lambda: (r := gateway.usage(account)) and len(r) >= 2 and r)
    assert len(records) == 2
    assert all(r.stream and r.outcome == "ok" and r.status == 200 for r in records)
    assert all(r.instrument == "text-prime" and r.cost > 0 for r in records)
