"""Fixtures of the dashboard's browser tests: a `gridgate serve` of their own (sim-alpha and
sim-beta offering text-prime; the journeys edit its catalog), an operator and fresh account owners
made with People, Debian's Chromium driven by Playwright with a fresh browser context per test,
screenshots, and the steps journeys share — sign in, create a key in the page, call the gateway
with the official openai SDK.

The browser is Debian's (``/usr/bin/chromium``, installed by ``scripts/test``), never one that
playwright downloads. Without it the tests are skipped, loudly — and fail under CI.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from openai import OpenAI
from openai.types.chat import ChatCompletion
from playwright.sync_api import Browser, Page, ViewportSize, expect, sync_playwright

from gridgate.core.access import CLI
from gridgate.core.accounts.accounts import Accounts
from gridgate.core.clock import SystemClock
from gridgate.core.credentials import looks_like_key
from gridgate.core.people.directory import People
from gridgate.storage.records import OfferRecord, UsageRecord
from tests.e2e.test_management_api import PASSWORD
from tests.harness import (
    BackgroundLoop,
    GatewayProcess,
    Offer,
    own_gateway,
    site,
    wait_until,
)

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
TIMEOUT_MS = 10_000  # every wait of a page or an expectation, at most
LAPTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}

OFFERS = [
    Offer("sim-alpha", "text-prime", "sim/prime-a", "0.10", "0.40", 40, 196_608, 131_072),
    Offer("sim-beta", "text-prime", "sim/prime-b", "0.08", "0.30", 39, 196_608, 65_536),
]
OFFER_IDS = {o.supplier: f"{o.supplier}/{o.instrument}/{o.model}" for o in OFFERS}


@pytest.fixture(scope="package")
def dash_gw(
    bg: BackgroundLoop, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    """A gateway for the browser tests alone: they change its catalog and its accounts (it, like
    the browser, stops when this package's tests are done)."""
    with own_gateway(bg, tmp_path_factory.mktemp("dashboard"), OFFERS) as gw:
        yield gw


@dataclass(frozen=True)
class Person:
    email: str
    account_id: str | None


def make_person(gw: GatewayProcess, role: str, account_id: str | None, name: str) -> Person:
    email = f"{role}-{secrets.token_hex(4)}@example.com"
    gw.run(People(gw.store, SystemClock()).create_user(email, name, role, account_id, PASSWORD))
    return Person(email, account_id)


def fresh_account(gw: GatewayProcess, credit_usd: str, name: str) -> str:
    """A new account with ``credit_usd`` of credit and no keys."""

    async def make() -> str:
        accounts = Accounts(gw.store, SystemClock())
        account = await accounts.create(CLI, name)
        await accounts.credit(CLI, account.id, credit_usd)
        return account.id

    return gw.run(make())


@pytest.fixture(scope="package")
def operator(dash_gw: GatewayProcess) -> Person:
    return make_person(dash_gw, "operator", None, "Olga Operator")


@pytest.fixture
def owner(dash_gw: GatewayProcess) -> Person:
    """The owner of a fresh account with $5.00 and no keys (each test its own: exact sums)."""
    account = fresh_account(dash_gw, "5", f"acme-{secrets.token_hex(3)}")
    return make_person(dash_gw, "owner", account, "Ada Owner")


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        message = (
            f"Debian chromium not installed ({CHROMIUM} is missing): apt-get install chromium "
            "(scripts/test does it) — the dashboard's browser tests cannot run"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    expect.set_options(timeout=TIMEOUT_MS)
    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
            timeout=30_000,
        )
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        playwright.stop()


NewPage = Callable[[ViewportSize], Page]


@pytest.fixture
def new_page(browser: Browser, dash_gw: GatewayProcess) -> Iterator[NewPage]:
    """Pages in fresh browser contexts (no cookies shared), closed after the test."""
    contexts = []

    def make(viewport: ViewportSize) -> Page:
        context = browser.new_context(
            base_url=site(dash_gw), viewport=viewport, color_scheme="light", accept_downloads=True
        )
        context.set_default_timeout(TIMEOUT_MS)
        context.set_default_navigation_timeout(TIMEOUT_MS)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_page: NewPage) -> Page:
    """A page at laptop size in a fresh context."""
    return new_page(LAPTOP)


def screenshots_dir() -> Path:
    return Path(os.environ.get("GRIDGATE_SCREENSHOTS") or REPO / "test-artifacts" / "screenshots")


def shot(page: Page, name: str, *, full_page: bool = True) -> Path:
    """Save a PNG of ``page`` as ``NAME.png`` in the screenshots directory."""
    folder = screenshots_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page, animations="disabled", timeout=TIMEOUT_MS)
    return path


# -- steps the journeys share ----------------------------------------------------------------


def sign_in(page: Page, email: str, password: str = PASSWORD) -> None:
    """Sign in through the form and land on the overview."""
    page.goto("/dashboard/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Overview", level=1)).to_be_visible()


def create_key(page: Page, name: str) -> str:
    """Create a key on the keys page; the secret, read from the page that shows it once."""
    page.goto("/dashboard/keys")
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_role("button", name="Create key").click()
    expect(page.get_by_role("heading", name=f"Your new key “{name}”")).to_be_visible()
    secret = page.get_by_label("The new API key").input_value()
    assert looks_like_key(secret), "the page shows no key"
    return secret


@dataclass(frozen=True)
class Answer:
    completion: ChatCompletion
    supplier: str  # x-gridgate-supplier: who served it
    request_id: str  # x-request-id: the key of its usage record


def ask(gw: GatewayProcess, secret: str) -> Answer:
    """One small text-prime completion with the official openai SDK."""
    with OpenAI(base_url=gw.base_url, api_key=secret, timeout=30, max_retries=0) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="text-prime",
            max_tokens=8,
            messages=[{"role": "user", "content": "Say hello to the dashboard."}],
        )
        return Answer(raw.parse(), raw.headers["x-gridgate-supplier"], raw.headers["x-request-id"])


def recorded(gw: GatewayProcess, account_id: str, request_id: str) -> UsageRecord:
    """The request's usage record, once the usage writer has flushed it."""

    def find() -> UsageRecord | None:
        records: list[UsageRecord] = gw.usage(account_id)
        return next((r for r in records if r.request_id == request_id), None)

    record = wait_until(find)
    assert record is not None
    return record


def text_prime_offers(gw: GatewayProcess) -> dict[str, OfferRecord]:
    """The catalog's text-prime offers now, by supplier."""
    _, _, offers = gw.run(gw.store.load_catalog())
    return {o.supplier: o for o in offers if o.instrument == "text-prime"}


def dollars(nanos: int, places: int = 2) -> str:
    """How the dashboard writes an amount: ``$1,234.50``, at least ``places`` decimals, exact to
    the nano-dollar (``$0.000012345``), a true minus sign."""
    whole, frac = divmod(abs(nanos), 1_000_000_000)
    decimals = f"{frac:09d}".rstrip("0").ljust(places, "0")
    return f"{'−' if nanos < 0 else ''}${whole:,}.{decimals}"
