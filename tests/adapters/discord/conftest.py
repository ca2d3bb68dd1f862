"""Fixtures for the Discord adapter's tests, from `tests/support/discord.py`."""

from tests.support.discord import running  # noqa: F401 (a fixture for every module here)
