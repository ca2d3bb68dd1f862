"""What an admin command is, for the CLI's table of them (`bot.admin.COMMANDS`)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TextIO

from ..config import Config


class NotFoundError(LookupError):
    """What an admin command was asked about is not stored (an unknown session): the CLI
    says so in one line and exits 1."""


@dataclass(frozen=True)
class AdminContext:
    """What an admin command runs with."""

    config: Config
    args: argparse.Namespace
    """Its parsed command-line arguments."""
    out: TextIO
    """Where it reports, line by line (stdout)."""
    platforms: Sequence[str] = ()
    """The installed adapters' names, for messages that name them."""


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    """A command that takes none."""


@dataclass(frozen=True)
class AdminCommand:
    """One `python -m bot NAME` command that works on the stored memory, never a model."""

    name: str
    help: str
    """One line for `python -m bot --help`."""
    run: Callable[[AdminContext], None]
    arguments: Callable[[argparse.ArgumentParser], None] = _no_arguments
    """Adds its arguments to its subparser."""
    description: str | None = None
    """The longer text of `python -m bot NAME --help`."""
