"""Command-line argument errors (exit status 2) and parsing shared by the ``btk`` commands."""

from __future__ import annotations

from datetime import datetime, timezone


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
