"""Command-line argument errors (exit status 2) and parsing shared by the ``btk`` commands."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path


class UsageError(Exception):
    """Bad arguments: exit status 2."""


def parse_time(text: str, flag: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{flag} {text!r}: expected an ISO date or time such as 2023-03-05 or 2023-03-05T12:00") from None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def one_line(e: BaseException) -> str:
    """An error's message on one line (for the one-line reason on stderr)."""
    return " ".join(str(e).split())


def check_writable(path: Path, flag: str) -> None:
    """A file the command will write at the end: refuse before a long run rather than after it."""
    if path.is_dir():
        raise UsageError(f"{flag} {path}: is a directory, expected a file")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"{flag} {path}: the folder {parent} does not exist")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UsageError(f"{flag} {path}: not writable")
