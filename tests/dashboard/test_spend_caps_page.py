"""The spend caps page in a real browser: an owner caps a key there, the gateway then refuses
what the cap cannot cover (402, with the official openai SDK), the page shows what the window
has spent, and removing the cap lets the key spend again. A member sees the caps and no form."""

from __future__ import annotations

import openai
import pytest
from openai import OpenAI
from playwright.sync_api import Page, expect

from tests.dashboard.conftest import (
    Person,
    ask,
    create_key,
    dollars,
    make_person,
    recorded,
    sign_in,
)
from tests.harness import GatewayProcess


def test_an_owner_caps_a_key_in_the_page_and_the_gateway_holds_to_it(
    dash_gw: GatewayProcess, page: Page, owner: Person
) -> None:
    assert owner.account_id is not None
    sign_in(page, owner.email)
    secret = create_key(page, "ci")
    (key,) = dash_gw.run(dash_gw.store.list_keys(owner.account_id))
    page.get_by_role("link", name="Spend caps").click()
    expect(page.get_by_role("heading", name="Spend caps", level=1)).to_be_visible()
    expect(page.get_by_text("No spend caps")).to_be_visible()

    page.get_by_label("On").select_option(key.id)
    page.get_by_label("Per").select_option("daily")
    page.get_by_label("Limit (USD)").fill("1")
    page.get_by_role("button", name="Save cap").click()
    expect(page.get_by_text("The spend cap is saved")).to_be_visible()
    row = page.locator("tr[data-cap-id]")
    expect(row).to_contain_text("key “ci”")
    expect(row).to_contain_text("$1.00")

    answer = ask(dash_gw, secret)
    cost = recorded(dash_gw, owner.account_id, answer.request_id).cost
    assert cost > 0
    page.reload()
    expect(row.get_by_test_id("cap-spent")).to_have_text(dollars(cost))
    expect(row.get_by_test_id("cap-left")).to_have_text(dollars(1_000_000_000 - cost))

    # a cap of $0: the next request is refused before it reaches a supplier
    page.get_by_label("On").select_option(key.id)
    page.get_by_label("Per").select_option("daily")
    page.get_by_label("Limit (USD)").fill("0")
    page.get_by_role("button", name="Save cap").click()
    expect(page.get_by_text("The spend cap is saved")).to_be_visible()
    with (
        OpenAI(base_url=dash_gw.base_url, api_key=secret, max_retries=0) as client,
        pytest.raises(openai.APIStatusError) as refused,
    ):
        client.chat.completions.create(
            model="text-prime", max_tokens=8, messages=[{"role": "user", "content": "hi"}]
        )
    assert refused.value.status_code == 402
    assert refused.value.code == "spend_cap_reached"
    assert "daily cap" in refused.value.message and "resets at" in refused.value.message

    page.get_by_role("button", name="Remove the daily cap").click()
    expect(page.get_by_text("The spend cap is removed")).to_be_visible()
    expect(page.get_by_text("No spend caps")).to_be_visible()
    assert ask(dash_gw, secret).completion.choices


def test_a_member_sees_the_caps_but_cannot_set_them(
    dash_gw: GatewayProcess, page: Page, owner: Person
) -> None:
    assert owner.account_id is not None
    cli = dash_gw.cli(
        "caps", "set", "--account", owner.account_id, "--period", "monthly", "--usd", "3"
    )
    assert cli.returncode == 0, cli.stderr
    member = make_person(dash_gw, "member", owner.account_id, "Max Member")
    sign_in(page, member.email)
    page.goto("/dashboard/caps")
    row = page.locator("tr[data-cap-id]")
    expect(row).to_contain_text("the account")
    expect(row).to_contain_text("monthly")
    expect(row).to_contain_text("$3.00")
    expect(page.get_by_role("button", name="Save cap")).to_have_count(0)
    expect(page.get_by_role("button", name="Remove the monthly cap")).to_have_count(0)
