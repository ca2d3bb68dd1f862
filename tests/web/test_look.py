"""How the operator page looks and reads, in a real Chromium: what people wrote is always
text (never markup or script), axe-core finds no serious or critical problem on any page in
light or dark, and nothing scrolls sideways on a 390 px wide phone.

With `BOT_WEB_SCREENSHOTS=DIR` the tour also saves a screenshot of each page there: the
README's pictures (`docs/web/`) are made this way.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import pytest
from playwright.async_api import Browser

from bot.config import config_from_mapping
from bot.storage import Author, PendingApproval, Store
from tests.support.browser import (
    PASSWORD,
    chromium,
    fixed,
    scrolls_sideways,
    serious_violations,
    serving,
    sign_in,
)
from tests.support.items import msg
from tests.support.usage import NOON, populate

EVIL = "<script>alert(1)</script> <img src=x onerror=alert(2)> <b>bold</b> heron"
THREAD = "slack:T1:C9:9.0"
PAGES = {
    "overview": "/",
    "threads": "/threads",
    "search": "/search?q=heron",
    "thread": f"/thread?id={THREAD}",
    "forget-thread": f"/thread/forget?id={THREAD}",
    "people": "/people",
    "forget-person": "/people/forget?platform=discord&user=ann",
    "approvals": "/approvals",
    "reject": f"/approvals/reject?id=ap-{THREAD}",
}


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as opened:
        yield opened


async def seed(store: Store) -> None:
    """The usage seed, and a thread where someone tried every trick: markup in their name,
    their message, the bot's echo of it, a tool call's arguments and result, the summary and
    a waiting approval."""
    await populate(store)
    mallory = Author("U666", "<i>Mallory</i><script>alert(3)</script>")
    call = {
        "type": "function_call",
        "call_id": "c1",
        "name": "lookup",
        "arguments": json.dumps({"query": EVIL}),
        "id": "fc_c1",
    }
    output = {"type": "function_call_output", "call_id": "c1", "output": EVIL}
    await store.append(
        THREAD,
        [msg("user", f"[{mallory.name}] {EVIL}"), call, output, msg("assistant", EVIL)],
        author=mallory,
    )
    rows = await store.thread_rows(THREAD, limit=10)
    await store.save_summary(THREAD, f"Mallory said {EVIL}", covers_id=rows[0].id, replaces=None)
    await store.save_approval(
        PendingApproval(
            approval_id=f"ap-{THREAD}",
            session_id=THREAD,
            platform="slack",
            requester=mallory,
            calls=json.dumps([{"name": "lookup", "arguments": json.dumps({"q": EVIL})}]),
            state="{}",
            items="[]",
            instructions="",
            expires_at=datetime.now(UTC) + timedelta(minutes=10),
        )
    )


async def test_what_people_wrote_is_shown_as_text_on_every_page(
    store: Store, browser: Browser
) -> None:
    await seed(store)
    dialogs: list[str] = []
    async with serving(config_from_mapping({"BOT_WEB_PASSWORD": PASSWORD}), store) as base:
        page = await browser.new_page()
        page.on("dialog", lambda dialog: dialogs.append(dialog.message))
        await sign_in(page, base)
        for name, path in PAGES.items():
            await page.goto(base + path)
            # No element came from their text: no script, image or bold anywhere.
            for tag in ("script", "img", "b", "i"):
                assert await page.locator(tag).count() == 0, (name, tag)
            if name in {"thread", "search", "approvals"}:
                assert "<script>alert(1)</script>" in await page.locator("main").inner_text()
        thread = await page.goto(f"{base}/thread?id={THREAD}")
        assert thread is not None
        html = await thread.text()
        assert "<script>alert" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        await page.get_by_text("Used the tool lookup").click()
        assert "onerror=alert(2)" in await page.locator("details pre").first.inner_text()
        await page.close()
    assert dialogs == []


@pytest.mark.parametrize("scheme", ["light", "dark"])
async def test_every_page_is_accessible_and_fits_a_phone(
    store: Store, browser: Browser, scheme: Literal["light", "dark"], tmp_path: Path
) -> None:
    await seed(store)
    shots = os.environ.get("BOT_WEB_SCREENSHOTS")
    config = config_from_mapping(
        {"BOT_WEB_PASSWORD": PASSWORD, "BOT_DAILY_TOKENS_PER_USER": "5000"}
    )
    async with serving(config, store, clock=fixed(NOON)) as base:
        wide = await browser.new_page(color_scheme=scheme, viewport={"width": 1200, "height": 900})
        phone = await browser.new_page(color_scheme=scheme, viewport={"width": 390, "height": 844})
        await wide.goto(f"{base}/")
        assert await serious_violations(wide) == [], "signin"
        await phone.goto(f"{base}/")
        assert not await scrolls_sideways(phone), "signin"
        await sign_in(wide, base)
        await sign_in(phone, base)
        for name, path in PAGES.items():
            await wide.goto(base + path)
            assert await serious_violations(wide) == [], name
            await phone.goto(base + path)
            assert not await scrolls_sideways(phone), name
            await phone.screenshot(path=str(tmp_path / f"{name}-390.png"), full_page=True)
            if shots and scheme == "light" and store.location.endswith(".sqlite3"):
                folder = Path(shots)
                await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
                await wide.screenshot(path=str(folder / f"{name}.png"))
        await wide.close()
        await phone.close()
