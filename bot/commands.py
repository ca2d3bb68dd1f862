"""The command registry shared by every adapter: forget, undo, history, help.

Commands act on the thread they are used in and never reach the model. Adapters may surface
them natively (Discord slash commands, Slack shortcuts) using the names, descriptions and
argument specs here, or just pass the typed text (`/forget`, `!forget`) to the core.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol, cast

from .memory.planner import MemoryPlanner
from .memory.transcript import quote_block, render_history, render_markdown, summarize_removed
from .messages import IncomingMessage, ReplyFile
from .ops.budget import DailyBudget, start_of_day, start_of_month
from .storage import Item, PendingApproval, Store, StoredItem

_COMMAND = re.compile(r"^[/!]([A-Za-z][\w-]*)(?:\s+(.*))?$", re.DOTALL)
_BARE_COMMAND = re.compile(r"^([A-Za-z][\w-]*)(?:\s+([\w.-]+))?$")
HISTORY_FILE = "history.md"
"""The name `/history` gives the whole thread's transcript when it sends one."""
HISTORY_TITLE = "What I remember of this thread"
"""The transcript's heading, and the file's caption."""
WITHDRAWN = "The tool call waiting for approval was not run."
CUT_OFF = "Its approved tool call was running when I stopped, so it may or may not have completed."


def _withdrawn_line(approval: PendingApproval) -> str:
    """What became of a withdrawn turn's call: never run, or cut off by a stop while it ran
    (the command holds the thread, so a call marked running is not running now)."""
    return WITHDRAWN if approval.running_since is None else CUT_OFF


def waiting_items(approval: PendingApproval) -> list[StoredItem]:
    """A paused turn's items (kept with its approval, not in the thread) as if stored."""
    items = cast("list[Item]", json.loads(approval.items))
    now = datetime.now(UTC)
    return [StoredItem(0, item, approval.requester, now) for item in items]


@dataclass(frozen=True)
class CommandArgument:
    """The one optional argument a command takes, described for platform UIs."""

    name: str
    description: str
    minimum: int = 1
    """For a `number`: the least value taken."""
    kind: Literal["number", "word"] = "number"
    """A whole number (`/history 2`), or one word of text (`/profile support`)."""


@dataclass(frozen=True)
class CommandContext:
    """What a command knows about where it was used."""

    session_id: str
    args: str = ""
    max_chars: int | None = None
    """The longest answer the platform can show in one message; None for no limit."""
    prefix: str = "/"
    """How commands are typed on this platform, for help texts."""
    platform: str = ""
    """The platform it was used on, e.g. ``"discord"``."""
    user_id: str = ""
    """Who used it (their platform ID)."""
    message: IncomingMessage | None = None
    """Where and by whom it was used, as the adapter described it (its text is not read)."""


@dataclass(frozen=True)
class CommandAnswer:
    """A command's answer with a file beside its text, for platforms that can send one."""

    text: str
    file: ReplyFile | None = None
    withdrawn: PendingApproval | None = None
    """A paused turn the command took back, whose prompt the core then shows as ended."""


class Command(Protocol):
    """A command: a name people type and something it does to one thread."""

    name: str
    description: str
    argument: CommandArgument | None

    async def run(self, ctx: CommandContext) -> str | CommandAnswer:
        """Do it and return the answer for the person who asked."""
        ...


@dataclass(frozen=True)
class Invocation:
    """A message recognised as a command; `command` is None for an unknown name."""

    name: str
    args: str
    command: Command | None


class CommandRegistry:
    """The commands by name, and the parser that spots them in a message."""

    def __init__(self) -> None:
        self._commands: dict[str, Command] = {}

    def register(self, command: Command) -> None:
        self._commands[command.name] = command

    def get(self, name: str) -> Command | None:
        return self._commands.get(name.lower())

    def __iter__(self) -> Iterator[Command]:
        return iter(self._commands.values())

    def parse(self, text: str, *, bare: bool = False) -> Invocation | None:
        """Recognise `/name args` or `!name args`; with `bare`, also `name [number]`.

        Known names are always commands. An unknown name counts as a (mistyped) command only
        when it stands alone, like `/forgt`; `/usr/bin is...` or `!wow that's neat` is chat.
        `bare` is for a message said to the bot by name (`@bot forget`): there only a known
        name alone, plus a number for commands that take one, counts, so "help me with my
        essay" stays a question.
        """
        stripped = text.strip()
        match = _COMMAND.match(stripped)
        if match is None:
            return self._parse_bare(stripped) if bare else None
        name, args = match.group(1).lower(), (match.group(2) or "").strip()
        command = self.get(name)
        if command is None and (args or stripped.startswith("!")):
            return None
        return Invocation(name, args, command)

    def _parse_bare(self, text: str) -> Invocation | None:
        match = _BARE_COMMAND.match(text)
        if match is None:
            return None
        command = self.get(match.group(1))
        arg = match.group(2) or ""
        if command is None or (arg and not _fits(command.argument, arg)):
            return None
        return Invocation(command.name, arg, command)

    def problem(self, invocation: Invocation, prefix: str = "/") -> str | None:
        """A short, friendly explanation when an invocation cannot run as typed."""
        command = invocation.command
        if command is None:
            return f"I don't know {prefix}{invocation.name}. Try {prefix}help for the list."
        fits = not invocation.args or _fits(command.argument, invocation.args)
        return None if fits else f"Usage: {self.usage(command, prefix)}"

    def usage(self, command: Command, prefix: str = "/") -> str:
        arg = f" [{command.argument.name}]" if command.argument else ""
        return f"{prefix}{command.name}{arg}"


def _fits(argument: CommandArgument | None, args: str) -> bool:
    """Whether `args` is a value the command's argument takes."""
    if argument is None:
        return False
    if argument.kind == "word":
        return len(args.split()) == 1
    return args.isdigit() and int(args) >= argument.minimum


class ForgetCommand:
    name = "forget"
    description = "Forget this thread's conversation and start fresh."
    argument: CommandArgument | None = None

    def __init__(self, store: Store) -> None:
        self._store = store

    async def run(self, ctx: CommandContext) -> CommandAnswer:
        withdrawn = await self._store.withdraw_approval(ctx.session_id)
        result = await self._store.clear(ctx.session_id)
        waiting = f" {_withdrawn_line(withdrawn)}" if withdrawn else ""
        if result.items == 0:
            text = "There is nothing to forget: this thread has no memory yet."
            return CommandAnswer(text + waiting, withdrawn=withdrawn)
        extra = result.items - result.messages
        steps = f" (and {extra} tool step{'s' * (extra != 1)})" if extra else ""
        noun = "message" if result.messages == 1 else "messages"
        text = f"Done: I forgot {result.messages} {noun}{steps} from this thread."
        return CommandAnswer(text + waiting, withdrawn=withdrawn)


class UndoCommand:
    name = "undo"
    description = "Remove the last exchange (your last message and my answer) from memory."
    argument: CommandArgument | None = None

    def __init__(self, store: Store, bot_name: str) -> None:
        self._store = store
        self._bot_name = bot_name

    async def run(self, ctx: CommandContext) -> str | CommandAnswer:
        # A turn waiting for approval is the last exchange, though none of it is stored yet:
        # taking it back is what the person means, and leaves the one before it alone.
        withdrawn = await self._store.withdraw_approval(ctx.session_id)
        if withdrawn is not None:
            waiting = summarize_removed(waiting_items(withdrawn), self._bot_name)
            line = _withdrawn_line(withdrawn)
            return CommandAnswer(f"Undone: I removed {waiting}. {line}", withdrawn=withdrawn)
        removed = await self._store.undo_last_exchange(ctx.session_id)
        if not removed:
            return "There is nothing to undo: this thread has no messages in memory."
        return f"Undone: I removed {summarize_removed(removed, self._bot_name)}."


class HistoryCommand:
    name = "history"
    description = "Show what I remember of this thread, newest last."
    argument: CommandArgument | None = CommandArgument(
        "page", "Which page, counting back from the newest (1 = newest)"
    )

    def __init__(self, store: Store, bot_name: str, *, page_size: int = 20) -> None:
        self._store = store
        self._bot_name = bot_name
        self._page_size = page_size

    async def run(self, ctx: CommandContext) -> str | CommandAnswer:
        """The page asked for; with the whole thread as a Markdown file beside it when one
        message cannot show it all (more than one page, or the page had to be clipped)."""
        page = int(ctx.args) if ctx.args else 1
        total = await self._store.count_items(ctx.session_id)
        if total == 0:
            return "I have no memory of this thread yet."
        pages = math.ceil(total / self._page_size)
        if page > pages:
            # Showing the last page instead would pass for the answer: "nothing older".
            noun = "page" if pages == 1 else "pages"
            return f"There is no page {page}: this thread's history has {pages} {noun}."
        entries = await self._store.history(
            ctx.session_id, limit=self._page_size, offset=(page - 1) * self._page_size
        )
        header = f"What I remember of this thread (page {page} of {pages}, newest last):"
        footer = f"Older: {ctx.prefix}history {page + 1}" if page < pages else ""
        layout = functools.partial(
            render_history, entries, bot_name=self._bot_name, header=header, footer=footer
        )
        text = layout(max_chars=ctx.max_chars)
        if pages == 1 and (ctx.max_chars is None or text == layout(max_chars=None)):
            return text
        # One read of every item, held in memory while the file is written: a command people
        # use now and then can afford it, and the file is all of it anyway.
        thread = entries if pages == 1 else await self._store.history(ctx.session_id, limit=total)
        markdown = render_markdown(HISTORY_TITLE, thread, bot_name=self._bot_name)
        return CommandAnswer(text, ReplyFile(HISTORY_FILE, markdown, title=HISTORY_TITLE))


class MemoryCommand:
    name = "memory"
    description = "Show what I carry of this thread beyond its newest messages (the summary)."
    argument: CommandArgument | None = None

    def __init__(self, planner: MemoryPlanner) -> None:
        self._planner = planner

    async def run(self, ctx: CommandContext) -> str:
        view = await self._planner.view(ctx.session_id)
        if view.summary is None and view.verbatim_messages == 0:
            return "I have no memory of this thread yet."
        if view.summary is None:
            return (
                f"I read all {_messages(view.verbatim_messages)} of this thread word for word "
                f"(about {view.verbatim_tokens:,} tokens of my {view.budget_tokens:,}-token "
                "budget). When it outgrows that, I'll keep a summary of the older part, "
                f"and {ctx.prefix}memory will show it."
            )
        head = (
            f"I read the newest {_messages(view.verbatim_messages)} word for word. The "
            f"{_messages(view.summarized_messages)} before them (up to "
            f"{view.summary.created_at:%Y-%m-%d %H:%M} UTC) I carry as this summary:"
        )
        foot = "I can still search the whole thread for exact words."
        room = None if ctx.max_chars is None else ctx.max_chars - len(head) - len(foot) - 4
        return f"{head}\n{quote_block(view.summary.text, room)}\n{foot}"


class UsageCommand:
    name = "usage"
    description = "Show the tokens this thread has used, and yours today and this month."
    argument: CommandArgument | None = None

    def __init__(self, store: Store, budget: DailyBudget) -> None:
        self._store = store
        self._budget = budget

    async def run(self, ctx: CommandContext) -> str:
        thread = await self._store.thread_usage(ctx.session_id)
        now = self._budget.now()
        # Read afresh, not from the budget's running tally, which may lag other workers.
        today = (
            await self._store.person_usage(ctx.platform, ctx.user_id, since=start_of_day(now))
        ).tokens
        month = await self._store.person_usage(ctx.platform, ctx.user_id, since=start_of_month(now))
        if thread.calls:
            lines = [
                f"This thread: {thread.tokens:,} tokens over {_calls(thread.calls)} "
                f"({thread.input_tokens:,} in, {thread.cached_tokens:,} of them cached; "
                f"{thread.output_tokens:,} out)."
            ]
            by_profile = await self._store.usage_report("profile", session_id=ctx.session_id)
            if any(line.key for line in by_profile):
                # Only once a profile other than the default ran here: otherwise it is noise.
                lines.append(
                    "By profile: "
                    + ", ".join(
                        f"{line.key or 'default'} {line.totals.tokens:,}" for line in by_profile
                    )
                    + "."
                )
        else:
            lines = ["This thread: no tokens used yet."]
        lines.append(
            f"You, across every thread here: {today:,} tokens today, "
            f"{month.tokens:,} this month (UTC)."
        )
        limit = self._budget.limit
        if limit is not None:
            # The turn that crosses the budget is finished, not cut off (and other workers'
            # turns are seen late), so more than the limit can be spent: say how much.
            used = f"Your daily budget: {today:,} of {limit:,} tokens used"
            state = (
                f" (over by {today - limit:,})" if today > limit else f", {limit - today:,} left"
            )
            lines.append(f"{used}{state}; it resets at 00:00 UTC.")
        return "\n".join(lines)


class HelpCommand:
    name = "help"
    description = "List the commands."
    argument: CommandArgument | None = None

    def __init__(self, registry: CommandRegistry) -> None:
        self._registry = registry

    async def run(self, ctx: CommandContext) -> str:
        lines = [
            "I remember each thread separately. Talk to me normally, or use:",
            *(f"• {self._registry.usage(c, ctx.prefix)}: {c.description}" for c in self._registry),
        ]
        return "\n".join(lines)


def default_commands(
    store: Store, planner: MemoryPlanner, bot_name: str, budget: DailyBudget | None = None
) -> CommandRegistry:
    """The registry with the standard commands; `/usage` counts against `budget` (by default
    one without a limit)."""
    registry = CommandRegistry()
    registry.register(ForgetCommand(store))
    registry.register(UndoCommand(store, bot_name))
    registry.register(HistoryCommand(store, bot_name))
    registry.register(MemoryCommand(planner))
    registry.register(UsageCommand(store, budget or DailyBudget(store, None)))
    registry.register(HelpCommand(registry))
    return registry


def _calls(count: int) -> str:
    return f"{count} model call{'s' * (count != 1)}"


def _messages(count: int) -> str:
    return f"{count} message{'s' * (count != 1)}"
