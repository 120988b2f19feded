"""People and their access: users, sign-in sessions and management tokens."""

from __future__ import annotations

from typing import Protocol

from gridgate.storage.records import (
    AuditNote,
    ManagementTokenRecord,
    Role,
    SessionRecord,
    UserRecord,
)


class PeopleStore(Protocol):
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
        """``email`` is stored lower-case. Unknown account → NotFoundInStore; an email already
        taken → Conflict."""

    async def get_user(self, user_id: str) -> UserRecord | None: ...

    async def get_user_by_email(self, email: str) -> UserRecord | None:
        """Matched lower-case."""

    async def list_users(self, account_id: str | None = None) -> list[UserRecord]: ...

    async def set_user_disabled(
        self, user_id: str, disabled: bool, *, audit: AuditNote | None = None
    ) -> UserRecord:
        """Disable (keeps the first time) or re-enable a user; disabling also ends every session
        of the user, in the same transaction. Unknown → NotFoundInStore."""

    async def set_password_hash(
        self, user_id: str, password_hash: str, *, audit: AuditNote | None = None
    ) -> UserRecord:
        """Unknown → NotFoundInStore."""

    async def create_session(self, session: SessionRecord) -> SessionRecord:
        """Unknown user → NotFoundInStore."""

    async def get_session_by_hash(self, id_hash: str) -> SessionRecord | None: ...

    async def touch_session(self, id_hash: str, *, last_seen_us: int, expires_us: int) -> bool:
        """Move a session's last-seen and expiry forward (never back). False when it is gone."""

    async def delete_session(self, id_hash: str) -> bool:
        """True when there was such a session."""

    async def delete_expired_sessions(self, now_us: int) -> int:
        """Delete sessions whose ``expires_us`` ≤ now; returns how many."""

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
        """Unknown user → NotFoundInStore."""

    async def get_management_token_by_hash(
        self, secret_hash: str
    ) -> ManagementTokenRecord | None: ...

    async def get_management_token(self, token_id: str) -> ManagementTokenRecord | None: ...

    async def list_management_tokens(self, user_id: str) -> list[ManagementTokenRecord]: ...

    async def revoke_management_token(
        self, token_id: str, *, audit: AuditNote | None = None
    ) -> ManagementTokenRecord:
        """Idempotent (a second revoke keeps the first time). Unknown → NotFoundInStore."""

    async def touch_management_token(self, token_id: str, now_us: int) -> None:
        """Set last_used_us (only ever moves forward)."""
