"""The engine's logger: a stdlib logger by default, replaceable with ``set_logger``.

Any object with ``debug/info/warning/error`` methods works (a stdlib
``logging.Logger`` or a structlog logger, say).
"""

from __future__ import annotations

import logging
from typing import Any

_logger: Any = logging.getLogger("btk")


def set_logger(logger: Any) -> None:
    missing = [m for m in ("debug", "info", "warning", "error") if not callable(getattr(logger, m, None))]
    if missing:
        raise ValueError(f"set_logger: the logger has no callable {', '.join(missing)}")
    global _logger
    _logger = logger


def get_logger() -> Any:
    return _logger


def describe_error(exc: BaseException) -> str:
    """An error as one line for a message: the text alone for the engine's own errors and the
    operating system's (a user reads what went wrong, not a class name); ``Type: text`` for
    anything else (what a strategy raised should say what it was); the type alone if no text."""
    text = " ".join(str(exc).split())
    if not text:
        return type(exc).__name__
    if type(exc).__module__.split(".")[0] in ("engine", "console") or isinstance(exc, OSError):
        return text
    return f"{type(exc).__name__}: {text}"
