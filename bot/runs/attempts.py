"""One turn's runs: planned, then retried once with less when the model refuses the request
(too long for its context, or images it cannot see), so a thread never wedges on the model."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace

import openai

from ..errors import is_context_overflow
from ..memory.planner import MemoryPlanner, Plan
from ..messages import ReplySink
from ..storage import Author
from .agent_runs import AgentRuns, RunOutcome
from .attachments import IMAGE_TOKENS, AttachmentReader, ReadFiles, with_image_notes


@dataclass
class TurnAttempts:
    """Plans a turn and runs it, retrying once when the model refuses the request."""

    planner: MemoryPlanner
    """Chooses what each attempt carries."""
    runs: AgentRuns
    attachments: AttachmentReader
    """Learns whether the model sees images."""
    summarize: Callable[[str], None]
    """Asks for a thread's summary to catch up (after a refusal as too long)."""
    model_name: str | None

    async def answer(
        self,
        session_id: str,
        author: Author,
        text: str,
        files: ReadFiles,
        *,
        sink: ReplySink | None,
        platform: str,
    ) -> tuple[RunOutcome, Plan]:
        """Run the turn; its outcome, and the plan it ran with. The caller holds the thread."""
        attempt = functools.partial(
            self.runs.start, session_id, author, sink=sink, platform=platform
        )
        extra = IMAGE_TOKENS * len(files.images)
        plan = await self.planner.plan(session_id, author, text, extra_tokens=extra)
        try:
            return await attempt(plan, files), plan
        except openai.BadRequestError as exc:
            if files.images and not is_context_overflow(exc):
                # With BOT_VISION=auto a model that cannot see says so with a 400; it is told
                # what the images were instead, and is not sent images again.
                self.attachments.refused_images(self.model_name)
                if self.attachments.sees(self.model_name):
                    raise
                plan = replace(plan, item=with_image_notes(plan.item, files.image_notes))
                return await attempt(plan, files.blind()), plan
            if not is_context_overflow(exc):
                raise
            # The budget is above the model's context, or the estimate was low for this text:
            # learn a smaller budget, retry once with less, and catch the summary up meanwhile.
            self.planner.model_refused(plan.estimated_tokens, str(exc))
        self.summarize(session_id)
        plan = await self.planner.plan(session_id, author, text, extra_tokens=extra)
        outcome = await attempt(plan, files)
        return outcome, replace(plan, needs_summary=True)
