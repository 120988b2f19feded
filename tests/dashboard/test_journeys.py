"""The dashboard in a real browser (Debian's Chromium through Playwright) against a real
`gridgate serve`: people's journeys end to end.

- signing in: a wrong password is refused on the sign-in page, the right one shows the balance;
- an owner creates a key in the page (its secret shown once, with a copy button that copies
  it), the official openai SDK uses it, the request appears on the usage page at its exact
  cost — the same the management API reports and the price of the offer that served it gives —
  and the balance on the overview went down by exactly that;
- revoking a key through its confirmation page: the SDK is refused from then on, the list says so;
- an operator credits an account (the balance on its page rises exactly), reprices the offer that
  was not the cheapest so that it is, and the next request is served by it; the audit log shows
  both changes;
- the usage page's CSV export downloads the requests;
- on a phone no page scrolls sideways;
- accessibility basics: every field has a label, none is marked invalid before anyone typed in
  it, the skip link is the first Tab stop and moves focus to the content, and forms work from
  the keyboard alone;
- a screenshot of every page at laptop size (in ``$GRIDGATE_SCREENSHOTS`` or
  ``test-artifacts/screenshots/``), secrets masked.

Server-side conditions are awaited with ``wait_until``; the page with Playwright's waiting
``expect``; nothing sleeps.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from pathlib import Path

import openai
import pytest
from playwright.sync_api import Locator, Page, ViewportSize, expect

from gridgate.core.access import CLI
from gridgate.core.accounts.api_keys import ApiKeys
from gridgate.core.clock import SystemClock
from gridgate.money import Price, format_usd
from tests.e2e.test_management_api import PASSWORD
from tests.harness import GatewayProcess, nanos, wait_until

from .conftest import (
    LAPTOP,
    OFFER_IDS,
    PHONE,
    NewPage,
    Person,
    ask,
    create_key,
    dollars,
    recorded,
    shot,
    sign_in,
    text_prime_offers,
)

START = nanos("5")  # every owner's fresh account starts with $5.00


def store_key(gw: GatewayProcess, account_id: str | None) -> str:
    """A key made behind the page's back (for journeys about something else)."""
    assert account_id is not None
    return gw.run(ApiKeys(gw.store, SystemClock()).create(CLI, account_id, "made-in-store")).secret


def key_row(page: Page, name: str) -> Locator:
    """The keys table's row of the key named ``name``."""
    return page.get_by_role("row").filter(has=page.get_by_role("cell", name=name, exact=True))


def mask_secrets(page: Page) -> None:
    """Replace any secret shown once on the page, so that no screenshot carries one."""
    page.evaluate(
        """() => { for (const el of document.querySelectorAll('#new-key, #new-token'))
                       el.value = el.value.slice(0, 6) + '•'.repeat(24); }"""
    )


# -- a. signing in ---------------------------------------------------------------------------


def test_a_wrong_password_stays_on_sign_in_and_the_right_one_shows_the_balance(
    page: Page, owner: Person
) -> None:
    page.goto("/dashboard/")  # a stranger is sent to sign in first
    expect(page).to_have_url(re.compile(r"/dashboard/login\?next="))
    page.get_by_label("Email").fill(owner.email)
    page.get_by_label("Password").fill("not the password at all")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("incorrect email or password")
    expect(page).to_have_url(re.compile(r"/dashboard/login$"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_label("Email")).to_have_value(owner.email)  # kept; the password is not
    expect(page.get_by_label("Password")).to_have_value("")
    assert not [c for c in page.context.cookies() if c["name"] == "gridgate_session"]

    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/dashboard/$"))  # back where it was going
    expect(page.get_by_role("heading", name="Overview", level=1)).to_be_visible()
    expect(page.get_by_test_id("balance")).to_have_text(dollars(START))
    session = next(c for c in page.context.cookies() if c["name"] == "gridgate_session")
    assert session["httpOnly"] and session["sameSite"] == "Strict"


# -- b. a key made in the page, used by the SDK, billed exactly --------------------------------


def test_a_key_made_in_the_page_serves_the_sdk_and_its_request_is_billed_exactly(
    dash_gw: GatewayProcess, page: Page, owner: Person
) -> None:
    assert owner.account_id is not None
    sign_in(page, owner.email)
    expect(page.get_by_test_id("balance")).to_have_text(dollars(START))
    secret = create_key(page, "laptop")
    card = page.locator("section.secret")
    expect(card).to_contain_text("it is shown this once")
    copy = card.get_by_role("button", name="Copy")
    expect(copy).to_be_visible()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    copy.click()
    expect(card.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("() => navigator.clipboard.readText()") == secret
    expect(key_row(page, "laptop")).to_contain_text("active")

    page.goto("/dashboard/keys")  # shown once: never again
    expect(key_row(page, "laptop")).to_be_visible()
    expect(page.get_by_label("The new API key")).to_have_count(0)
    assert secret not in page.content()

    answer = ask(dash_gw, secret)
    assert answer.completion.choices[0].message.content
    tokens = answer.completion.usage
    assert tokens is not None
    offer = text_prime_offers(dash_gw)[answer.supplier]
    cost = Price(offer.input_per_m, offer.output_per_m).cost(
        tokens.prompt_tokens, tokens.completion_tokens
    )
    assert cost > 0
    assert recorded(dash_gw, owner.account_id, answer.request_id).cost == cost
    wait_until(lambda: dash_gw.balance(owner.account_id or "") == START - cost)

    page.goto("/dashboard/usage")
    row = page.locator(f'tr[data-request-id="{answer.request_id}"]')
    cells = row.get_by_role("cell")
    expect(cells.nth(1)).to_have_text("text-prime")
    expect(cells.nth(2)).to_have_text(answer.supplier)
    expect(row.get_by_test_id("cost")).to_have_text(dollars(cost, 6))
    expect(cells.nth(7)).to_have_text("200 ok")
    # the management API, asked with the same browser session, reports the same exact cost
    listed = page.request.get("/api/v1/usage", timeout=10_000)
    assert listed.ok, listed.text()
    (seen,) = [r for r in listed.json()["data"] if r["request_id"] == answer.request_id]
    assert (seen["cost_nanos"], seen["cost_usd"]) == (cost, format_usd(cost))

    page.get_by_role("link", name="Overview").click()
    expect(page.get_by_test_id("balance")).to_have_text(dollars(START - cost))
    expect(page.get_by_test_id("spend-today")).to_have_text(dollars(cost, 4))


# -- c. revoking -----------------------------------------------------------------------------


def test_a_key_revoked_through_its_confirmation_page_is_refused(
    dash_gw: GatewayProcess, page: Page, owner: Person
) -> None:
    sign_in(page, owner.email)
    secret = create_key(page, "ci")
    assert ask(dash_gw, secret).supplier in OFFER_IDS

    page.goto("/dashboard/keys")
    row = key_row(page, "ci")
    row.get_by_role("link", name="Revoke ci").click()
    expect(page.get_by_role("heading", name="Revoke “ci”?")).to_be_visible()
    page.get_by_role("link", name="Cancel").click()  # changing one's mind changes nothing
    expect(row).to_contain_text("active")
    assert ask(dash_gw, secret).completion.choices

    row.get_by_role("link", name="Revoke ci").click()
    page.get_by_role("button", name="Revoke key").click()
    expect(page).to_have_url(re.compile(r"/dashboard/keys\?done=key-revoked$"))
    expect(page.get_by_role("status")).to_contain_text("The key is revoked")
    expect(row.get_by_text("revoked", exact=True)).to_be_visible()
    expect(row.get_by_text("active", exact=True)).to_have_count(0)
    expect(row.get_by_role("link", name=re.compile("Revoke"))).to_have_count(0)
    with pytest.raises(openai.AuthenticationError):
        ask(dash_gw, secret)


# -- d. an operator's money and prices -------------------------------------------------------


def test_an_operator_credits_an_account_and_reprices_an_offer_that_routing_then_follows(
    dash_gw: GatewayProcess, page: Page, owner: Person, operator: Person
) -> None:
    account = owner.account_id
    assert account is not None
    secret = store_key(dash_gw, account)
    sign_in(page, operator.email)
    page.get_by_role("link", name="Accounts").click()
    page.locator(f'tr[data-account-id="{account}"]').get_by_role("link").click()
    balance = page.get_by_test_id("account-balance")
    expect(balance).to_have_text(dollars(START))
    amount = page.get_by_label("Amount (USD)", exact=True)
    untouched = page.get_by_label("Amount (USD, may be negative)")
    plain = str(untouched.evaluate("el => getComputedStyle(el).borderTopColor"))
    amount.press_sequentially("lots")
    amount.press("Tab")  # not an amount: marked once someone typed it, and fine once fixed
    expect(amount).not_to_have_css("border-top-color", plain)
    amount.fill("12.34")
    expect(amount).to_have_css("border-top-color", plain)
    page.get_by_label("Memo (optional)").fill("browser top-up")
    page.get_by_role("button", name="Credit account").click()
    expect(page.get_by_role("status")).to_have_text("The credit is applied.")
    expect(balance).to_have_text(dollars(START + nanos("12.34")))  # $17.34
    assert dash_gw.balance(account) == START + nanos("12.34")

    # whichever offer serves text-prime now, the other one is made the cheaper
    served = ask(dash_gw, secret).supplier
    offers = text_prime_offers(dash_gw)
    (other,) = [s for s in offers if s != served]
    price_in = min(o.input_per_m for o in offers.values()) // 2
    price_out = min(o.output_per_m for o in offers.values()) // 2
    page.get_by_role("link", name="Suppliers & offers").click()
    offer_row = page.locator(f'tr[data-offer-id="{OFFER_IDS[other]}"]')
    offer_row.get_by_role("link", name=f"Edit {OFFER_IDS[other]}").click()
    expect(page.get_by_role("heading", name=f"Edit {OFFER_IDS[other]}")).to_be_visible()
    page.get_by_label("Input price, USD per 1M tokens").fill(format_usd(price_in))
    page.get_by_label("Output price, USD per 1M tokens").fill(format_usd(price_out))
    page.get_by_role("button", name="Save offer").click()
    expect(page.get_by_role("status")).to_contain_text("The offer is saved")
    expect(offer_row.get_by_test_id("offer-price")).to_have_text(
        f"{dollars(price_in)} / {dollars(price_out)}"
    )
    expect(offer_row).to_contain_text("edited")
    assert ask(dash_gw, secret).supplier == other

    user = dash_gw.run(dash_gw.store.get_user_by_email(operator.email))
    assert user is not None
    page.get_by_role("link", name="Audit log").click()
    by_operator = page.get_by_role("row").filter(has_text=user.id)
    credit = by_operator.filter(has_text="account.credit").filter(has_text=account)
    expect(credit).to_have_count(1)
    expect(credit).to_contain_text(f"amount_nanos {nanos('12.34')}")
    page.get_by_label("Subject").fill(OFFER_IDS[other])
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"/dashboard/audit\?.*subject="))
    edit = by_operator.filter(has_text="offer.update")
    expect(edit).to_have_count(1)
    expect(edit).to_contain_text(OFFER_IDS[other])
    expect(edit).to_contain_text(f"input_per_m {format_usd(price_in)}")


# -- e. the CSV export -----------------------------------------------------------------------


def test_the_csv_export_downloads_the_selected_requests(
    dash_gw: GatewayProcess, page: Page, owner: Person
) -> None:
    assert owner.account_id is not None
    answer = ask(dash_gw, store_key(dash_gw, owner.account_id))
    record = recorded(dash_gw, owner.account_id, answer.request_id)
    sign_in(page, owner.email)
    page.get_by_role("link", name="Usage").click()
    page.get_by_label("Instrument").select_option("text-prime")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator(f'tr[data-request-id="{answer.request_id}"]')).to_be_visible()
    export = page.get_by_role("link", name="Export CSV")
    expect(export).to_have_attribute("href", re.compile(r"instrument=text-prime"))
    with page.expect_download(timeout=10_000) as started:
        export.click()
    download = started.value
    assert download.failure() is None
    assert download.suggested_filename == "gridgate-usage.csv"
    rows = list(csv.DictReader(io.StringIO(Path(download.path()).read_text())))
    assert [r["request_id"] for r in rows] == [answer.request_id]
    (row,) = rows
    assert (row["instrument"], row["supplier"]) == ("text-prime", answer.supplier)
    assert int(row["cost_nanos"]) == record.cost and row["billed"] == "true"


# -- f. a phone ------------------------------------------------------------------------------


WIDEST = """() => [...document.body.querySelectorAll('*')]
    .filter(el => el.getBoundingClientRect().right
                  >= document.documentElement.scrollWidth - 1)
    .slice(-3)
    .map(el => el.outerHTML.slice(0, 120))"""  # the innermost elements at the page's right edge


def fits(page: Page) -> None:
    """Nothing on ``page`` sticks out sideways (a message naming what does, otherwise)."""
    widths = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    scroll, width = int(widths[0]), int(widths[1])
    assert scroll <= width, (
        f"{page.url} is {scroll} px wide on a {width} px phone: {page.evaluate(WIDEST)}"
    )


def test_on_a_phone_the_pages_do_not_scroll_sideways(
    dash_gw: GatewayProcess, new_page: NewPage, owner: Person
) -> None:
    page = new_page(PHONE)
    sign_in(page, owner.email)
    secret = create_key(page, "phone")
    mask_secrets(page)
    fits(page)
    ask(dash_gw, secret)  # a row in the usage table, a bar in the charts
    wait_until(lambda: dash_gw.usage(owner.account_id or ""))
    for name, path, heading in (
        ("overview", "/dashboard/", "Overview"),
        ("keys", "/dashboard/keys", "API keys"),
        ("usage", "/dashboard/usage", "Usage"),
    ):
        page.goto(path)
        expect(page.get_by_role("heading", name=heading, level=1)).to_be_visible()
        fits(page)
        shot(page, f"phone-{name}")


def test_no_page_at_all_scrolls_sideways_on_a_phone(
    dash_gw: GatewayProcess, new_page: NewPage, owner: Person, operator: Person
) -> None:
    names = every_page(dash_gw, new_page, owner, operator, lambda _, page: fits(page), PHONE)
    assert len(names) == 16


# -- g. and h. every page: accessibility basics and screenshots ------------------------------

FIELDS = "input:not([type=hidden]), select, textarea"
UNLABELLED = """fields => fields
    .filter(el => el.checkVisibility())
    .filter(el => !(el.labels.length > 0 || el.getAttribute('aria-label')
                    || el.getAttribute('aria-labelledby')))
    .map(el => el.outerHTML)"""
MARKED = """fields => {
    const probe = document.body.appendChild(document.createElement('input'));
    const plain = getComputedStyle(probe).borderTopColor;  // a field nobody has touched
    probe.remove();
    return fields
        .filter(el => el.checkVisibility() && el.type !== 'checkbox')
        .filter(el => getComputedStyle(el).borderTopColor !== plain)
        .map(el => el.outerHTML);
}"""
FIRST_TAB_STOP = """() => [...document.querySelectorAll(
        'a[href], button, input, select, textarea, [tabindex]')]
    .filter(el => el.tabIndex >= 0 && !el.disabled && el.type !== 'hidden')[0]?.className"""

Visit = Callable[[str, Page], None]


def every_page(
    gw: GatewayProcess,
    new_page: NewPage,
    owner: Person,
    operator: Person,
    visit: Visit,
    viewport: ViewportSize = LAPTOP,
) -> list[str]:
    """Walk through every page of the dashboard (at laptop size unless told), calling
    ``visit(name, page)`` on each once it has shown; the names, in order. An owner's pages, then
    an operator's."""
    names: list[str] = []

    def seen(name: str, page: Page, heading: str | re.Pattern[str]) -> None:
        expect(page.get_by_role("heading", name=heading, level=1)).to_be_visible()
        names.append(name)
        visit(name, page)

    mine = new_page(viewport)
    mine.goto("/dashboard/login")
    seen("signin", mine, "Sign in")
    sign_in(mine, owner.email)
    secret = create_key(mine, "tour")
    ask(gw, secret)  # something to show on the overview and usage pages
    wait_until(lambda: gw.usage(owner.account_id or ""))
    mask_secrets(mine)
    seen("key-created", mine, "API keys")
    for name, path, heading in (
        ("overview", "/dashboard/", "Overview"),
        ("keys", "/dashboard/keys", "API keys"),
    ):
        mine.goto(path)
        seen(name, mine, heading)
    key_row(mine, "tour").get_by_role("link", name="Revoke tour").click()
    seen("revoke-confirm", mine, "Revoke “tour”?")
    for name, path, heading in (
        ("usage", "/dashboard/usage", "Usage"),
        ("instruments", "/dashboard/instruments", "Instruments"),
        ("webhooks", "/dashboard/webhooks", "Webhooks"),
        ("profile", "/dashboard/profile", "Ada Owner"),
    ):
        mine.goto(path)
        seen(name, mine, heading)

    ops = new_page(viewport)
    sign_in(ops, operator.email)
    ops.goto("/dashboard/accounts")
    seen("accounts", ops, "Accounts")
    ops.goto(f"/dashboard/accounts/{owner.account_id}")
    seen("account", ops, re.compile(re.escape(owner.account_id or "-")))
    ops.goto("/dashboard/offers")
    seen("offers", ops, "Suppliers & offers")
    ops.get_by_role("link", name=f"Edit {OFFER_IDS['sim-alpha']}").click()
    seen("offer-edit", ops, f"Edit {OFFER_IDS['sim-alpha']}")
    ops.goto("/dashboard/offers/edit")
    seen("offer-new", ops, "New offer")
    ops.goto("/dashboard/health")
    seen("health", ops, "Offer health")
    ops.goto("/dashboard/audit")
    seen("audit", ops, "Audit log")
    return names


def test_every_field_is_labelled_unmarked_and_the_skip_link_comes_first(
    dash_gw: GatewayProcess, new_page: NewPage, owner: Person, operator: Person
) -> None:
    def check(name: str, page: Page) -> None:
        missing = page.locator(FIELDS).evaluate_all(UNLABELLED)
        assert missing == [], f"{name}: fields without a label: {missing}"
        marked = page.locator(FIELDS).evaluate_all(MARKED)
        assert marked == [], f"{name}: fields marked invalid before anyone typed: {marked}"
        assert page.evaluate(FIRST_TAB_STOP) == "skip", f"{name}: the skip link is not first"
        if name == "signin":  # its email field has the focus already (autofocus)
            expect(page.get_by_label("Email")).to_be_focused()
            return
        page.keyboard.press("Tab")  # the first press on a page just shown
        skip = page.get_by_role("link", name="Skip to content")
        expect(skip).to_be_focused()
        expect(skip).to_be_in_viewport()  # shown when focused
        page.keyboard.press("Enter")
        expect(page.locator("#main")).to_be_focused()

    names = every_page(dash_gw, new_page, owner, operator, check)
    assert len(names) == 16


def tab_to(page: Page, target: Locator, most: int = 40) -> None:
    """Press Tab until ``target`` has the focus (at most ``most`` times)."""
    for _ in range(most):
        page.keyboard.press("Tab")
        if target.evaluate("el => el === document.activeElement"):
            return
    raise AssertionError(f"{target} is not reachable with Tab")


def test_signing_in_and_creating_a_key_work_from_the_keyboard_alone(
    page: Page, owner: Person
) -> None:
    page.goto("/dashboard/login")
    expect(page.get_by_label("Email")).to_be_focused()
    page.keyboard.type(owner.email)
    page.keyboard.press("Tab")
    expect(page.get_by_label("Password")).to_be_focused()
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Overview", level=1)).to_be_visible()

    tab_to(page, page.get_by_role("link", name="API keys"))
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="API keys", level=1)).to_be_visible()
    tab_to(page, page.get_by_label("Name", exact=True))
    page.keyboard.type("from-the-keyboard")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Your new key “from-the-keyboard”")).to_be_visible()
    tab_to(page, page.get_by_role("link", name="Revoke from-the-keyboard"))
    page.keyboard.press("Enter")
    tab_to(page, page.get_by_role("button", name="Revoke key"))
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_contain_text("The key is revoked")
    expect(key_row(page, "from-the-keyboard")).to_contain_text("revoked")


def test_a_screenshot_of_every_page(
    dash_gw: GatewayProcess, new_page: NewPage, owner: Person, operator: Person
) -> None:
    taken: list[Path] = []

    def picture(name: str, page: Page) -> None:
        assert not page.locator("#new-key, #new-token").evaluate_all(
            "els => els.filter(el => !el.value.includes('•')).length"
        ), "a secret would be in the picture"
        taken.append(shot(page, f"laptop-{len(taken) + 1:02d}-{name}"))

    every_page(dash_gw, new_page, owner, operator, picture)
    assert len(taken) == 16
    for path in taken:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
