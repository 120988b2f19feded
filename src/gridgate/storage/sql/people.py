"""People and their access (``PeopleStore``): users, sign-in sessions, management tokens."""

from __future__ import annotations

import secrets
from typing import Any, cast

import msgspec
from sqlalchemy import Connection, Row, case, func, insert, or_, select, update

from gridgate.storage.ports.errors import Conflict, NotFoundInStore
from gridgate.storage.records import (
    AuditNote,
    ManagementTokenRecord,
    Role,
    SessionRecord,
    UserRecord,
)
from gridgate.storage.schema import management_tokens, sessions, users
from gridgate.storage.sql.audit import _note
from gridgate.storage.sql.base import _BALANCE, SqlBase, _now_us


def _user(row: Row[Any]) -> UserRecord:
    return UserRecord(
        id=row.id,
        email=row.email,
        name=row.name,
        role=cast(Role, row.role),
        account_id=row.account_id,
        password_hash=row.password_hash,
        created_us=int(row.created_us),
        disabled_us=None if row.disabled_us is None else int(row.disabled_us),
    )


def _session(row: Row[Any]) -> SessionRecord:
    return SessionRecord(
        id_hash=row.id_hash,
        user_id=row.user_id,
        csrf_hash=row.csrf_hash,
        created_us=int(row.created_us),
        expires_us=int(row.expires_us),
        last_seen_us=int(row.last_seen_us),
    )


def _token(row: Row[Any]) -> ManagementTokenRecord:
    return ManagementTokenRecord(
        id=row.id,
        user_id=row.user_id,
        name=row.name,
        prefix=row.prefix,
        secret_hash=row.secret_hash,
        created_us=int(row.created_us),
        expires_us=row.expires_us,
        revoked_us=row.revoked_us,
        last_used_us=row.last_used_us,
    )


class SqlPeople(SqlBase):
    """``PeopleStore`` in SQL."""

    async def create_user(
        self,
        *,
        email: str,
        name: str,
        role: Role,
        account_id: str | None,
        password_hash: str,
        audit: AuditNote | None = None,
    ) -> UserRecord:
        record = UserRecord(
            id="usr_" + secrets.token_hex(12),
            email=email.strip().lower(),
            name=name,
            role=role,
            account_id=account_id,
            password_hash=password_hash,
            created_us=_now_us(),
        )
        values = msgspec.structs.asdict(record)
        stmt = self._insert_ignoring(users, "email").returning(users.c.id)

        def tx(conn: Connection) -> None:
            if account_id is not None and (
                conn.execute(_BALANCE, {"p_account": account_id}).first() is None
            ):
                raise NotFoundInStore(f"no account {account_id!r}")
            if conn.execute(stmt, values).first() is None:
                raise Conflict(f"a user with email {record.email!r} exists already")
            _note(conn, audit, record.id, record.created_us)

        await self._write(tx)
        return record

    async def get_user(self, user_id: str) -> UserRecord | None:
        stmt = select(users).where(users.c.id == user_id)
        row = await self._read(lambda conn: conn.execute(stmt).first())
        return None if row is None else _user(row)

    async def get_user_by_email(self, email: str) -> UserRecord | None:
        stmt = select(users).where(users.c.email == email.strip().lower())
        row = await self._read(lambda conn: conn.execute(stmt).first())
        return None if row is None else _user(row)

    async def list_users(self, account_id: str | None = None) -> list[UserRecord]:
        stmt = select(users).order_by(users.c.created_us, users.c.id)
        if account_id is not None:
            stmt = stmt.where(users.c.account_id == account_id)
        return await self._read(lambda conn: [_user(r) for r in conn.execute(stmt)])

    async def set_user_disabled(
        self, user_id: str, disabled: bool, *, audit: AuditNote | None = None
    ) -> UserRecord:
        now = _now_us()
        stmt = (
            update(users)
            .where(users.c.id == user_id)
            .values(disabled_us=func.coalesce(users.c.disabled_us, now) if disabled else None)
            .returning(*users.c)
        )

        def tx(conn: Connection) -> Row[Any] | None:
            row = conn.execute(stmt).first()
            if row is not None and disabled:
                conn.execute(sessions.delete().where(sessions.c.user_id == user_id))
                # revoked for good: enabling the user again must not revive them
                tokens = management_tokens.c
                conn.execute(
                    update(management_tokens)
                    .where(tokens.user_id == user_id, tokens.revoked_us.is_(None))
                    .values(revoked_us=now)
                )
            if row is not None:
                _note(conn, audit, user_id, now)
            return row

        row = await self._write(tx)
        if row is None:
            raise NotFoundInStore(f"no user {user_id!r}")
        return _user(row)

    async def set_password_hash(
        self, user_id: str, password_hash: str, *, audit: AuditNote | None = None
    ) -> UserRecord:
        stmt = (
            update(users)
            .where(users.c.id == user_id)
            .values(password_hash=password_hash)
            .returning(*users.c)
        )

        def tx(conn: Connection) -> Row[Any] | None:
            row = conn.execute(stmt).first()
            if row is not None:
                _note(conn, audit, user_id, _now_us())
            return row

        row = await self._write(tx)
        if row is None:
            raise NotFoundInStore(f"no user {user_id!r}")
        return _user(row)

    async def create_session(self, session: SessionRecord) -> SessionRecord:
        values = msgspec.structs.asdict(session)
        user_id = session.user_id

        def tx(conn: Connection) -> None:
            if conn.execute(select(users.c.id).where(users.c.id == user_id)).first() is None:
                raise NotFoundInStore(f"no user {user_id!r}")
            conn.execute(insert(sessions), values)

        await self._write(tx)
        return session

    async def get_session_by_hash(self, id_hash: str) -> SessionRecord | None:
        stmt = select(sessions).where(sessions.c.id_hash == id_hash)
        row = await self._read(lambda conn: conn.execute(stmt).first())
        return None if row is None else _session(row)

    async def touch_session(self, id_hash: str, *, last_seen_us: int, expires_us: int) -> bool:
        stmt = (
            update(sessions)
            .where(sessions.c.id_hash == id_hash, sessions.c.last_seen_us <= last_seen_us)
            .values(
                last_seen_us=last_seen_us,
                expires_us=case(
                    (sessions.c.expires_us < expires_us, expires_us),
                    else_=sessions.c.expires_us,
                ),
            )
        )
        return bool(await self._write_statement(lambda conn: conn.execute(stmt).rowcount))

    async def delete_session(self, id_hash: str) -> bool:
        stmt = sessions.delete().where(sessions.c.id_hash == id_hash)
        return bool(await self._write_statement(lambda conn: conn.execute(stmt).rowcount))

    async def delete_expired_sessions(self, now_us: int) -> int:
        stmt = sessions.delete().where(sessions.c.expires_us <= now_us)
        return int(await self._write_statement(lambda conn: conn.execute(stmt).rowcount))

    async def create_management_token(
        self,
        *,
        user_id: str,
        name: str,
        prefix: str,
        secret_hash: str,
        expires_us: int | None,
        audit: AuditNote | None = None,
    ) -> ManagementTokenRecord:
        record = ManagementTokenRecord(
            id="mtk_" + secrets.token_hex(12),
            user_id=user_id,
            name=name,
            prefix=prefix,
            secret_hash=secret_hash,
            created_us=_now_us(),
            expires_us=expires_us,
        )
        values = msgspec.structs.asdict(record)

        def tx(conn: Connection) -> None:
            if conn.execute(select(users.c.id).where(users.c.id == user_id)).first() is None:
                raise NotFoundInStore(f"no user {user_id!r}")
            conn.execute(insert(management_tokens), values)
            _note(conn, audit, record.id, record.created_us)

        await self._write(tx)
        return record

    async def get_management_token_by_hash(self, secret_hash: str) -> ManagementTokenRecord | None:
        stmt = select(management_tokens).where(management_tokens.c.secret_hash == secret_hash)
        row = await self._read(lambda conn: conn.execute(stmt).first())
        return None if row is None else _token(row)

    async def get_management_token(self, token_id: str) -> ManagementTokenRecord | None:
        stmt = select(management_tokens).where(management_tokens.c.id == token_id)
        row = await self._read(lambda conn: conn.execute(stmt).first())
        return None if row is None else _token(row)

    async def list_management_tokens(self, user_id: str) -> list[ManagementTokenRecord]:
        stmt = (
            select(management_tokens)
            .where(management_tokens.c.user_id == user_id)
            .order_by(management_tokens.c.created_us, management_tokens.c.id)
        )
        return await self._read(lambda conn: [_token(r) for r in conn.execute(stmt)])

    async def revoke_management_token(
        self, token_id: str, *, audit: AuditNote | None = None
    ) -> ManagementTokenRecord:
        t = management_tokens
        now = _now_us()
        stmt = (
            update(t)
            .where(t.c.id == token_id)
            .values(revoked_us=func.coalesce(t.c.revoked_us, now))
            .returning(*t.c)
        )

        def tx(conn: Connection) -> Row[Any] | None:
            row = conn.execute(stmt).first()
            if row is not None and row.revoked_us == now:
                _note(conn, audit, token_id, now)
            return row

        row = await self._write(tx)
        if row is None:
            raise NotFoundInStore(f"no management token {token_id!r}")
        return _token(row)

    async def touch_management_token(self, token_id: str, now_us: int) -> None:
        t = management_tokens
        stmt = (
            update(t)
            .where(t.c.id == token_id, or_(t.c.last_used_us.is_(None), t.c.last_used_us < now_us))
            .values(last_used_us=now_us)
        )
        await self._write_statement(lambda conn: conn.execute(stmt))
