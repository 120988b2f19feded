"""People and access in the store: users, sessions, management tokens, the audit log.
Runs on SQLite and PostgreSQL (the ``store`` fixture)."""

from __future__ import annotations

import asyncio

import pytest

from gridgate.storage.ports.errors import Conflict, NotFoundInStore
from gridgate.storage.records import SessionRecord, UserRecord
from gridgate.storage.sql import SqlStore


async def _member(store: SqlStore, email: str = "Ann@Example.com") -> UserRecord:
    account = await store.create_account("a")
    return await store.create_user(
        email=email, name="Ann", role="member", account_id=account.id, password_hash="h1"
    )


def _session(user_id: str, id_hash: str = "s1", expires_us: int = 2_000) -> SessionRecord:
    return SessionRecord(
        id_hash=id_hash,
        user_id=user_id,
        csrf_hash="c1",
        created_us=1_000,
        expires_us=expires_us,
        last_seen_us=1_000,
    )


async def test_create_and_read_users(store: SqlStore) -> None:
    user = await _member(store)
    assert user.id.startswith("usr_")
    assert user.email == "ann@example.com"
    assert user.disabled_us is None
    assert await store.get_user(user.id) == user
    assert await store.get_user_by_email(" ANN@example.COM ") == user
    assert await store.get_user_by_email("bob@example.com") is None
    assert await store.get_user("usr_missing") is None
    operator = await store.create_user(
        email="op@example.com", name="Op", role="operator", account_id=None, password_hash="h"
    )
    assert await store.list_users() == [user, operator]
    assert await store.list_users(user.account_id) == [user]
    assert await store.list_users("acct_other") == []


async def test_duplicate_email_is_a_conflict(store: SqlStore) -> None:
    user = await _member(store)
    with pytest.raises(Conflict, match="exists"):
        await store.create_user(
            email="ANN@example.com",
            name="Again",
            role="owner",
            account_id=user.account_id,
            password_hash="h",
        )
    assert await store.list_users() == [user]


async def test_concurrent_creates_of_one_email_make_one_user(store: SqlStore) -> None:
    account = await store.create_account("a")
    results = await asyncio.gather(
        *(
            store.create_user(
                email="race@example.com",
                name=str(i),
                role="member",
                account_id=account.id,
                password_hash="h",
            )
            for i in range(5)
        ),
        return_exceptions=True,
    )
    assert sum(isinstance(r, UserRecord) for r in results) == 1
    assert all(isinstance(r, UserRecord | Conflict) for r in results)


async def test_unknown_account_is_not_found(store: SqlStore) -> None:
    with pytest.raises(NotFoundInStore):
        await store.create_user(
            email="x@example.com", name="X", role="owner", account_id="acct_no", password_hash="h"
        )
    assert await store.list_users() == []


async def test_disable_keeps_first_time_ends_sessions_and_enable_clears(store: SqlStore) -> None:
    user = await _member(store)
    await store.create_session(_session(user.id))
    disabled = await store.set_user_disabled(user.id, True)
    assert disabled.disabled_us is not None
    assert await store.get_session_by_hash("s1") is None
    again = await store.set_user_disabled(user.id, True)
    assert again.disabled_us == disabled.disabled_us
    enabled = await store.set_user_disabled(user.id, False)
    assert enabled.disabled_us is None
    with pytest.raises(NotFoundInStore):
        await store.set_user_disabled("usr_missing", True)


async def test_set_password_hash(store: SqlStore) -> None:
    user = await _member(store)
    changed = await store.set_password_hash(user.id, "h2")
    assert changed.password_hash == "h2"
    assert (await store.get_user(user.id)) == changed
    with pytest.raises(NotFoundInStore):
        await store.set_password_hash("usr_missing", "h")


async def test_sessions(store: SqlStore) -> None:
    user = await _member(store)
    session = await store.create_session(_session(user.id))
    assert await store.get_session_by_hash("s1") == session
    assert await store.get_session_by_hash("nope") is None
    assert await store.touch_session("s1", last_seen_us=1_500, expires_us=3_000)
    touched = await store.get_session_by_hash("s1")
    assert touched is not None
    assert (touched.last_seen_us, touched.expires_us) == (1_500, 3_000)
    # never backwards
    await store.touch_session("s1", last_seen_us=1_200, expires_us=2_500)
    assert await store.get_session_by_hash("s1") == touched
    assert not await store.touch_session("nope", last_seen_us=1, expires_us=2)
    assert await store.delete_session("s1")
    assert not await store.delete_session("s1")
    with pytest.raises(NotFoundInStore):
        await store.create_session(_session("usr_missing", "s9"))


async def test_delete_expired_sessions(store: SqlStore) -> None:
    user = await _member(store)
    await store.create_session(_session(user.id, "old", expires_us=2_000))
    await store.create_session(_session(user.id, "new", expires_us=5_000))
    assert await store.delete_expired_sessions(2_000) == 1
    assert await store.get_session_by_hash("old") is None
    assert await store.get_session_by_hash("new") is not None
    assert await store.delete_expired_sessions(2_000) == 0


async def test_management_tokens(store: SqlStore) -> None:
    user = await _member(store)
    token = await store.create_management_token(
        user_id=user.id, name="ci", prefix="ggm_abcdefgh", secret_hash="th", expires_us=None
    )
    assert token.id.startswith("mtk_")
    assert token.active_at(10**18)
    assert await store.get_management_token_by_hash("th") == token
    assert await store.get_management_token_by_hash("other") is None
    assert await store.get_management_token(token.id) == token
    assert await store.list_management_tokens(user.id) == [token]
    assert await store.list_management_tokens("usr_other") == []
    await store.touch_management_token(token.id, 5_000)
    await store.touch_management_token(token.id, 4_000)  # never backwards
    used = await store.get_management_token(token.id)
    assert used is not None
    assert used.last_used_us == 5_000
    revoked = await store.revoke_management_token(token.id)
    assert revoked.revoked_us is not None
    assert not revoked.active_at(0)
    again = await store.revoke_management_token(token.id)
    assert again.revoked_us == revoked.revoked_us
    with pytest.raises(NotFoundInStore):
        await store.revoke_management_token("mtk_missing")
    with pytest.raises(NotFoundInStore):
        await store.create_management_token(
            user_id="usr_missing", name="x", prefix="ggm_", secret_hash="x", expires_us=None
        )


async def test_audit_log(store: SqlStore) -> None:
    first = await store.append_audit("cli", "user.create", "usr_1", {"role": "owner"})
    second = await store.append_audit("usr_1", "api_key.create", "key_1", {"name": "n"})
    third = await store.append_audit("usr_1", "api_key.revoke", "key_1", {})
    assert first.detail == {"role": "owner"}
    assert second.id > first.id
    assert await store.list_audit() == [third, second, first]
    assert await store.list_audit(limit=2) == [third, second]
    assert await store.list_audit(subject="key_1") == [third, second]
    assert await store.list_audit(since_us=third.created_us) == [
        e for e in (third, second, first) if e.created_us >= third.created_us
    ]
    assert await store.list_audit(since_us=third.created_us + 1) == []
