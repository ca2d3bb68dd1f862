"""The operator page in a real Chromium, on both back ends: the overview's numbers are the
store's, search finds what it should and nothing forgotten, forgetting a thread or a person
from the page really forgets, undo and export work, and an operator can reject a tool call."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page

from bot.admin import portable
from bot.config import config_from_mapping
from bot.messages import Decision, IncomingMessage
from bot.runs.approvals import ALREADY_DECIDED
from bot.storage import Author, PendingApproval, SQLiteStore, Store
from tests.fakes.openai_server import FakeOpenAI, user_texts
from tests.support.browser import PASSWORD, chromium, fixed, serving, sign_in
from tests.support.cli import run_bot
from tests.support.items import msg
from tests.support.parts import BotParts, make_config
from tests.support.stores import everything
from tests.support.usage import NOON, populate

SETTINGS = {"BOT_WEB_PASSWORD": PASSWORD}


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as opened:
        yield opened


@pytest.fixture
async def tab(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context()
    page = await context.new_page()
    yield page
    await context.close()


def approval(session_id: str, *, minutes: int = 10, name: str = "Ann") -> PendingApproval:
    return PendingApproval(
        approval_id=f"ap-{session_id}",
        session_id=session_id,
        platform=session_id.split(":")[0],
        requester=Author("ann", name),
        calls=json.dumps([{"name": "close_ticket", "arguments": '{"ticket": "T-7"}'}]),
        state="{}",
        items="[]",
        instructions="",
        expires_at=datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=minutes),
    )


async def test_the_overview_shows_the_stores_numbers(store: Store, tab: Page) -> None:
    await populate(store)
    await store.save_approval(approval("discord:1:20"))
    config = config_from_mapping({**SETTINGS, "BOT_DAILY_TOKENS_PER_USER": "5000"})
    async with serving(config, store, clock=fixed(NOON)) as base:
        await sign_in(tab, base)
        usage = await store.daily_usage(NOON.replace(hour=0) - timedelta(days=29))
        figures = {
            key: await tab.locator(f"#{key}").inner_text()
            for key in ("active-today", "waiting", "turns", "tokens")
        }
        assert figures == {
            "active-today": f"{await store.active_threads(NOON.replace(hour=0)):,}",
            "waiting": "1",
            "turns": f"{sum(u.turns for u in usage):,}",
            "tokens": f"{sum(u.tokens for u in usage):,}",
        }
        assert figures["turns"] == "6"  # every turn of the seed, the undone one included
        # Ann spent 7,700 on Slack and 4,950 on Discord today: both near 5,000; Bob 3,300 not.
        near = await tab.locator("#near-budget").inner_text()
        assert "slack:ann" in near
        assert "discord:ann" in near
        assert "bob" not in near
        # The charts draw a bar part per day and platform (model) that had any.
        assert await tab.locator("#turns-chart + svg rect").count() == len(
            {(u.day, u.platform) for u in usage if u.turns}
        )
        assert await tab.locator("#tokens-chart + svg rect").count() == len(
            {(u.day, u.model) for u in usage}
        )


async def test_search_marks_the_words_and_never_shows_a_forgotten_thread(
    store: Store, tab: Page, caplog: pytest.LogCaptureFixture
) -> None:
    await store.append("slack:T1:C1:1.0", [msg("user", "[Ann] the blue heron lands at dawn")])
    await store.append("slack:T1:C2:2.0", [msg("user", "[Bob] a heron again, by the lake")])
    await store.append("slack:T1:C3:3.0", [msg("user", "[Cy] nothing of note")])
    async with serving(config_from_mapping(SETTINGS), store) as base:
        await sign_in(tab, base)
        await tab.goto(f"{base}/threads")
        await tab.get_by_label("Search every thread's words").fill("heron")
        await tab.keyboard.press("Enter")
        await tab.wait_for_url("**/search?q=heron")
        hits = tab.locator("ol.hits > li")
        assert await hits.count() == 2
        assert await hits.nth(0).locator("mark").all_inner_texts() == ["heron"]
        assert "slack:T1:C2:2.0" in await hits.nth(0).inner_text()
        assert "the blue heron lands at dawn" in await hits.nth(1).inner_text()
        # Forget the first thread through the page: confirm, and it is gone from search.
        await tab.goto(f"{base}/thread?id=slack:T1:C1:1.0")
        await tab.get_by_role("link", name="Forget this thread").click()
        with caplog.at_level(logging.INFO, logger="bot.web.audit"):
            await tab.get_by_role("button", name="Forget the thread").click()
            await tab.wait_for_url("**/threads?note=forgot")
        assert "The thread was forgotten." in await tab.locator("main").inner_text()
        assert "forgot thread slack:T1:C1:1.0" in caplog.text
        await tab.goto(f"{base}/search?q=heron")
        assert await tab.locator("ol.hits > li").count() == 1
        assert "dawn" not in await tab.locator("main").inner_text()
        await tab.goto(f"{base}/threads")
        assert "slack:T1:C1:1.0" not in await tab.locator("main").inner_text()


async def test_a_thread_forgotten_on_the_page_gives_the_model_no_memory(
    fake_openai: FakeOpenAI, tmp_path: Path, tab: Page
) -> None:
    config = make_config(fake_openai, tmp_path / "m.sqlite3", web_password=PASSWORD)
    parts = await BotParts(config).start()
    try:

        async def say(text: str) -> None:
            message = IncomingMessage("console", "console:t", "console:ann", "Ann", text)
            await parts.core.handle(message)

        await say("my locker code is 4711")
        async with serving(config, parts.store) as base:
            await sign_in(tab, base)
            await tab.goto(f"{base}/thread?id=console:t")
            assert "my locker code is 4711" in await tab.locator("ol.conversation").inner_text()
            await tab.get_by_role("link", name="Forget this thread").click()
            await tab.get_by_role("button", name="Forget the thread").click()
            await tab.wait_for_url("**/threads?note=forgot")
        await say("what is my locker code?")
        assert user_texts(fake_openai.requests[-1].messages) == ["[Ann] what is my locker code?"]
    finally:
        await parts.close()


async def test_forgetting_a_person_shows_the_dry_run_then_removes_their_text(
    tmp_path: Path, tab: Page
) -> None:
    path = tmp_path / "m.sqlite3"
    async with await SQLiteStore.open(path) as memory:
        for thread, who in (
            ("discord:1:10", "ann"),
            ("discord:1:10", "bob"),
            ("discord:1:20", "ann"),
        ):
            await memory.append(
                thread,
                [msg("user", f"[{who.title()}] {who} writes zebra{who}"), msg("assistant", "ok")],
                author=Author(who, who.title()),
            )
        dry_run = await run_bot("forget-user", "discord", "ann", "--dry-run", memory=path)
        assert dry_run.code == 0, dry_run.err
        async with serving(config_from_mapping(SETTINGS), memory) as base:
            await sign_in(tab, base)
            await tab.goto(f"{base}/people")
            await tab.get_by_label("Platform").select_option("discord")
            await tab.get_by_label("Their ID").fill("ann")
            await tab.get_by_role("button", name="Show what would go").click()
            plan = await tab.locator("ul.plan > li").all_inner_texts()
            assert plan == dry_run.out.splitlines()
            assert await memory.count_items("discord:1:20") == 2  # nothing changed yet
            await tab.get_by_role("button", name="Forget this person").click()
            assert (await tab.locator("ul.plan > li").first.inner_text()) == "Removed:"
        left = json.dumps(
            [m.data for dump in (await everything(memory)).values() for m in dump.messages]
        )
        assert "zebraann" not in left
        assert "zebrabob" in left


async def test_undo_and_export_from_the_page(store: Store, tab: Page) -> None:
    await populate(store)
    dump = await store.dump_thread("discord:1:10")
    async with serving(config_from_mapping(SETTINGS), store) as base:
        await sign_in(tab, base)
        await tab.goto(f"{base}/thread?id=discord:1:10")
        for name, body in (
            ("Export as Markdown", portable.markdown(dump, bot_name="bot")),
            ("Export as JSON Lines", portable.jsonl(dump)),
        ):
            async with tab.expect_download() as downloading:
                await tab.get_by_role("link", name=name).click()
            download = await downloading.value
            saved = Path(await download.path())
            assert await asyncio.to_thread(saved.read_bytes) == body
            assert download.suggested_filename.startswith("discord_1_10.")
        before = await store.count_items("discord:1:10")
        await tab.get_by_role("link", name="Undo the last exchange").click()
        await tab.get_by_role("button", name="Undo the last exchange").click()
        await tab.wait_for_url("**note=undone")
        assert await store.count_items("discord:1:10") == before - 2


async def test_an_operator_rejects_a_waiting_tool_call(
    fake_openai: FakeOpenAI, tmp_path: Path, tab: Page, caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config(fake_openai, tmp_path / "m.sqlite3", web_password=PASSWORD)
    parts = await BotParts(config).start()
    try:
        waiting = approval("console:t")
        await parts.store.save_approval(waiting)
        async with serving(config, parts.store) as base:
            await sign_in(tab, base)
            await tab.goto(f"{base}/approvals")
            card = await tab.locator("ul.cards").inner_text()
            assert "close_ticket" in card
            assert '{"ticket": "T-7"}' in card
            assert "asked by Ann" in card
            await tab.get_by_role("link", name="Reject…").click()
            with caplog.at_level(logging.INFO, logger="bot.web.audit"):
                await tab.get_by_role("button", name="Reject the call").click()
                await tab.wait_for_url("**note=rejected")
            assert "No tool call is waiting." in await tab.locator("main").inner_text()
        assert f"rejected tool call {waiting.approval_id}" in caplog.text
        assert await parts.store.approval(waiting.approval_id) is None
        # A click in the chat afterwards is told it was decided already.
        late = await parts.core.decide(
            waiting.approval_id, Decision.APPROVE, user_id="ann", user_name="Ann"
        )
        assert late.text == ALREADY_DECIDED
    finally:
        await parts.close()
