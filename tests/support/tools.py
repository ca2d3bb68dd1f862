"""Command-line tools the tests use where they are installed (the dev extra installs them)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path


def tool(name: str) -> str | None:
    """The path of `name`, looked for beside this Python first: a venv's tools are there even
    when the venv is not on PATH (`.venv/bin/python -m pytest`)."""
    beside = str(Path(sys.executable).parent)
    return shutil.which(name, path=os.pathsep.join([beside, os.environ.get("PATH", "")]))
