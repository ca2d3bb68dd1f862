"""The lock files, checked without the network: uv.lock was made from this pyproject.toml and
pins every dependency at a version it allows, and requirements/*.txt (what pip installs from)
hold the same pins and hashes. CI also runs `python3 run.py lock --check`, which asks uv."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from tests.support.imports import ROOT

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
LOCK = tomllib.loads((ROOT / "uv.lock").read_text())
PACKAGES: dict[str, list[dict[str, Any]]] = {}
for _package in LOCK["package"]:
    PACKAGES.setdefault(canonicalize_name(_package["name"]), []).append(_package)

DECLARED = [(Requirement(r), "") for r in PROJECT["dependencies"]] + [
    (Requirement(r), extra)
    for extra, requirements in PROJECT["optional-dependencies"].items()
    for r in requirements
]


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    hashes: frozenset[str]


def pins(kind: str) -> dict[str, Pin]:
    """requirements/KIND.txt's pins, by name."""
    text = (ROOT / "requirements" / f"{kind}.txt").read_text()
    logical = "\n".join(
        line for line in text.splitlines() if not line.lstrip().startswith("#")
    ).replace("\\\n", " ")
    found: dict[str, Pin] = {}
    for line in logical.splitlines():
        if not line.strip():
            continue
        requirement, *hashes = line.split(" --hash=")
        parsed = Requirement(requirement)
        (specifier,) = parsed.specifier
        assert specifier.operator == "==", line
        found[canonicalize_name(parsed.name)] = Pin(
            canonicalize_name(parsed.name), specifier.version, frozenset(h.strip() for h in hashes)
        )
    return found


def locked_hashes(package: dict[str, Any]) -> frozenset[str]:
    files = [package.get("sdist", {}), *package.get("wheels", [])]
    return frozenset(f["hash"] for f in files if "hash" in f)


def test_uv_lock_was_made_from_this_pyproject() -> None:
    (root,) = PACKAGES["memorybot"]
    recorded = {
        (
            canonicalize_name(r["name"]),
            SpecifierSet(r.get("specifier", "")),
            tuple(sorted(r.get("extras", []))),
            "extra == " in r.get("marker", ""),
        )
        for r in root["metadata"]["requires-dist"]
    }
    declared = {
        (
            canonicalize_name(r.name),
            r.specifier,
            tuple(sorted(r.extras)),
            bool(extra),
        )
        for r, extra in DECLARED
    }
    assert recorded == declared, "run python3 run.py lock"
    assert root["metadata"].get("provides-extras", []) == list(PROJECT["optional-dependencies"])
    assert LOCK["requires-python"] == PROJECT["requires-python"]


@pytest.mark.parametrize(("requirement", "extra"), DECLARED, ids=lambda r: str(r))
def test_every_dependency_is_locked_at_a_version_it_allows(
    requirement: Requirement, extra: str
) -> None:
    locked = PACKAGES.get(canonicalize_name(requirement.name))
    assert locked, f"{requirement.name} is not in uv.lock: run python3 run.py lock"
    for package in locked:
        assert requirement.specifier.contains(package["version"], prereleases=True), (
            f"uv.lock pins {requirement.name} {package['version']}, outside {requirement}"
        )


@pytest.mark.parametrize("kind", ["runtime", "dev"])
def test_the_pip_lock_files_hold_uv_locks_pins_and_hashes(kind: str) -> None:
    found = pins(kind)
    for pin in found.values():
        locked = {p["version"]: p for p in PACKAGES.get(pin.name, [])}
        assert pin.version in locked, f"{pin.name}=={pin.version} is not what uv.lock pins"
        assert pin.hashes, pin.name
        assert pin.hashes <= locked_hashes(locked[pin.version]), pin.name
    wanted = {canonicalize_name(r.name) for r, extra in DECLARED if kind == "dev" or not extra}
    assert wanted <= set(found), f"missing from requirements/{kind}.txt: {wanted - set(found)}"
    assert "memorybot" not in found
    header = (ROOT / "requirements" / f"{kind}.txt").read_text().splitlines()[:2]
    assert "python3 run.py lock" in "\n".join(header)


def test_the_dev_lock_holds_every_runtime_pin() -> None:
    runtime, dev = pins("runtime"), pins("dev")
    assert {name: runtime[name] for name in runtime} == {name: dev[name] for name in runtime}


def test_uv_is_pinned_for_reproducible_lock_files() -> None:
    (uv,) = [r for r, extra in DECLARED if canonicalize_name(r.name) == "uv"]
    (specifier,) = uv.specifier
    assert specifier.operator == "=="
