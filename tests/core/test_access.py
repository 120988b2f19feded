"""Access rules: an operator acts on every account; an account's owner and members on their own
only, and a refusal about another account looks like something that does not exist."""

from __future__ import annotations

import pytest

from gridgate.core.access import (
    CLI,
    Actor,
    account_in_scope,
    may_act_on,
    require_operator,
    require_owner,
    required_account,
)
from gridgate.errors import NotFound, PermissionDenied, Unauthorized, ValidationFailed
from gridgate.storage.records import Role, UserRecord


def user(role: Role, account_id: str | None, *, disabled: bool = False) -> UserRecord:
    return UserRecord(
        id=f"usr_{role}",
        email=f"{role}@example.com",
        name=role,
        role=role,
        account_id=account_id,
        password_hash="x",
        created_us=1,
        disabled_us=5 if disabled else None,
    )


OPERATOR = Actor.of(user("operator", None))
OWNER_A = Actor.of(user("owner", "acc_a"))
MEMBER_A = Actor.of(user("member", "acc_a"))


def test_operator_and_the_cli_act_on_every_account() -> None:
    for operator in (OPERATOR, CLI):
        assert may_act_on(operator, "acc_a")
        assert may_act_on(operator, "acc_b")
        require_operator(operator)
        require_owner(operator, "acc_b")


@pytest.mark.parametrize("person", [OWNER_A, MEMBER_A])
def test_account_users_act_on_their_own_account_only(person: Actor) -> None:
    assert may_act_on(person, "acc_a")
    assert not may_act_on(person, "acc_b")
    assert not may_act_on(person, "")
    with pytest.raises(PermissionDenied):
        require_operator(person)


def test_a_disabled_user_never_becomes_an_actor() -> None:
    with pytest.raises(Unauthorized):
        Actor.of(user("operator", None, disabled=True))


def test_an_account_user_without_an_account_acts_on_nothing() -> None:
    broken = Actor("usr_x", "member", None)
    assert not may_act_on(broken, "acc_a")
    with pytest.raises(NotFound):
        account_in_scope(broken, None, required=False)


@pytest.mark.parametrize("person", [OWNER_A, MEMBER_A])
def test_scope_of_an_account_user_is_their_account(person: Actor) -> None:
    assert account_in_scope(person, None, required=False) == "acc_a"
    assert account_in_scope(person, "acc_a", required=True) == "acc_a"
    assert required_account(person, None) == "acc_a"
    with pytest.raises(NotFound) as refused:
        account_in_scope(person, "acc_b", required=False)
    assert refused.value.status == 404
    assert refused.value.message == "no account 'acc_b'"  # as for an account that is not there


def test_scope_of_an_operator_is_what_they_name() -> None:
    assert account_in_scope(OPERATOR, "acc_b", required=True) == "acc_b"
    assert account_in_scope(OPERATOR, None, required=False) is None  # every account
    with pytest.raises(ValidationFailed) as missing:
        required_account(OPERATOR, None)
    assert missing.value.param == "account_id"


def test_only_the_owner_manages_an_account() -> None:
    require_owner(OWNER_A, "acc_a")
    with pytest.raises(PermissionDenied):
        require_owner(MEMBER_A, "acc_a")
    with pytest.raises(NotFound):
        require_owner(OWNER_A, "acc_b")
