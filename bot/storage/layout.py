"""The names both back ends give their tables and columns, so a statement is written once.

`agent_sessions` and `agent_messages` are the Agents SDK's own tables (its `SQLiteSession` and
`SQLAlchemySession` read and write them too); the `bot_` tables are the bot's. Each back end's
`schema` module creates them in its own types.
"""

from __future__ import annotations

SESSIONS = "agent_sessions"
MESSAGES = "agent_messages"
SUMMARIES = "bot_summaries"
USAGE = "bot_usage"
SEARCH = "bot_search"
APPROVALS = "bot_approvals"
BLIND_MODELS = "bot_blind_models"
PROFILE_CHOICES = "bot_profile_choices"
USAGE_DAYS = "bot_usage_days"
"""Turns and tokens per UTC day, platform and model, as rows added by triggers whenever usage
comes or goes, folded into one row per day now and then: a month's figures then cost what its
days cost, not what its turns do (the operator page's overview). Only ever inserted into, until
folded, so no two transactions wait for the same counter, nor for each other's."""

USAGE_COLUMNS = (
    "model",
    "input_tokens",
    "cached_tokens",
    "output_tokens",
    "input_chars",
    "profile",
)
"""What a model call cost, as `agent_messages` (on a turn's last row) and `bot_usage` keep it:
the fields of `Usage`, in its order."""
USAGE_LIST = ", ".join(USAGE_COLUMNS)

STORED_COLUMNS = "id, message_data, author_id, author_name, created_at"
"""A message row as `codec.decode_stored` reads it."""


def qualified(columns: str, alias: str) -> str:
    """A column list (`"id, message_data"`) with each column of table `alias` (`m.id, ...`)."""
    return ", ".join(f"{alias}.{column}" for column in columns.split(", "))


class SchemaTooNewError(RuntimeError):
    """The database was migrated by a newer release of the bot than this one."""


class SchemaTooOldError(RuntimeError):
    """Memory opened to be read only is at an older schema version than this release's (0:
    it holds none of the bot's). Reading never upgrades it: the bot's start does."""

    def __init__(self, location: str, version: int, current: int) -> None:
        super().__init__(
            f"{location} is at schema version {version}, older than this bot's {current}"
        )
        self.location = location
        self.version = version
        self.current = current


def check_readable(location: str, version: int, current: int) -> None:
    """Refuse to read memory at another schema version than this release's `current`.

    Raises:
        SchemaTooNewError: A newer release migrated it.
        SchemaTooOldError: It is older, or holds no schema at all (`version` 0).
    """
    if version > current:
        raise SchemaTooNewError(
            f"the memory at {location} is at schema version {version}, newer than this bot "
            f"knows ({current}); upgrade the bot"
        )
    if version < current:
        raise SchemaTooOldError(location, version, current)
