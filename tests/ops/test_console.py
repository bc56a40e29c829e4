"""The web console in a real browser (Debian's chromium through Playwright) against a real stack.

Each test signs in with a fresh account's key, drives one page as a trader would, and
saves a screenshot of it to build/screenshots/ (`SCREENSHOT_DIR` to put them elsewhere;
the README shows copies kept in docs/screenshots/). Pages are waited
on by their content (Playwright's `expect`), never by time. Any script error or CSP
violation the page reports fails the test.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.e2e.client import market, submit, wait_terminal
from tests.e2e.conftest import ROOT, Stack, own_stack
from tests.helpers import eventually
from tests.ops.conftest import require

SHOTS = Path(os.environ.get("SCREENSHOT_DIR") or ROOT / "build" / "screenshots")
RESTING = {"orderType": "limit", "tokenIn": "SOL", "tokenOut": "USDC", "amount": "1", "limitPrice": "100000"}
WAIT_MS = 30_000

console_stack = own_stack()


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    chromium = require("chromium")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium, headless=True)
        try:
            yield launched
        finally:
            await launched.close()


class Console:
    """A signed-in console page of one fresh account, with what the page complained about."""

    def __init__(self, stack: Stack, page: Page, key: str):
        self.stack, self.page, self.key = stack, page, key
        self.complaints: list[str] = []
        page.on("pageerror", lambda error: self.complaints.append(f"script error: {error}"))
        page.on("console", lambda message: self.complaints.append(message.text) if message.type == "error" else None)

    async def sign_in(self) -> None:
        await self.page.goto("/")
        await self.page.get_by_label("API key").fill(self.key)
        await self.page.get_by_role("button", name="Sign in").click()
        await expect(self.page.locator("#orders")).to_be_visible(timeout=WAIT_MS)

    async def open(self, fragment: str) -> None:
        await self.page.goto(f"/{fragment}")

    async def shot(self, name: str) -> Path:
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{name}.png"
        await self.page.screenshot(path=path)
        return path


@pytest.fixture
async def console(console_stack: Stack, browser: Browser) -> AsyncIterator[Console]:
    key = await console_stack.new_key("console-" + secrets.token_hex(3))
    context = await browser.new_context(
        base_url=console_stack.base_url, viewport={"width": 1200, "height": 820}, timezone_id="UTC"
    )
    page = await context.new_page()
    page.set_default_timeout(WAIT_MS)
    opened = Console(console_stack, page, key)
    try:
        await opened.sign_in()
        yield opened
    finally:
        await context.close()
    # Failed fetches the test provokes (a 400 for a bad amount) are reported by Chromium as
    # console errors too; anything else (a script error, a CSP violation) is a fault.
    faults = [c for c in opened.complaints if "the server responded with a status of 400" not in c]
    assert faults == [], faults


async def test_a_wrong_key_is_refused_beside_the_key_field_and_not_kept(console_stack, browser):
    context = await browser.new_context(base_url=console_stack.base_url)
    try:
        page = await context.new_page()
        await page.goto("/")
        await page.get_by_label("API key").fill(console_stack.api_key[:-1] + "x")
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.locator("#error-apiKey")).to_contain_text("not valid", timeout=WAIT_MS)
        assert await page.evaluate("sessionStorage.length") == 0
    finally:
        await context.close()


async def test_the_board_lists_the_accounts_orders_with_their_status_counts(console):
    async with console.stack.client(key=console.key) as client:
        resting = await submit(client, RESTING)
        filled = await submit(client, market("0.2"))
    page = console.page
    await expect(page.locator(f'#orders tr[data-order-id="{filled["orderId"]}"]')).to_have_attribute(
        "data-status", "confirmed", timeout=WAIT_MS
    )
    await expect(page.locator(f'#orders tr[data-order-id="{resting["orderId"]}"]')).to_have_attribute("data-status", "open")
    await expect(page.locator('.count[data-status="confirmed"] .count-value')).to_have_text("1")
    await expect(page.locator('.count[data-status="open"] .count-value')).to_have_text("1")
    await console.shot("board")


async def test_a_market_order_from_the_form_reaches_confirmed_on_its_page(console):
    page = console.page
    await console.open("#/submit")
    await page.get_by_label("Amount").fill("0.5")
    await page.get_by_role("button", name="Submit order").click()
    await expect(page.locator('#timeline li[data-event="OrderConfirmed"]')).to_be_visible(timeout=WAIT_MS)
    await expect(page.locator("#order-progress")).to_have_attribute("value", "100")
    await expect(page.locator("table.candidates tr.winner")).to_have_count(1)
    await expect(page.locator("#executed")).to_contain_text("USDC")
    await expect(page.locator("#cancel")).to_be_hidden()
    await console.shot("order-confirmed")


async def test_a_good_till_date_limit_order_from_the_form_rests_until_its_expiry(console):
    page = console.page
    expires = dt.datetime.now(dt.timezone.utc).replace(second=0, microsecond=0) + dt.timedelta(hours=1)
    await console.open("#/submit")
    await page.get_by_label("Order type").select_option("limit")
    await page.get_by_label("Amount").fill("1")
    await page.get_by_label("Limit price").fill("100000")
    await page.get_by_label("Time in force").select_option("GTD")
    await page.get_by_label("Expires at").fill(expires.strftime("%Y-%m-%dT%H:%M"))  # the browser's zone is UTC
    await page.get_by_role("button", name="Submit order").click()
    await expect(page.locator('#timeline li[data-event="OrderOpened"]')).to_be_visible()
    order_id = page.url.rsplit("/", 1)[1]
    async with console.stack.client(key=console.key) as client:
        view = (await client.get(f"/api/orders/{order_id}")).json()
    assert (view["timeInForce"], view["expiresAt"]) == ("GTD", expires.isoformat(timespec="milliseconds").replace("+00:00", "Z"))


async def test_a_bad_amount_gets_the_apis_error_beside_the_amount_field(console):
    page = console.page
    await console.open("#/submit")
    await page.get_by_label("Amount").fill("1.0000000001")
    await page.get_by_role("button", name="Submit order").click()
    await expect(page.locator("#error-amount")).to_contain_text("at most 9")
    await expect(page.get_by_label("Amount")).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#error-form")).to_be_empty()
    await console.shot("submit-error")


async def test_a_resting_limit_order_is_listed_and_cancelled_from_the_console(console):
    async with console.stack.client(key=console.key) as client:
        order = await submit(client, RESTING)
        page = console.page
        await console.open("#/resting")
        row = page.locator(f'#resting tr[data-order-id="{order["orderId"]}"]')
        await expect(row).to_contain_text("100000 USDC/SOL")
        await console.shot("resting")
        await row.get_by_role("button", name="Cancel").click()
        await expect(row).to_have_count(0)

        async def cancelled() -> bool:
            return (await client.get(f"/api/orders/{order['orderId']}")).json()["status"] == "cancelled"

        await eventually(cancelled, message="the order cancelled in the read model")


async def test_the_order_page_cancels_a_resting_order_and_shows_it_on_the_timeline(console):
    async with console.stack.client(key=console.key) as client:
        order = await submit(client, RESTING)
    page = console.page
    await console.open(f"#/orders/{order['orderId']}")
    await expect(page.locator('#timeline li[data-event="OrderOpened"]')).to_be_visible()
    await page.locator("#cancel").click()
    await expect(page.locator('#timeline li[data-event="OrderCancelled"]')).to_be_visible()
    await expect(page.locator("#cancel")).to_be_hidden()


async def test_the_quote_chart_draws_each_venue_and_moves_with_live_quotes(console):
    page = console.page
    await console.open("#/quotes/SOL-USDC")
    await expect(page.locator("#quote-chart polyline.series")).to_have_count(2, timeout=WAIT_MS)
    await expect(page.locator("#latest-quotes tbody tr")).to_have_count(2)
    async with console.stack.client(key=console.key) as client:
        await wait_terminal(client, (await submit(client, market("5")))["orderId"])  # moves the pool it swaps in
    await page.wait_for_function(
        "() => [...document.querySelectorAll('#quote-chart polyline.series')].some(line => line.dataset.points >= 2)"
    )
    await console.shot("quotes")
