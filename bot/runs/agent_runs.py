"""Running the agent for one turn: stream it to the platform, then store it whole or keep it
paused for an approval.

The core decides *whether* and *when* a turn runs (locks, limits, retries with less); this
module owns how a run goes, fresh or resumed from a paused `RunState`, so both paths stream,
show tools and store turns the same way.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from agents import (
    Agent,
    RunConfig,
    RunContextWrapper,
    Runner,
    RunState,
    Tool,
    TResponseInputItem,
)
from agents.result import RunResultStreaming
from agents.stream_events import RawResponsesStreamEvent
from openai.types.responses import ResponseTextDeltaEvent

from ..errors import EmptyAnswerError
from ..memory.meter import UsageMeter
from ..memory.planner import Plan
from ..memory.search import TurnContext
from ..memory.turn_session import TurnSession
from ..messages import ApprovalRequest, ReplySink
from ..storage import Author, Item, PendingApproval, Store, Usage
from .approvals import ApprovalDesk, waiting_calls
from .attachments import ReadFiles, with_images, without_images

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Paused:
    """A run stopped for approval, with the text it streamed before stopping."""

    request: ApprovalRequest
    before: str


RunOutcome = str | Paused
"""A finished run's answer (already stored), or the approval it waits for."""


class ToolRanError(RuntimeError):
    """A resumed run failed after its approved tools ran; their results are stored."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause


class _TurnHooks(UsageMeter):
    """The usage meter, which also tells the sink when a tool really starts running.

    The SDK's `tool_called` stream event marks the model *asking* for a tool, which for a tool
    needing approval comes before the prompt and never again after the click;
    `on_tool_start` marks the call itself, approved or not.
    """

    def __init__(self, sink: ReplySink | None, *, counting: bool = True) -> None:
        super().__init__(counting=counting)
        self._sink = sink

    async def on_tool_start(
        self, context: RunContextWrapper[Any], agent: Agent[Any], tool: Tool
    ) -> None:
        if self._sink is not None:
            await self._sink.tool(getattr(tool, "name", "a tool"))


class AgentRuns:
    """Runs the agent for turns of any thread; one object serves them all."""

    def __init__(
        self,
        *,
        agent: Agent[Any],
        store: Store,
        run_config: RunConfig,
        desk: ApprovalDesk,
        model_name: str | None,
        measured: Callable[[str, Usage], None],
        spent: Callable[[str, str, Usage], None],
        profile: str | None = None,
    ) -> None:
        """
        Args:
            agent: The bot's agent; each run uses a copy with the turn's instructions.
            store: Where finished turns and paused runs are kept.
            run_config: The SDK's per-run settings.
            desk: Makes the record of a paused run.
            model_name: Recorded with each turn's usage.
            measured: Told each fresh turn's usage, to learn the thread's token density.
            spent: Told (platform, user ID, usage) of every stored turn, for the budget.
            profile: The profile whose agent this is, recorded with each turn's usage and
                each paused run; None for `default`.
        """
        self._agent = agent
        self._store = store
        self._run_config = run_config
        self._desk = desk
        self._model_name = model_name
        self._measured = measured
        self._spent = spent
        self._profile = profile

    async def start(
        self,
        session_id: str,
        author: Author,
        plan: Plan,
        files: ReadFiles,
        *,
        sink: ReplySink | None,
        platform: str,
    ) -> RunOutcome:
        """Run a new turn from its plan."""
        notes = files.image_notes
        turn = TurnSession(
            self._store,
            session_id,
            author=author,
            window=plan.window,
            keep=(lambda item: without_images(item, notes)) if notes else None,
        )
        # A shallow copy per turn, as the SDK itself advises for concurrent runs: it checks every
        # run of one Agent object against all the others running, which made 1,000 concurrent
        # turns spend ~30% of their CPU in that check (quadratic in the number of turns).
        agent = self._agent.clone(instructions=plan.instructions)
        meter = _TurnHooks(sink, counting=not files.images)
        result = Runner.run_streamed(
            agent,
            [cast("TResponseInputItem", with_images(plan.item, files.images))],
            session=turn,
            run_config=self._run_config,
            context=TurnContext(session_id),
            hooks=meter,
        )
        outcome = await self._follow(
            result, turn, meter, sink, platform=platform, instructions=plan.instructions
        )
        if isinstance(outcome, str) and not files.images:
            self._measured(session_id, meter.usage(result.context_wrapper.usage, None))
        return outcome

    async def resume(
        self, record: PendingApproval, rejection: str | None, sink: ReplySink | None
    ) -> RunOutcome:
        """Go on with a paused run: approve its calls (`rejection` None) or reject them,
        telling the model `rejection`."""
        agent = self._agent.clone(instructions=record.instructions)
        context = TurnContext(record.session_id)
        state = await RunState.from_json(
            agent, json.loads(record.state), context_override=RunContextWrapper(context)
        )
        for call in state.get_interruptions():
            if rejection is None:
                state.approve(call)
            else:
                state.reject(call, rejection_message=rejection)
        turn = TurnSession(
            self._store,
            record.session_id,
            author=record.requester,
            pending=cast("list[Item]", json.loads(record.items)),
        )
        # The state carries the tokens of the run before the pause, not its characters.
        meter = _TurnHooks(sink, counting=False)
        result = Runner.run_streamed(
            agent, state, session=turn, run_config=self._run_config, context=context, hooks=meter
        )
        try:
            return await self._follow(
                result,
                turn,
                meter,
                sink,
                platform=record.platform,
                instructions=record.instructions,
                settles=record.approval_id,
            )
        except Exception as exc:
            if rejection is not None or not _has_results(turn.pending, record):
                raise  # nothing ran: the approval stays pending, the click can be repeated
            # The tools ran but the answer did not come: keep what they returned, so a second
            # click cannot run them again and the next message can build on their results;
            # and what the model calls so far cost (the request before the pause included).
            usage = meter.usage(result.context_wrapper.usage, self._model_name, self._profile)
            await self._store.append(
                record.session_id,
                turn.kept,
                author=record.requester,
                usage=usage,
                settles=record.approval_id,
            )
            self._spent(record.platform, record.requester.id, usage)
            raise ToolRanError(exc) from exc

    async def _follow(
        self,
        result: RunResultStreaming,
        turn: TurnSession,
        meter: UsageMeter,
        sink: ReplySink | None,
        *,
        platform: str,
        instructions: str,
        settles: str | None = None,
    ) -> RunOutcome:
        """Stream a run to the sink, then store it whole, or keep it paused for approval."""
        streamed: list[str] = []
        try:
            async for event in result.stream_events():
                if sink is None:
                    continue
                if (
                    isinstance(event, RawResponsesStreamEvent)
                    and isinstance(event.data, ResponseTextDeltaEvent)
                    and event.data.delta
                ):
                    streamed.append(event.data.delta)
                    await sink.delta(event.data.delta)
        finally:
            if not result.is_complete:
                result.cancel()
        if result.interruptions:
            record = self._desk.record(
                session_id=turn.session_id,
                platform=platform,
                requester=turn.author,
                interruptions=result.interruptions,
                # The context is rebuilt from the thread on resume; serialising it explicitly
                # keeps the SDK from warning that a dataclass cannot be restored from JSON.
                # With images as placeholders, as the thread keeps them: the model saw them
                # before it asked for the tool, and a resumed run reads on from its result.
                state=turn.keeping(result.to_state().to_json(context_serializer=_context_json)),
                items=turn.kept,
                instructions=instructions,
                profile=self._profile,
            )
            # Replaces the approval this run resumed from, if any, in one statement.
            await self._store.save_approval(record)
            logger.info("Turn in %s paused for approval %s", turn.session_id, record.approval_id)
            return Paused(self._desk.request(record), "".join(streamed))
        output = result.final_output
        answer = output if isinstance(output, str) else str(output or "")
        if not answer.strip():
            raise EmptyAnswerError("the model returned no text")
        usage = meter.usage(result.context_wrapper.usage, self._model_name, self._profile)
        await turn.commit(usage, settles=settles)
        self._spent(platform, turn.author.id, usage)
        return answer


def _has_results(items: Sequence[Item], record: PendingApproval) -> bool:
    """Whether a resumed turn holds a result for any of the calls it was paused on."""
    waiting = set(waiting_calls(record))
    return any(
        item.get("type") == "function_call_output" and item.get("call_id") in waiting
        for item in items
    )


def _context_json(context: Any) -> dict[str, Any]:
    return {"session_id": getattr(context, "session_id", None)}
