"""The core: one incoming message in, one reply out, memory kept per thread.

Adapters call `Core.handle()`; everything platform-specific stays on their side. A message is
either a command (run against the store, never shown to the model) or a turn: the agent runs
with the thread's memory, text deltas stream to the adapter as they arrive, and the finished
turn is stored in one transaction before the reply is returned.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, TypeVar

from .claiming import claim
from .commands import CommandAnswer, CommandContext, CommandRegistry, Invocation
from .errors import error_kind, friendly_error, is_routine, log_failed_turn
from .guards import Admission, RateLimiter
from .locks import ThreadHolds
from .messages import (
    ApprovalOutlet,
    Decision,
    IncomingMessage,
    Reply,
    ReplyKind,
    ReplySink,
    Surface,
)
from .ops.logs import log_context
from .ops.metrics import NO_OBSERVER, Observer, PlatformApi, TurnWatch
from .profiles.desk import ProfileDesk
from .profiles.kits import Profile
from .runs.agent_runs import Paused
from .runs.approval_flow import ApprovalFlow
from .runs.approvals import ApprovalDesk
from .runs.sink import guarded
from .storage import Author, Store, ThreadBusyError
from .texts import BUSY, EMPTY_MESSAGE, GENERIC, SHUTTING_DOWN

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class CoreSettings:
    """The knobs the core needs from configuration (defaults live in `Config` alone)."""

    max_concurrency: int
    rate_limit_per_minute: int
    """Turns one person may start per minute across all threads; 0 for no limit."""
    thread_wait: float
    """Seconds a message waits for its thread's earlier turn before the bot says it is busy."""


PLAIN: Final = Surface()
REPEAT: Final = Reply("", ReplyKind.REPEAT)


class Core:
    """Handles messages for every platform, with one turn at a time per thread."""

    def __init__(
        self,
        *,
        store: Store,
        profiles: ProfileDesk,
        desk: ApprovalDesk,
        settings: CoreSettings,
        observer: Observer = NO_OBSERVER,
    ) -> None:
        """
        Args:
            store: Every thread's memory.
            profiles: The agents, one per profile, and what picks one per message.
            desk: Makes and checks approval records (every profile's runs share it).
            settings: The core's own knobs.
            observer: Told of turns, refusals and waits (metrics).
        """
        self._store = store
        self._observer = observer
        self._profiles = profiles
        self._settings = settings
        self._holds = ThreadHolds(
            store, observer, wait=settings.thread_wait, model_slots=settings.max_concurrency
        )
        self._active: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._admission = Admission(RateLimiter(settings.rate_limit_per_minute))
        self._desk = desk
        # Any profile's: a thread switched to a profile without such tools may still have
        # a turn from before waiting for approval, which a new message must cancel.
        self._may_pause = any(profile.may_pause for profile in profiles)
        self._approvals = ApprovalFlow(
            store=store,
            desk=self._desk,
            runs=lambda name: profiles.named(name).runs,
            hold=lambda session_id: self._holds.hold(session_id, model_slot=True),
            observer=observer,
        )

    @property
    def commands(self) -> CommandRegistry:
        """The commands (the same names under every profile), for platform menus."""
        return self._profiles.default.commands

    @property
    def accepting(self) -> bool:
        """Whether new turns are taken (False once a stop has begun)."""
        return not self._closing

    def platform_api(self, platform: str) -> PlatformApi | None:
        """Where an adapter counts its platform's failed and retried API calls; None when
        nobody counts them (no metrics), so the adapter adds no hooks."""
        return self._observer.platform_api(platform)

    async def handle(
        self,
        message: IncomingMessage,
        surface: Surface = PLAIN,
        sink: ReplySink | None = None,
    ) -> Reply:
        """Answer one message; whatever happens, the adapter gets a reply to show.

        Args:
            message: The neutral message from an adapter.
            surface: What the destination can show.
            sink: Told when a model turn starts and given the answer as it streams; never
                called for commands, notices or repeats.

        Returns:
            The final reply. For an answer, the turn is already stored when this returns.
            A failed turn returns an ERROR reply and leaves the thread's memory untouched; a
            redelivered message returns a REPEAT reply, which shows nothing.
        """
        try:
            profile = await self._profiles.resolve(message)
            session_id = message.session_id(profile.memory_scope)
            with log_context(session_id=session_id, platform=message.platform):
                return await self._handle(message, profile, surface, sink)
        except Exception as exc:
            self._observer.refused(message.platform, error_kind(exc))
            if is_routine(exc):  # e.g. the database unreachable while checking for a repeat
                logger.warning("Handling a message in %s failed: %s", message.thread_key, exc)
                return Reply(friendly_error(exc), ReplyKind.ERROR)
            # A bug: the person still gets a friendly line, and the adapter clears whatever
            # "working on it" indicator it shows.
            logger.exception("Handling a message in %s failed", message.thread_key)
            return Reply(GENERIC, ReplyKind.ERROR)

    def already_handled(self, platform: str, message_id: str) -> bool:
        """Whether a message with this ID was taken already (the platform redelivered it).

        Adapters ask this before platform work a repeat would waste (look-ups, indicators);
        `handle()` makes the binding check itself, so asking is optional.
        """
        return self._store.delivered(_message_key(platform, message_id))

    async def _handle(
        self,
        message: IncomingMessage,
        profile: Profile,
        surface: Surface,
        sink: ReplySink | None,
    ) -> Reply:
        # The store owns the decision: in process on SQLite, across workers on PostgreSQL.
        if message.message_id is not None:
            key = _message_key(message.platform, message.message_id)
            if not await claim(self._store, key, in_flight=len(self._active)):
                # Routine: Slack sends a mention twice (`app_mention` and `message`), and
                # another worker may have taken it. Adapters that can tell a real redelivery
                # log it.
                logger.debug("Skipped message %s: it was taken already", message.message_id)
                return REPEAT
        text = _clean(message.text)
        invocation = profile.commands.parse(text, bare=message.mentioned)
        if invocation is not None:
            return await self._run_command(message, profile, invocation, surface)
        if not text and not message.attachments:
            notice = EMPTY_MESSAGE.format(prefix=surface.command_prefix)
            return self._refuse(message, "empty", notice)
        if self._closing:
            return self._refuse(message, "shutting_down", SHUTTING_DOWN)
        refusal = await self._admission.refusal(
            message.platform, message.author_id, profile.budget, prefix=surface.command_prefix
        )
        if refusal is not None:
            return self._refuse(message, refusal.outcome, refusal.notice)
        watch = self._observer.turn(message.platform)
        sink = guarded(sink, watch.first_text)
        if sink is not None:
            await sink.started()
        # Its own task, so `drain()` can wait for exactly this turn rather than for whatever
        # adapter task called us (which may live as long as the connection). Cancelling the
        # caller still cancels the turn: awaiting a task propagates cancellation into it.
        return await self._tracked(
            self._run_turn(message, profile, text, sink, watch), f"turn {message.thread_key}"
        )

    def _refuse(self, message: IncomingMessage, outcome: str, notice: str) -> Reply:
        """A notice instead of a turn, counted by why."""
        self._observer.refused(message.platform, outcome)
        return Reply(notice, ReplyKind.NOTICE)

    async def _tracked(self, work: Coroutine[Any, Any, T], name: str) -> T:
        task = asyncio.create_task(work, name=name)
        self._active.add(task)
        task.add_done_callback(self._active.discard)
        return await task

    def attach_outlet(self, platform: str, outlet: ApprovalOutlet) -> None:
        """Where approvals from `platform` that end without a click are shown to have ended."""
        self._desk.attach(platform, outlet)

    async def approval_posted(self, approval_id: str, address: str) -> None:
        """Record where the adapter showed an approval prompt (its own opaque address), so
        the prompt can be updated after an expiry or a cancellation, even after a restart."""
        await self._store.address_approval(approval_id, address)

    async def decide(
        self,
        approval_id: str,
        decision: Decision,
        *,
        user_id: str,
        user_name: str,
        allowed: bool = True,
        surface: Surface = PLAIN,
        sink: ReplySink | None = None,
    ) -> Reply:
        """Approve or reject a paused turn's tool calls, and finish the turn.

        Args:
            approval_id: From `Reply.approval`, carried back by the button.
            decision: What the person clicked.
            user_id: Who clicked.
            user_name: Their display name, for the record.
            allowed: Whether the adapter's own rules let this person use the bot at all
                (allowed users and roles); with `BOT_APPROVERS=allowed` that is what counts.
            surface: What the destination can show.
            sink: Shows the resumed answer as it streams.

        Returns:
            ANSWER once the resumed turn is stored; APPROVAL when it paused again on another
            call; NOTICE, for the clicker only, when they may not decide or it was already
            decided or expired; ERROR when the resumed turn failed (it stays pending).
        """
        if self._closing:
            return Reply(SHUTTING_DOWN, ReplyKind.NOTICE)
        try:
            # Tracked like a turn, so a stop lets a resumed run finish.
            return await self._tracked(
                self._approvals.decide(
                    approval_id,
                    decision,
                    user_id=user_id,
                    user_name=user_name,
                    allowed=allowed,
                    sink=guarded(sink),
                ),
                f"approval {approval_id}",
            )
        except Exception as exc:
            logger.log(
                logging.WARNING if is_routine(exc) else logging.ERROR,
                "Deciding approval %s failed",
                approval_id,
                exc_info=None if is_routine(exc) else exc,
            )
            return Reply(friendly_error(exc), ReplyKind.ERROR)

    async def approval_unshown(self, approval_id: str) -> Reply | None:
        """The adapter could not show the prompt of `Reply.approval` (the platform refused it
        after its own retries): end the turn, its calls stored as not run. Returns the plain
        line to show instead; None when the approval was settled meanwhile."""
        return await self._tracked(self._approvals.unshown(approval_id), f"unshown {approval_id}")

    async def pending_approval(self, message: IncomingMessage) -> Reply | None:
        """The prompt of the approval waiting in the memory `message` would join, to show
        again (a console that restarted mid-question); None when nothing waits. Its text is
        not read. Buttons on a platform need this not: they keep working across restarts."""
        return await self._approvals.pending(await self._session_id(message))

    async def expire_approvals(self, now: datetime | None = None) -> int:
        """Reject every approval past its deadline and tell the model, and settle approved
        calls whose process stopped while they ran; returns how many.

        The app calls this periodically; tests call it with `now` instead of sleeping.
        """
        if self._closing:
            return 0
        return await self._tracked(self._approvals.expire(now), "expiring approvals")

    async def remembers(self, message: IncomingMessage) -> bool:
        """Whether the memory `message` would join holds anything, so adapters can follow a
        thread after a restart. Its text is not read. Under a wider `BOT_MEMORY_SCOPE` that
        memory is the channel's or the person's, not the thread's own."""
        return await self._store.has_items(await self._session_id(message))

    async def run_command(
        self, message: IncomingMessage, name: str, args: str = "", surface: Surface = PLAIN
    ) -> Reply:
        """Run a command by name, for platforms that deliver commands as structured events.

        `message` says where and by whom it was used (its text is not read).
        """
        profile = await self._profiles.resolve(message)
        invocation = Invocation(name, args, profile.commands.get(name))
        session_id = message.session_id(profile.memory_scope)
        with log_context(session_id=session_id, platform=message.platform):
            return await self._run_command(message, profile, invocation, surface)

    async def _session_id(self, message: IncomingMessage) -> str:
        """The memory `message` joins, under the scope of the profile answering it."""
        profile = await self._profiles.resolve(message)
        return message.session_id(profile.memory_scope)

    async def idle(self) -> None:
        """Wait until no background work (summaries, prompt updates) is under way, for tests
        and benchmarks."""
        for profile in self._profiles:
            await profile.summaries.settle()
        await self._approvals.settled()

    async def drain(self, grace: float) -> None:
        """Stop taking new turns and give running ones `grace` seconds to finish.

        Turns still running after that are cancelled, which stores nothing of them.
        """
        self._closing = True
        for profile in self._profiles:
            await profile.summaries.close()
        pending = set(self._active)
        if not pending:
            return
        logger.info("Waiting up to %.0fs for %d turn(s) to finish", grace, len(pending))
        _, still_running = await asyncio.wait(pending, timeout=grace)
        for task in still_running:
            task.cancel()
        if still_running:
            logger.warning("Cancelled %d unfinished turn(s); none was stored", len(still_running))
            await asyncio.wait(still_running)

    async def _run_command(
        self,
        message: IncomingMessage,
        profile: Profile,
        invocation: Invocation,
        surface: Surface,
    ) -> Reply:
        self._observer.command(invocation.command.name if invocation.command else "unknown")
        problem = profile.commands.problem(invocation, surface.command_prefix)
        if problem is not None or invocation.command is None:
            return Reply(problem or "", ReplyKind.COMMAND)
        session_id = message.session_id(profile.memory_scope)
        ctx = CommandContext(
            session_id=session_id,
            args=invocation.args,
            max_chars=surface.max_chars,
            prefix=surface.command_prefix,
            platform=message.platform,
            user_id=message.author_id,
            message=message,
        )
        try:
            async with self._holds.hold(session_id):
                answer = await invocation.command.run(ctx)
        except ThreadBusyError:
            return Reply(BUSY, ReplyKind.NOTICE)
        except Exception as exc:
            logger.exception("Command %s failed in %s", invocation.name, session_id)
            return Reply(friendly_error(exc), ReplyKind.ERROR)
        if isinstance(answer, CommandAnswer):
            if answer.withdrawn is not None:
                self._approvals.withdrawn(answer.withdrawn)
            return Reply(answer.text, ReplyKind.COMMAND, file=answer.file)
        return Reply(answer, ReplyKind.COMMAND)

    async def _run_turn(
        self,
        message: IncomingMessage,
        profile: Profile,
        text: str,
        sink: ReplySink | None,
        watch: TurnWatch,
    ) -> Reply:
        # What a turn cancelled by a stop shows (the adapter says the bot is restarting).
        outcome = "shutting_down"
        try:
            reply, outcome = await self._turn(message, profile, text, sink)
            return reply
        finally:
            watch.finished(outcome)

    async def _turn(
        self, message: IncomingMessage, profile: Profile, text: str, sink: ReplySink | None
    ) -> tuple[Reply, str]:
        """Run a turn; its reply, and how it ended for the metrics."""
        session_id = message.session_id(profile.memory_scope)
        author = Author(message.author_id, message.author_name)
        try:
            # Downloads happen before the thread is held: a slow file never blocks the thread.
            files = await profile.attachments.read(message.attachments, model=profile.model)
            if files.text:
                text = f"{text}\n\n{files.text}".strip()
            async with self._holds.hold(session_id, model_slot=True):
                if self._may_pause:
                    await self._approvals.cancel_pending(session_id, author)
                outcome, plan = await profile.attempts.answer(
                    session_id, author, text, files, sink=sink, platform=message.platform
                )
        except ThreadBusyError:
            logger.info("Thread %s stayed busy; told the person to try again", session_id)
            return Reply(BUSY, ReplyKind.NOTICE), "busy"
        except Exception as exc:
            return Reply(log_failed_turn(logger, session_id, exc), ReplyKind.ERROR), error_kind(exc)
        if plan.needs_summary:
            profile.summaries.request(session_id)
        if isinstance(outcome, Paused):
            return self._approvals.prompt(outcome), "approval"
        notice = ""
        if plan.kept_chars is not None:
            notice = f"\n\n(Your message was cut to its first {plan.kept_chars:,} characters.)"
        return Reply(outcome + notice, ReplyKind.ANSWER), "answered"


def _clean(text: str) -> str:
    """Trim, and replace what cannot be stored as UTF-8 (lone surrogates)."""
    return text.encode("utf-8", "replace").decode("utf-8").strip()


def _message_key(platform: str, message_id: str) -> str:
    return f"{platform}:{message_id}"
