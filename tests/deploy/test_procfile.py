"""The Procfile, and the files a Procfile host builds from (Heroku's Python buildpack)."""

from __future__ import annotations

import argparse
import re
import shlex
import tomllib

import pytest
import yaml

from bot.cli import build_parser
from bot.platforms import available_adapters
from tests.support.imports import ROOT


def processes() -> dict[str, list[str]]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    found = {}
    for line in lines:
        name, _, command = line.partition(":")
        assert re.fullmatch(r"[a-z0-9_-]+", name), line
        found[name] = shlex.split(command)
    return found


def test_the_web_process_serves_slack_http_mode_on_port() -> None:
    # Only `web` gets HTTP traffic on a Procfile host, on $PORT; the Slack adapter listens on
    # SLACK_PORT.
    assert processes()["web"] == ["SLACK_PORT=$PORT", "python", "-m", "bot", "slack"]


def test_workers_serve_a_platform_and_the_release_phase_checks() -> None:
    found = processes()
    assert found["release"] == ["python", "-m", "bot", "check"]
    platforms = set(available_adapters()) - {"console"}
    for name in ("slack", "discord"):
        assert found[name] == ["python", "-m", "bot", name]
    assert {name for name in found if name in platforms} == platforms
    for argv in found.values():
        assert "pip" not in argv
        assert "sh" not in argv


def test_the_buildpack_finds_exactly_one_lock_and_the_python_version() -> None:
    # Heroku's Python buildpack refuses an app with both a requirements.txt and a uv.lock
    # ("Multiple Python package manager files were found"); uv.lock makes it run
    # `uv sync --locked`, which installs the bot itself too, so its adapters' entry points exist.
    assert (ROOT / "uv.lock").is_file()
    for other in ("requirements.txt", "Pipfile", "Pipfile.lock", "poetry.lock"):
        assert not (ROOT / other).exists(), other
    version = (ROOT / ".python-version").read_text().strip()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == f">={version}"
    assert f"python:{version}-" in (ROOT / "Dockerfile").read_text()


def test_the_example_settings_say_where_a_local_model_is_under_compose() -> None:
    example = (ROOT / ".env.example").read_text()
    assert "http://host.docker.internal:11434/v1" in example


def test_every_command_the_deployment_files_run_is_one_the_bot_has() -> None:
    parser = build_parser()
    (choices,) = [a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    used = {argv[argv.index("-m") + 2] for argv in processes().values()}
    used |= {s["command"][0] for s in compose.values() if isinstance(s.get("command"), list)}
    used.add("serve")  # the image's CMD (tests/deploy/test_image.py)
    missing = used - set(choices)
    if missing and missing <= {"serve", "check"}:
        pytest.skip("`python -m bot serve` and `check` come with the CLI's half of issue 21")
    assert not missing, f"no such commands: {missing}"
