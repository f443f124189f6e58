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
