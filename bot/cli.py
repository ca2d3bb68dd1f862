"""`python -m bot`: run the bot (console by default) or look after its memory.

The commands come from two tables: the installed adapters (`python -m bot discord`) and the
admin commands (`bot.admin.COMMANDS`); this module only parses and dispatches.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from .admin import COMMANDS, AdminContext
from .admin.portable import FormatError
from .app import serve
from .config import ConfigError, load_config
from .ops.logs import configure_logging
from .platforms import available_adapters, configured_platforms, secrets
from .storage import failure

logger = logging.getLogger(__name__)

ADMIN = {command.name: command for command in COMMANDS}


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
    for name, plugin in available_adapters().items():
        platform = sub.add_parser(name, help=plugin.summary)
        for option in plugin.options:
            platform.add_argument(f"--{option.name}", default=option.default, help=option.help)
    for command in COMMANDS:
        command.arguments(
            sub.add_parser(command.name, help=command.help, description=command.description)
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = load_config(dotenv_path=args.env_file)
        configured = configured_platforms(config.environment)
        command = args.command or ("auto" if configured else "console")
        configure_logging(
            config.log_level or ("WARNING" if command == "console" else "INFO"),
            config.secrets + secrets(config.environment),
            fmt=config.log_format,
        )
        admin = ADMIN.get(command)
        if admin is not None:
            platforms = sorted(available_adapters())
            admin.run(AdminContext(config, args, sys.stdout, platforms))
        else:
            platforms = configured if command == "auto" else [command]
            options = {
                key: str(value)
                for key, value in vars(args).items()
                if key not in {"command", "env_file"} and value is not None
            }
            asyncio.run(serve(config, platforms, options))
    except ConfigError as exc:
        parser.exit(2, f"error: {exc}\n")
    except FormatError as exc:
        parser.exit(1, f"error: {exc}; nothing of that thread was imported\n")
    except Exception as exc:
        if failure(exc) is None and not isinstance(exc, OSError):
            raise
        parser.exit(
            1,
            f"error: cannot use the memory database: {exc} "
            "(check BOT_DB_PATH or BOT_DATABASE_URL)\n",
        )
    except KeyboardInterrupt:
        return 130
    return 0
