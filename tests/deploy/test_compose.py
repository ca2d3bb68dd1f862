"""compose.yaml, read as Compose reads it (anchors and merge keys resolved), checked against the
Compose Specification's schema where check-jsonschema is installed, and held to the rules that
make `docker compose up` start, stop and fail the way the README says."""

from __future__ import annotations

import dataclasses
import re
import subprocess
from typing import Any

import pytest
import yaml

from bot.config import Config
from tests.support.imports import ROOT
from tests.support.tools import tool

COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
BUILT = [name for name, service in SERVICES.items() if "build" in service]
IMAGE = SERVICES[BUILT[0]]["image"] if BUILT else None
BOT = {name: s for name, s in SERVICES.items() if s.get("image") == IMAGE}
WORKERS = {name: s for name, s in BOT.items() if s.get("command") == ["serve"]}
DEFAULT_GRACE: float = next(
    f.default for f in dataclasses.fields(Config) if f.name == "shutdown_grace"
)  # type: ignore[assignment]


def seconds(duration: str) -> float:
    """A Compose duration such as `45s` or `1m30s`."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * units[u] for n, u in parts)


def test_the_image_is_built_once_and_every_bot_service_runs_it() -> None:
    assert BUILT == ["check"], "exactly one service builds; Compose builds each `build` apart"
    assert SERVICES["check"]["build"] == "."
    assert len(BOT) == 3
    assert set(WORKERS) == {"worker-1", "worker-2"}
    # The others take what `check` built, and never ask a registry for it.
    assert all(s["pull_policy"] == "never" for s in WORKERS.values())


def test_check_runs_first_and_the_workers_start_only_when_it_succeeds() -> None:
    check = SERVICES["check"]
    assert check["command"] == ["check"]
    assert check["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "restart" not in check, "a one-shot service: a failed check stops `up`, no loop"
    for name, worker in WORKERS.items():
        condition = worker["depends_on"]["check"]["condition"]
        assert condition == "service_completed_successfully", name
        assert worker["restart"] == "unless-stopped", name


def test_workers_get_longer_to_stop_than_the_bot_takes() -> None:
    for name, worker in WORKERS.items():
        assert seconds(worker["stop_grace_period"]) > DEFAULT_GRACE, name


def test_no_service_installs_at_start_or_mounts_the_checkout() -> None:
    for name, service in SERVICES.items():
        command = service.get("command", [])
        text = command if isinstance(command, str) else " ".join(command)
        assert "pip" not in text, name
        assert "sh -c" not in text, name
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            # Named volumes only: a bind mount of the source would run the checkout, not the image.
            assert re.fullmatch(r"[a-z][a-z0-9_-]*", source), f"{name} mounts {volume}"


def test_bot_services_share_the_database_and_reach_the_host() -> None:
    postgres = SERVICES["postgres"]["environment"]
    url = (
        f"postgresql://{postgres['POSTGRES_USER']}:{postgres['POSTGRES_PASSWORD']}"
        f"@postgres/{postgres['POSTGRES_DB']}"
    )
    for name, service in BOT.items():
        env = service["environment"]
        assert env["BOT_DATABASE_URL"] == url, name
        assert env["BOT_METRICS_PORT"] == "9100", name
        assert "host.docker.internal:host-gateway" in service["extra_hosts"], name
        assert service["env_file"] == [".env"], name
    shards = sorted(w["environment"]["DISCORD_SHARD_IDS"] for w in WORKERS.values())
    assert shards == ["0", "1"]


def test_the_readme_migrate_recipe_targets_this_database() -> None:
    readme = (ROOT / "README.md").read_text()
    recipe = re.search(r"docker compose run --rm .*?\n```", readme, re.S)
    assert recipe is not None
    text = recipe.group(0)
    assert " check " in text
    assert "migrate --from sqlite:////import/" in text
    assert SERVICES["check"]["environment"]["BOT_DATABASE_URL"] in text


def test_slack_http_mode_gets_a_balancer_over_every_worker() -> None:
    balancer = SERVICES["slack-balancer"]
    assert balancer["profiles"] == ["slack-http"]
    assert balancer["ports"] == ["${SLACK_HTTP_PORT:-3000}:3000"]
    assert set(balancer["depends_on"]) == set(WORKERS)
    config = COMPOSE["configs"][balancer["configs"][0]["source"]]["file"]
    caddyfile = (ROOT / config).read_text()
    port = BOT["worker-1"]["environment"]["SLACK_PORT"]
    for worker in WORKERS:
        assert f"{worker}:{port}" in caddyfile
    assert "health_uri /readyz" in caddyfile
    assert "health_port 9100" in caddyfile


@pytest.mark.skipif(tool("check-jsonschema") is None, reason="check-jsonschema is not installed")
def test_it_follows_the_compose_specification() -> None:
    checker = tool("check-jsonschema")
    assert checker is not None
    ran = subprocess.run(
        [checker, "--builtin-schema", "vendor.compose-spec", "compose.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
