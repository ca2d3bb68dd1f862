"""The operator page's templates and stylesheet are files beside its modules: an installed
bot (the Docker image installs the wheel) has them only if `pyproject.toml` lists them."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_file_the_page_reads_ships_in_the_package() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    globs = project["tool"]["setuptools"]["package-data"]["bot.web"]
    web = ROOT / "bot" / "web"
    shipped = {path for pattern in globs for path in web.glob(pattern)}
    assert all(any(web.glob(pattern)) for pattern in globs), globs
    needed = {path for folder in ("templates", "static") for path in (web / folder).iterdir()}
    assert needed <= shipped, sorted(str(p.relative_to(web)) for p in needed - shipped)
