"""Failed turns, explained to people in one short line.

The exception itself goes to the log; its text never reaches the chat, because it can carry
request details, internal URLs or fragments of configuration.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Final

import openai
from agents import (
    MaxTurnsExceeded,
    ModelBehaviorError,
    ModelRefusalError,
    ModelTimeoutError,
)

from .storage import Failure, StoreClosedError, failure
from .texts import GENERIC, SHUTTING_DOWN


class EmptyAnswerError(RuntimeError):
    """The model finished without any text: nothing worth storing or showing."""


ERROR_LINES: Final[Mapping[str, str]] = {
    "model_rate_limited": (
        "The AI model is rate-limiting me right now. Please try again in a minute."
    ),
    "model_timeout": "The AI model took too long to answer. Please try again.",
    "model_unreachable": "I couldn't reach the AI model just now. Please try again shortly.",
    "model_credentials": (
        "The AI model refused my credentials; the bot's owner needs to check its API key."
    ),
    "model_not_found": (
        "The configured AI model wasn't found; the bot's owner needs to check BOT_MODEL."
    ),
    "too_long": (
        "That was too much for the AI model even after I trimmed what it sees. Please try "
        "a shorter message; the bot's owner may need to lower BOT_CONTEXT_TOKENS."
    ),
    "model_server_error": "The AI model had a problem on its side. Please try again shortly.",
    "model_refused": "The model declined to answer that.",
    "too_many_steps": "That took too many steps, so I stopped. Try asking more simply.",
    "empty_answer": "The AI model sent back an empty answer. Please try again.",
    "unreadable_answer": "The AI model sent an answer I couldn't read. Please try again.",
    "shutting_down": SHUTTING_DOWN,
    "store_busy": (
        "My memory is busy right now, so I didn't answer. Please try again in a moment."
    ),
    "store_unavailable": (
        "I lost touch with my memory database, so this exchange was not kept. "
        "Please try again in a moment."
    ),
    "store_broken": (
        "I couldn't save to my memory, so this exchange was not kept. The bot's owner needs "
        "to check its database (full or read-only disk)."
    ),
    "error": GENERIC,
}
"""Every kind of failure `error_kind` tells apart, and the line people are shown for it."""


def error_kind(exc: BaseException) -> str:
    """Which kind of failure `exc` is: a key of `ERROR_LINES`, a small fixed set (metrics
    count turns by it), "error" for anything unforeseen.

    Args:
        exc: What went wrong.
    """
    if isinstance(exc, openai.RateLimitError):
        return "model_rate_limited"
    if isinstance(exc, openai.APITimeoutError | ModelTimeoutError | TimeoutError):
        return "model_timeout"
    if isinstance(exc, openai.APIConnectionError):
        return "model_unreachable"
    if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
        return "model_credentials"
    if isinstance(exc, openai.NotFoundError):
        return "model_not_found"
    if isinstance(exc, openai.BadRequestError) and is_context_overflow(exc):
        return "too_long"
    if isinstance(exc, openai.InternalServerError):
        return "model_server_error"
    if isinstance(exc, ModelRefusalError):
        return "model_refused"
    if isinstance(exc, MaxTurnsExceeded):
        return "too_many_steps"
    if isinstance(exc, EmptyAnswerError):
        return "empty_answer"
    if isinstance(exc, ModelBehaviorError | openai.APIResponseValidationError):
        return "unreadable_answer"
    if isinstance(exc, StoreClosedError):
        return "shutting_down"
    kind = failure(exc)
    if kind is Failure.BUSY:
        return "store_busy"
    if kind is Failure.UNAVAILABLE:
        return "store_unavailable"
    if kind is Failure.BROKEN:
        return "store_broken"
    return "error"


def friendly_error(exc: BaseException) -> str:
    """The line to show in the chat for a turn that failed with `exc`.

    Args:
        exc: What went wrong.
    """
    return ERROR_LINES[error_kind(exc)]


def is_routine(exc: BaseException) -> bool:
    """Whether a failure is the world's doing (model or database), not a bug worth a traceback."""
    return isinstance(exc, openai.APIError) or failure(exc) is not None


def is_context_overflow(exc: openai.BadRequestError) -> bool:
    """Whether the model refused a request for being longer than its context window."""
    code = getattr(exc, "code", None) or ""
    return "context_length" in str(code) or "context length" in str(exc.message).lower()


def log_failed_turn(log: logging.Logger, session_id: str, exc: Exception) -> str:
    """Log a turn that failed and stored nothing; returns the line to show for it.

    Model and database failures are routine and their message says it all; anything else is
    a bug worth a traceback.
    """
    routine = is_routine(exc)
    log.log(
        logging.WARNING if routine else logging.ERROR,
        "Turn failed in %s, nothing stored: %s: %s",
        session_id,
        type(exc).__name__,
        exc,
        exc_info=None if routine else exc,
    )
    return friendly_error(exc)
