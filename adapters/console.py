"""The console adapter: chat with the bot in a terminal, one named thread per run."""

from __future__ import annotations

import asyncio
import getpass
import sys
import threading
from collections.abc import Callable, Mapping
from typing import TextIO

from bot.adapter import (
    AdapterPlugin,
    CliOption,
    Config,
    Core,
    IncomingMessage,
    Reply,
    ReplyKind,
    Surface,
)

from .text import reconcile

PROMPT = "you> "
BOT_PROMPT = "bot> "
SURFACE = Surface(max_chars=None, command_prefix="/")


class LineReader:
    """Lines from a blocking text stream, without blocking the event loop.

    One daemon thread for the whole session does the blocking reads (stdin may be a terminal,
    a pipe or a file, and only a thread reads all three portably); being a daemon, it never
    holds up the process exit while it waits for a line that will not come.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._thread: threading.Thread | None = None

    async def readline(self) -> str | None:
        """The next line without its newline, or None at end of input."""
        if self._thread is None:
            loop = asyncio.get_running_loop()
            self._thread = threading.Thread(
                target=self._pump, args=(loop,), name="console-stdin", daemon=True
            )
            self._thread.start()
        return await self._queue.get()

    def _pump(self, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            try:
                line = self._stream.readline()
            except (OSError, ValueError):
                line = ""
            try:
                loop.call_soon_threadsafe(
                    self._queue.put_nowait, line.rstrip("\r\n") if line else None
                )
            except RuntimeError:  # the loop has closed: nobody is listening any more
                return
            if not line:
                return


class ConsoleAdapter:
    """Reads lines from stdin and streams answers to stdout."""

    name = "console"

    def __init__(
        self,
        core: Core,
        *,
        thread: str,
        user_name: str,
        stdin: TextIO = sys.stdin,
        stdout: TextIO = sys.stdout,
    ) -> None:
        self._core = core
        self._thread = thread
        self._user = user_name
        self._reader = LineReader(stdin)
        self._out = stdout
        self._closed = asyncio.Event()

    @property
    def session_id(self) -> str:
        return f"console:{self._thread}"

    async def run(self) -> None:
        self._write(
            f"Chatting in thread {self._thread!r} as {self._user}. "
            "Type /help for commands, Ctrl-D to quit.\n"
        )
        while not self._closed.is_set():
            self._write(PROMPT)
            line = await self._reader.readline()
            if line is None:
                self._write("\n")
                return
            if not line.strip():
                continue
            await self._answer(line)

    async def close(self, grace: float = 0.0) -> None:
        # A turn under way is the core's to finish; the prompt loop just stops asking.
        self._closed.set()

    async def _answer(self, line: str) -> None:
        message = IncomingMessage(
            platform="console",
            session_id=self.session_id,
            author_id=f"console:{self._user}",
            author_name=self._user,
            text=line,
        )
        shown = _Shown(self._write)
        reply = await self._core.handle(message, SURFACE, sink=shown)
        if reply.shown:
            self._finish(reply, shown.text)

    def _finish(self, reply: Reply, streamed: str) -> None:
        rest = reconcile(streamed, reply.text) if reply.kind is ReplyKind.ANSWER else None
        if not streamed:
            self._write(f"{BOT_PROMPT}{_label(reply)}{reply.text}\n")
        elif rest is not None:
            self._write(rest + "\n")
        else:
            # The stream broke off or the final text differs: show the outcome in full.
            self._write(f"\n{BOT_PROMPT}{_label(reply)}{reply.text}\n")

    def _write(self, text: str) -> None:
        self._out.write(text)
        self._out.flush()


class _Shown:
    """Writes the answer to the terminal as it streams."""

    def __init__(self, write: Callable[[str], None]) -> None:
        self._write = write
        self.text = ""

    async def started(self) -> None:
        pass  # the prompt itself says the bot has the turn

    async def delta(self, text: str) -> None:
        if not self.text:
            self._write(BOT_PROMPT)
        self.text += text
        self._write(text)


def _label(reply: Reply) -> str:
    return "(!) " if reply.kind is ReplyKind.ERROR else ""


def create(core: Core, config: Config, options: Mapping[str, str]) -> ConsoleAdapter:
    """Build the console adapter for `python -m bot console`."""
    user = options.get("name") or _login_name()
    return ConsoleAdapter(core, thread=options.get("thread") or "default", user_name=user)


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in some containers
        return "you"


PLUGIN = AdapterPlugin(
    summary="chat in this terminal",
    create=create,
    options=(
        CliOption("thread", "which conversation to continue", "default"),
        CliOption("name", "your display name (default: login name)"),
    ),
)
