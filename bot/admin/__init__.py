"""Offline administration, for the `python -m bot` commands that never run a model: the
preflight `check`, listing and printing threads, usage reports, export and import, copying
between databases, and forgetting a person.

Only the CLI imports it; nothing on a turn's path does (`tests/test_layers.py`).
"""

from .check import CHECK
from .command import AdminCommand, AdminContext, NotFoundError
from .erase import FORGET_USER
from .files import EXPORT, IMPORT
from .threads import HISTORY, SESSIONS
from .transfer import MIGRATE
from .usage_report import USAGE

COMMANDS: tuple[AdminCommand, ...] = (
    CHECK,
    SESSIONS,
    HISTORY,
    MIGRATE,
    USAGE,
    EXPORT,
    IMPORT,
    FORGET_USER,
)
"""Every admin command, in the order `python -m bot --help` lists them."""

__all__ = ["COMMANDS", "AdminCommand", "AdminContext", "NotFoundError"]
