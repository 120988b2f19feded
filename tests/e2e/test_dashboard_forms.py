"""The dashboard's forms over plain HTTP against a real `gridgate serve`: every form post
without the session's CSRF token (or with another, or from another origin) is refused and changes
nothing; the sign-in form has a login CSRF token of its own; cookies are hardened; pages carry a
strict Content-Security-Policy and send strangers to the sign-in page (and back, never off-site)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.e2e.test_management_api import Caller, make_user, signed_in
from tests.harness import GatewayProcess

FORMS = [
    ("/logout", {}),
    ("/keys", {"name": "sneaky"}),
    ("/keys/{key}/revoke", {}),
    ("/profile/password", {"current_password": "x", "new_password": "y" * 12,
                           "confirm_password": "y" * 12}),
    ("/profile/tokens", {"name": "sneaky"}),
    ("/accounts", {"name": "sneaky"}),
    ("/accounts/{account}/money", {"kind": "credit", "amount_usd": "100",
                                   "idempotency_key": "k"}),
    ("/accounts/{account}/limits", {"requests_per_minute": "0"}),
    ("/accounts/{account}/users", {"email": "s@example.com", "name": "S", "role": "owner",
                                   "password": "a long enough password"}),
    ("/accounts/{account}/users/active", {"user_id": "{user}", "active": "no"}),
    ("/offers/edit", {"offer_id": "{offer}", "input_usd_per_m": "0"}),
    ("/offers/toggle", {"offer_id": "{offer}", "enable": "no"}),
    ("/suppliers/toggle", {"name": "sim-alpha", "enable": "no"}),
]  # fmt: skip


def root(gw: GatewayProcess) -> str:
    return gw.base_url.removesuffix("/v1") + "/dashboard"


@pytest.fixture(scope="module")
def operator(gateway: GatewayProcess) -> Caller:
    return signed_in(gateway, make_user(gateway, "operator", None))


@pytest.fixture(scope="module")
def names(gateway: GatewayProcess, operator: Caller) -> dict[str, str]:
    account, _ = gateway.new_account("1")
    key = gateway.run(gateway.store.list_keys(account))[0].id
    user = gateway.run(gateway.store.get_user_by_email(make_user(gateway, "member", account)))
    assert user is not None
    offer = gateway.offers[0]
    return {
        "account": account,
        "key": key,
        "user": user.id,
        "offer": f"{offer.supplier}/{offer.instrument}/{offer.model}",
    }


def state(gw: GatewayProcess, names: dict[str, str]) -> tuple[object, ...]:
    return (
        gw.run(gw.store.get_key(names["key"])),
        gw.run(gw.store.get_user(names["user"])),
        gw.balance(names["account"]),
        len(gw.run(gw.store.list_accounts())),
        gw.run(gw.store.list_limits()),
        gw.run(gw.store.load_catalog()),
        len(gw.run(gw.store.list_audit(limit=1000))),
    )


@pytest.fixture
def browser_like(gateway: GatewayProcess, operator: Caller) -> Iterator[httpx.Client]:
    """A client carrying the operator's session cookie, not following redirects."""
    assert operator.cookie is not None
    with httpx.Client(
        base_url=root(gateway), cookies={"gridgate_session": operator.cookie}, timeout=30
    ) as client:
        yield client


def _post(client: httpx.Client, path: str, fields: dict[str, str], names: dict[str, str],
          **kwargs: object) -> httpx.Response:  # fmt: skip
    filled = {k: v.format(**names) for k, v in fields.items()}
    return client.post(path.format(**names), data=filled, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(("path", "fields"), FORMS)
def test_a_form_post_without_the_csrf_token_changes_nothing(
    gateway: GatewayProcess,
    operator: Caller,
    names: dict[str, str],
    browser_like: httpx.Client,
    path: str,
    fields: dict[str, str],
) -> None:
    before = state(gateway, names)
    for extra in ({}, {"csrf_token": "w" * 43}):
        refused = _post(browser_like, path, {**fields, **extra}, names)
        assert refused.status_code == 403, (path, refused.text)
        assert "text/html" in refused.headers["content-type"]
    foreign = _post(
        browser_like,
        path,
        {**fields, "csrf_token": operator.csrf or ""},
        names,
        headers={"Origin": "https://evil.example"},
    )
    assert foreign.status_code == 403
    json_post = browser_like.post(path.format(**names), json={"csrf_token": operator.csrf})
    assert json_post.status_code == 403  # forms only
    assert state(gateway, names) == before
    assert browser_like.get("/").status_code == 200  # still signed in


def test_the_right_token_works(
    gateway: GatewayProcess, operator: Caller, names: dict[str, str], browser_like: httpx.Client
) -> None:
    done = browser_like.post(
        f"/accounts/{names['account']}/limits",
        data={"csrf_token": operator.csrf or "", "concurrent": "7"},
    )
    assert done.status_code == 303
    assert done.headers["location"].endswith(f"/accounts/{names['account']}?done=limits-saved")
    limits = gateway.run(gateway.store.get_limits("account", names["account"]))
    assert limits is not None and limits.concurrent == 7


def _login_form(client: httpx.Client) -> str:
    """Open the sign-in page; keep its cookie the way a browser does on localhost (httpx sends
    no ``Secure`` cookie over http, browsers do for 127.0.0.1)."""
    page = client.get("/login")
    assert page.status_code == 200
    match = re.search(r'name="login_token" value="([^"]+)"', page.text)
    assert match is not None
    client.headers["Cookie"] = f"gridgate_login={page.cookies['gridgate_login']}"
    return match.group(1)


def test_signing_in_needs_the_forms_own_token_and_sets_hardened_cookies(
    gateway: GatewayProcess,
) -> None:
    email = make_user(gateway, "member", gateway.new_account("1")[0])
    credentials = {"email": email, "password": "a long enough password"}
    with httpx.Client(base_url=root(gateway), timeout=30) as client:
        token = _login_form(client)
        forged = client.post("/login", data={**credentials, "login_token": "x" * 43})
        assert forged.status_code == 403 and "gridgate_session" not in forged.cookies
        token = _login_form(client)
        done = client.post(
            "/login", data={**credentials, "login_token": token, "next": "/dashboard/usage"}
        )
        assert done.status_code == 303 and done.headers["location"] == "/dashboard/usage"
        cookie = next(
            h for h in done.headers.get_list("set-cookie") if h.startswith("gridgate_session=")
        )
        flags = {part.strip().lower() for part in cookie.split(";")[1:]}
        assert {"httponly", "samesite=strict", "secure", "path=/"} <= flags
    with httpx.Client(base_url=root(gateway), timeout=30) as stranger:
        token = _login_form(stranger)  # a token of another browser's sign-in form
    with httpx.Client(base_url=root(gateway), timeout=30) as other_site:
        # a form posted from elsewhere carries no sign-in cookie of ours (SameSite=Strict)
        refused = other_site.post("/login", data={**credentials, "login_token": token})
        assert refused.status_code == 403 and "gridgate_session" not in refused.cookies


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/x", "/v1/models", "/dashboard\\@evil"]
)
def test_after_signing_in_it_never_leaves_the_dashboard(
    gateway: GatewayProcess, target: str
) -> None:
    email = make_user(gateway, "member", gateway.new_account("1")[0])
    with httpx.Client(base_url=root(gateway), timeout=30) as client:
        token = _login_form(client)
        done = client.post(
            "/login",
            data={
                "email": email,
                "password": "a long enough password",
                "login_token": token,
                "next": target,
            },
        )
        assert done.status_code == 303
        assert done.headers["location"] == "/dashboard/"


def test_pages_send_strangers_to_sign_in_and_carry_a_strict_policy(
    gateway: GatewayProcess, browser_like: httpx.Client
) -> None:
    with httpx.Client(base_url=root(gateway), timeout=30) as stranger:
        away = stranger.get("/usage?since=2026-01-01")
        assert away.status_code == 303
        location = urlsplit(away.headers["location"])
        assert location.path == "/dashboard/login"
        assert parse_qs(location.query) == {"next": ["/dashboard/usage?since=2026-01-01"]}
        assert stranger.get("/static/app.css").status_code == 200
    page = browser_like.get("/")
    assert page.status_code == 200
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["cache-control"] == "no-store"
    assert "http://" not in re.sub(r'href="http://127\.0\.0\.1[^"]*"', "", page.text)
    assert browser_like.get("/keys/key_nope/revoke").status_code == 404


def test_a_member_gets_the_403_page_on_operator_pages(gateway: GatewayProcess) -> None:
    member = signed_in(gateway, make_user(gateway, "member", gateway.new_account("1")[0]))
    assert member.cookie is not None
    with httpx.Client(
        base_url=root(gateway), cookies={"gridgate_session": member.cookie}, timeout=30
    ) as client:
        for path in ("/accounts", "/offers", "/health", "/audit", "/offers/edit"):
            page = client.get(path)
            assert page.status_code == 403, path
            assert "Not allowed" in page.text
        assert client.get("/").status_code == 200


def test_the_usage_filter_of_another_accounts_key_is_404(gateway: GatewayProcess) -> None:
    account, _ = gateway.new_account("1")
    member = signed_in(gateway, make_user(gateway, "member", account))
    theirs = gateway.run(gateway.store.list_keys(gateway.new_account("1")[0]))[0].id
    own = gateway.run(gateway.store.list_keys(account))[0].id
    assert member.cookie is not None
    with httpx.Client(
        base_url=root(gateway), cookies={"gridgate_session": member.cookie}, timeout=30
    ) as client:
        assert client.get("/usage", params={"key_id": theirs}).status_code == 404
        assert client.get("/usage", params={"key_id": own}).status_code == 200


def test_a_key_made_in_the_dashboard_can_read_its_own_usage_only(
    gateway: GatewayProcess, operator: Caller, names: dict[str, str], browser_like: httpx.Client
) -> None:
    form = browser_like.get("/keys")
    assert 'name="own_usage_only"' in form.text
    for name, checked in (("own-only", {"own_usage_only": "1"}), ("whole-account", {})):
        made = browser_like.post(
            "/keys",
            data={"csrf_token": operator.csrf or "", "name": name, "account_id": names["account"]}
            | checked,
        )
        assert made.status_code == 200, made.text
    keys = {k.name: k for k in gateway.run(gateway.store.list_keys(names["account"]))}
    assert keys["own-only"].own_usage_only is True
    assert keys["whole-account"].own_usage_only is False
