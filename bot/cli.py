"""`python -m bot`: run the bot (console by default) or look at its memory."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sqlite3
import sys
from collections.abc import Sequence

from . import admin
from .app import serve
from .config import ConfigError, load_config
from .logs import configure_logging

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bot",
        description=(
            "A chat bot that remembers each thread. With no command it serves every platform "
            "whose tokens are configured, or chats in this terminal when none are."
        ),
    )
    parser.add_argument("--env-file", default=".env", help="settings file (default: .env)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    console = sub.add_parser("console", help="chat in this terminal")
    console.add_argument("--thread", default="default", help="which conversation to continue")
    console.add_argument("--name", default="", help="your display name (default: login name)")
    sub.add_parser("discord", help="serve Discord (needs DISCORD_TOKEN)")
    sub.add_parser("slack", help="serve Slack (needs SLACK_BOT_TOKEN and an app token/secret)")
    sub.add_parser("sessions", help="list stored conversations (read-only)")
    history = sub.add_parser("history", help="print one conversation's memory (read-only)")
    history.add_argument("session_id", help="as listed by `sessions`, e.g. console:default")
    history.add_argument("--limit", type=int, default=100, help="newest items to show")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = load_config(dotenv_path=args.env_file)
        command = args.command or ("auto" if config.platforms else "console")
        interactive = command == "console"
        configure_logging(
            config.log_level or ("WARNING" if interactive else "INFO"), config.secrets
        )
        if command == "sessions":
            admin.list_sessions(config, sys.stdout)
        elif command == "history":
            admin.print_history(config, args.session_id, args.limit, sys.stdout)
        else:
            platforms = list(config.platforms) if command == "auto" else [command]
            options = {
                "thread": getattr(args, "thread", "default"),
                "name": getattr(args, "name", ""),
            }
            asyncio.run(serve(config, platforms, options))
    except ConfigError as exc:
        parser.exit(2, f"error: {exc}\n")
    except (sqlite3.Error, OSError) as exc:
        parser.exit(1, f"error: cannot use the memory database: {exc} (check BOT_DB_PATH)\n")
    except KeyboardInterrupt:
        return 130
    return 0
