"""Reading settings from a plain mapping of environment variables, one clear line per mistake.

The core's `Config` and every adapter's own settings are parsed with these, so a malformed value
gets the same kind of message wherever it is read.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import TypeVar

T = TypeVar("T")

ENVIRONMENT = "the environment"


class ConfigError(ValueError):
    """A setting is missing or malformed; the message says what to set."""


class Settings(dict[str, str]):
    """Settings as read, each variable's value, remembering which a settings file gave (the
    rest came from the environment), so a message about one says where to fix it."""

    def __init__(
        self, values: Mapping[str, str], *, file: str = ".env", from_file: Collection[str] = ()
    ) -> None:
        super().__init__(values)
        self.file = file
        self.from_file = frozenset(from_file)


def origin(values: Mapping[str, str], key: str) -> str:
    """Where `key`'s value came from: the settings file's name, or "the environment"."""
    if isinstance(values, Settings) and key in values.from_file:
        return values.file
    return ENVIRONMENT


def read(values: Mapping[str, str], key: str, parse: Callable[[str], T], default: T) -> T:
    """`key` parsed with `parse`, or `default` when it is unset or blank.

    Raises:
        ConfigError: The value is set but malformed; the message names the setting and
            where it was set.
    """
    raw = (values.get(key) or "").strip()
    if not raw:
        return default
    try:
        return parse(raw)
    except ValueError as exc:
        raise ConfigError(
            f"{key} {exc}, got {raw!r}: fix it in {origin(values, key)} (see .env.example)."
        ) from None


def text(raw: str) -> str:
    return raw


def positive_int(raw: str) -> int:
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError("must be a whole number of at least 1")
    return int(raw)


def non_negative_int(raw: str) -> int:
    if not raw.isdigit():
        raise ValueError("must be a whole number of at least 0")
    return int(raw)


def snowflake(raw: str) -> int:
    if not raw.isdigit():
        raise ValueError("must be a numeric ID (Discord: Developer Mode, then Copy ID)")
    return int(raw)


def id_set(raw: str) -> frozenset[int]:
    """Comma- or space-separated numeric IDs; empty means 'everyone'."""
    return frozenset(snowflake(part) for part in raw.replace(",", " ").split())


def name_set(raw: str) -> frozenset[str]:
    """Comma- or space-separated names or IDs; empty means 'everyone'."""
    return frozenset(raw.replace(",", " ").split())


def port(raw: str) -> int:
    """A port to listen on; 0 lets the system pick a free one (the server logs which)."""
    if not raw.isdigit() or not 0 <= int(raw) < 65536:
        raise ValueError("must be a port number between 0 (any free port) and 65535")
    return int(raw)


def positive_float(raw: str, unit: str = "seconds") -> float:
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ValueError(f"must be a number of {unit} above 0")
    return value


def boolean(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("must be true or false")
