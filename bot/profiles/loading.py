"""The profiles file as start-up reads it: checked against the tools that are configured."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from importlib.metadata import EntryPoint

from ..config import Config
from ..tools import plugin_names, read_mcp_config
from .file import load_profiles
from .spec import ProfileBook


def read_profiles(
    config: Config, plugins: Callable[[], Iterable[EntryPoint]] | None = None
) -> ProfileBook:
    """`BOT_PROFILES` read and checked, or a book of `default` alone without one.

    Raises:
        ConfigError: One line naming the file and where it is wrong.
    """
    if not config.profiles:
        return ProfileBook()
    servers = (
        [spec.name for spec in read_mcp_config(config.mcp_config, config.environment)]
        if config.mcp_config
        else []
    )
    return load_profiles(
        config.profiles,
        environment=config.environment,
        tool_names={*servers, *plugin_names(plugins)},
        config=config,
    )
