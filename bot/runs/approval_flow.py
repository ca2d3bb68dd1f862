"""What happens to a paused turn: a click, a new message in its thread, or its deadline.

The rules themselves (and why) are in `approvals`; this runs them against the store and the
agent, each under the thread's hold so a turn and a decision never interleave, on one worker or
several.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import cast

from ..errors import error_kind, log_failed_turn
from ..messages import ApprovalEnding, ApprovalOutlet, Decision, Reply, ReplyKind, ReplySink
from ..ops.metrics import NO_OBSERVER, Observer
from ..storage import Author, Item, PendingApproval, Store, ThreadBusyError
from ..texts import BUSY
from .agent_runs import AgentRuns, Paused, RunOutcome, ToolRanError
from .approvals import (
    ALREADY_DECIDED,
    CANCELLED,
    INTERRUPTED,
    INTERRUPTED_OUTPUT,
    REJECTED,
    UNSHOWN,
    UNSHOWN_OUTPUT,
    ApprovalDesk,
    not_run_outputs,
    prompt_text,
)
from .sink import guarded

logger = logging.getLogger(__name__)

TOOL_RAN = "(The tool did run; its result is kept in this thread, so just ask again.)"

Hold = Callable[[str], AbstractAsyncContextManager[None]]
"""Holds a thread, with a model slot, for as long as a turn may wait (the core's `_hold`)."""
RunsFor = Callable[[str | None], AgentRuns]
"""The runs of the profile a paused turn started under (its agent's tools and model), by the
name its record keeps; None and names no longer in the profiles file give `default`'s."""


class ApprovalFlow:
    """Decides, cancels and expires paused turns."""

    def __init__(
        self,
        *,
        store: Store,
        desk: ApprovalDesk,
        runs: RunsFor,
        hold: Hold,
        observer: Observer = NO_OBSERVER,
    ) -> None:
        self._store = store
        self._desk = desk
        self._runs = runs
        self._hold = hold
        self._observer = observer
        self._running: set[str] = set()  # approvals whose calls this process is running
        self._notices: set[asyncio.Task[None]] = set()

    def prompt(self, paused: Paused) -> Reply:
        """The reply that shows a paused run's approval prompt."""
        text = prompt_text(paused.request, before=paused.before, wait=self._desk.span())
        return Reply(text, ReplyKind.APPROVAL, approval=paused.request)

    async def pending(self, session_id: str) -> Reply | None:
        """The thread's waiting approval as a prompt, if there is one; or, for an approved
        call whose process died while it ran, the line that says so (never the prompt again)."""
        record = await self._store.approval_in(session_id)
        if record is None:
            return None
        if record.running_since is None:
            return self.prompt(Paused(self._desk.request(record), ""))
        if record.approval_id in self._running:
            return None
        try:
            async with self._hold(session_id):
                current = await self._store.approval(record.approval_id)
                if current is None or current.running_since is None:
                    return None  # told by the sweep meanwhile
                reply = await self._interrupted(current)
        except ThreadBusyError:
            return None  # running on another worker
        return reply  # shown where the prompt would have been, so no outlet is told

    async def settled(self) -> None:
        """Wait for prompt updates under way (tests)."""
        while self._notices:
            await asyncio.gather(*self._notices, return_exceptions=True)

    async def decide(
        self,
        approval_id: str,
        decision: Decision,
        *,
        user_id: str,
        user_name: str,
        allowed: bool,
        sink: ReplySink | None,
    ) -> Reply:
        record = await self._store.approval(approval_id)
        if record is None:
            return Reply(ALREADY_DECIDED, ReplyKind.NOTICE)
        refusal = self._desk.refusal(record, user_id, allowed)
        if refusal is not None:
            return Reply(refusal, ReplyKind.NOTICE)
        if record.running_since is None and record.expires_at <= datetime.now(UTC):
            return Reply(ALREADY_DECIDED, ReplyKind.NOTICE)
        if sink is not None:
            await sink.started()
        reason = None if decision is Decision.APPROVE else REJECTED.format(name=user_name)
        try:
            async with self._hold(record.session_id):
                # Read again under the hold: another click, or another worker, may have won.
                current = await self._store.approval(approval_id)
                if current is None:
                    return Reply(ALREADY_DECIDED, ReplyKind.NOTICE)
                if current.running_since is not None:
                    # Approved before, and the process running it died inside the call.
                    reply = await self._interrupted(current)
                    self._tell(current, ApprovalEnding.INTERRUPTED, None)
                    return reply
                outcome = await self._approved_or_rejected(current, reason, sink)
        except ThreadBusyError:
            self._observer.refused(record.platform, "busy")
            return Reply(BUSY, ReplyKind.NOTICE)
        except ToolRanError as exc:
            # Settled: the prompt can show the decision; the person learns the answer failed.
            line = log_failed_turn(logger, record.session_id, exc.cause)
            return Reply(f"{line} {TOOL_RAN}", ReplyKind.ANSWER)
        except Exception as exc:
            return Reply(log_failed_turn(logger, record.session_id, exc), ReplyKind.ERROR)
        logger.info("Approval %s %sd by %s", approval_id, decision.value, user_id)
        return (
            self.prompt(outcome)
            if isinstance(outcome, Paused)
            else Reply(outcome, ReplyKind.ANSWER)
        )

    async def _approved_or_rejected(
        self, record: PendingApproval, reason: str | None, sink: ReplySink | None
    ) -> RunOutcome:
        """Resume a decided turn. An approved call is marked running first, durably: if this
        process dies inside it, the next start says it may have run rather than ask again,
        since a second "yes" would run it twice."""
        if reason is not None:
            return await self._resume(record, reason, sink)
        await self._store.approval_running(record.approval_id, datetime.now(UTC))
        self._running.add(record.approval_id)
        try:
            return await self._resume(record, None, sink)
        except ToolRanError:
            raise  # settled with what the tools returned
        except Exception:
            # Nothing ran (see `AgentRuns.resume`): the click can be repeated.
            try:
                await self._store.approval_running(record.approval_id, None)
            except Exception as exc:
                logger.warning("Could not mark approval %s as waiting: %s", record.approval_id, exc)
            raise
        finally:
            self._running.discard(record.approval_id)

    async def _interrupted(self, record: PendingApproval) -> Reply:
        """Settle an approved call whose process died while it ran: the model and the person
        are told it may or may not have completed. The caller holds the thread."""
        await self._store_not_run(record, INTERRUPTED_OUTPUT)
        names = ", ".join(dict.fromkeys(call.name for call in self._desk.request(record).calls))
        logger.warning(
            "Approval %s in %s was running when its process stopped; told the person",
            record.approval_id,
            record.session_id,
        )
        return Reply(INTERRUPTED.format(tools=names), ReplyKind.ANSWER)

    async def _resume(
        self, record: PendingApproval, reason: str | None, sink: ReplySink | None
    ) -> RunOutcome:
        """Resume a decided turn, counted as a turn of its own (the click started it)."""
        watch = self._observer.turn(record.platform)
        ending = "shutting_down"  # what a run cancelled by a stop counts as
        try:
            outcome = await self._runs(record.profile).resume(
                record, reason, guarded(sink, watch.first_text)
            )
            ending = "approval" if isinstance(outcome, Paused) else "answered"
            return outcome
        except ToolRanError as exc:
            ending = error_kind(exc.cause)
            raise
        except Exception as exc:
            ending = error_kind(exc)
            raise
        finally:
            watch.finished(ending)

    async def cancel_pending(self, session_id: str, author: Author) -> None:
        """A new message came while a call waited: store the call as not run. The caller holds
        the thread."""
        record = await self._store.approval_in(session_id)
        if record is None:
            return
        if record.running_since is not None:
            # Held, so nobody runs it: approved, and its process died inside the call before
            # the first sweep told of it. "Not run" could be untrue, and would invite a second.
            self._tell(record, ApprovalEnding.INTERRUPTED, await self._interrupted(record))
            return
        await self._store_not_run(record, CANCELLED.format(name=author.name))
        logger.info("Approval %s cancelled by a new message in %s", record.approval_id, session_id)
        self._tell(record, ApprovalEnding.CANCELLED, None)

    async def unshown(self, approval_id: str) -> Reply | None:
        """The adapter could not show the prompt (the platform refused it, after its own
        retries): nobody could ever click it, so the turn ends now rather than expire
        unseen. Its calls are stored as not run; returns the line for the person."""
        record = await self._store.approval(approval_id)
        if record is None:
            return None
        try:
            async with self._hold(record.session_id):
                current = await self._store.approval(approval_id)
                if current is None or current.running_since is not None:
                    return None
                await self._store_not_run(current, UNSHOWN_OUTPUT)
        except ThreadBusyError:
            return None  # the sweep will expire it
        logger.warning(
            "The prompt of approval %s could not be shown; its turn ended unrun", approval_id
        )
        names = ", ".join(dict.fromkeys(call.name for call in self._desk.request(record).calls))
        return Reply(UNSHOWN.format(tools=names), ReplyKind.NOTICE)

    def withdrawn(self, record: PendingApproval) -> None:
        """A command took a paused turn back (the store has dropped it): end its prompt."""
        logger.info("Approval %s withdrawn in %s", record.approval_id, record.session_id)
        cut_off = record.running_since is not None  # approved, and its process died in the call
        self._tell(
            record, ApprovalEnding.INTERRUPTED if cut_off else ApprovalEnding.WITHDRAWN, None
        )

    async def expire(self, now: datetime | None = None) -> int:
        """Reject every approval past its deadline, telling the model; returns how many."""
        now = now or datetime.now(UTC)
        expired = 0
        for due in await self._store.due_approvals(now):
            if due.approval_id in self._running:
                continue  # approved, and running here right now
            try:
                async with self._hold(due.session_id):
                    record = await self._store.approval(due.approval_id)
                    if record is None:
                        continue
                    if record.running_since is not None:
                        # Held, so nobody runs it: its process died inside the call.
                        reply: Reply | None = await self._interrupted(record)
                        ending = ApprovalEnding.INTERRUPTED
                    elif record.expires_at <= now:
                        reply = await self._expire_one(record)
                        ending = ApprovalEnding.EXPIRED
                    else:
                        continue
            except ThreadBusyError:
                continue  # the next sweep tries again
            expired += 1
            self._tell(record, ending, reply)
        return expired

    async def _expire_one(self, record: PendingApproval) -> Reply | None:
        reason = self._desk.expiry_message()
        try:
            outcome = await self._runs(record.profile).resume(record, reason, None)
        except Exception as exc:
            # Store the calls as not run without an answer, rather than try every sweep again.
            log_failed_turn(logger, record.session_id, exc)
            await self._store_not_run(record, reason)
            return None
        logger.info("Approval %s expired in %s", record.approval_id, record.session_id)
        return (
            self.prompt(outcome)
            if isinstance(outcome, Paused)
            else Reply(outcome, ReplyKind.ANSWER)
        )

    async def _store_not_run(self, record: PendingApproval, reason: str) -> None:
        items = [*cast("list[Item]", json.loads(record.items)), *not_run_outputs(record, reason)]
        await self._store.append(
            record.session_id, items, author=record.requester, settles=record.approval_id
        )

    def _tell(self, record: PendingApproval, outcome: ApprovalEnding, reply: Reply | None) -> None:
        """Let the platform update the prompt, in the background: never on a turn's time."""
        outlet = self._desk.outlet(record.platform)
        if outlet is None or record.address is None:
            # Another worker's platform, or a prompt that was never shown: the outcome is in
            # the thread's memory either way.
            logger.info(
                "Approval %s %s; no prompt of it to update here", record.approval_id, outcome.value
            )
            return
        task = asyncio.create_task(
            self._settle(outlet, record, record.address, outcome, reply),
            name=f"approval {record.approval_id}",
        )
        self._notices.add(task)
        task.add_done_callback(self._notices.discard)

    async def _settle(
        self,
        outlet: ApprovalOutlet,
        record: PendingApproval,
        address: str,
        outcome: ApprovalEnding,
        reply: Reply | None,
    ) -> None:
        try:
            await outlet.settled(self._desk.request(record), address, outcome, reply)
        except Exception:
            logger.exception("Updating the prompt of approval %s failed", record.approval_id)
