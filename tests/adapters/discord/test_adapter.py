"""The Discord adapter end to end: real discord.py, fake Discord and fake model on loopback."""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    # discord.py imports the deprecated `audioop` for voice, which the bot never uses, and
    # the test settings turn warnings into errors.
    warnings.filterwarnings("ignore", "'audioop' is deprecated", DeprecationWarning)
    import discord

import asyncio
import itertools
import logging
import re
from pathlib import Path
from typing import Any

import pytest
import yarl
from discord.gateway import DiscordWebSocket

from adapters.discord import DiscordAdapter, create
from adapters.discord.settings import DiscordSettings
from adapters.discord.text import MAX_MESSAGE_CHARS
from adapters.text import split_message
from bot.config import ConfigError
from bot.texts import GENERIC
from tests.fakes.discord_server import BOT_USER, FakeDiscord, Json
from tests.fakes.openai_server import FakeOpenAI, Fault
from tests.support.discord import (
    ANN,
    BOB,
    BOT_ROLE,
    BOT_THREAD,
    CHANNEL,
    DM,
    GUILD,
    HELPER_ROLE,
    INTERVAL,
    MENTION,
    OTHER_BOT,
    OTHER_CHANNEL,
    THREAD_A,
    THREAD_B,
    Harness,
    channel_payload,
    discord_config,
    eventually,
)
from tests.support.faults import WHERES, Where, inject_bug
from tests.support.parts import BotParts, make_config

# ----- memory per conversation ---------------------------------------------------------------


async def test_two_threads_in_one_channel_keep_separate_memories(running: Harness) -> None:
    await running.say(THREAD_A, "apples", mention=True)
    await running.say(THREAD_B, "bananas", mention=True)
    # Mentioned once, the bot follows the thread without further mentions.
    await running.say(THREAD_A, "and?")
    assert running.last(THREAD_A) == "You said: [Ann] and?. Before that: [Ann] apples."
    await running.say(THREAD_B, "and?")
    assert running.last(THREAD_B) == "You said: [Ann] and?. Before that: [Ann] bananas."
    assert await running.parts.store.count_items(f"discord:{GUILD}:{THREAD_A}") == 4


async def test_a_dm_and_a_channel_keep_separate_memories(running: Harness) -> None:
    await running.say(DM, "I like tea", guild=None)
    await running.say(CHANNEL, "I like coffee", mention=True)
    await running.say(DM, "what do I like?", guild=None)
    assert running.last(DM) == "You said: [Ann] what do I like?. Before that: [Ann] I like tea."
    await running.say(CHANNEL, "and me?", mention=True, author=BOB)
    assert running.last(CHANNEL) == ("You said: [Bob] and me?. Before that: [Ann] I like coffee.")
    assert await running.parts.store.count_items(f"discord:dm:{DM}") == 4


@pytest.mark.parametrize(
    ("scope", "key"), [("channel", f"discord:{GUILD}:{CHANNEL}"), ("user", "discord:user:101")]
)
async def test_wider_memory_scopes_share_a_channel_s_threads(
    fake_discord: FakeDiscord, fake_openai: FakeOpenAI, tmp_path: Path, scope: str, key: str
) -> None:
    config = discord_config(fake_openai, tmp_path / "scope.sqlite3", memory_scope=scope)
    harness = await Harness.start(fake_discord, config)
    try:
        await harness.say(CHANNEL, "I like coffee", mention=True)
        await harness.say(THREAD_A, "what do I like?", mention=True)
        assert "I like coffee" in harness.last(THREAD_A)
        assert await harness.parts.store.count_items(key) == 4
    finally:
        await harness.stop()


async def test_memory_survives_a_restart(
    fake_discord: FakeDiscord, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    config = discord_config(fake_openai, tmp_path / "restart.sqlite3")
    first = await Harness.start(fake_discord, config)
    await first.say(CHANNEL, "remember 7", mention=True)
    await first.stop()
    second = await Harness.start(fake_discord, config)
    try:
        await second.say(CHANNEL, "what number?", mention=True)
        assert second.last(CHANNEL).endswith("Before that: [Ann] remember 7.")
        # A thread the bot started is still its own after the restart: no mention needed.
        await second.say(BOT_THREAD, "hello there")
        assert second.last(BOT_THREAD).startswith("You said: [Ann] hello there.")
    finally:
        await second.stop()
    assert len(fake_discord.gateway.identifies) == 2


async def test_a_thread_the_bot_was_mentioned_in_is_still_followed_after_a_restart(
    fake_discord: FakeDiscord, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    config = discord_config(fake_openai, tmp_path / "restart.sqlite3")
    first = await Harness.start(fake_discord, config)
    await first.say(THREAD_A, "the password is swordfish", mention=True)
    await first.stop()
    second = await Harness.start(fake_discord, config)
    try:
        await second.say(THREAD_A, "what was the password?")  # no mention
        assert second.last(THREAD_A).endswith("Before that: [Ann] the password is swordfish.")
        await second.say(THREAD_B, "not for the bot")  # a thread it never took part in
        assert second.shown(THREAD_B) == []
    finally:
        await second.stop()
    assert len(fake_discord.gateway.identifies) == 2


OTHER_THREAD = 33
"""A thread of OTHER_CHANNEL, where nobody has spoken to the bot."""


@pytest.mark.parametrize(
    ("scope", "quiet_thread", "quiet_author"),
    [("channel", OTHER_THREAD, ANN), ("user", THREAD_B, BOB)],
)
async def test_under_a_wider_scope_a_thread_is_still_followed_after_a_restart(
    fake_discord: FakeDiscord,
    fake_openai: FakeOpenAI,
    tmp_path: Path,
    scope: str,
    quiet_thread: int,
    quiet_author: Json,
) -> None:
    fake_discord.guilds[GUILD]["threads"].append(
        FakeDiscord.thread_payload(
            OTHER_THREAD, parent_id=OTHER_CHANNEL, guild_id=GUILD, owner_id=102
        )
    )
    config = discord_config(fake_openai, tmp_path / "restart.sqlite3", memory_scope=scope)
    first = await Harness.start(fake_discord, config)
    await first.say(THREAD_A, "the password is swordfish", mention=True)
    await first.stop()
    second = await Harness.start(fake_discord, config)
    try:
        await second.say(THREAD_A, "what was the password?")  # no mention
        assert second.last(THREAD_A).endswith("Before that: [Ann] the password is swordfish.")
        # Where the memory it would join is empty, a message still needs a mention.
        await second.say(quiet_thread, "not for the bot", author=quiet_author)
        assert second.shown(quiet_thread) == []
    finally:
        await second.stop()


@pytest.mark.parametrize(("scope", "author"), [("channel", BOB), ("user", ANN)])
async def test_under_a_wider_scope_a_thread_the_bot_was_not_in_is_not_followed_after_a_restart(
    fake_discord: FakeDiscord, fake_openai: FakeOpenAI, tmp_path: Path, scope: str, author: Json
) -> None:
    config = discord_config(fake_openai, tmp_path / "restart.sqlite3", memory_scope=scope)
    first = await Harness.start(fake_discord, config)
    await first.say(THREAD_A, "the password is swordfish", mention=True)
    await first.stop()
    second = await Harness.start(fake_discord, config)
    try:
        # THREAD_B's messages join the memory THREAD_A's did (the channel's, or Ann's), but
        # the bot never took part in THREAD_B: as before the restart, it needs a mention.
        await second.say(THREAD_B, "just us humans here", author=author)
        assert second.shown(THREAD_B) == []
        await second.say(THREAD_A, "what was the password?")
        assert "swordfish" in second.last(THREAD_A)
    finally:
        await second.stop()


@pytest.mark.parametrize(
    ("failure", "asks"), [({"status": 403}, 1), ({"status": 429, "cloudflare": True}, 2)]
)
async def test_a_thread_whose_history_cannot_be_read_needs_a_mention_after_a_restart(
    fake_discord: FakeDiscord,
    fake_openai: FakeOpenAI,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    failure: dict[str, Any],
    asks: int,
) -> None:
    # Under a wider scope, where Discord's history tells whether the bot took part.
    config = discord_config(fake_openai, tmp_path / "restart.sqlite3", memory_scope="user")
    first = await Harness.start(fake_discord, config)
    await first.say(THREAD_A, "the password is swordfish", mention=True)
    await first.stop()
    second = await Harness.start(fake_discord, config)
    history = rf"^/channels/{THREAD_A}/messages$"
    fake_discord.fail("GET", history, **failure)
    try:
        with caplog.at_level(logging.WARNING, logger="adapters.discord"):
            await second.say(THREAD_A, "still there?")
        assert second.shown(THREAD_A)[-1].startswith("You said: [Ann] the password")
        assert f"Could not read the latest messages of thread {THREAD_A}" in caplog.text
        # Refused (403): not asked again. Failed this time (a 429 discord.py gave up on):
        # asked again with the next message, and followed.
        await second.say(THREAD_A, "hello?")
        asked = [
            r for r in fake_discord.requests if r.method == "GET" and re.search(history, r.path)
        ]
        assert len(asked) == asks
        followed = second.shown(THREAD_A)[-1].startswith("You said: [Ann] hello?")
        assert followed == (asks == 2)
    finally:
        await second.stop()


# ----- when the bot answers ------------------------------------------------------------------


async def test_a_channel_needs_a_mention_and_bots_are_ignored(
    running: Harness, fake_openai: FakeOpenAI
) -> None:
    await running.say(CHANNEL, "just chatting")
    await running.say(CHANNEL, "hi bot", author=OTHER_BOT, mention=True)
    await running.say(CHANNEL, "talking to myself", author=BOT_USER, mention=True)
    await running.say(THREAD_A, "a thread I was never asked into")
    await running.say(CHANNEL, "pinned a message", mention=True, message_type=6)
    assert fake_openai.requests == []
    assert running.shown(CHANNEL) == []
    await running.say(CHANNEL, "now you", mention=True)
    assert running.last(CHANNEL) == "You said: [Ann] now you. Before that: nothing."
    # A mention of the bot's managed role counts as a mention of the bot.
    payload = running.fake.user_message(
        CHANNEL, f"<@&{BOT_ROLE}> and by role", author=ANN, guild_id=GUILD
    )
    payload["mention_roles"] = [str(BOT_ROLE)]
    await running.fake.dispatch("MESSAGE_CREATE", payload)
    await eventually(lambda: int(payload["id"]) in running.adapter.handled)
    assert running.last(CHANNEL).startswith("You said: [Ann] and by role.")


async def test_dm_and_bot_threads_need_no_mention(running: Harness) -> None:
    await running.say(DM, "hello", guild=None)
    await running.say(BOT_THREAD, "hello")
    assert running.last(DM).startswith("You said: [Ann] hello.")
    assert running.last(BOT_THREAD).startswith("You said: [Ann] hello.")


async def test_other_bots_are_answered_when_configured(
    fake_discord: FakeDiscord, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    config = discord_config(fake_openai, tmp_path / "m.sqlite3", reply_to_bots=True)
    harness = await Harness.start(fake_discord, config)
    try:
        await harness.say(CHANNEL, "beep", author=OTHER_BOT, mention=True)
        await harness.say(CHANNEL, "me", author=BOT_USER, mention=True)
        assert harness.shown(CHANNEL) == ["You said: [OtherBot] beep. Before that: nothing."]
    finally:
        await harness.stop()


async def test_allow_lists(
    fake_discord: FakeDiscord, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    config = discord_config(
        fake_openai,
        tmp_path / "m.sqlite3",
        env={"DISCORD_ALLOWED_CHANNELS": str(CHANNEL), "DISCORD_ALLOWED_ROLES": str(HELPER_ROLE)},
    )
    harness = await Harness.start(fake_discord, config)
    try:
        await harness.say(OTHER_CHANNEL, "wrong channel", mention=True, roles=[HELPER_ROLE])
        await harness.say(CHANNEL, "no role", mention=True)
        await harness.say(DM, "in a dm", guild=None)
        assert fake_openai.requests == []
        await harness.say(CHANNEL, "right place and role", mention=True, roles=[HELPER_ROLE])
        await harness.say(
            THREAD_A, "thread of an allowed channel", mention=True, roles=[HELPER_ROLE]
        )
        assert harness.last(CHANNEL).startswith("You said: [Ann] right place and role.")
        assert harness.last(THREAD_A).startswith("You said: [Ann] thread of an allowed")
        refused = await harness.command("history", channel_payload(OTHER_CHANNEL))
        assert refused["data"]["content"] == "Sorry, I'm not set up to answer you here."
        assert refused["data"]["flags"] == 64
    finally:
        await harness.stop()


# ----- commands ----------------------------------------------------------------------------


# ----- streaming and long answers ----------------------------------------------------------


def long_answer() -> str:
    prose = " ".join(f"word{i}" for i in range(250))
    code = "\n".join(f"    value_{i} = compute({i})  # step {i}" for i in range(60))
    return f"Here is the plan.\n\n{prose}\n\n```python\n{code}\n```\n\nAnd that is all.\n"


def unsplit(parts: list[str]) -> str:
    """Undo the fence closing/reopening that splitting adds at each cut."""
    text = parts[0]
    for part in parts[1:]:
        if text.endswith("\n```") and part.startswith("```python\n"):
            text = text[: -len("```")] + part[len("```python\n") :]
        else:
            text += part
    return text


async def test_a_long_streamed_answer_is_throttled_split_and_exact(
    running: Harness, fake_openai: FakeOpenAI
) -> None:
    answer = long_answer()
    assert len(answer) > 4000
    fake_openai.responder = lambda messages: answer
    fake_openai.chunk_chars = 40
    fake_openai.chunk_delay = 0.003
    started = asyncio.get_running_loop().time()
    await running.say(CHANNEL, "write a lot", mention=True)
    elapsed = asyncio.get_running_loop().time() - started

    parts = running.shown(CHANNEL)
    assert parts == split_message(answer, MAX_MESSAGE_CHARS)
    assert len(parts) == 3
    assert all(len(p) <= 2000 for p in parts)
    assert all(p.count("```") % 2 == 0 for p in parts)
    assert unsplit(parts) == answer

    writes = [
        r
        for r in running.fake.requests
        if re.fullmatch(rf"/channels/{CHANNEL}/messages(/\d+)?", r.path)
        and r.method in ("POST", "PATCH")
    ]
    edits = [w for w in writes if w.method == "PATCH"]
    assert len(edits) >= 3  # it really streamed
    assert len(writes) <= elapsed / INTERVAL + 2
    gaps = [b.at - a.at for a, b in itertools.pairwise(writes)]
    # Stamps are taken when requests reach the fake, so single gaps jitter; on average the
    # throttle's spacing must hold.
    assert sum(gaps) / len(gaps) >= INTERVAL * 0.9
    assert min(gaps) >= INTERVAL * 0.3
    first = writes[0].body
    assert first["allowed_mentions"] == {"parse": []}
    assert first["message_reference"]["fail_if_not_exists"] is False


async def test_typing_shows_until_the_first_text(running: Harness, fake_openai: FakeOpenAI) -> None:
    fake_openai.latency = 0.2
    await running.say(CHANNEL, "hi", mention=True)
    typing = running.fake.calls("POST", f"/channels/{CHANNEL}/typing")
    sends = running.fake.calls("POST", f"/channels/{CHANNEL}/messages$")
    assert len(typing) == 1
    assert typing[0].at < sends[0].at


async def test_mentions_in_the_answer_do_not_ping(
    running: Harness, fake_openai: FakeOpenAI
) -> None:
    fake_openai.responder = lambda messages: "Hey @everyone and <@101>!"
    await running.say(CHANNEL, "ping them", mention=True)
    assert running.last(CHANNEL) == "Hey @everyone and <@101>!"
    for call in running.fake.calls("POST", f"/channels/{CHANNEL}/messages$"):
        assert call.body["allowed_mentions"] == {"parse": []}


# ----- failures ----------------------------------------------------------------------------


async def test_a_429_on_send_and_edit_is_retried(running: Harness, fake_openai: FakeOpenAI) -> None:
    fake_openai.chunk_chars = 5
    fake_openai.chunk_delay = 0.02
    running.fake.fail("POST", rf"^/channels/{CHANNEL}/messages$", 429)
    running.fake.fail("PATCH", rf"^/channels/{CHANNEL}/messages/\d+$", 429)
    await running.say(CHANNEL, "tell me something long enough to edit", mention=True)
    statuses = [r.status for r in running.fake.requests if r.path.startswith("/channels/20/mes")]
    assert statuses.count(429) == 2
    assert running.shown(CHANNEL) == [
        "You said: [Ann] tell me something long enough to edit. Before that: nothing."
    ]


async def test_a_discord_5xx_still_delivers_the_reply(
    running: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    running.fake.fail("POST", rf"^/channels/{CHANNEL}/messages$", 503)
    with caplog.at_level(logging.WARNING, logger="adapters.discord.stream"):
        await running.say(CHANNEL, "hello", mention=True)
    assert running.shown(CHANNEL) == ["You said: [Ann] hello. Before that: nothing."]
    assert any("503" in r.getMessage() for r in caplog.records)


async def test_a_model_error_shows_a_friendly_line_and_keeps_history(
    running: Harness, fake_openai: FakeOpenAI
) -> None:
    await running.say(CHANNEL, "first", mention=True)
    thread_key = f"discord:{GUILD}:{CHANNEL}"
    before = await running.parts.store.read_items(thread_key)
    fake_openai.fail_next(Fault(status=500))
    await running.say(CHANNEL, "this fails", mention=True)
    assert (
        running.last(CHANNEL) == "The AI model had a problem on its side. Please try again shortly."
    )
    assert await running.parts.store.read_items(thread_key) == before
    await running.say(CHANNEL, "again", mention=True)
    assert running.last(CHANNEL) == "You said: [Ann] again. Before that: [Ann] first."


@pytest.mark.parametrize("where", WHERES)
async def test_an_unexpected_fault_shows_the_friendly_line(
    running: Harness, monkeypatch: pytest.MonkeyPatch, where: Where
) -> None:
    await running.say(CHANNEL, "first", mention=True)
    inject_bug(monkeypatch, where)
    await running.say(CHANNEL, "this hits a bug", mention=True)
    assert running.shown(CHANNEL)[-1] == GENERIC
    assert len(running.shown(CHANNEL)) == 2  # a partial answer is replaced, not left behind
    assert await running.parts.store.count_items(f"discord:{GUILD}:{CHANNEL}") == 2


async def test_commands_and_slowed_down_messages_show_no_typing(
    fake_discord: FakeDiscord, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    config = discord_config(fake_openai, tmp_path / "m.sqlite3", rate_limit_per_minute=1)
    harness = await Harness.start(fake_discord, config)
    fake_openai.latency = 0.2  # room for the indicator before the first text
    try:
        await harness.say(CHANNEL, "/help", mention=True)
        await harness.say(DM, "!history", guild=None)
        await harness.say(CHANNEL, "one", mention=True)
        await harness.say(CHANNEL, "two, too soon", mention=True)
        assert "wait" in harness.last(CHANNEL)
        typing = fake_discord.calls("POST", "/typing$")
        assert len(typing) == 1  # only for "one", the message that started a turn
    finally:
        await harness.stop()


async def test_a_broken_stream_replaces_the_partial_answer(
    running: Harness, fake_openai: FakeOpenAI
) -> None:
    fake_openai.chunk_chars = 4
    fake_openai.chunk_delay = 0.02
    fake_openai.fail_next(Fault(break_after=6))
    await running.say(CHANNEL, "this breaks off", mention=True)
    assert running.shown(CHANNEL) == [
        "I couldn't reach the AI model just now. Please try again shortly."
    ]
    assert running.fake.calls("PATCH", f"/channels/{CHANNEL}/messages/")


async def test_no_permission_to_send_is_logged_and_the_bot_keeps_running(
    running: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    running.fake.fail("POST", rf"^/channels/{CHANNEL}/", 403, times=100)
    with caplog.at_level(logging.WARNING):
        await running.say(CHANNEL, "can you hear me?", mention=True)
    assert running.shown(CHANNEL) == []
    lines = [r.getMessage() for r in caplog.records]
    assert any(
        "Cannot post the reply in channel 20" in line and "Missing Permissions" in line
        for line in lines
    )
    assert any("could not be delivered" in line for line in lines)
    await running.say(OTHER_CHANNEL, "and here?", mention=True)
    assert running.last(OTHER_CHANNEL).startswith("You said: [Ann] and here?.")


async def test_open_threads_answers_a_mention_in_a_new_thread(
    fake_discord: FakeDiscord, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    config = discord_config(fake_openai, tmp_path / "m.sqlite3", env={"DISCORD_OPEN_THREADS": "on"})
    harness = await Harness.start(fake_discord, config)
    try:
        asked = await harness.say(CHANNEL, "plan a trip\nto Rome", mention=True)
        created = fake_discord.calls("POST", f"/channels/{CHANNEL}/messages/{asked['id']}/threads")
        assert created[0].body["name"] == "plan a trip"
        new_thread = int(asked["id"])  # Discord gives a message's thread the message's ID
        assert (
            harness.last(new_thread)
            == "You said: [Ann] plan a trip\nto Rome. Before that: nothing."
        )
        assert harness.shown(CHANNEL) == []
        await harness.say(new_thread, "and Milan?")
        assert harness.last(new_thread).endswith("Before that: [Ann] plan a trip\nto Rome.")
        await harness.say(CHANNEL, "another trip", mention=True)
        assert await harness.parts.store.count_items(f"discord:{GUILD}:{new_thread}") == 4
        threads_before = len(fake_discord.calls("POST", "/threads$"))
        await harness.say(CHANNEL, "/history", mention=True)
        assert harness.last(CHANNEL) == "I have no memory of this thread yet."
        await harness.say(CHANNEL, "", mention=True)
        assert "empty message" in harness.last(CHANNEL)
        assert len(fake_discord.calls("POST", "/threads$")) == threads_before
    finally:
        await harness.stop()


@pytest.mark.parametrize(
    ("status", "code", "why"),
    [
        (403, 50013, "Missing Permissions"),
        (400, 160004, "A thread has already been created for this message"),
    ],
)
async def test_a_thread_that_cannot_be_opened_answers_and_remembers_in_the_channel(
    fake_discord: FakeDiscord,
    fake_openai: FakeOpenAI,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    status: int,
    code: int,
    why: str,
) -> None:
    config = discord_config(fake_openai, tmp_path / "m.sqlite3", env={"DISCORD_OPEN_THREADS": "on"})
    harness = await Harness.start(fake_discord, config)
    fake_discord.fail("POST", r"/threads$", status, code=code, message=why)
    try:
        with caplog.at_level(logging.WARNING, logger="adapters.discord"):
            asked = await harness.say(CHANNEL, "hello", mention=True)
        assert harness.last(CHANNEL) == "You said: [Ann] hello. Before that: nothing."
        assert any(
            "Could not open a thread in channel 20" in r.getMessage() and why in r.getMessage()
            for r in caplog.records
        )
        # Remembered where it was answered, not under the thread that never opened.
        assert await harness.parts.store.count_items(f"discord:{GUILD}:{CHANNEL}") == 2
        assert await harness.parts.store.count_items(f"discord:{GUILD}:{asked['id']}") == 0
        await harness.say(CHANNEL, "/history", mention=True)
        assert "hello" in harness.last(CHANNEL)
        assert "no memory" not in harness.last(CHANNEL)
    finally:
        await harness.stop()


# ----- lifecycle and connection ------------------------------------------------------------


async def test_a_gateway_disconnect_mid_conversation_resumes(
    running: Harness, fake_openai: FakeOpenAI
) -> None:
    await running.say(CHANNEL, "one", mention=True)
    fake_openai.latency = 0.3
    payload = running.fake.user_message(
        CHANNEL, f"{MENTION} two", author=ANN, guild_id=GUILD, mentions=[BOT_USER]
    )
    await running.fake.dispatch("MESSAGE_CREATE", payload)
    await fake_openai.request_seen.wait()
    await running.fake.drop_connection()
    await asyncio.wait_for(running.fake.ready(), 10)
    await eventually(lambda: int(payload["id"]) in running.adapter.handled, what="two")
    assert running.fake.gateway.connect_paths == ["/gateway", "/resume"]
    assert running.fake.gateway.resumes[0]["session_id"] == "fake-session"
    assert len(running.fake.gateway.identifies) == 1
    fake_openai.latency = 0.0
    await running.say(CHANNEL, "three", mention=True)
    assert running.last(CHANNEL) == "You said: [Ann] three. Before that: [Ann] one; [Ann] two."


async def test_shutdown_finishes_replies_under_way(
    fake_discord: FakeDiscord, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    harness = await Harness.start(fake_discord, discord_config(fake_openai, tmp_path / "m.db"))
    fake_openai.latency = 0.3
    payload = fake_discord.user_message(
        CHANNEL, f"{MENTION} slow", author=ANN, guild_id=GUILD, mentions=[BOT_USER]
    )
    await fake_discord.dispatch("MESSAGE_CREATE", payload)
    await fake_openai.request_seen.wait()
    await harness.parts.core.drain(grace=5)
    await harness.stop()
    assert harness.task is not None
    assert harness.task.done()
    assert harness.shown(CHANNEL) == ["You said: [Ann] slow. Before that: nothing."]
    assert fake_discord.closed_sockets >= 1


async def test_a_turn_cut_short_by_shutdown_says_so(
    fake_discord: FakeDiscord, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    harness = await Harness.start(fake_discord, discord_config(fake_openai, tmp_path / "m.db"))
    fake_openai.chunk_chars = 2
    fake_openai.chunk_delay = 0.05
    payload = fake_discord.user_message(
        CHANNEL, f"{MENTION} a long story", author=ANN, guild_id=GUILD, mentions=[BOT_USER]
    )
    await fake_discord.dispatch("MESSAGE_CREATE", payload)
    await eventually(lambda: harness.shown(CHANNEL), what="the first streamed text")
    await harness.parts.core.drain(grace=0.01)
    await eventually(lambda: int(payload["id"]) in harness.adapter.handled)
    try:
        assert harness.shown(CHANNEL) == [
            "I'm restarting right now. Please send that again in a moment."
        ]
        assert await harness.parts.store.count_items(f"discord:{GUILD}:{CHANNEL}") == 0
    finally:
        await harness.stop()


async def test_a_missing_message_content_intent_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    async with FakeDiscord(deny_message_content=True) as fake:
        monkeypatch.setattr(discord.http.Route, "BASE", fake.api_base)
        monkeypatch.setattr(DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(fake.gateway_url))
        parts = await BotParts(discord_config(fake_openai, tmp_path / "m.sqlite3")).start()
        try:
            adapter = DiscordAdapter(parts.core, DiscordSettings.from_config(parts.config))
            with pytest.raises(ConfigError, match="Message Content Intent") as caught:
                await asyncio.wait_for(adapter.run(), 10)
            assert "\n" not in str(caught.value)
            assert adapter.client.is_closed()
        finally:
            await parts.close()


async def test_a_rejected_token_is_one_clear_line(
    fake_discord: FakeDiscord, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    fake_discord.fail("GET", "^/users/@me$", 401)
    parts = await BotParts(discord_config(fake_openai, tmp_path / "m.sqlite3")).start()
    try:
        adapter = DiscordAdapter(parts.core, DiscordSettings.from_config(parts.config))
        with pytest.raises(ConfigError, match="Discord rejected DISCORD_TOKEN"):
            await asyncio.wait_for(adapter.run(), 10)
    finally:
        await parts.close()


async def test_a_missing_token_is_a_config_error(fake_openai: FakeOpenAI) -> None:
    parts = await BotParts(make_config(fake_openai)).start()
    try:
        with pytest.raises(ConfigError, match="DISCORD_TOKEN"):
            create(parts.core, parts.config, {})
    finally:
        await parts.close()


async def test_an_empty_message_gets_a_clear_answer(running: Harness) -> None:
    await running.say(DM, "", guild=None)  # no text and no files (files: test_files)
    assert "empty message" in running.last(DM)
    assert await running.parts.store.count_items(f"discord:dm:{DM}") == 0
