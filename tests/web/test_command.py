"""Serving the operator page, in child processes: `python -m bot web` on its own, and beside
the bot (`BOT_WEB_PORT`); each refuses an open address without a password in one line."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp

from bot.storage import Author, SQLiteStore
from tests.support.browser import PASSWORD
from tests.support.cli import ROOT, memory_env, run_bot
from tests.support.metrics import free_port

OPEN = (
    "error: the operator page would be open to anyone who can reach 0.0.0.0: set "
    "BOT_WEB_PASSWORD, or serve it on BOT_WEB_HOST=127.0.0.1\n"
)
HEAVY = ("agents", "openai", "discord", "slack_bolt", "slack_sdk")


async def seeded(path: Path) -> Path:
    async with await SQLiteStore.open(path) as store:
        await store.append(
            "console:t",
            [{"role": "user", "content": "[root] hello"}, {"role": "assistant", "content": "hi"}],
            author=Author("console:root", "root"),
        )
    return path


async def start_bot(
    *args: str, memory: Path, env: dict[str, str], stdin: bool = False, python: tuple[str, ...] = ()
) -> asyncio.subprocess.Process:
    """`python [PYTHON] -m bot ARGS` in a child process, left running."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        *python,
        "-m",
        "bot",
        "--env-file",
        os.devnull,
        *args,
        cwd=ROOT,
        env={**memory_env(memory), **env},
        stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def answers(url: str, seconds: float = 20.0) -> int:
    """The status `url` answers with once something listens there."""
    async with aiohttp.ClientSession() as http:
        for _ in range(int(seconds * 10)):
            try:
                async with http.get(url) as response:
                    return response.status
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.1)
    raise AssertionError(f"nothing answered at {url}")


async def test_the_page_alone_refuses_an_open_address_without_a_password(tmp_path: Path) -> None:
    memory = await seeded(tmp_path / "m.sqlite3")
    ran = await run_bot("web", "--host", "0.0.0.0", memory=memory)
    assert (ran.code, ran.err, ran.out) == (2, OPEN, "")


async def test_the_page_alone_serves_until_sigterm_without_loading_a_model(
    tmp_path: Path,
) -> None:
    memory = await seeded(tmp_path / "m.sqlite3")
    port = free_port()
    process = await start_bot(
        "web",
        "--port",
        str(port),
        memory=memory,
        env={"BOT_WEB_PASSWORD": PASSWORD},
        python=("-X", "importtime"),
    )
    try:
        assert await answers(f"http://127.0.0.1:{port}/signin") == 200
        assert await answers(f"http://127.0.0.1:{port}/threads") == 401
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 0, err.decode()[-2000:]
    modules = {line.split("|")[-1].strip() for line in err.decode().splitlines() if "|" in line}
    assert not modules & set(HEAVY)
    assert "Serving the operator page on http://127.0.0.1:" in err.decode()


async def test_the_bot_refuses_to_start_with_an_open_page_and_no_password(tmp_path: Path) -> None:
    ran = await run_bot(
        "console",
        memory=tmp_path / "m.sqlite3",
        env={"OPENAI_API_KEY": "sk-x", "BOT_WEB_PORT": "0", "BOT_WEB_HOST": "0.0.0.0"},
    )
    assert (ran.code, ran.err, ran.out) == (2, OPEN, "")
    assert not (tmp_path / "m.sqlite3").exists()


async def test_the_bot_serves_the_page_beside_the_console(tmp_path: Path) -> None:
    port = free_port()
    process = await start_bot(
        "console",
        memory=tmp_path / "m.sqlite3",
        env={"OPENAI_API_KEY": "sk-x", "BOT_WEB_PORT": str(port), "BOT_WEB_PASSWORD": PASSWORD},
        stdin=True,
    )
    try:
        assert await answers(f"http://127.0.0.1:{port}/signin") == 200
        assert await answers(f"http://127.0.0.1:{port}/") == 401
    finally:
        assert process.stdin is not None
        process.stdin.close()
        _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()[-2000:]


async def test_check_fails_on_an_open_page_as_serve_would(tmp_path: Path) -> None:
    env = {
        "OPENAI_API_KEY": "sk-x",
        "DISCORD_TOKEN": "not-used",
        "BOT_WEB_PORT": "8080",
        "BOT_WEB_HOST": "0.0.0.0",
    }
    ran = await run_bot("check", memory=tmp_path / "m.sqlite3", env=env)
    assert (ran.code, ran.err, ran.out) == (2, OPEN, "")
