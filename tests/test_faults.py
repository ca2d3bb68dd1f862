"""Storage faults and secrets: a clear answer or a bounded wait, never silent loss or a crash."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

from bot.agent import build_client
from bot.app import build_core
from bot.core import Core
from bot.messages import IncomingMessage, ReplyKind, Surface
from bot.storage import SQLiteStore
from tests.fakes.openai_server import FakeOpenAI, Fault
from tests.support.console import bot_env, start_console
from tests.support.parts import make_config

CHAT = Surface(max_chars=2000)


class Parts:
    def __init__(self, core: Core, store: SQLiteStore) -> None:
        self.core, self.store = core, store

    async def say(self, text: str, thread: str = "console:t") -> Any:
        reply = await self.core.handle(IncomingMessage("console", thread, "u1", "Ann", text), CHAT)
        assert reply is not None
        return reply


@pytest.fixture
async def parts(fake_openai: FakeOpenAI, tmp_path: Path) -> AsyncIterator[Parts]:
    config = make_config(fake_openai, tmp_path / "memory.sqlite3")
    client = build_client(config)
    # A short busy timeout keeps the locked-database test quick; production waits 5 s.
    store = await SQLiteStore.open(config.db_path, busy_timeout=0.3)
    core = build_core(config, store, client)
    yield Parts(core, store)
    await store.close()
    await client.close()


async def on_writer(store: SQLiteStore, sql: str) -> None:
    async def run(conn: aiosqlite.Connection) -> None:
        await conn.execute(sql)

    await store._require_writer().run(run)


async def test_a_locked_database_is_a_bounded_wait_then_a_clear_answer(
    parts: Parts, tmp_path: Path
) -> None:
    await parts.say("first")
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import sqlite3, sys; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
        "c.execute('BEGIN IMMEDIATE'); print('locked', flush=True); sys.stdin.read()",
        str(tmp_path / "memory.sqlite3"),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert holder.stdout is not None
    assert holder.stdin is not None
    assert await holder.stdout.readline() == b"locked\n"
    try:
        blocked = await asyncio.wait_for(parts.say("second"), 10)
        assert blocked.kind is ReplyKind.ERROR
        assert "busy" in blocked.text
        assert "second" not in (await parts.say("/history")).text  # reads still work
    finally:
        holder.stdin.close()
        await holder.wait()
    assert (await parts.say("third")).kind is ReplyKind.ANSWER
    assert await parts.store.count_items("console:t") == 4


async def test_a_full_database_keeps_history_and_the_bot_running(parts: Parts) -> None:
    await parts.say("before the disk filled up")
    pages = (await parts.store._reader.execute_fetchall("PRAGMA page_count"))[0][0]  # type: ignore[index]
    await on_writer(parts.store, f"PRAGMA max_page_count = {pages}")
    full = await parts.say("x" * 12_000)
    assert full.kind is ReplyKind.ERROR
    assert "couldn't save" in full.text
    assert "sqlite" not in full.text.lower()
    assert await parts.store.count_items("console:t") == 2
    other = await parts.say("/history", thread="console:other")
    assert other.kind is ReplyKind.COMMAND


async def test_a_read_only_database_is_a_clear_answer(parts: Parts) -> None:
    await parts.say("hello")
    # What SQLite reports for a read-only file; as root a chmod would not stop the writes.
    await on_writer(parts.store, "PRAGMA query_only = ON")
    refused = await parts.say("another")
    assert refused.kind is ReplyKind.ERROR
    assert "couldn't save" in refused.text
    assert await parts.store.count_items("console:t") == 2


async def test_an_unusable_database_path_is_one_line_at_start(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    from tests.support.console import run_cli

    env = bot_env(fake_openai, tmp_path)  # a directory, not a file
    result = await run_cli(tmp_path, env, "console")
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error: cannot use the memory database")
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


async def test_secrets_never_reach_logs_or_chat(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    key = "sk-test-console-key"
    env = bot_env(fake_openai, tmp_path / "memory.sqlite3", BOT_LOG_LEVEL="DEBUG")
    console = await start_console(tmp_path, env, "console", "--thread", "s", "--name", "Tess")
    fake_openai.fail_next(Fault(status=401, body=f"Incorrect API key provided: {key}"))
    answer = await console.say("hello")
    assert "credentials" in answer
    await console.say("/history")
    code, stderr = await console.quit()
    assert code == 0
    assert "Turn failed" in stderr  # the failure was logged...
    assert "[redacted]" in stderr  # ...with the key masked
    assert key not in stderr
    assert key not in console.transcript
    conn = sqlite3.connect(tmp_path / "memory.sqlite3")
    dump = "\n".join(conn.iterdump())
    conn.close()
    assert key not in dump
