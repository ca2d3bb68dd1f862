"""Property tests: any text people type is stored and read back intact, or answered clearly."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.app import build_planner
from bot.commands import default_commands
from bot.config import Config
from bot.messages import IncomingMessage, ReplyKind, Surface
from bot.storage import SQLiteStore
from tests.fakes.openai_server import FakeOpenAI
from tests.support.parts import BotParts, make_config

# Every code point, lone surrogates and NUL included, plus the shapes that break parsers.
ANY_TEXT = st.text(st.characters(codec=None), max_size=300) | st.sampled_from(
    ["", " ", "\0", "'; DROP TABLE agent_messages; --", "```\ncode", "/", "!", "/forget junk"]
)
SESSION_IDS = st.text(st.characters(codec="utf-8"), min_size=1, max_size=40)


@settings(max_examples=150, deadline=None)
@given(session_id=SESSION_IDS, texts=st.lists(ANY_TEXT, min_size=1, max_size=4))
def test_the_store_round_trips_any_text_and_session_id(session_id: str, texts: list[str]) -> None:
    async def check() -> None:
        async with await SQLiteStore.open() as store:
            clean = [t.encode("utf-8", "replace").decode("utf-8") for t in texts]
            await store.append(session_id, [{"role": "user", "content": t} for t in clean])
            items = await store.read_items(session_id)
            assert [i["content"] for i in items] == clean
            assert await store.read_items(session_id + "x") == []

    asyncio.run(check())


@settings(max_examples=300, deadline=None)
@given(text=ANY_TEXT)
def test_the_command_parser_never_fails(text: str) -> None:
    async def check() -> None:
        async with await SQLiteStore.open() as store:
            registry = default_commands(store, build_planner(Config(), store), "bot")
            invocation = registry.parse(text)
            if invocation is not None:
                assert isinstance(registry.problem(invocation), str | None)

    asyncio.run(check())


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(text=ANY_TEXT)
def test_any_message_gets_an_answer_and_history_stays_whole(tmp_path: Path, text: str) -> None:
    async def check() -> None:
        async with FakeOpenAI() as fake:
            parts = await BotParts(make_config(fake, ":memory:")).start()
            try:
                message = IncomingMessage("console", "console:p", "u", "Ann", text)
                reply = await parts.core.handle(message, Surface(max_chars=2000))
                assert reply is not None
                assert reply.text.strip()
                stored = await parts.store.count_items("console:p")
                assert stored == (2 if reply.kind is ReplyKind.ANSWER else 0)
            finally:
                await parts.close()

    asyncio.run(check())
