"""`python -m bot` in a child process, as a person at a terminal would run it."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from tests.fakes.openai_server import FakeOpenAI

PROMPT = "you> "


def bot_env(fake: FakeOpenAI, db: Path, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OPENAI_", "BOT_", "DISCORD_", "SLACK_"))
    }
    env.update(
        OPENAI_API_KEY="sk-test-console-key",
        OPENAI_BASE_URL=fake.base_url,
        BOT_MODEL="fake-model",
        BOT_MODEL_RETRIES="0",
        BOT_DB_PATH=str(db),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


class Console:
    """`python -m bot console` in a child process, typed into through a pipe."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.transcript = ""

    async def read_until(self, marker: str, seconds: float = 20) -> str:
        assert self.process.stdout is not None
        buffer = ""
        async with asyncio.timeout(seconds):
            while marker not in buffer:
                chunk = await self.process.stdout.read(1024)
                if not chunk:
                    break
                buffer += chunk.decode()
        self.transcript += buffer
        return buffer

    async def say(self, line: str) -> str:
        """Type a line and return everything printed until the next prompt."""
        assert self.process.stdin is not None
        self.process.stdin.write(f"{line}\n".encode())
        await self.process.stdin.drain()
        return (await self.read_until(PROMPT)).removesuffix(PROMPT).strip()

    async def quit(self) -> tuple[int, str]:
        assert self.process.stdin is not None
        assert self.process.stderr is not None
        self.process.stdin.close()
        await self.read_until("\0", seconds=20)  # everything up to EOF
        stderr = (await self.process.stderr.read()).decode()
        return await self.process.wait(), stderr


async def spawn(
    cwd: Path, env: dict[str, str], *args: str, stdin: int = asyncio.subprocess.PIPE
) -> asyncio.subprocess.Process:
    """`python -m bot ARGS` as a child process, its output piped back."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        cwd=cwd,
        env=env,
        stdin=stdin,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def start_console(cwd: Path, env: dict[str, str], *args: str) -> Console:
    console = Console(await spawn(cwd, env, *args))
    banner = await console.read_until(PROMPT)
    assert "Type /help for commands" in banner, banner
    return console


class CliResult:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


async def run_cli(cwd: Path, env: dict[str, str], *args: str) -> CliResult:
    process = await spawn(cwd, env, *args, stdin=asyncio.subprocess.DEVNULL)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return CliResult(process.returncode, out.decode(), err.decode())
