"""People and their credentials: users, passwords, browser sessions, management tokens, and the
audit log of what they change. What the CLI, the management API and the dashboard call.

Roles: an ``operator`` runs the exchange and belongs to no account; an account's ``owner`` and
its ``member``s belong to exactly one account. (What each role may do is decided where requests
are authorised, not here.)

Passwords are hashed with argon2id (argon2-cffi's ``PasswordHasher`` with its defaults); a hash
made with older parameters is replaced at the next successful login. Hashing takes tens of
milliseconds of CPU, so it runs in a worker thread, never on the event loop. A failed login says
one thing whatever the cause (unknown email, wrong password, disabled user), and an unknown email
costs one verify like a known one, so neither the answer nor its timing tells which emails exist.

A session's secret (the cookie) and its CSRF token are 256-bit random strings; only their
SHA-256 is stored (like API keys: nothing to brute-force at 256 bits). A session lives 12 hours
from its last use (sliding; its last use is written at most once a minute) and never more than
7 days from its login. Management tokens are ``ggm_`` + 43 characters, minted like API keys.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import re
import secrets
from typing import Any, NamedTuple, Protocol

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from gridgate.core.audit_log import note
from gridgate.core.clock import Clock
from gridgate.core.credentials import hash_secret, looks_like_key, mint_key
from gridgate.echo import capped
from gridgate.errors import NotFound, Unauthorized, ValidationFailed
from gridgate.storage.ports.audit import AuditStore
from gridgate.storage.ports.errors import Conflict, NotFoundInStore
from gridgate.storage.ports.people import PeopleStore
from gridgate.storage.records import (
    AuditEntry,
    AuditNote,
    ManagementTokenRecord,
    Role,
    SessionRecord,
    UserRecord,
)

ROLES: tuple[Role, ...] = ("operator", "owner", "member")
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024  # bounds the work one login can ask for
MAX_EMAIL_LENGTH = 254
MAX_NAME_LENGTH = 200
SESSION_IDLE_US = 12 * 3600 * 1_000_000  # sliding lifetime
SESSION_MAX_US = 7 * 24 * 3600 * 1_000_000  # absolute lifetime, from login
SESSION_TOUCH_US = 60 * 1_000_000  # last use is written at most this often
TOKEN_PREFIX = "ggm_"
LOGIN_FAILED = "incorrect email or password"
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_MAX_SECRET_LENGTH = 128  # session secrets and CSRF tokens are 43 characters
_CSRF_CONTEXT = b"gridgate-csrf-v1"


class NewSession(NamedTuple):
    secret: str  # the cookie's value; shown to the browser once, stored only as a hash
    csrf_token: str  # put in every form of the session; stored only as a hash
    record: SessionRecord


class ActiveSession(NamedTuple):
    record: SessionRecord
    user: UserRecord


class NewToken(NamedTuple):
    record: ManagementTokenRecord
    secret: str  # shown once


def normalise_email(email: str) -> str:
    """Lower-case and trimmed; ``ValidationFailed`` when it is not shaped like an email."""
    cleaned = email.strip().lower()
    if len(cleaned) > MAX_EMAIL_LENGTH or _EMAIL_RE.fullmatch(cleaned) is None:
        raise ValidationFailed("email: not a valid email address", param="email")
    return cleaned


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(
            f"password: must be at least {MIN_PASSWORD_LENGTH} characters", param="password"
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValidationFailed(
            f"password: must be at most {MAX_PASSWORD_LENGTH} characters", param="password"
        )


def csrf_token_for(secret: str) -> str:
    """A session's CSRF token: an HMAC of the session's secret (the cookie), so the server can
    put it in every form it renders without storing it, and nobody without the cookie can make
    it (the signed double-submit pattern)."""
    digest = hmac.new(secret.encode(), _CSRF_CONTEXT, "sha256").digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def csrf_ok(session: SessionRecord, token: str | None) -> bool:
    """Whether ``token`` is the session's CSRF token (compared in constant time)."""
    if not token or len(token) > _MAX_SECRET_LENGTH:
        return False
    return hmac.compare_digest(hash_secret(token), session.csrf_hash)


class DirectoryStore(PeopleStore, AuditStore, Protocol):
    """Users, sessions and management tokens, and the audit log a person's own actions are
    appended to."""


class People:
    def __init__(self, store: DirectoryStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._hasher = PasswordHasher()
        self._dummy_hash: str | None = None  # verified against for unknown emails

    # -- passwords -----------------------------------------------------------------------------
    async def hash_password(self, password: str) -> str:
        check_password(password)
        return await asyncio.to_thread(self._hasher.hash, password)

    def _verify(self, password_hash: str, password: str) -> bool:
        """The argon2 boundary: its verification errors become False."""
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    async def _verify_dummy(self, password: str) -> None:
        if self._dummy_hash is None:
            self._dummy_hash = await asyncio.to_thread(self._hasher.hash, secrets.token_urlsafe(16))
        await asyncio.to_thread(self._verify, self._dummy_hash, password)

    # -- users ---------------------------------------------------------------------------------
    async def create_user(
        self,
        email: str,
        name: str,
        role: str,
        account_id: str | None,
        password: str,
        *,
        audit: AuditNote | None = None,
    ) -> UserRecord:
        cleaned = normalise_email(email)
        name = name.strip()
        if not name or len(name) > MAX_NAME_LENGTH:
            raise ValidationFailed(f"name: must be 1 to {MAX_NAME_LENGTH} characters", param="name")
        if role not in ROLES:
            raise ValidationFailed(
                f"role: must be one of {', '.join(ROLES)}, not {capped(role)!r}", param="role"
            )
        if role == "operator" and account_id is not None:
            raise ValidationFailed(
                "account_id: an operator belongs to no account", param="account_id"
            )
        if role != "operator" and account_id is None:
            raise ValidationFailed(
                f"account_id: an account {role} must belong to an account", param="account_id"
            )
        password_hash = await self.hash_password(password)
        try:
            return await self._store.create_user(
                email=cleaned,
                name=name,
                role=role,  # narrowed to Role by the check against ROLES
                account_id=account_id,
                password_hash=password_hash,
                audit=audit,
            )
        except NotFoundInStore as exc:
            raise NotFound(f"no account {capped(account_id)!r}") from exc
        except Conflict as exc:
            raise ValidationFailed(
                "email: a user with this email exists already", param="email", code="email_taken"
            ) from exc

    async def get_user(self, user_id: str) -> UserRecord:
        user = await self._store.get_user(user_id)
        if user is None:
            raise NotFound(f"no user {capped(user_id)!r}")
        return user

    async def get_user_by_email(self, email: str) -> UserRecord:
        user = await self._store.get_user_by_email(email)
        if user is None:
            raise NotFound(f"no user with email {capped(email.strip().lower())!r}")
        return user

    async def list_users(self, account_id: str | None = None) -> list[UserRecord]:
        return await self._store.list_users(account_id)

    async def set_disabled(
        self, user_id: str, disabled: bool, *, audit: AuditNote | None = None
    ) -> UserRecord:
        """Disabling a user ends their sessions at once; their tokens stop working too."""
        try:
            return await self._store.set_user_disabled(user_id, disabled, audit=audit)
        except NotFoundInStore as exc:
            raise NotFound(f"no user {capped(user_id)!r}") from exc

    async def set_password(
        self, user_id: str, password: str, *, audit: AuditNote | None = None
    ) -> UserRecord:
        password_hash = await self.hash_password(password)
        try:
            return await self._store.set_password_hash(user_id, password_hash, audit=audit)
        except NotFoundInStore as exc:
            raise NotFound(f"no user {capped(user_id)!r}") from exc

    async def authenticate(self, email: str, password: str) -> UserRecord:
        """The user with this email and password, if active; else ``Unauthorized`` with one
        message for every cause."""
        failed = Unauthorized(LOGIN_FAILED, code="invalid_credentials")
        user = None
        if len(email) <= MAX_EMAIL_LENGTH:
            user = await self._store.get_user_by_email(email.strip().lower())
        if user is None or len(password) > MAX_PASSWORD_LENGTH:
            await self._verify_dummy(password[:MAX_PASSWORD_LENGTH])
            raise failed
        if not await asyncio.to_thread(self._verify, user.password_hash, password):
            raise failed
        if user.disabled_us is not None:
            raise failed
        if self._hasher.check_needs_rehash(user.password_hash):
            rehashed = await asyncio.to_thread(self._hasher.hash, password)
            user = await self._store.set_password_hash(user.id, rehashed)
        return user

    # -- sessions ------------------------------------------------------------------------------
    async def open_session(self, user: UserRecord) -> NewSession:
        if user.disabled_us is not None:
            raise Unauthorized(LOGIN_FAILED, code="invalid_credentials")
        secret = secrets.token_urlsafe(32)
        csrf_token = csrf_token_for(secret)
        now = self._clock.now_us()
        record = SessionRecord(
            id_hash=hash_secret(secret),
            user_id=user.id,
            csrf_hash=hash_secret(csrf_token),
            created_us=now,
            expires_us=now + SESSION_IDLE_US,
            last_seen_us=now,
        )
        await self._store.create_session(record)
        return NewSession(secret, csrf_token, record)

    async def resolve_session(self, secret: str | None) -> ActiveSession | None:
        """The live session of this secret and its user; None when it is unknown, expired, or
        its user is disabled. Slides the session's expiry (written at most once a minute)."""
        if not secret or len(secret) > _MAX_SECRET_LENGTH:
            return None
        id_hash = hash_secret(secret)
        session = await self._store.get_session_by_hash(id_hash)
        if session is None:
            return None
        now = self._clock.now_us()
        if session.expires_us <= now:
            await self._store.delete_session(id_hash)
            return None
        user = await self._store.get_user(session.user_id)
        if user is None or user.disabled_us is not None:
            return None
        if now - session.last_seen_us >= SESSION_TOUCH_US:
            expires = min(now + SESSION_IDLE_US, session.created_us + SESSION_MAX_US)
            await self._store.touch_session(id_hash, last_seen_us=now, expires_us=expires)
            session = SessionRecord(
                id_hash=id_hash,
                user_id=session.user_id,
                csrf_hash=session.csrf_hash,
                created_us=session.created_us,
                expires_us=max(expires, session.expires_us),
                last_seen_us=now,
            )
        return ActiveSession(session, user)

    async def session_user(self, secret: str | None) -> UserRecord | None:
        active = await self.resolve_session(secret)
        return None if active is None else active.user

    async def close_session(self, secret: str | None) -> None:
        if secret and len(secret) <= _MAX_SECRET_LENGTH:
            await self._store.delete_session(hash_secret(secret))

    # -- management tokens ---------------------------------------------------------------------
    async def create_token(
        self,
        user: UserRecord,
        name: str,
        expires_us: int | None = None,
        *,
        audit: AuditNote | None = None,
    ) -> NewToken:
        name = name.strip()
        if not name or len(name) > MAX_NAME_LENGTH:
            raise ValidationFailed(f"name: must be 1 to {MAX_NAME_LENGTH} characters", param="name")
        if expires_us is not None and expires_us <= self._clock.now_us():
            raise ValidationFailed("expires_at: must be in the future", param="expires_at")
        if user.disabled_us is not None:
            raise ValidationFailed("user: disabled", param="user")
        minted = mint_key(TOKEN_PREFIX)
        try:
            record = await self._store.create_management_token(
                user_id=user.id,
                name=name,
                prefix=minted.prefix,
                secret_hash=minted.secret_hash,
                expires_us=expires_us,
                audit=audit,
            )
        except NotFoundInStore as exc:
            raise NotFound(f"no user {user.id!r}") from exc
        return NewToken(record, minted.secret)

    async def token_user(self, secret: str | None) -> UserRecord:
        """The active user acting through this token; ``Unauthorized`` otherwise."""
        if secret is None:
            raise Unauthorized(
                "missing management token: send it as 'Authorization: Bearer <token>'",
                code="missing_token",
            )
        if not looks_like_key(secret, TOKEN_PREFIX):
            raise Unauthorized("malformed management token")
        token = await self._store.get_management_token_by_hash(hash_secret(secret))
        if token is None:
            raise Unauthorized("unknown management token")
        now = self._clock.now_us()
        if token.revoked_us is not None:
            raise Unauthorized("management token revoked", code="revoked_token")
        if token.expires_us is not None and token.expires_us <= now:
            raise Unauthorized("management token expired", code="expired_token")
        user = await self._store.get_user(token.user_id)
        if user is None or user.disabled_us is not None:
            raise Unauthorized("the token's user is disabled", code="user_disabled")
        if token.last_used_us is None or now - token.last_used_us >= SESSION_TOUCH_US:
            await self._store.touch_management_token(token.id, now)
        return user

    async def list_tokens(self, user_id: str) -> list[ManagementTokenRecord]:
        return await self._store.list_management_tokens(user_id)

    async def get_token(self, token_id: str) -> ManagementTokenRecord | None:
        return await self._store.get_management_token(token_id)

    async def revoke_token(
        self, token_id: str, *, audit: AuditNote | None = None
    ) -> ManagementTokenRecord:
        try:
            return await self._store.revoke_management_token(token_id, audit=audit)
        except NotFoundInStore as exc:
            raise NotFound(f"no management token {capped(token_id)!r}") from exc

    # -- the audit log -------------------------------------------------------------------------
    async def audit(self, actor: str, action: str, subject: str, **detail: Any) -> AuditEntry:
        """Record an event that is no change of a row (a sign-in, a sign-out): ``actor`` is a
        user id or ``cli``. ``detail`` never carries a secret (``audit_log.note`` checks)."""
        checked = note(actor, action, **detail)
        return await self._store.append_audit(actor, action, subject, checked.detail)
