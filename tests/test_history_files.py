"""`/history` with the whole thread as a Markdown file when one message cannot show it all.

The command on a real store; then end to end through real discord.py and slack-bolt against the
fake Discord (multipart uploads, attachments on the CDN) and the fake Slack (files upload v2 into
a DM), downloading what the person would get and comparing it with the thread.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from bot.app import build_planner
from bot.commands import HISTORY_FILE, HISTORY_TITLE, CommandAnswer, CommandContext
from bot.commands import default_commands as commands_for
from bot.config import Config
from bot.memory.transcript import render_markdown
from bot.messages import IncomingMessage
from bot.storage import Author, SQLiteStore, Store, StoredItem
from tests.fakes.discord_server import EPHEMERAL, FakeDiscord
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.slack_server import BOT_TOKEN, FakeSlack
from tests.support.discord import (
    ANN as DISCORD_ANN,
)
from tests.support.discord import (
    GUILD,
    THREAD_A,
    Harness,
    discord_config,
    thread,
)
from tests.support.items import msg, tool_call, tool_output
from tests.support.slack import ANN, CHANNEL, running, thread_key

THREAD_KEY = f"discord:{GUILD}:{THREAD_A}"
ANN_ID = int(DISCORD_ANN["id"])


async def seed(store: Store, session_id: str, exchanges: int) -> list[str]:
    """Fill a thread with `exchanges` questions and answers (one of them using a tool), as
    turns store them; returns every text a person would read, oldest first."""
    said: list[str] = []
    for n in range(exchanges):
        question, answer = f"question {n} ünïcödé", f"answer {n} with *markdown*"
        items = [msg("user", f"[Ann] {question}")]
        if n == 1:
            items += [tool_call(f"call{n}", "lookup_ticket"), tool_output(f"call{n}")]
        items.append(msg("assistant", answer))
        await store.append(session_id, items, author=Author("U1", "Ann"))
        said += [question, answer]
    return said


async def whole_thread(store: Store, session_id: str, bot_name: str = "memorybot") -> str:
    """The thread as the file should have it."""
    entries = await store.history(session_id, limit=10_000)
    return render_markdown(HISTORY_TITLE, entries, bot_name=bot_name)


def assert_in_order(text: str, parts: list[str]) -> None:
    at = 0
    for part in parts:
        found = text.find(part, at)
        assert found >= 0, f"{part!r} missing (or out of order)"
        at = found + len(part)


# ----- the command ---------------------------------------------------------------------------


@pytest.fixture
async def store() -> AsyncIterator[Store]:
    opened = await SQLiteStore.open()
    yield opened
    await opened.close()


def history_context(
    session_id: str, args: str = "", max_chars: int | None = 2000
) -> CommandContext:
    return CommandContext(session_id=session_id, args=args, max_chars=max_chars)


async def run_history(store: Store, ctx: CommandContext) -> str | CommandAnswer:
    command = commands_for(store, build_planner(Config(), store), "memorybot").get("history")
    assert command is not None
    return await command.run(ctx)


async def test_a_short_thread_s_history_is_one_message_without_a_file(store: Store) -> None:
    await seed(store, "t", 3)
    answer = await run_history(store, history_context("t"))
    assert isinstance(answer, str)
    assert "question 0" in answer


async def test_a_thread_longer_than_a_page_comes_with_all_of_it_as_markdown(
    store: Store,
) -> None:
    said = await seed(store, "t", 12)  # 26 items: two pages of 20
    page_two = await run_history(store, history_context("t", "2"))
    assert isinstance(page_two, CommandAnswer)
    assert page_two.text.startswith("What I remember of this thread (page 2 of 2")
    file = page_two.file
    assert file is not None
    assert (file.name, file.title) == (HISTORY_FILE, HISTORY_TITLE)
    assert file.content == await whole_thread(store, "t")
    assert_in_order(file.content, said)
    assert "(used the tool lookup_ticket)" in file.content
    assert '"output"' not in file.content  # tool outputs are left out
    assert "TOOL-OUTPUT" not in file.content
    first = await run_history(store, history_context("t"))
    assert isinstance(first, CommandAnswer)
    assert first.file == file  # every page brings the same, whole thread


async def test_a_page_past_the_last_says_how_many_there_are(store: Store) -> None:
    await seed(store, "t", 2)
    answer = await run_history(store, history_context("t", "2"))
    assert answer == "There is no page 2: this thread's history has 1 page."


async def test_a_page_that_had_to_be_clipped_comes_with_the_file(store: Store) -> None:
    long_text = "word " * 400
    await store.append("t", [msg("user", f"[Ann] {long_text}")], author=Author("U1", "Ann"))
    answer = await run_history(store, history_context("t"))
    assert isinstance(answer, CommandAnswer)
    assert "…" in answer.text
    assert len(answer.text) <= 2000
    assert answer.file is not None
    assert long_text.strip() in answer.file.content
    # Where there is no limit (the console), the page shows it all: nothing to send.
    unlimited = await run_history(store, history_context("t", max_chars=None))
    assert isinstance(unlimited, str)


def stored(item_id: int, item: dict[str, object], author: Author | None, minute: int) -> StoredItem:
    return StoredItem(item_id, item, author, datetime(2026, 11, 26, 10, minute, tzinfo=UTC))


def test_the_markdown_transcript_reads_like_a_conversation() -> None:
    entries = [
        stored(1, msg("user", "[*Al_ice*] hello **there**"), Author("U1", "*Al_ice*"), 0),
        stored(2, tool_call("c1", "lookup_ticket"), None, 1),
        stored(3, tool_output("c1"), None, 1),
        stored(4, msg("assistant", ""), None, 1),
        stored(5, msg("assistant", "Hi!\n\nTwo lines."), None, 2),
    ]
    text = render_markdown("discord:1:2", entries, bot_name="memorybot", summary="Met.\nTalked.")
    assert text == (
        "# discord:1:2\n\n"
        "> Met.\n> Talked.\n\n"
        "**\\*Al\\_ice\\*** · 2026-11-26 10:00 UTC\n\nhello **there**\n\n"
        "**memorybot** · 2026-11-26 10:01 UTC\n\n(used the tool lookup_ticket)\n\n"
        "**memorybot** · 2026-11-26 10:02 UTC\n\nHi!\n\nTwo lines.\n"
    )


# ----- Discord -------------------------------------------------------------------------------


@pytest.fixture
async def discord_bot(
    fake_discord: FakeDiscord, fake_openai: FakeOpenAI, tmp_path: Path
) -> AsyncIterator[Harness]:
    harness = await Harness.start(fake_discord, discord_config(fake_openai, tmp_path / "m.db"))
    yield harness
    await harness.stop()


async def download(url: str) -> str:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert response.status == 200
        return (await response.read()).decode()


async def test_discord_slash_history_of_a_long_thread_attaches_the_file(
    discord_bot: Harness,
) -> None:
    said = await seed(discord_bot.parts.store, THREAD_KEY, 12)
    body = await discord_bot.command("history", thread(THREAD_A, 101))
    assert body["type"] == 4
    assert body["data"]["flags"] == EPHEMERAL
    assert body["data"]["attachments"] == [
        {"id": 0, "filename": HISTORY_FILE, "description": HISTORY_TITLE}
    ]
    call = discord_bot.fake.calls("POST", "/interactions/")[-1]
    assert [upload.field for upload in call.uploads] == ["files[0]"]

    shown = discord_bot.fake.ephemeral_messages(ANN_ID)[-1]
    assert shown["content"].startswith("What I remember of this thread (page 1 of 2")
    (attachment,) = shown["attachments"]
    assert attachment["filename"] == HISTORY_FILE
    assert attachment["content_type"] == "text/markdown; charset=utf-8"
    assert attachment["ephemeral"] is True
    content = await download(attachment["url"])
    assert content == await whole_thread(
        discord_bot.parts.store, THREAD_KEY, discord_bot.parts.config.name
    )
    assert_in_order(content, said)


async def test_discord_slash_history_of_a_short_thread_has_no_file(discord_bot: Harness) -> None:
    await seed(discord_bot.parts.store, THREAD_KEY, 2)
    body = await discord_bot.command("history", thread(THREAD_A, 101))
    assert "attachments" not in body["data"]
    assert discord_bot.fake.calls("POST", "/interactions/")[-1].uploads == []
    assert discord_bot.fake.ephemeral_messages(ANN_ID)[-1]["attachments"] == []


async def test_discord_slash_history_past_the_last_page_says_so(discord_bot: Harness) -> None:
    await seed(discord_bot.parts.store, THREAD_KEY, 12)  # two pages
    page = [{"name": "page", "type": 4, "value": 3}]
    body = await discord_bot.command("history", thread(THREAD_A, 101), options=page)
    assert body["data"]["content"] == "There is no page 3: this thread's history has 2 pages."
    assert "attachments" not in body["data"]


async def test_discord_deferred_history_gets_its_file_on_the_edited_response(
    fake_discord: FakeDiscord, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    # No time allowed before deferring: the answer comes as an edit of "@original".
    config = discord_config(fake_openai, tmp_path / "m.db")
    harness = await Harness.start(fake_discord, config, defer_after=0.0)
    try:
        await seed(harness.parts.store, THREAD_KEY, 12)
        deferred = await harness.command("history", thread(THREAD_A, 101))
        assert deferred["type"] == 5
        edit = harness.fake.calls("PATCH", "/messages/@original")[-1]
        assert [upload.filename for upload in edit.uploads] == [HISTORY_FILE]
        (attachment,) = harness.fake.ephemeral_messages(ANN_ID)[-1]["attachments"]
        content = await download(attachment["url"])
        assert content == await whole_thread(
            harness.parts.store, THREAD_KEY, harness.parts.config.name
        )
    finally:
        await harness.stop()


async def test_discord_answers_without_the_file_when_discord_refuses_it(
    discord_bot: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    await seed(discord_bot.parts.store, THREAD_KEY, 12)
    discord_bot.fake.upload_limit = 100  # the file is larger: 413
    with caplog.at_level(logging.WARNING, logger="adapters.discord"):
        body = await discord_bot.command("history", thread(THREAD_A, 101))
    assert body["data"]["content"].startswith("What I remember of this thread")
    assert "attachments" not in body["data"]
    refused = [r for r in discord_bot.fake.requests if r.status == 413]
    assert len(refused) == 1
    assert "Sending history.md" in caplog.text
    assert "answering without it" in caplog.text


async def test_discord_typed_history_attaches_the_file_to_its_answer(
    discord_bot: Harness,
) -> None:
    said = await seed(discord_bot.parts.store, THREAD_KEY, 12)
    await discord_bot.say(THREAD_A, "!history")
    (answer,) = discord_bot.fake.channel_messages(THREAD_A)
    assert answer["content"].startswith("What I remember of this thread (page 1 of 2")
    (attachment,) = answer["attachments"]
    assert attachment["filename"] == HISTORY_FILE
    assert "ephemeral" not in attachment
    content = await download(attachment["url"])
    assert content == await whole_thread(
        discord_bot.parts.store, THREAD_KEY, discord_bot.parts.config.name
    )
    assert_in_order(content, said)


async def test_discord_typed_history_keeps_its_text_when_the_file_is_refused(
    discord_bot: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    await seed(discord_bot.parts.store, THREAD_KEY, 12)
    # No Attach Files permission in the channel: Discord refuses the edit that adds it.
    discord_bot.fake.fail("PATCH", rf"/channels/{THREAD_A}/messages/\d+$", 403)
    with caplog.at_level(logging.WARNING, logger="adapters.discord.stream"):
        await discord_bot.say(THREAD_A, "!history")
    (answer,) = discord_bot.fake.channel_messages(THREAD_A)
    assert answer["content"].startswith("What I remember of this thread (page 1 of 2")
    assert answer["attachments"] == []
    assert "Attaching history.md" in caplog.text


# ----- Slack ---------------------------------------------------------------------------------

DM_WITH_ANN = "D0ANN"
SENT_NOTE = "I sent you the full history as a file (history.md) in a direct message."


def shared_in_dm(slack: FakeSlack) -> list[dict[str, object]]:
    return [f for m in slack.bot_messages(DM_WITH_ANN) for f in m.files]


async def test_slack_typed_history_sends_the_whole_thread_to_the_person_s_dm(
    slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    async with running(slack, fake_openai) as bot:
        ts = await bot.mention("first")
        await bot.answer(CHANNEL, ts)
        said = await seed(bot.parts.store, thread_key(CHANNEL, ts), 12)

        await bot.say("!history", thread_ts=ts)
        shown = (await bot.ephemerals(1))[0]
        assert shown["thread_ts"] == ts
        assert shown["user"] == ANN
        assert shown["text"].startswith("What I remember of this thread (page 1 of 2")
        assert shown["text"].endswith(SENT_NOTE)

        assert slack.called("conversations.open")[0]["users"] == ANN
        asked = slack.called("files.getUploadURLExternal")[0]
        expected = await whole_thread(
            bot.parts.store, thread_key(CHANNEL, ts), bot.parts.config.name
        )
        assert (asked["filename"], int(asked["length"])) == (HISTORY_FILE, len(expected.encode()))
        (post,) = slack.bot_messages(DM_WITH_ANN)
        assert post.text == f"The full history you asked for in <#{CHANNEL}>."
        (file,) = post.files
        assert (file["name"], file["title"]) == (HISTORY_FILE, HISTORY_TITLE)
        content = slack.files[str(file["id"])].content.decode()
        assert content == expected
        assert_in_order(content, ["first", *said])
        # Nothing was posted where others could see it.
        assert all(not m.files for m in slack.bot_messages(CHANNEL, ts))


async def test_slack_slash_history_sends_the_file_too(
    slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    async with running(slack, fake_openai) as bot:
        channel_session = thread_key(CHANNEL, "channel")
        await bot.parts.core.handle(
            IncomingMessage("slack", channel_session, ANN, "Ann", "channel note")
        )
        await seed(bot.parts.store, channel_session, 12)
        await slack.deliver("slash_commands", bot.slash("/history"))
        await slack.wait_for(lambda: slack.responses)
        assert slack.responses[0]["response_type"] == "ephemeral"
        assert slack.responses[0]["text"].endswith(SENT_NOTE)
        (file,) = shared_in_dm(slack)
        content = slack.files[str(file["id"])].content.decode()
        assert content == await whole_thread(
            bot.parts.store, channel_session, bot.parts.config.name
        )
        assert "channel note" in content


async def test_slack_short_history_uploads_nothing(
    slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    async with running(slack, fake_openai) as bot:
        ts = await bot.mention("only this")
        await bot.answer(CHANNEL, ts)
        await bot.say("!history", thread_ts=ts)
        shown = (await bot.ephemerals(1))[0]
        assert "only this" in shown["text"]
        assert SENT_NOTE not in shown["text"]
        assert not slack.called("conversations.open")
        assert not slack.called("files.getUploadURLExternal")


@pytest.mark.parametrize("scope", ["files:write", "im:write"])
async def test_slack_history_still_answers_when_the_upload_is_refused(
    slack: FakeSlack, fake_openai: FakeOpenAI, caplog: pytest.LogCaptureFixture, scope: str
) -> None:
    slack.tokens[BOT_TOKEN].discard(scope)  # an app installed before the scope was added
    async with running(slack, fake_openai) as bot:
        ts = await bot.mention("first")
        await bot.answer(CHANNEL, ts)
        await seed(bot.parts.store, thread_key(CHANNEL, ts), 12)
        with caplog.at_level(logging.WARNING, logger="adapters.slack.uploads"):
            await bot.say("!history", thread_ts=ts)
            shown = (await bot.ephemerals(1))[0]
        assert shown["text"].startswith("What I remember of this thread (page 1 of 2")
        assert SENT_NOTE not in shown["text"]
        assert shared_in_dm(slack) == []
        warnings = [r for r in caplog.records if r.name == "adapters.slack.uploads"]
        assert len(warnings) == 1
        line = warnings[0].getMessage()
        assert "missing_scope" in line
        assert scope in line
        assert "\n" not in line
