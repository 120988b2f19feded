"""Management tokens as operations: a person's tokens for scripts (``ggm_…``), each acting as
that person. Anyone signed in lists, creates (the secret shown once) and revokes their own; an
operator may also mint one for another user (``gridgate users token``). A token never mints
another: creating one needs the person (a session) or the CLI."""

from __future__ import annotations

from gridgate.core.access import Actor, require_operator
from gridgate.core.audit_log import note
from gridgate.core.clock import Clock
from gridgate.core.people.directory import NewToken, People
from gridgate.core.times import parse_expiry
from gridgate.echo import capped
from gridgate.errors import NotFound, PermissionDenied
from gridgate.storage.records import ManagementTokenRecord


class ManagementTokens:
    def __init__(self, people: People, clock: Clock) -> None:
        self._people = people
        self._clock = clock

    async def list(self, actor: Actor) -> list[ManagementTokenRecord]:
        return await self._people.list_tokens(actor.id)

    async def create(
        self,
        actor: Actor,
        name: str,
        *,
        expires_at: str | None = None,
        user_id: str | None = None,
        by_token: bool = False,
    ) -> NewToken:
        """A token for ``actor`` (an operator: for ``user_id``). ``by_token``: the caller
        authenticated with a token, which may not mint another."""
        if by_token:
            raise PermissionDenied(
                "a management token cannot create tokens; sign in to create one",
                code="forbidden",
            )
        owner_id = actor.id if user_id is None else user_id
        if owner_id != actor.id:
            require_operator(actor)
        owner = await self._people.get_user(owner_id)
        expires_us = parse_expiry(expires_at, now_us=self._clock.now_us()) if expires_at else None
        return await self._people.create_token(
            owner,
            name,
            expires_us,
            audit=note(actor, "token.create", user_id=owner.id, name=name.strip()),
        )

    async def revoke(self, actor: Actor, token_id: str) -> ManagementTokenRecord:
        token = await self._people.get_token(token_id)
        if token is None or (token.user_id != actor.id and not actor.is_operator):
            raise NotFound(f"no management token {capped(token_id)!r}")
        return await self._people.revoke_token(
            token_id, audit=note(actor, "token.revoke", user_id=token.user_id)
        )
