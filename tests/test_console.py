"""The console adapter and the CLI, driven as a user would: a real process, stdin and stdout."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fakes.openai_server import FakeOpenAI
from tests.support.console import Console, bot_env, run_cli, start_console


@pytest.fixture
async def console(fake_openai: FakeOpenAI, tmp_path: Path) -> AsyncIterator[Console]:
    env = bot_env(fake_openai, tmp_path / "memory.sqlite3")
    running = await start_console(tmp_path, env, "console", "--thread", "a", "--name", "Tess")
    yield running
    if running.process.returncode is None:
        running.process.kill()
        await running.process.wait()


async def test_chat_streams_remembers_and_obeys_commands(console: Console) -> None:
    first = await console.say("my favourite colour is green")
    assert first == "bot> You said: [Tess] my favourite colour is green. Before that: nothing."
    second = await console.say("what did I say?")
    assert "Before that: [Tess] my favourite colour is green." in second

    history = await console.say("/history")
    assert "Tess: my favourite colour is green" in history
    assert "Tess: what did I say?" in history

    undone = await console.say("/undo")
    assert "Undone" in undone
    assert "what did I say?" in undone
    forgot = await console.say("/forget")
    assert "forgot 2 messages" in forgot
    assert "nothing to forget" in await console.say("/forget")
    assert "/history" in await console.say("/help")

    code, stderr = await console.quit()
    assert code == 0
    assert "Traceback" not in stderr


async def test_model_failure_is_a_friendly_line(console: Console, fake_openai: FakeOpenAI) -> None:
    from tests.fakes.openai_server import Fault

    fake_openai.fail_next(Fault(status=500))
    answer = await console.say("hello?")
    assert answer == "bot> (!) The AI model had a problem on its side. Please try again shortly."
    assert "Before that: nothing" in await console.say("hello again")
    code, stderr = await console.quit()
    assert code == 0
    assert "Traceback" not in stderr
    assert "sk-test-console-key" not in stderr


async def test_threads_are_separate_and_survive_restarts(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    env = bot_env(fake_openai, tmp_path / "memory.sqlite3")
    first = await start_console(tmp_path, env, "console", "--thread", "work", "--name", "Tess")
    await first.say("the launch code is 1234")
    assert (await first.quit())[0] == 0

    again = await start_console(tmp_path, env, "console", "--thread", "work", "--name", "Tess")
    assert "the launch code is 1234" in await again.say("what is the code?")
    assert (await again.quit())[0] == 0

    other = await start_console(tmp_path, env, "console", "--thread", "home", "--name", "Tess")
    assert "Before that: nothing." in await other.say("what is the code?")
    assert (await other.quit())[0] == 0

    sessions = await run_cli(tmp_path, env, "sessions")
    assert sessions.returncode == 0
    assert "console:work" in sessions.stdout
    assert "console:home" in sessions.stdout
    history = await run_cli(tmp_path, env, "history", "console:work")
    assert "Tess: the launch code is 1234" in history.stdout


async def test_sigterm_stops_the_console_cleanly(console: Console) -> None:
    await console.say("hello")
    console.process.send_signal(signal.SIGTERM)
    code, stderr = await console.quit()
    assert code == 0
    assert "Traceback" not in stderr


async def test_missing_api_key_is_one_clear_line(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    env = bot_env(fake_openai, tmp_path / "m.sqlite3")
    del env["OPENAI_API_KEY"], env["OPENAI_BASE_URL"]
    result = await run_cli(tmp_path, env, "console")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: OPENAI_API_KEY is not set: put it in .env (see .env.example) or set "
        "OPENAI_BASE_URL to an OpenAI-compatible server that needs no key."
    ]


async def test_bad_setting_is_one_clear_line(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    env = bot_env(fake_openai, tmp_path / "m.sqlite3", BOT_CONTEXT_TOKENS="lots")
    result = await run_cli(tmp_path, env, "console")
    assert result.returncode == 2
    assert "BOT_CONTEXT_TOKENS must be a whole number" in result.stderr
    assert "Traceback" not in result.stderr


async def test_settings_come_from_the_env_file(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    env = bot_env(fake_openai, tmp_path / "unused.sqlite3")
    for key in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "BOT_DB_PATH"):
        del env[key]
    (tmp_path / ".env").write_text(
        f"OPENAI_API_KEY=sk-from-dotenv\nOPENAI_BASE_URL={fake_openai.base_url}\n"
        f"BOT_DB_PATH={tmp_path / 'from-dotenv.sqlite3'}\n"
    )
    console = await start_console(tmp_path, env, "console", "--name", "Tess")
    assert (await console.say("hi")).startswith("bot> You said: [Tess] hi.")
    assert (await console.quit())[0] == 0
    assert (tmp_path / "from-dotenv.sqlite3").exists()
    sessions = await run_cli(tmp_path, env, "sessions")
    assert "console:default" in sessions.stdout


async def test_admin_commands_on_a_missing_file(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    env = bot_env(fake_openai, tmp_path / "absent.sqlite3")
    result = await run_cli(tmp_path, env, "sessions")
    assert result.returncode == 2
    assert "No memory file" in result.stderr
    assert not (tmp_path / "absent.sqlite3").exists()  # read-only tools create nothing


async def test_sigterm_mid_turn_finishes_the_turn_then_exits(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    env = bot_env(fake_openai, tmp_path / "memory.sqlite3")
    console = await start_console(tmp_path, env, "console", "--thread", "t", "--name", "Tess")
    fake_openai.latency = 1.5
    assert console.process.stdin is not None
    console.process.stdin.write(b"a slow question\n")
    await console.process.stdin.drain()
    await asyncio.wait_for(fake_openai.request_seen.wait(), 10)
    console.process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(15):  # bounded: the turn's own time, not the 30 s grace
        code, stderr = await console.quit()
    assert code == 0
    assert "Traceback" not in stderr
    assert "You said: [Tess] a slow question" in console.transcript
    history = await run_cli(tmp_path, env, "history", "console:t")
    assert "Tess: a slow question" in history.stdout
    assert "You said" in history.stdout
