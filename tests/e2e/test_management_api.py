"""The management API (/api/v1) against a real `gridgate serve`: sessions with hardened cookies
and CSRF, management tokens, an account's keys (created here, used with the openai SDK, revoked
here), balance and usage, login throttling, and authorisation — one test per endpoint showing a
member of one account can neither read nor change another's, while an operator can."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import openai
import pytest
from openai import OpenAI

from gridgate.core.clock import SystemClock
from gridgate.core.people.directory import People
from gridgate.money import Price
from gridgate.storage.records import Role
from tests.harness import GatewayProcess, nanos, site, wait_until

PASSWORD = "a long enough password"


@dataclass
class Caller:
    """A person signed in with the session cookie, or a script with a management token."""

    api: str  # http://127.0.0.1:PORT/api/v1
    cookie: str | None = None
    csrf: str | None = None
    token: str | None = None
    user: dict[str, Any] = field(default_factory=dict)

    def request(
        self, method: str, path: str, *, csrf: bool = True, **kwargs: Any
    ) -> httpx.Response:
        headers: dict[str, str] = dict(kwargs.pop("headers", {}))
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.cookie is not None:
            headers["Cookie"] = f"gridgate_session={self.cookie}"
            if csrf and self.csrf is not None:
                headers["X-CSRF-Token"] = self.csrf
        # a client of its own per request: no cookie jar adds or keeps anything
        return httpx.request(method, f"{self.api}{path}", headers=headers, timeout=30, **kwargs)


def api_root(gw: GatewayProcess) -> str:
    return site(gw) + "/api/v1"


def make_user(gw: GatewayProcess, role: Role, account_id: str | None) -> str:
    email = f"{role}-{secrets.token_hex(4)}@example.com"
    people = People(gw.store, SystemClock())
    gw.run(people.create_user(email, f"A {role}", role, account_id, PASSWORD))
    return email


def login(
    gw: GatewayProcess, email: str, password: str = PASSWORD, source: str = "127.0.0.1"
) -> httpx.Response:
    """Sign in over HTTP, connecting from the local address ``source`` (any of 127.0.0.0/8)."""
    with httpx.Client(transport=httpx.HTTPTransport(local_address=source), timeout=30) as client:
        return client.post(f"{api_root(gw)}/session", json={"email": email, "password": password})


def signed_in(gw: GatewayProcess, email: str) -> Caller:
    response = login(gw, email)
    assert response.status_code == 200, response.text
    cookie = response.cookies["gridgate_session"]
    body = response.json()["data"]
    return Caller(api_root(gw), cookie=cookie, csrf=body["csrf_token"], user=body["user"])


def with_token(gw: GatewayProcess, email: str) -> Caller:
    async def mint() -> str:
        people = People(gw.store, SystemClock())
        user = await gw.store.get_user_by_email(email)
        assert user is not None
        return (await people.create_token(user, "script")).secret

    return Caller(api_root(gw), token=gw.run(mint()))


def key_ids(gw: GatewayProcess, account_id: str) -> list[str]:
    return [key.id for key in gw.run(gw.store.list_keys(account_id))]


def chat(gw: GatewayProcess, secret: str) -> httpx.Response:
    response = httpx.post(
        f"{gw.base_url}/chat/completions",
        headers={"Authorization": f"Bearer {secret}"},
        json={
            "model": "text-prime",
            "max_tokens": 8,
            "messages": [{"role": "user", "content": "hi"}],
        },
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response


def not_found(response: httpx.Response) -> None:
    assert response.status_code == 404, response.text
    assert response.json()["error"]["type"] == "not_found_error"


@dataclass
class World:
    """Two funded accounts A and B, each with a key and one request of usage; a member of A
    signed in with a session; an operator acting through a management token."""

    a: str
    b: str
    b_key: str
    member_a: Caller
    operator: Caller
    b_owner: str = ""  # a user of B
    b_token: str = ""  # a management token of that user


@pytest.fixture(scope="module")
def world(gateway: GatewayProcess) -> World:
    a, a_secret = gateway.new_account("5", name="A")
    b, b_secret = gateway.new_account("5", name="B")
    chat(gateway, a_secret)
    chat(gateway, b_secret)
    wait_until(lambda: gateway.usage(a) and gateway.usage(b))
    member = signed_in(gateway, make_user(gateway, "member", a))
    operator = with_token(gateway, make_user(gateway, "operator", None))
    owner_b = gateway.run(gateway.store.get_user_by_email(make_user(gateway, "owner", b)))
    assert owner_b is not None

    async def mint() -> str:
        return (await People(gateway.store, SystemClock()).create_token(owner_b, "b")).record.id

    return World(a, b, key_ids(gateway, b)[0], member, operator, owner_b.id, gateway.run(mint()))


# -- sessions ------------------------------------------------------------------------------------
def test_login_sets_a_hardened_session_cookie(gateway: GatewayProcess) -> None:
    email = make_user(gateway, "owner", gateway.new_account("1")[0])
    response = login(gateway, email.upper())
    assert response.status_code == 200, response.text
    cookie = response.headers["set-cookie"]
    name_value, *attributes = (part.strip() for part in cookie.split(";"))
    assert name_value.startswith("gridgate_session=")
    assert len(name_value.removeprefix("gridgate_session=")) >= 43
    lowered = {a.lower() for a in attributes}
    assert {"httponly", "samesite=strict", "secure", "path=/"} <= lowered
    body = response.json()["data"]
    assert body["user"]["email"] == email
    assert body["user"]["role"] == "owner"
    assert "password_hash" not in body["user"]
    assert len(body["csrf_token"]) >= 43

    caller = signed_in(gateway, email)
    me = caller.request("GET", "/me")
    assert me.status_code == 200
    assert me.json()["data"]["user"]["email"] == email


def test_wrong_credentials_say_one_thing(gateway: GatewayProcess) -> None:
    email = make_user(gateway, "member", gateway.new_account("1")[0])
    wrong = login(gateway, email, "not the password at all")
    unknown = login(gateway, f"nobody-{secrets.token_hex(4)}@example.com")
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert "set-cookie" not in response.headers
        assert response.json()["error"]["message"] == "incorrect email or password"


def test_unauthenticated_calls_are_401(gateway: GatewayProcess) -> None:
    anonymous = Caller(api_root(gateway))
    for method, path in [("GET", "/me"), ("GET", "/api-keys"), ("GET", "/balance")]:
        assert anonymous.request(method, path).status_code == 401
    bad_cookie = Caller(api_root(gateway), cookie="x" * 43, csrf="y" * 43)
    assert bad_cookie.request("GET", "/me").status_code == 401
    bad_token = Caller(api_root(gateway), token="ggm_" + "z" * 43)
    assert bad_token.request("GET", "/me").status_code == 401


def test_logout_ends_the_session_and_clears_the_cookie(gateway: GatewayProcess) -> None:
    caller = signed_in(gateway, make_user(gateway, "member", gateway.new_account("1")[0]))
    assert caller.request("DELETE", "/session", csrf=False).status_code == 403
    response = caller.request("DELETE", "/session")
    assert response.status_code == 204
    cleared = response.headers["set-cookie"]
    assert cleared.startswith(('gridgate_session=""', "gridgate_session=;"))
    assert "max-age=0" in cleared.lower()
    assert caller.request("GET", "/me").status_code == 401
    audit = gateway.run(gateway.store.list_audit(subject=caller.user["id"]))
    assert [e.action for e in audit] == ["session.logout", "session.login"]
    assert all(e.actor == caller.user["id"] for e in audit)


# -- CSRF and tokens -----------------------------------------------------------------------------
def test_a_cookie_post_needs_the_csrf_token(gateway: GatewayProcess) -> None:
    account, _ = gateway.new_account("1")
    caller = signed_in(gateway, make_user(gateway, "member", account))
    body = {"api_key": {"name": "ci", "expires_at": None}}
    missing = caller.request("POST", "/api-keys", json=body, csrf=False)
    assert missing.status_code == 403
    assert missing.json()["error"]["code"] == "csrf_failed"
    wrong = caller.request(
        "POST", "/api-keys", json=body, csrf=False, headers={"X-CSRF-Token": "w" * 43}
    )
    assert wrong.status_code == 403
    assert len(key_ids(gateway, account)) == 1  # nothing created
    created = caller.request("POST", "/api-keys", json=body)
    assert created.status_code == 201, created.text
    assert caller.request("GET", "/api-keys", csrf=False).status_code == 200  # reads need none


def test_a_token_call_needs_no_csrf(gateway: GatewayProcess) -> None:
    account, _ = gateway.new_account("1")
    script = with_token(gateway, make_user(gateway, "owner", account))
    created = script.request("POST", "/api-keys", json={"api_key": {"name": "deploy"}})
    assert created.status_code == 201, created.text
    assert created.json()["data"]["account_id"] == account
    assert created.json()["data"]["own_usage_only"] is False


def test_a_key_made_to_read_its_own_usage_only(gateway: GatewayProcess) -> None:
    account, other_secret = gateway.new_account("1")
    script = with_token(gateway, make_user(gateway, "owner", account))
    body = {"api_key": {"name": "ci", "own_usage_only": True}}
    created = script.request("POST", "/api-keys", json=body)
    assert created.status_code == 201, created.text
    shown = created.json()["data"]
    assert shown["own_usage_only"] is True
    listed = script.request("GET", f"/api-keys/{shown['id']}").json()["data"]
    assert listed["own_usage_only"] is True
    theirs = chat(gateway, other_secret).headers["x-grid-request-id"]
    mine = chat(gateway, shown["key"]).headers["x-grid-request-id"]
    usage = f"{gateway.base_url}/usage"
    for secret, visible in ((shown["key"], {mine}), (other_secret, {mine, theirs})):
        page = httpx.get(usage, headers={"Authorization": f"Bearer {secret}"}, timeout=30)
        assert {r["request_id"] for r in page.json()["data"]} == visible


def test_validation_errors_name_the_param(gateway: GatewayProcess) -> None:
    account, _ = gateway.new_account("1")
    script = with_token(gateway, make_user(gateway, "owner", account))
    cases = [
        ({"api_key": {"name": ""}}, "name"),
        ({"api_key": {}}, "api_key.name"),
        ({"api_key": {"name": 3}}, "api_key.name"),
        ({"api_key": {"name": "k", "expires_at": "2001-01-01T00:00:00Z"}}, "expires_at"),
        ({"api_key": {"name": "k", "expires_at": "soon"}}, "expires_at"),
        ({"api_key": {"name": "k", "colour": "red"}}, "api_key.colour"),
    ]
    for body, param in cases:
        response = script.request("POST", "/api-keys", json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["error"]["param"] == param, body
    malformed = script.request(
        "POST", "/api-keys", content=b"{", headers={"Content-Type": "application/json"}
    )
    assert malformed.status_code == 400
    assert script.request("GET", "/usage?limit=101").json()["error"]["param"] == "limit"
    assert script.request("GET", "/usage?since=yesterday").json()["error"]["param"] == "since"


# -- a key's life: created here, used with the SDK, seen in usage, revoked here -------------------
def test_a_key_created_here_serves_the_sdk_until_revoked_here(
    gateway: GatewayProcess, request: pytest.FixtureRequest
) -> None:
    account, _ = gateway.new_account("5")
    caller = signed_in(gateway, make_user(gateway, "member", account))
    created = caller.request(
        "POST", "/api-keys", json={"api_key": {"name": "laptop", "expires_at": None}}
    )
    assert created.status_code == 201, created.text
    shown = created.json()["data"]
    assert set(shown) == {
        "id", "name", "key_prefix", "is_active", "created_at", "expires_at", "last_used_at",
        "revoked_at", "account_id", "key", "own_usage_only",
    }  # fmt: skip
    assert shown["key"].startswith("gg") and shown["key"].startswith(shown["key_prefix"])
    assert shown["is_active"] is True and shown["account_id"] == account

    listed = caller.request("GET", "/api-keys").json()["data"]
    assert shown["id"] in [k["id"] for k in listed]
    assert all(k["key"] is None and "secret_hash" not in k for k in listed)
    one = caller.request("GET", f"/api-keys/{shown['id']}").json()["data"]
    assert one == {**shown, "key": None, "last_used_at": one["last_used_at"]}

    sdk = OpenAI(base_url=gateway.base_url, api_key=shown["key"], max_retries=0)
    request.addfinalizer(sdk.close)
    completion = sdk.chat.completions.create(
        model="text-prime", messages=[{"role": "user", "content": "hello"}], max_tokens=12
    )
    assert completion.usage is not None

    def record() -> dict[str, Any] | None:
        data = caller.request("GET", f"/usage?key_id={shown['id']}").json()["data"]
        return data[0] if data else None

    seen = wait_until(record)
    assert seen is not None
    offer = next(o for o in gateway.offers if o.supplier == "sim-beta")
    price = Price(nanos(offer.usd_in), nanos(offer.usd_out))
    expected = price.cost(completion.usage.prompt_tokens, completion.usage.completion_tokens)
    assert seen["cost_nanos"] == expected > 0
    assert seen["instrument"] == "text-prime" and seen["output_tokens"] == 12
    balance = caller.request("GET", "/balance").json()["data"]
    assert balance == {
        "account_id": account,
        "balance_usd": balance["balance_usd"],
        "balance_nanos": nanos("5") - expected,
    }

    revoked = caller.request("DELETE", f"/api-keys/{shown['id']}")
    assert revoked.status_code == 204, revoked.text
    after = caller.request("GET", f"/api-keys/{shown['id']}").json()["data"]
    assert after["is_active"] is False and after["revoked_at"] is not None
    with pytest.raises(openai.AuthenticationError):
        sdk.chat.completions.create(
            model="text-prime", messages=[{"role": "user", "content": "again"}], max_tokens=4
        )

    audit = gateway.run(gateway.store.list_audit(subject=shown["id"]))
    assert [e.action for e in audit] == ["api_key.revoke", "api_key.create"]
    assert all(e.actor == caller.user["id"] for e in audit)
    assert all(shown["key"] not in repr(e.detail) for e in audit)


def test_usage_pages_newest_first(gateway: GatewayProcess) -> None:
    account, secret = gateway.new_account("5")
    for _ in range(3):
        chat(gateway, secret)
    wait_until(lambda: len(gateway.usage(account)) == 3)
    caller = with_token(gateway, make_user(gateway, "member", account))
    first = caller.request("GET", "/usage?limit=2").json()
    assert len(first["data"]) == 2 and first["next_cursor"]
    second = caller.request("GET", f"/usage?limit=2&cursor={first['next_cursor']}").json()
    assert len(second["data"]) == 1 and second["next_cursor"] is None
    ids = [r["request_id"] for r in first["data"] + second["data"]]
    assert ids == [u.request_id for u in gateway.usage(account)]  # the store's newest first
    none = caller.request("GET", "/usage?instrument=text-max").json()
    assert none == {"data": [], "next_cursor": None}
    assert caller.request("GET", "/usage?cursor=@@").status_code == 422


# -- authorisation: one test per endpoint ----------------------------------------------------------
def test_list_keys_of_another_account(world: World) -> None:
    not_found(world.member_a.request("GET", f"/api-keys?account_id={world.b}"))
    own = world.member_a.request("GET", "/api-keys").json()["data"]
    assert own and {k["account_id"] for k in own} == {world.a}
    theirs = world.operator.request("GET", f"/api-keys?account_id={world.b}").json()["data"]
    assert world.b_key in [k["id"] for k in theirs]
    every = world.operator.request("GET", "/api-keys").json()["data"]
    assert {world.a, world.b} <= {k["account_id"] for k in every}


def test_create_key_in_another_account(gateway: GatewayProcess, world: World) -> None:
    before = key_ids(gateway, world.b)
    body = {"api_key": {"name": "sneaky", "account_id": world.b}}
    not_found(world.member_a.request("POST", "/api-keys", json=body))
    assert key_ids(gateway, world.b) == before
    mine = world.member_a.request("POST", "/api-keys", json={"api_key": {"name": "mine"}})
    assert mine.json()["data"]["account_id"] == world.a
    made = world.operator.request("POST", "/api-keys", json=body)
    assert made.status_code == 201
    assert made.json()["data"]["account_id"] == world.b
    no_account = world.operator.request("POST", "/api-keys", json={"api_key": {"name": "x"}})
    assert no_account.status_code == 422
    assert no_account.json()["error"]["param"] == "account_id"


def test_revoke_key_of_another_account(gateway: GatewayProcess, world: World) -> None:
    theirs = gateway.run(gateway.store.get_key(world.b_key))
    assert theirs is not None and theirs.revoked_us is None
    refused = world.member_a.request("DELETE", f"/api-keys/{world.b_key}")
    not_found(refused)
    unknown = world.member_a.request("DELETE", "/api-keys/key_does_not_exist")
    not_found(unknown)
    assert refused.json()["error"]["message"] == f"no key {world.b_key!r}"  # as if not there
    still = gateway.run(gateway.store.get_key(world.b_key))
    assert still is not None and still.revoked_us is None
    spare = world.operator.request(
        "POST", "/api-keys", json={"api_key": {"name": "spare", "account_id": world.b}}
    ).json()["data"]["id"]
    not_found(world.member_a.request("DELETE", f"/api-keys/{spare}"))
    done = world.operator.request("DELETE", f"/api-keys/{spare}")
    assert done.status_code == 204
    assert gateway.run(gateway.store.get_key(spare)).revoked_us is not None  # type: ignore[union-attr]


def test_balance_of_another_account(gateway: GatewayProcess, world: World) -> None:
    not_found(world.member_a.request("GET", f"/balance?account_id={world.b}"))
    own = world.member_a.request("GET", "/balance").json()["data"]
    assert own["account_id"] == world.a
    assert own["balance_nanos"] == gateway.balance(world.a)
    theirs = world.operator.request("GET", f"/balance?account_id={world.b}").json()["data"]
    assert theirs["account_id"] == world.b
    assert theirs["balance_nanos"] == gateway.balance(world.b)
    assert world.operator.request("GET", "/balance").status_code == 422


def test_usage_of_another_account(gateway: GatewayProcess, world: World) -> None:
    not_found(world.member_a.request("GET", f"/usage?account_id={world.b}"))
    for path in ("/usage", "/usage/daily", "/usage.csv"):  # their key: as if it did not exist
        by_their_key = world.member_a.request("GET", f"{path}?key_id={world.b_key}")
        not_found(by_their_key)
        assert by_their_key.json()["error"]["param"] == "key_id"
        not_found(world.member_a.request("GET", f"{path}?key_id=key_nope"))
        assert world.member_a.request(
            "GET", f"{path}?key_id={key_ids(gateway, world.a)[0]}"
        ).is_success
    own = world.member_a.request("GET", "/usage").json()["data"]
    assert own and {r["key_id"] for r in own} <= set(key_ids(gateway, world.a))
    theirs = world.operator.request("GET", f"/usage?account_id={world.b}").json()["data"]
    assert [r["request_id"] for r in theirs] == [u.request_id for u in gateway.usage(world.b)]


def test_a_disabled_users_tokens_stay_revoked_when_re_enabled(gateway: GatewayProcess) -> None:
    owner = make_user(gateway, "owner", gateway.new_account("1")[0])
    operator = with_token(gateway, make_user(gateway, "operator", None))
    scripted = with_token(gateway, owner)
    me = scripted.request("GET", "/me")
    assert me.status_code == 200, me.text
    user_id = me.json()["data"]["user"]["id"]
    for active in (False, True):
        changed = operator.request(
            "PATCH", f"/users/{user_id}", json={"user": {"is_active": active}}
        )
        assert changed.status_code == 200, changed.text
    refused = scripted.request("GET", "/me")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "revoked_token"
    assert login(gateway, owner).status_code == 200  # the user is back; only the tokens are not


def test_an_owner_cannot_tell_whether_an_email_exists_in_another_account(
    gateway: GatewayProcess,
) -> None:
    a = gateway.new_account("1")[0]
    owner = signed_in(gateway, make_user(gateway, "owner", a))
    elsewhere = make_user(gateway, "member", gateway.new_account("1")[0])
    here = make_user(gateway, "member", a)
    answers = []
    for email in (elsewhere, here):
        user = {
            "email": email,
            "name": "N",
            "role": "member",
            "account_id": a,
            "password": PASSWORD,
        }
        refused = owner.request("POST", "/users", json={"user": user})
        assert refused.status_code == 422, refused.text
        error = refused.json()["error"]
        assert error["code"] == "email_unavailable"
        assert "exist" not in error["message"] and "taken" not in error["message"]
        answers.append(refused.json())
    assert answers[0] == answers[1]  # another account's or this one's: the same answer
    operator = with_token(gateway, make_user(gateway, "operator", None))
    user = {
        "email": elsewhere,
        "name": "N",
        "role": "member",
        "account_id": a,
        "password": PASSWORD,
    }
    taken = operator.request("POST", "/users", json={"user": user})
    assert taken.status_code == 422
    assert taken.json()["error"]["code"] == "email_taken"


def test_a_credit_must_be_a_plain_ascii_decimal(gateway: GatewayProcess) -> None:
    account = gateway.new_account("1")[0]
    operator = with_token(gateway, make_user(gateway, "operator", None))
    for amount in ("１", "1e3", " 1", "+1"):
        refused = operator.request(
            "POST",
            f"/accounts/{account}/credits",
            json={"amount_usd": amount, "idempotency_key": f"plain-{amount}"},
        )
        assert refused.status_code == 422, (amount, refused.text)
        assert refused.json()["error"]["param"] == "amount"
        assert "plain decimal" in refused.json()["error"]["message"]
    assert gateway.balance(account) == nanos("1")
    credit = {"amount_usd": "1.5", "idempotency_key": "plain-ok"}
    done = operator.request("POST", f"/accounts/{account}/credits", json=credit)
    assert done.status_code in (200, 201), done.text
    assert gateway.balance(account) == nanos("2.5")


# -- login throttling ------------------------------------------------------------------------------
def test_the_eleventh_failed_login_from_an_address_is_429_but_the_owner_gets_in(
    gateway: GatewayProcess,
) -> None:
    email = make_user(gateway, "operator", None)
    for _ in range(10):
        assert login(gateway, email, "a wrong password, again").status_code == 401
    refused = login(gateway, email, "a wrong password, again")
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0
    assert refused.json()["error"]["code"] == "login_rate_limited"
    assert login(gateway, email).status_code == 429  # that address: even the right password
    # the guesser's address is held back, the operator is not locked out
    assert login(gateway, email, source="127.0.0.2").status_code == 200
    for _ in range(3):  # under attack: another address gets a few guesses, then waits
        assert login(gateway, email, "wrong", source="127.0.0.3").status_code == 401
    assert login(gateway, email, "wrong", source="127.0.0.3").status_code == 429


def test_the_openapi_document_is_served(gateway: GatewayProcess) -> None:
    response = httpx.get(f"{api_root(gateway)}/openapi.json", timeout=30)
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"] == "3.1.0"
    assert "/api/v1/api-keys/{key_id}" in document["paths"]


# -- authorisation, every endpoint: a member of A reaches nothing of B; only operators run the
# -- exchange. Each case also checks that nothing changed.
def _snapshot(gateway: GatewayProcess, world: World) -> tuple[object, ...]:
    key = gateway.run(gateway.store.get_key(world.b_key))
    owner = gateway.run(gateway.store.get_user(world.b_owner))
    token = gateway.run(gateway.store.get_management_token(world.b_token))
    limits = gateway.run(gateway.store.list_limits())
    return (
        key,
        owner,
        token,
        gateway.balance(world.b),
        len(gateway.run(gateway.store.list_accounts())),
        limits,
        gateway.run(gateway.store.load_catalog()),
    )


OTHER_ACCOUNT = [
    ("GET", "/api-keys/{b_key}", None),
    ("PUT", "/api-keys/{b_key}", {"api_key": {"name": "mine now"}}),
    ("PUT", "/api-keys/{b_key}", {"api_key": {"is_active": False}}),
    ("GET", "/api-keys/{b_key}/limits", None),
    ("GET", "/usage/daily?account_id={b}", None),
    ("GET", "/usage.csv?account_id={b}", None),
    ("GET", "/accounts/{b}", None),
    ("GET", "/accounts/{b}/limits", None),
    ("GET", "/users?account_id={b}", None),
    ("PATCH", "/users/{b_owner}", {"user": {"is_active": False}}),
    ("DELETE", "/tokens/{b_token}", None),
]
OPERATORS_ONLY = [
    ("POST", "/accounts", {"account": {"name": "mine"}}),
    ("POST", "/accounts/{a}/credits", {"amount_usd": "100", "idempotency_key": "free money"}),
    ("POST", "/accounts/{b}/credits", {"amount_usd": "100", "idempotency_key": "free money"}),
    ("POST", "/accounts/{a}/adjustments", {"amount_usd": "9", "idempotency_key": "adj"}),
    ("PUT", "/accounts/{a}/limits", {"limits": {"requests_per_minute": "unlimited"}}),
    ("PUT", "/api-keys/{b_key}/limits", {"limits": {"requests_per_minute": 0}}),
    ("PUT", "/instruments/text-prime/limits", {"limits": {"concurrent": 0}}),
    ("POST", "/users", {"user": {"email": "x@example.com", "name": "X",
                                 "password": "a long enough password", "role": "operator"}}),
    ("POST", "/users", {"user": {"email": "y@example.com", "name": "Y", "account_id": "{a}",
                                 "password": "a long enough password", "role": "owner"}}),
    ("GET", "/suppliers", None),
    ("GET", "/suppliers/sim-alpha", None),
    ("POST", "/suppliers", {"supplier": {"name": "evil", "base_url": "http://127.0.0.1:9/v1"}}),
    ("PATCH", "/suppliers/sim-alpha", {"supplier": {"base_url": "http://127.0.0.1:9/v1"}}),
    ("GET", "/offers", None),
    ("GET", "/offers/{offer}", None),
    ("POST", "/offers", {"offer": {"supplier": "sim-alpha", "instrument": "text-prime",
                                   "model": "m", "input_usd_per_m": "0", "output_usd_per_m": "0",
                                   "quality": 99, "context": 200000, "max_output": 64000}}),
    ("PATCH", "/offers/{offer}", {"offer": {"input_usd_per_m": "0"}}),
    ("PATCH", "/offers/{offer}", {"offer": {"enabled": False}}),
    ("POST", "/instruments", {"instrument": {"id": "text-x", "context_length": 10,
                                             "max_input_tokens": 5, "max_completion_tokens": 5}}),
    ("PATCH", "/instruments/text-prime", {"instrument": {"enabled": False}}),
    ("GET", "/offer-health", None),
    ("GET", "/audit-log", None),
]  # fmt: skip


def _fill(template: object, world: World, offer: str) -> object:
    names = {"a": world.a, "b": world.b, "b_key": world.b_key, "b_owner": world.b_owner,
             "b_token": world.b_token, "offer": offer}  # fmt: skip
    if isinstance(template, str):
        return template.format(**names)
    if isinstance(template, dict):
        return {k: _fill(v, world, offer) for k, v in template.items()}
    return template


def _call(caller: Caller, world: World, gateway: GatewayProcess, method: str, path: str,
          body: object) -> httpx.Response:  # fmt: skip
    offer = quote(gateway.offers[0].supplier + "/text-prime/" + gateway.offers[0].model, safe="")
    filled = _fill(path, world, offer)
    assert isinstance(filled, str)
    if body is None:
        return caller.request(method, filled)
    return caller.request(method, filled, json=_fill(body, world, offer))


@pytest.mark.parametrize(("method", "path", "body"), OTHER_ACCOUNT)
def test_a_member_reaches_nothing_of_another_account(
    gateway: GatewayProcess, world: World, method: str, path: str, body: object
) -> None:
    before = _snapshot(gateway, world)
    not_found(_call(world.member_a, world, gateway, method, path, body))
    assert _snapshot(gateway, world) == before


@pytest.mark.parametrize(("method", "path", "body"), OPERATORS_ONLY)
def test_only_an_operator_runs_the_exchange(
    gateway: GatewayProcess, world: World, method: str, path: str, body: object
) -> None:
    before = _snapshot(gateway, world)
    refused = _call(world.member_a, world, gateway, method, path, body)
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "forbidden"
    assert _snapshot(gateway, world) == before


def test_a_member_sees_only_their_own_account(world: World) -> None:
    listed = world.member_a.request("GET", "/accounts").json()["data"]
    assert [a["id"] for a in listed] == [world.a]
    own = world.member_a.request("GET", f"/accounts/{world.a}").json()["data"]
    assert own["id"] == world.a
    users = world.member_a.request("GET", "/users").json()["data"]
    assert users and {u["account_id"] for u in users} == {world.a}
    daily = world.member_a.request("GET", "/usage/daily").json()["data"]
    assert daily and {d["instrument"] for d in daily} == {"text-prime"}
