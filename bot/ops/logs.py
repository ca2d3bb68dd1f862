"""Logging set-up: stdlib logging to stderr, as text lines or JSON objects, secrets masked.

`log_context()` names the thread (`session_id`) and `platform` a turn or command is about; the
JSON lines carry them, so a log collector can follow one conversation across modules.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final

from ..config import LogFormat

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
REDACTED: Final = "[redacted]"

# A context variable is the one module-level value here, and it holds no shared state: each
# asyncio task sees its own copy (the one it was created with), which is what lets a turn's
# background work (its summary) log under the turn's thread.
_CONTEXT: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "memorybot_log_context", default=MappingProxyType({})
)


@contextlib.contextmanager
def log_context(**fields: str) -> Iterator[None]:
    """Add `fields` (e.g. ``session_id``, ``platform``) to every JSON log line written by this
    task, and by tasks it starts, until the block ends."""
    token = _CONTEXT.set({**_CONTEXT.get(), **fields})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


class _Masker:
    """Replaces known secret values, longest first so a secret containing another goes whole."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self.secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text


class RedactingFormatter(logging.Formatter):
    """Masks known secret values anywhere in a formatted line, tracebacks included."""

    def __init__(self, secrets: Iterable[str], fmt: str = FORMAT) -> None:
        super().__init__(fmt)
        self._mask = _Masker(secrets)

    def format(self, record: logging.LogRecord) -> str:
        return self._mask(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (ISO 8601, UTC), level, logger, message, exception
    and stack when there are any, and the `log_context()` fields; secrets masked."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._mask = _Masker(secrets)
        # A secret is masked in each value before encoding, and again in the encoded line, in
        # both spellings: as is, and as JSON escapes it (quotes, backslashes, non-ASCII).
        spellings = {
            form for secret in self._mask.secrets for form in (secret, json.dumps(secret)[1:-1])
        }
        self._mask_line = _Masker(spellings)

    def format(self, record: logging.LogRecord) -> str:
        mask = self._mask
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": mask(record.getMessage()),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = mask(record.exc_text)
        if record.stack_info:
            entry["stack"] = mask(self.formatStack(record.stack_info))
        for key, value in _CONTEXT.get().items():
            entry.setdefault(key, mask(value))
        # ASCII only: a lone surrogate in a message stays an escape instead of failing the
        # write to stderr.
        return self._mask_line(json.dumps(entry))


def configure_logging(level: str, secrets: Iterable[str], fmt: LogFormat = "text") -> None:
    """Send every logger's records to stderr at `level`, secrets masked.

    Args:
        level: The least level written, e.g. ``"INFO"``.
        secrets: Values that must never appear in a line (tokens, keys, passwords).
        fmt: ``"text"`` for readable lines, ``"json"`` for one JSON object per line.
    """
    secrets = list(secrets)
    handler = logging.StreamHandler(sys.stderr)
    formatter = JsonFormatter(secrets) if fmt == "json" else RedactingFormatter(secrets)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    # Per-request lines from the HTTP stack would drown the bot's own.
    for noisy in ("httpx", "httpx2", "openai", "aiosqlite", "websockets"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
