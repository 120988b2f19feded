"""People as operations: list, create, disable and re-enable users, and a person's own password
change — authorised and audited, for the management API, the dashboard and the CLI alike.

An operator manages everyone (but never disables themself: an exchange must keep one way in). An
account's owner manages the owners and members of their account; a member only reads who is on
their account. Another account's user is answered like a user that does not exist, and an email
already in use is ``email_taken`` for an operator only: an owner gets ``email_unavailable``, which
does not say whether, or where, a user has it.
"""

from __future__ import annotations

from gridgate.core.access import Actor, account_in_scope, require_operator, require_owner
from gridgate.core.audit_log import note
from gridgate.core.people.directory import People
from gridgate.echo import capped
from gridgate.errors import NotFound, Unauthorized, ValidationFailed
from gridgate.storage.records import UserRecord


class Users:
    def __init__(self, people: People) -> None:
        self._people = people

    async def list(self, actor: Actor, account_id: str | None = None) -> list[UserRecord]:
        return await self._people.list_users(account_in_scope(actor, account_id, required=False))

    async def get(self, actor: Actor, user_id: str) -> UserRecord:
        user = await self._store_user(user_id)
        if not actor.is_operator and user.account_id != actor.account_id:
            raise NotFound(f"no user {capped(user_id)!r}")
        return user

    async def create(
        self,
        actor: Actor,
        *,
        email: str,
        name: str,
        role: str,
        account_id: str | None,
        password: str,
    ) -> UserRecord:
        """An operator creates anyone; an owner creates owners and members of their account."""
        if role == "operator" or account_id is None:
            require_operator(actor)
        else:
            require_owner(actor, account_id)
        try:
            return await self._people.create_user(
                email,
                name,
                role,
                account_id,
                password,
                audit=note(
                    actor,
                    "user.create",
                    email=email.strip().lower(),
                    role=role,
                    account_id=account_id,
                ),
            )
        except ValidationFailed as exc:
            if exc.code != "email_taken" or actor.is_operator:
                raise
        # Emails are unique across the exchange, so an owner's refused create says that much
        # whatever the words; the words at least say nothing of where (in this account or
        # another), the same for both, and each such refusal is in the audit log (an owner
        # probing for emails shows there).
        await self._people.audit(
            actor.id, "user.create_refused", account_id or "", email=email.strip().lower()
        )
        raise ValidationFailed(
            "email: cannot be used for a new user; use another, or ask the exchange's operator",
            param="email",
            code="email_unavailable",
        )

    async def set_disabled(self, actor: Actor, user_id: str, disabled: bool) -> UserRecord:
        """Disabling ends the user's sessions and revokes their management tokens at once (for
        good: enabling the user again revives neither)."""
        user = await self.get(actor, user_id)
        if user.role == "operator" or user.account_id is None:
            require_operator(actor)
        else:
            require_owner(actor, user.account_id)
        if disabled and user.id == actor.id:
            raise ValidationFailed("is_active: you cannot disable yourself", param="is_active")
        action = "user.disable" if disabled else "user.enable"
        return await self._people.set_disabled(
            user_id, disabled, audit=note(actor, action, account_id=user.account_id)
        )

    async def change_password(
        self, actor: Actor, current_password: str, new_password: str
    ) -> UserRecord:
        """A person's own password, proven by the current one (the same answer as a failed
        login when it is wrong)."""
        user = await self._store_user(actor.id)
        try:
            await self._people.authenticate(user.email, current_password)
        except Unauthorized as exc:
            raise ValidationFailed(
                "current_password: not your current password", param="current_password"
            ) from exc
        return await self._people.set_password(
            user.id, new_password, audit=note(actor, "user.password_change")
        )

    async def _store_user(self, user_id: str) -> UserRecord:
        return await self._people.get_user(user_id)
