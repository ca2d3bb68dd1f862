"""One turn's runs: planned, then retried once with less when the model refuses the request
(too long for its context, or its images), so a thread never wedges on the model."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

import openai

from ..errors import is_context_overflow
from ..memory.planner import MemoryPlanner, Plan
from ..messages import ReplySink
from ..storage import Author
from .agent_runs import AgentRuns, RunOutcome
from .attachments import (
    BLIND_NOTE,
    IMAGE_TOKENS,
    UNREAD_NOTE,
    AttachmentReader,
    ReadFiles,
    with_image_notes,
)
from .vision import ImageRefusal, image_refusal

logger = logging.getLogger(__name__)


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
        except openai.APIStatusError as exc:
            refusal = image_refusal(exc) if files.images else None
            if refusal is not None:
                # The person still gets an answer: the same request without its images, the
                # model told what they were and why they are missing.
                why = await self._images_refused(refusal, exc)
                if why is None:
                    raise
                plan = replace(plan, item=with_image_notes(plan.item, files.image_notes, why))
                return await attempt(plan, files.blind()), plan
            if not (isinstance(exc, openai.BadRequestError) and is_context_overflow(exc)):
                raise
            # The budget is above the model's context, or the estimate was low for this text:
            # learn a smaller budget, retry once with less, and catch the summary up meanwhile.
            self.planner.model_refused(plan.estimated_tokens, str(exc))
        self.summarize(session_id)
        plan = await self.planner.plan(session_id, author, text, extra_tokens=extra)
        outcome = await attempt(plan, files)
        return outcome, replace(plan, needs_summary=True)

    async def _images_refused(
        self, refusal: ImageRefusal, exc: openai.APIStatusError
    ) -> str | None:
        """Learn what a refusal of images says about the model; what to tell it instead.

        None when the model cannot see but `BOT_VISION=on` says it does: that is for the bot's
        owner to hear about (the turn fails), not to hide."""
        if refusal is ImageRefusal.PICTURE:
            logger.warning("The model refused a request with images; retrying without: %s", exc)
            return UNREAD_NOTE
        if self.attachments.vision == "on":
            return None
        await self.attachments.cannot_see(self.model_name, str(exc.message))
        return BLIND_NOTE
