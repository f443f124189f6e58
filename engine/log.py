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


# Errors whose text says it all: the engine's own, and the plain kinds its checks raise.
_PLAIN_ERRORS = (ValueError, OSError, TimeoutError, RuntimeError, LookupError)


def describe_error(exc: BaseException) -> str:
    """An error as one line for a message: its text alone for the engine's own errors and the
    plain kinds (a user reads what went wrong, not a class name), ``Type: text`` for anything
    else (a bug in a strategy should say what it was), the type alone when it has no text."""
    text = " ".join(str(exc).split())
    if not text:
        return type(exc).__name__
    own = type(exc).__module__.split(".")[0] in ("engine", "console")
    if own or (type(exc) in _PLAIN_ERRORS or (type(exc).__module__ == "builtins" and isinstance(exc, OSError))):
        return text
    return f"{type(exc).__name__}: {text}"
