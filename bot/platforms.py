"""Finding the installed adapters through their entry points, for start-up and the CLI."""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import entry_points

from .adapter import AdapterPlugin
from .settings import ConfigError

ENTRY_POINT_GROUP = "memorybot.adapters"


def available_adapters() -> dict[str, AdapterPlugin]:
    """The installed adapters by name, in a stable order."""
    found: dict[str, AdapterPlugin] = {}
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name):
        plugin = ep.load()
        if not isinstance(plugin, AdapterPlugin):
            raise ConfigError(f"The {ep.name!r} adapter's entry point is not an AdapterPlugin.")
        found[ep.name] = plugin
    return found


def load_adapter(name: str) -> AdapterPlugin:
    """The plugin registered for platform `name`."""
    plugins = available_adapters()
    if name not in plugins:
        known = ", ".join(plugins) or "none"
        raise ConfigError(
            f"No adapter named {name!r} is installed (installed: {known}). "
            "Reinstall the package with `pip install -e .`."
        )
    return plugins[name]


def configured_platforms(environment: Mapping[str, str]) -> list[str]:
    """Adapters whose credentials are set, so a plain start serves them."""
    return [name for name, plugin in available_adapters().items() if plugin.configured(environment)]


def serving(environment: Mapping[str, str]) -> list[str]:
    """The platforms `python -m bot serve` starts: those configured, at least one.

    Raises:
        ConfigError: None is; the line names what to set for each, and the console.
    """
    configured = configured_platforms(environment)
    if configured:
        return configured
    wanted = ", or ".join(
        f"{plugin.needs} for {name}"
        for name, plugin in available_adapters().items()
        if plugin.needs
    )
    raise ConfigError(
        f"no platform is configured: set {wanted or 'the credentials of a platform'} (in .env "
        "or the environment); to chat in this terminal instead, run `python -m bot console`"
    )


def secrets(environment: Mapping[str, str]) -> tuple[str, ...]:
    """Every adapter's secret values that are set, for masking in logs."""
    keys = {key for plugin in available_adapters().values() for key in plugin.secret_keys}
    return tuple(environment[key] for key in sorted(keys) if environment.get(key))
