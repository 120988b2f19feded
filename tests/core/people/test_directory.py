"""People and their credentials over a real SQLite store: argon2 passwords, one answer for every
failed login, sliding sessions, CSRF tokens, management tokens, and the audit log."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from gridgate.core.credentials import hash_secret, looks_like_key
from gridgate.core.people import directory as people_module
from gridgate.core.people.directory import (
    LOGIN_FAILED,
    SESSION_IDLE_US,
    SESSION_MAX_US,
    People,
    csrf_ok,
)
from gridgate.errors import NotFound, Unauthorized, ValidationFailed
from gridgate.storage.records import UserRecord
from gridgate.storage.sql import SqlStore

PASSWORD = "correct horse battery"


class ManualClock:
    """Wall and monotonic time that move only when told to."""

    def __init__(self) -> None:
        self.seconds = 1_000_000.0

    def now_us(self) -> int:
        return int(self.seconds * 1_000_000)

    def monotonic(self) -> float:
        return self.seconds


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    async with SqlStore(f"sqlite:///{tmp_path / 'g.db'}") as opened:
        yield opened


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def people(store: SqlStore, clock: ManualClock) -> People:
    return People(store, clock)


async def _member(store: SqlStore, people: People, email: str = "Ann@Example.com") -> UserRecord:
    account = await store.create_account("a")
    return await people.create_user(email, "Ann", "member", account.id, PASSWORD)


async def test_create_user_hashes_with_argon2id(store: SqlStore, people: People) -> None:
    user = await _member(store, people)
    assert user.email == "ann@example.com"
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash
    assert PasswordHasher().verify(user.password_hash, PASSWORD)
    assert await people.get_user(user.id) == user


@pytest.mark.parametrize(
    ("email", "role", "with_account", "password", "param"),
    [
        ("not-an-email", "member", True, PASSWORD, "email"),
        ("a b@example.com", "member", True, PASSWORD, "email"),
        ("a@example.com", "member", True, "short", "password"),
        ("a@example.com", "admin", True, PASSWORD, "role"),
        ("a@example.com", "operator", True, PASSWORD, "account_id"),
        ("a@example.com", "owner", False, PASSWORD, "account_id"),
        ("a@example.com", "member", False, PASSWORD, "account_id"),
    ],
)
async def test_create_user_validates(
    store: SqlStore,
    people: People,
    email: str,
    role: str,
    with_account: bool,
    password: str,
    param: str,
) -> None:
    account = await store.create_account("a")
    with pytest.raises(ValidationFailed) as info:
        await people.create_user(email, "Ann", role, account.id if with_account else None, password)
    assert info.value.param == param
    assert await store.list_users() == []


async def test_minimum_password_length_is_12(store: SqlStore, people: People) -> None:
    account = await store.create_account("a")
    with pytest.raises(ValidationFailed, match="at least 12"):
        await people.create_user("a@example.com", "A", "owner", account.id, "x" * 11)
    await people.create_user("a@example.com", "A", "owner", account.id, "x" * 12)


async def test_create_user_unknown_account_and_taken_email(store: SqlStore, people: People) -> None:
    with pytest.raises(NotFound):
        await people.create_user("a@example.com", "A", "owner", "acct_missing", PASSWORD)
    user = await _member(store, people)
    with pytest.raises(ValidationFailed, match="exists") as info:
        await people.create_user("ANN@example.com", "B", "owner", user.account_id, PASSWORD)
    assert info.value.code == "email_taken"
    operator = await people.create_user("op@example.com", "Op", "operator", None, PASSWORD)
    assert (operator.role, operator.account_id) == ("operator", None)


async def test_authenticate_has_one_answer_for_every_failure(
    store: SqlStore, people: People
) -> None:
    user = await _member(store, people)
    assert await people.authenticate("  ANN@example.com ", PASSWORD) == user
    messages = []
    for email, password in [
        ("nobody@example.com", PASSWORD),
        ("ann@example.com", PASSWORD + "x"),
        ("ann@example.com", ""),
        ("x" * 1000, PASSWORD),
    ]:
        with pytest.raises(Unauthorized) as info:
            await people.authenticate(email, password)
        messages.append((info.value.message, info.value.code))
    await people.set_disabled(user.id, True)
    with pytest.raises(Unauthorized) as info:
        await people.authenticate("ann@example.com", PASSWORD)
    messages.append((info.value.message, info.value.code))
    assert set(messages) == {(LOGIN_FAILED, "invalid_credentials")}


class CountingPeople(People):
    """Records every password verification."""

    def __init__(self, store: SqlStore, clock: ManualClock) -> None:
        super().__init__(store, clock)
        self.verified: list[str] = []

    def _verify(self, password_hash: str, password: str) -> bool:
        self.verified.append(password_hash)
        return super()._verify(password_hash, password)


async def test_an_unknown_email_still_costs_a_verify(store: SqlStore, clock: ManualClock) -> None:
    people = CountingPeople(store, clock)
    user = await _member(store, people)
    with pytest.raises(Unauthorized):
        await people.authenticate("nobody@example.com", PASSWORD)
    with pytest.raises(Unauthorized):
        await people.authenticate("nobody@example.com", "x" * 5000)
    assert len(people.verified) == 2
    assert all(h.startswith("$argon2id$") and h != user.password_hash for h in people.verified)


async def test_an_outdated_hash_is_replaced_at_login(store: SqlStore, people: People) -> None:
    user = await _member(store, people)
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(PASSWORD)
    await store.set_password_hash(user.id, weak)
    logged_in = await people.authenticate(user.email, PASSWORD)
    assert logged_in.password_hash != weak
    assert not PasswordHasher().check_needs_rehash(logged_in.password_hash)
    assert await people.authenticate(user.email, PASSWORD) == logged_in


async def test_set_password(store: SqlStore, people: People) -> None:
    user = await _member(store, people)
    with pytest.raises(ValidationFailed):
        await people.set_password(user.id, "short")
    await people.set_password(user.id, "another long password")
    with pytest.raises(Unauthorized):
        await people.authenticate(user.email, PASSWORD)
    assert (await people.authenticate(user.email, "another long password")).id == user.id
    with pytest.raises(NotFound):
        await people.set_password("usr_missing", "another long password")


async def test_sessions_slide_and_expire(
    store: SqlStore, people: People, clock: ManualClock
) -> None:
    user = await _member(store, people)
    secret, csrf_token, record = await people.open_session(user)
    assert len(secret) == 43 and len(csrf_token) == 43  # 256 bits each
    assert record.id_hash == hash_secret(secret) and record.csrf_hash == hash_secret(csrf_token)
    assert await store.get_session_by_hash(secret) is None  # only the hash is stored
    assert await people.session_user(secret) == user
    # used within a minute: nothing written
    clock.seconds += 30
    assert await people.session_user(secret) == user
    assert (await store.get_session_by_hash(record.id_hash)) == record
    # used 11 hours later: the expiry slides to 12 hours from now
    clock.seconds += 11 * 3600
    active = await people.resolve_session(secret)
    assert active is not None
    assert active.record.expires_us == clock.now_us() + SESSION_IDLE_US
    assert await store.get_session_by_hash(record.id_hash) == active.record
    # 12 hours idle: gone
    clock.seconds += 12 * 3600
    assert await people.session_user(secret) is None
    assert await store.get_session_by_hash(record.id_hash) is None


async def test_sessions_end_at_their_absolute_lifetime(
    store: SqlStore, people: People, clock: ManualClock
) -> None:
    user = await _member(store, people)
    secret, _, record = await people.open_session(user)
    assert SESSION_MAX_US == 168 * 3600 * 1_000_000
    for _ in range(27):  # used every 6 hours, up to 162 hours after login
        clock.seconds += 6 * 3600
        assert await people.session_user(secret) == user
    active = await people.resolve_session(secret)
    assert active is not None
    assert active.record.expires_us == record.created_us + SESSION_MAX_US
    clock.seconds += 5 * 3600  # 167 hours
    assert await people.session_user(secret) == user
    clock.seconds += 3600  # 168 hours: the absolute lifetime is over
    assert await people.session_user(secret) is None


async def test_session_of_a_disabled_user_and_closing(store: SqlStore, people: People) -> None:
    user = await _member(store, people)
    first, _, _ = await people.open_session(user)
    second, _, _ = await people.open_session(user)
    await people.close_session(first)
    assert await people.session_user(first) is None
    assert await people.session_user(second) == user
    disabled = await people.set_disabled(user.id, True)
    assert await people.session_user(second) is None
    with pytest.raises(Unauthorized):
        await people.open_session(disabled)
    for nonsense in (None, "", "x" * 10_000, "not-a-session"):
        assert await people.session_user(nonsense) is None
    await people.close_session(None)


async def test_csrf_tokens(store: SqlStore, people: People) -> None:
    user = await _member(store, people)
    _, csrf_token, record = await people.open_session(user)
    _, other_token, _ = await people.open_session(user)
    assert csrf_ok(record, csrf_token)
    for wrong in (other_token, "", None, csrf_token + "x", "x" * 10_000):
        assert not csrf_ok(record, wrong)


async def test_management_tokens(store: SqlStore, people: People, clock: ManualClock) -> None:
    user = await _member(store, people)
    token = await people.create_token(user, " ci ")
    assert token.secret.startswith("ggm_") and len(token.secret) == 47
    assert looks_like_key(token.secret, "ggm_") and not looks_like_key(token.secret)
    assert token.record.prefix == token.secret[:12]
    assert token.record.name == "ci"
    assert token.record.secret_hash == hash_secret(token.secret)
    assert await people.token_user(token.secret) == user
    [listed] = await people.list_tokens(user.id)
    assert listed.last_used_us == clock.now_us()
    await people.revoke_token(token.record.id)
    with pytest.raises(Unauthorized, match="revoked"):
        await people.token_user(token.secret)
    with pytest.raises(NotFound):
        await people.revoke_token("mtk_missing")


async def test_management_token_failures(
    store: SqlStore, people: People, clock: ManualClock
) -> None:
    user = await _member(store, people)
    soon = await people.create_token(user, "soon", clock.now_us() + 1_000_000)
    clock.seconds += 2
    with pytest.raises(Unauthorized, match="expired"):
        await people.token_user(soon.secret)
    with pytest.raises(ValidationFailed, match="future"):
        await people.create_token(user, "past", clock.now_us())
    with pytest.raises(ValidationFailed, match="name"):
        await people.create_token(user, "  ")
    with pytest.raises(Unauthorized, match="missing"):
        await people.token_user(None)
    with pytest.raises(Unauthorized, match="malformed"):
        await people.token_user("gg_" + "a" * 43)
    with pytest.raises(Unauthorized, match="unknown"):
        await people.token_user("ggm_" + "a" * 43)
    live = await people.create_token(user, "live")
    await people.set_disabled(user.id, True)
    with pytest.raises(Unauthorized, match="revoked"):  # disabling revokes them, for good
        await people.token_user(live.secret)
    await people.set_disabled(user.id, False)
    with pytest.raises(Unauthorized, match="revoked"):
        await people.token_user(live.secret)


async def test_audit(store: SqlStore, people: People) -> None:
    user = await _member(store, people)
    entry = await people.audit("cli", "user.create", user.id, role="member", email=user.email)
    assert entry.detail == {"role": "member", "email": user.email}
    assert await store.list_audit(subject=user.id) == [entry]
    for secretive in ("password", "secret_hash", "client_secret"):
        with pytest.raises(ValueError, match="secret"):
            await people.audit("cli", "user.create", user.id, **{secretive: "x"})


def test_the_module_holds_no_mutable_state() -> None:
    mutable = (list, dict, set)
    found = [
        name
        for name, value in vars(people_module).items()
        if not name.startswith("__") and isinstance(value, mutable)
    ]
    assert found == []
