"""The dashboard's Webhooks page in Chromium: an owner adds an endpoint (its signing secret
shown once), sets the low-balance threshold, sees an event's failing delivery (status,
attempts, last error) while the receiver answers 503, and replays it once the receiver is up:
delivered, with the same event id, signed with the secret the page showed."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from gridgate.core.access import CLI
from gridgate.core.accounts.api_keys import ApiKeys
from gridgate.core.clock import SystemClock
from tests.harness import BackgroundLoop, GatewayProcess, wait_until
from tests.webhook_receiver import Receiver, free_port, signed_by

from .conftest import Person, sign_in


@pytest.fixture
def receiver(bg: BackgroundLoop) -> Iterator[Receiver]:
    r = Receiver(free_port(), default=503)
    bg.run(r.start())
    yield r
    bg.run(r.stop())


def _revoke_a_key(gw: GatewayProcess, account_id: str) -> str:
    async def revoke() -> str:
        keys = ApiKeys(gw.store, SystemClock())
        made = await keys.create(CLI, account_id, "to-revoke")
        await keys.revoke(CLI, made.record.id)
        return made.record.id

    return gw.run(revoke())


def test_an_owner_sees_a_failing_delivery_and_replays_it_once_the_receiver_is_up(
    dash_gw: GatewayProcess, page: Page, owner: Person, receiver: Receiver
) -> None:
    assert owner.account_id is not None
    sign_in(page, owner.email)
    page.get_by_role("link", name="Webhooks").click()
    expect(page.get_by_role("heading", name="Webhooks", level=1)).to_be_visible()
    page.get_by_label("URL").fill(receiver.url)
    page.get_by_label("Events").select_option(["key.revoked"])
    page.get_by_role("button", name="Add endpoint").click()
    secret = page.get_by_label("The signing secret").input_value()
    assert secret.startswith("whsec_")
    row = page.locator("tr[data-endpoint-id]")
    expect(row).to_contain_text(receiver.url)
    expect(row).to_contain_text("key.revoked")

    page.get_by_label(re.compile("balance falls below")).fill("4.50")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text("threshold is saved")
    expect(page.get_by_label(re.compile("balance falls below"))).to_have_value("4.5")
    page.goto("/dashboard/webhooks")  # shown once: never again
    expect(page.get_by_label("The signing secret")).to_have_count(0)
    assert secret not in page.content()

    key_id = _revoke_a_key(dash_gw, owner.account_id)
    wait_until(lambda: receiver.received, timeout=15)  # the 503
    page.reload()
    event_row = page.locator("tr[data-event-id]").filter(has_text="key.revoked")
    expect(event_row).to_contain_text("pending")
    expect(event_row).to_contain_text("last error: HTTP 503")
    event_id = event_row.get_attribute("data-event-id")
    assert event_id is not None and event_id.startswith("evt_")

    receiver.default = 200
    before = len(receiver.received)
    event_row.get_by_role("button", name=re.compile("Replay")).click()
    expect(page.get_by_role("status")).to_contain_text("queued again, with the same id")
    wait_until(lambda: len(receiver.received) > before, timeout=15)

    def delivered() -> bool:
        page.reload()
        row = page.locator(f'tr[data-event-id="{event_id}"]')
        return row.locator('.delivery[data-status="delivered"]').count() == 1

    wait_until(delivered, timeout=15, interval=0.3)
    assert {h["Gridgate-Webhook-Id"] for h, _ in receiver.received} == {event_id}
    assert all(signed_by(secret, h, body) for h, body in receiver.received)
    assert receiver.events()[-1]["data"]["key_id"] == key_id
