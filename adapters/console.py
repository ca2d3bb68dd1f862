"""The console adapter: chat with the bot in a terminal, one named thread per run.

While a tool runs, a dim line says so. A tool that needs approval is a y/n question on the
same terminal: the answer goes to `Core.decide()` and the resumed answer prints like any other
(or the next question, when it pauses again). The console is the adapter as well as its
outlet: an expiry while the question waits is printed and the question dropped. A question left
unanswered when the console quits stays pending; the next message in that thread cancels it
(the rule on every platform), or it expires. The console cannot ask it again after a restart.
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import sys
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, TextIO

from bot.adapter import (
    AdapterPlugin,
    ApprovalEnding,
    ApprovalRequest,
    CliOption,
    Config,
    Decision,
    IncomingMessage,
    Place,
    Reply,
    ReplyKind,
    Surface,
)

from .text import reconcile

if TYPE_CHECKING:
    # Only a type here: the core imports the Agents SDK, and this module holds the console's
    # plugin object, which every `python -m bot` command loads (`--help` included).
    from bot.adapter import Core

logger = logging.getLogger(__name__)

_ENDINGS = {
    ApprovalEnding.EXPIRED: "(that request expired)",
    ApprovalEnding.CANCELLED: "(cancelled: a new message came in)",
    ApprovalEnding.WITHDRAWN: "(withdrawn: the tool call was not run)",
    ApprovalEnding.INTERRUPTED: "(interrupted: it may or may not have run)",
}

PROMPT = "you> "
BOT_PROMPT = "bot> "
APPROVE_PROMPT = "Approve? [y/n] "
YES = frozenset({"y", "yes"})
SURFACE = Surface(max_chars=None, command_prefix="/")
DIM, RESET = "\x1b[2m", "\x1b[0m"


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
        self._ended = False

    @property
    def ended(self) -> bool:
        """Whether the end of input has been read."""
        return self._ended

    async def readline(self) -> str | None:
        """The next line without its newline, or None at (and after) the end of input.

        Safe to cancel: a line that arrives after the caller gave up waits for the next call.
        """
        if self._ended:  # the pump sends its None once; every later caller must see it too
            return None
        if self._thread is None:
            loop = asyncio.get_running_loop()
            self._thread = threading.Thread(
                target=self._pump, args=(loop,), name="console-stdin", daemon=True
            )
            self._thread.start()
        line = await self._queue.get()
        self._ended = line is None
        return line

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
        self._dim = _is_terminal(stdout)
        self._idle = False
        """At the `you>` prompt, so a line printed by the outlet must redraw it."""
        self._asking: dict[str, asyncio.Event] = {}
        """Approval prompts waiting for y/n, by id, set when the core settles one first."""

    @property
    def thread_key(self) -> str:
        return f"console:{self._thread}"

    @property
    def user_id(self) -> str:
        return f"console:{self._user}"

    async def run(self) -> None:
        self._core.attach_outlet(self.name, self)
        self._write(
            f"Chatting in thread {self._thread!r} as {self._user}. "
            "Type /help for commands, Ctrl-D to quit.\n"
        )
        waiting = await self._core.pending_approval(self._message(""))
        if waiting is not None:
            # Asked before the last quit and still unanswered: ask again.
            await self._show(waiting, self._sink())
        while not self._closed.is_set() and not self._reader.ended:
            self._write(PROMPT)
            self._idle = True
            try:
                line = await self._reader.readline()
            finally:
                self._idle = False
            if line is None:
                self._write("\n")
                return
            if not line.strip():
                continue
            await self._answer(line)

    async def close(self, grace: float = 0.0) -> None:
        # A turn under way is the core's to finish; the prompt loop just stops asking.
        self._closed.set()

    async def problem(self) -> str | None:
        """The terminal is always there."""
        return None

    async def _answer(self, line: str) -> None:
        shown = self._sink()
        await self._show(await self._core.handle(self._message(line), SURFACE, sink=shown), shown)

    def _message(self, text: str) -> IncomingMessage:
        return IncomingMessage(
            platform="console",
            thread_key=self.thread_key,
            author_id=self.user_id,
            author_name=self._user,
            text=text,
            # A profiles file's console rules match the thread's name; whoever is at the
            # terminal runs the bot, so they may switch its profile.
            place=Place(channel=self._thread),
            author_admin=True,
        )

    async def _show(self, first: Reply, shown: _Shown) -> None:
        """Show a reply; for an approval, ask y/n and show what that leads to."""
        reply: Reply | None = first
        # Each approval may resume into another one, so this loops until an answer or a stop.
        while reply is not None and reply.shown:
            self._finish(reply, shown.text)
            if reply.kind is not ReplyKind.APPROVAL or reply.approval is None:
                return
            shown = self._sink()
            reply = await self._ask(reply.approval, shown)

    async def _ask(self, request: ApprovalRequest, shown: _Shown) -> Reply | None:
        """Ask y/n and hand the answer to the core; None when the question went away."""
        # Registered before the core learns the address, so a settlement cannot slip between.
        settled = self._asking.setdefault(request.approval_id, asyncio.Event())
        try:
            try:
                await self._core.approval_posted(request.approval_id, self.thread_key)
            except Exception:
                # Only the outlet needs the address; the question can still be answered here.
                logger.warning(
                    "Could not record approval prompt %s", request.approval_id, exc_info=True
                )
            while not settled.is_set():
                self._write(APPROVE_PROMPT)
                line = await _first(self._reader.readline(), settled)
                if settled.is_set():
                    break
                if line is None:
                    self._write("\n")  # end of input: it stays pending until it expires
                    return None
                decision = Decision.APPROVE if line.strip().lower() in YES else Decision.REJECT
                reply = await self._core.decide(
                    request.approval_id,
                    decision,
                    user_id=self.user_id,
                    user_name=self._user,
                    allowed=True,  # whoever is at this terminal is the console's only user
                    surface=SURFACE,
                    sink=shown,
                )
                if reply.kind is not ReplyKind.ERROR:
                    return reply
                # The call is still pending after a failed resume: say so and ask again.
                self._finish(reply, shown.text)
                shown.reset()
        finally:
            self._asking.pop(request.approval_id, None)
        return None  # settled by the core, which the outlet has printed

    async def settled(
        self, request: ApprovalRequest, address: str, outcome: ApprovalEnding, reply: Reply | None
    ) -> None:
        """The outlet: print how an approval asked in this thread ended without a y/n."""
        if address != self.thread_key:
            # Asked in another thread by an earlier run: not this terminal's to show; the
            # outcome is in that thread's memory.
            return
        lines = [_ENDINGS[outcome]]
        if reply is not None and reply.shown:
            lines.append(f"{BOT_PROMPT}{_label(reply)}{reply.text}")
        asking = self._asking.get(request.approval_id)
        # A prompt waiting for input keeps its line, and `you>` is drawn again after; mid-turn
        # (a new message cancelled it) the person's Enter has already ended the line.
        after_prompt = asking is not None or self._idle
        self._write(("\n" if after_prompt else "") + "\n".join(lines) + "\n")
        if asking is not None:
            asking.set()  # `_ask` drops its question and the loop draws `you>`
        elif self._idle:
            self._write(PROMPT)

    def _finish(self, reply: Reply, streamed: str) -> None:
        grows = reply.kind in (ReplyKind.ANSWER, ReplyKind.APPROVAL)
        rest = reconcile(streamed, reply.text) if grows else None
        if not streamed:
            self._write(f"{BOT_PROMPT}{_label(reply)}{reply.text}\n")
        elif rest is not None:
            self._write(rest + "\n")
        else:
            # The stream broke off or the final text differs: show the outcome in full.
            self._write(f"\n{BOT_PROMPT}{_label(reply)}{reply.text}\n")

    def _sink(self) -> _Shown:
        return _Shown(self._write, dim=self._dim)

    def _write(self, text: str) -> None:
        self._out.write(text)
        self._out.flush()


class _Shown:
    """Writes the answer to the terminal as it streams.

    `text` is what was streamed since the last tool line, which is what the final answer
    (the model's last message) is reconciled with.
    """

    def __init__(self, write: Callable[[str], None], *, dim: bool = False) -> None:
        self._write = write
        self._dim = dim
        self.text = ""

    def reset(self) -> None:
        self.text = ""

    async def started(self) -> None:
        pass  # the prompt itself says the bot has the turn

    async def delta(self, text: str) -> None:
        if not self.text:
            self._write(BOT_PROMPT)
        self.text += text
        self._write(text)

    async def tool(self, name: str) -> None:
        line = f"(using {name}…)"
        if self.text:
            self._write("\n")  # the answer so far keeps its own line
        self._write(f"{DIM}{line}{RESET}\n" if self._dim else f"{line}\n")
        self.text = ""


async def _first(line: Awaitable[str | None], settled: asyncio.Event) -> str | None:
    """The line, unless `settled` is set first (then None, and the line stays unread)."""
    reading = asyncio.ensure_future(line)
    waiting = asyncio.ensure_future(settled.wait())
    try:
        await asyncio.wait({reading, waiting}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        reading.cancel()  # a no-op once it has its line
        waiting.cancel()
        # `asyncio.wait` reports the tasks' own cancellation without raising it, so only a
        # cancellation of this caller propagates from here.
        await asyncio.wait({reading, waiting})
    if reading.cancelled():
        return None
    return reading.result()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or minimal stream
        return False


def _label(reply: Reply) -> str:
    return "(!) " if reply.kind is ReplyKind.ERROR else ""


def create(core: Core, config: Config, options: Mapping[str, str]) -> ConsoleAdapter:
    """Build the console adapter for `python -m bot console`."""
    user = options.get("name") or _login_name()
    return ConsoleAdapter(core, thread=options.get("thread") or "default", user_name=user)


def stored_user_id(typed: str) -> str:
    """The author ID the console stores for the person `typed` names, as `forget-user
    console NAME` is given it: the `--name` (or login name), prefixed as `user_id` does, or
    the stored ID itself."""
    return typed if typed.startswith("console:") else f"console:{typed}"


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
    user_id=stored_user_id,
)
