"""``gridgate users`` as separate processes: an operator bootstraps, account users are added,
passwords come only from the environment, no hash is ever printed, every create is audited."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

from gridgate.core.clock import SystemClock
from gridgate.core.people.directory import People
from gridgate.storage.records import AuditEntry, UserRecord
from gridgate.storage.sql import SqlStore
from tests.harness import run_cli

PASSWORD = "a long enough password"


def cli(
    *args: str, data_dir: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The CLI with the password in ``GRIDGATE_PASSWORD`` (unless ``env`` says otherwise) and
    no ``OTHER_PASSWORD``, whatever this process's environment holds."""
    return run_cli(
        *args,
        data_dir=data_dir,
        env={"GRIDGATE_PASSWORD": PASSWORD, "OTHER_PASSWORD": "", **(env or {})},
    )


def ok_json(*args: str, data_dir: Path) -> Any:
    done = cli(*args, "--json", data_dir=data_dir)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def stored(data_dir: Path) -> tuple[list[UserRecord], list[AuditEntry]]:
    async def read() -> tuple[list[UserRecord], list[AuditEntry]]:
        async with SqlStore(f"sqlite:///{data_dir / 'gridgate.db'}") as store:
            return await store.list_users(), await store.list_audit()

    return asyncio.run(read())


def login(data_dir: Path, email: str, password: str) -> UserRecord:
    async def run() -> UserRecord:
        async with SqlStore(f"sqlite:///{data_dir / 'gridgate.db'}") as store:
            return await People(store, SystemClock()).authenticate(email, password)

    return asyncio.run(run())


def test_operator_bootstrap_and_account_users(tmp_path: Path) -> None:
    operator = ok_json(
        "users", "create", "--email", "Op@Example.com", "--name", "Op", "--operator",
        data_dir=tmp_path,
    )  # fmt: skip
    assert operator["email"] == "op@example.com"
    assert (operator["role"], operator["account_id"], operator["is_active"]) == (
        "operator",
        None,
        True,
    )
    account = ok_json("accounts", "create", "--name", "acme", data_dir=tmp_path)["id"]
    owner = ok_json(
        "users", "create", "--email", "owner@example.com", "--name", "Owner",
        "--account", account, "--role", "owner",
        data_dir=tmp_path,
    )  # fmt: skip
    member = ok_json(
        "users", "create", "--email", "member@example.com", "--name", "Member",
        "--account", account,
        data_dir=tmp_path,
    )  # fmt: skip
    assert (owner["role"], owner["account_id"]) == ("owner", account)
    assert (member["role"], member["account_id"]) == ("member", account)

    listed = ok_json("users", "list", data_dir=tmp_path)
    assert [u["id"] for u in listed] == [operator["id"], owner["id"], member["id"]]
    in_account = ok_json("users", "list", "--account", account, data_dir=tmp_path)
    assert [u["id"] for u in in_account] == [owner["id"], member["id"]]

    human = cli("users", "list", data_dir=tmp_path)
    assert human.returncode == 0, human.stderr
    assert "member@example.com" in human.stdout and "operator" in human.stdout

    users, audit = stored(tmp_path)
    for user in users:
        for shown in (json.dumps(listed), human.stdout):
            assert user.password_hash not in shown
            assert "argon2" not in shown and PASSWORD not in shown
    assert [(e.actor, e.action, e.subject) for e in reversed(audit)] == [
        ("cli", "user.create", operator["id"]),
        ("cli", "account.create", account),  # every change through the CLI is audited
        ("cli", "user.create", owner["id"]),
        ("cli", "user.create", member["id"]),
    ]
    assert audit[0].detail == {
        "email": "member@example.com",
        "role": "member",
        "account_id": account,
    }
    assert PASSWORD not in json.dumps([e.detail for e in audit])
    assert login(tmp_path, "OWNER@example.com", PASSWORD).id == owner["id"]


def test_the_password_comes_from_the_named_variable_only(tmp_path: Path) -> None:
    args = ("users", "create", "--email", "a@example.com", "--name", "A", "--operator")
    missing = cli(*args, "--password-env", "OTHER_PASSWORD", data_dir=tmp_path)
    assert missing.returncode == 2
    assert "OTHER_PASSWORD" in missing.stderr and "never read from the command line" in (
        missing.stderr
    )
    other = {"OTHER_PASSWORD": "another long password"}
    done = cli(*args, "--password-env", "OTHER_PASSWORD", "--json", data_dir=tmp_path, env=other)
    assert done.returncode == 0, done.stderr
    assert login(tmp_path, "a@example.com", "another long password").email == "a@example.com"
    # no password option exists
    argv = cli(*args, "--password", PASSWORD, data_dir=tmp_path)
    assert argv.returncode == 2 and "unrecognized arguments" in argv.stderr
    # a password given where the variable's name belongs is refused without being echoed
    mistaken = cli(
        *args, "--password-env", "my secret pw!", data_dir=tmp_path, env={"GRIDGATE_PASSWORD": ""}
    )
    assert mistaken.returncode == 2 and "NAME of an environment variable" in mistaken.stderr
    assert "my secret pw!" not in mistaken.stderr + mistaken.stdout


def test_refusals(tmp_path: Path) -> None:
    base = ("users", "create", "--name", "A")
    both = cli(
        *base, "--email", "a@example.com", "--operator", "--account", "acct_x", data_dir=tmp_path
    )
    assert both.returncode == 2 and "not allowed with" in both.stderr
    neither = cli(*base, "--email", "a@example.com", data_dir=tmp_path)
    assert neither.returncode == 2
    role = cli(
        *base, "--email", "a@example.com", "--operator", "--role", "owner", data_dir=tmp_path
    )
    assert role.returncode == 2 and "--role" in role.stderr
    unknown = cli(*base, "--email", "a@example.com", "--account", "acct_x", data_dir=tmp_path)
    assert unknown.returncode == 1 and "no account 'acct_x'" in unknown.stderr
    bad_email = cli(*base, "--email", "nope", "--operator", data_dir=tmp_path)
    assert bad_email.returncode == 1 and "email" in bad_email.stderr
    ok_json(*base, "--email", "a@example.com", "--operator", data_dir=tmp_path)
    taken = cli(*base, "--email", "A@example.com", "--operator", data_dir=tmp_path)
    assert taken.returncode == 1 and "exists already" in taken.stderr
    short = cli(
        *base,
        "--email",
        "b@example.com",
        "--operator",
        data_dir=tmp_path,
        env={"GRIDGATE_PASSWORD": "too short"},
    )
    assert short.returncode == 1 and "at least 12" in short.stderr
    users, audit = stored(tmp_path)
    assert [u.email for u in users] == ["a@example.com"]
    assert len(audit) == 1
