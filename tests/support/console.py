"""The console as a person at a terminal uses it: `python -m bot` in a child process, or the
adapter in this process (`Typist`) when a test needs the core in hand."""

from __future__ import annotations

import asyncio
import io
import os
import sys
from pathlib import Path

from adapters.console import ConsoleAdapter
from bot.core import Core
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

    async def say(self, line: str, until: str = PROMPT) -> str:
        """Type a line and return everything printed until `until` (the next `you>`)."""
        assert self.process.stdin is not None
        self.process.stdin.write(f"{line}\n".encode())
        await self.process.stdin.drain()
        return (await self.read_until(until)).removesuffix(until).strip()

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


async def start_console(cwd: Path, env: dict[str, str], *args: str, until: str = PROMPT) -> Console:
    """The console in a child process, once it asks for input (`until`)."""
    console = Console(await spawn(cwd, env, *args))
    banner = await console.read_until(until)
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


class Typist:
    """The console adapter in this process, typed into through a pipe, its output captured.

    For tests that need the core in hand (extra tools, `expire_approvals`); the child-process
    `Console` above is for everything a user could do alone.
    """

    def __init__(self, core: Core, *, thread: str = "t", user_name: str = "Tess") -> None:
        read_fd, write_fd = os.pipe()
        self._stdin = os.fdopen(read_fd, "r", encoding="utf-8")
        self._keys = os.fdopen(write_fd, "w", encoding="utf-8")
        self._screen = io.StringIO()
        self.adapter = ConsoleAdapter(
            core, thread=thread, user_name=user_name, stdin=self._stdin, stdout=self._screen
        )
        self._task: asyncio.Task[None] | None = None
        self._seen = 0

    @property
    def screen(self) -> str:
        return self._screen.getvalue()

    async def __aenter__(self) -> Typist:
        self._task = asyncio.create_task(self.adapter.run())
        await self.read_until(PROMPT)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if not self._keys.closed:
            self._keys.close()  # end of input: the adapter's loop returns
        assert self._task is not None
        try:
            await asyncio.wait_for(self._task, 20)
        finally:
            self._stdin.close()

    def type(self, line: str) -> None:
        self._keys.write(f"{line}\n")
        self._keys.flush()

    async def read_until(self, marker: str, seconds: float = 20) -> str:
        """Everything printed since the last read, up to and including `marker`."""
        async with asyncio.timeout(seconds):
            while (end := self.screen.find(marker, self._seen)) < 0:
                assert self._task is None or not self._task.done(), self.screen
                await asyncio.sleep(0.01)
        shown = self.screen[self._seen : end + len(marker)]
        self._seen = end + len(marker)
        return shown

    async def say(self, line: str, until: str = PROMPT) -> str:
        """Type a line; what was printed until `until`, without it."""
        self.type(line)
        return (await self.read_until(until)).removesuffix(until).strip()
