"""Whether the model sees images: told apart from a picture it could not read.

With `BOT_VISION=auto` a request carrying images that the model server refuses is retried
without them, so the person still gets an answer. Only an unambiguous answer that the *model*
takes no image input (`says_it_cannot_see`) is learnt, and kept in the store (`BlindModels`) so
every worker agrees; a corrupt, oversized or unsupported picture is that request's problem
alone, and the next picture is sent as usual. What was learnt is tried again after
`FORGET_AFTER`, since the model behind an endpoint may change.
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from enum import Enum
from typing import Final
from urllib.parse import urlsplit, urlunsplit

import openai

from ..errors import is_context_overflow
from ..ops.budget import Clock, utc_now
from ..storage import Store

logger = logging.getLogger(__name__)

CANNOT_SEE: Final = tuple(
    re.compile(pattern, re.IGNORECASE)
    for pattern in (
        # OpenAI (and Azure OpenAI), 400 invalid_request_error: "Invalid content type.
        # image_url is only supported by certain models."
        r"\b(?:image_url|input_image) is only supported by certain models",
        # vLLM serving a text-only model, 400: "facebook/opt-125m is not a multimodal model".
        r"is not a multimodal model",
        # vLLM started with `--limit-mm-per-prompt image=0`, 400: "At most 0 image(s) may be
        # provided in one request." (At most 1, 2... is a limit on this request only.)
        r"\bat most 0 image\(s\) may be provided",
        # llama.cpp's llama-server without `--mmproj`, 500: "image input is not supported -
        # hint: if this is unexpected, you may need to provide the mmproj".
        r"\bimage input is not supported",
        # Ollama, a model without its vision projector, 500: "this model is missing data
        # required for image input".
        r"missing data required for image input",
        # LM Studio: "Model does not support images. Please use a model that does."
        r"\bmodel does not support images",
        # Google's Gemini API, 400 INVALID_ARGUMENT: "Image input modality is not enabled for
        # models/...".
        r"\bimage input modality is not enabled",
    )
)
"""What model servers answer, in their own words, when the model itself takes no image
input. Kept narrow on purpose: a miss costs one retried request per picture, a false match
stops every worker sending pictures for a day."""

FORGET_AFTER: Final = timedelta(days=1)
"""How long a model stays known as unable to see before it is sent a picture again."""

REASON_CHARS: Final = 500
"""How much of the server's answer is kept with what was learnt (for whoever looks)."""


def says_it_cannot_see(text: str) -> bool:
    """Whether a model server's error text says the model takes no image input at all."""
    return any(pattern.search(text) for pattern in CANNOT_SEE)


class ImageRefusal(Enum):
    """Why a request carrying images was refused, when the images may be the reason."""

    BLIND = "blind"
    """The model takes no image input: learnt, and every picture gets a note instead."""
    PICTURE = "picture"
    """Something about this request (most likely a picture the server could not read): it is
    retried without its images, and nothing is learnt."""


def image_refusal(exc: openai.APIStatusError) -> ImageRefusal | None:
    """Why the server refused a request that carried images; None when the images are not
    the reason (a request too long for the context, a rate limit, a server failing)."""
    if says_it_cannot_see(str(exc.message)):
        return ImageRefusal.BLIND
    if isinstance(exc, openai.BadRequestError) and not is_context_overflow(exc):
        return ImageRefusal.PICTURE
    return None


def endpoint_key(url: str) -> str:
    """The model server's address as what was learnt is keyed on: without credentials, query
    or trailing slash, so the same server is one key whichever way it was written."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


class BlindModels:
    """Which models said they cannot see, kept in the store for every worker.

    One primary-key read per message carrying an image, with no cache: messages with pictures
    are rare, and a cache would only let workers disagree for a while.
    """

    def __init__(
        self,
        store: Store,
        *,
        endpoint: str,
        clock: Clock = utc_now,
        forget_after: timedelta = FORGET_AFTER,
    ) -> None:
        """
        Args:
            store: Where what was learnt is kept.
            endpoint: The model server's URL (see `endpoint_key`).
            clock: The time now (tests move it instead of sleeping).
            forget_after: How long what was learnt holds.
        """
        self._store = store
        self._endpoint = endpoint_key(endpoint)
        self._clock = clock
        self._forget_after = forget_after

    async def blind(self, model: str) -> bool:
        """Whether the model said, within `forget_after`, that it takes no image input."""
        since = await self._store.blind_since(model, self._endpoint)
        return since is not None and self._clock() - since < self._forget_after

    async def learn(self, model: str, reason: str) -> None:
        """Remember that the model takes no image input. Best effort: the turn goes on without
        its images whether or not this could be stored."""
        logger.warning(
            "Model %s at %s takes no image input (%s); pictures get a note instead for %s",
            model,
            self._endpoint,
            reason,
            self._forget_after,
        )
        try:
            await self._store.remember_blind(
                model, self._endpoint, at=self._clock(), reason=reason[:REASON_CHARS]
            )
        except Exception as exc:
            logger.warning("Could not store that model %s cannot see: %s", model, exc)
