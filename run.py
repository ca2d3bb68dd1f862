#!/usr/bin/env python3
"""Set up and run the bot, or its tests, with nothing but Python 3.11+ installed.

    python3 run.py [ARGS...]      the bot: same arguments as `python -m bot`
    python3 run.py test [ARGS...] the test suite: same arguments as `pytest`

The first run creates `.venv/` and installs the package into it; later runs reinstall only
when `pyproject.toml` changes.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")


def ensure_environment(extras: str) -> None:
    """Create the virtual environment and install the package when it is missing or stale."""
    if not PYTHON.exists():
        sys.stderr.write("Creating .venv ...\n")
        venv.EnvBuilder(with_pip=True).create(VENV)
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()[:16]
    stamp = VENV / f".installed-{extras or 'base'}-{digest}"
    # The dev install is a superset of the base one, so either satisfies a plain run.
    if stamp.exists() or (not extras and (VENV / f".installed-dev-{digest}").exists()):
        return
    sys.stderr.write(f"Installing the bot{' with ' + extras if extras else ''} into .venv ...\n")
    target = f".[{extras}]" if extras else "."
    subprocess.run(
        [
            str(PYTHON),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-e",
            target,
        ],
        cwd=ROOT,
        check=True,
    )
    for old in VENV.glob(f".installed-{extras or 'base'}-*"):
        old.unlink()
    stamp.touch()


def main(argv: list[str]) -> int:
    if argv[:1] == ["test"]:
        ensure_environment("dev")
        command = [str(PYTHON), "-m", "pytest", *argv[1:]]
    else:
        ensure_environment("")
        command = [str(PYTHON), "-m", "bot", *argv]
    try:
        return subprocess.run(command, cwd=ROOT).returncode
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
