"""What every analytics service shares: recorders keyed by (symbol, strategy, mode), filters,
bounded event tables, markdown helpers and the atomic dump.

A service records from the event bus through channel taps (the engine's own recorders:
kept by ``clear_listeners``, never counted as observing idle ticks). Counts cover every
event; each key keeps only its newest ``MAX_EVENTS`` events for the report's table, so a
profile that rejects every frame of a year-long backtest costs bounded memory.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

from ..persistence.state import atomic_write, safe_name

MAX_EVENTS = 250

Key = tuple[str, str, bool]          # (symbol, strategy_name, backtest)
A = TypeVar("A")


class Recorder(Generic[A]):
    """Aggregates of type ``A`` per (symbol, strategy, backtest), created on first use."""

    def __init__(self, make: Callable[[], A]):
        self._make = make
        self.by_key: dict[Key, A] = {}

    def get(self, symbol: str, strategy_name: str, backtest: bool) -> A:
        key = (symbol, strategy_name, backtest)
        agg = self.by_key.get(key)
        if agg is None:
            agg = self.by_key[key] = self._make()
        return agg

    def select(self, symbol: str | None, strategy_name: str | None,
               backtest: bool | None) -> Iterator[tuple[Key, A]]:
        """(key, aggregate) for the keys matching the filters (``None`` matches anything)."""
        for key, agg in self.by_key.items():
            sym, strat, bt = key
            if (symbol is None or sym == symbol) and (strategy_name is None or strat == strategy_name) \
                    and (backtest is None or bt == backtest):
                yield key, agg

    def clear(self) -> None:
        self.by_key.clear()


def recent() -> deque[Any]:
    return deque(maxlen=MAX_EVENTS)


def newest(events: Sequence[deque[Any]], key: Callable[[Any], Any]) -> list[Any]:
    """The newest ``MAX_EVENTS`` events of several keys, oldest first."""
    merged = sorted((e for d in events for e in d), key=key)
    return merged[-MAX_EVENTS:]


def mean(values: Sequence[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


def rate(part: int, whole: int) -> float | None:
    """``part / whole`` in percent; ``None`` (not 0) when there is nothing to divide."""
    return part / whole * 100.0 if whole else None


def fmt(value: Any, decimals: int = 2, unit: str = "") -> str:
    if value is None:
        return "N/A"
    if isinstance(value, float):
        return f"{value:.{decimals}f}{unit}"
    return f"{value}{unit}"


def scope(symbol: str | None, strategy_name: str | None, backtest: bool | None) -> str:
    """One line saying what a report covers."""
    mode = {None: "backtest and live", True: "backtest", False: "live"}[backtest]
    return f"symbol {symbol or 'all'}, strategy {strategy_name or 'all'}, {mode}"


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: str = "") -> str:
    """A markdown table; ``align`` has one of l/r per column (default: left)."""
    align = align or "l" * len(header)
    marks = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(marks) + " |"]
    lines += ["| " + " | ".join(str(c).replace("|", "/") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def dump_report(report: str, path: str, *parts: str | None) -> str:
    """Write ``report`` atomically to ``{path}/{part_part...}.md`` (``None`` parts read ``all``)."""
    name = "_".join(safe_name(p or "all") for p in parts) or "all"
    return str(atomic_write(Path(path) / f"{name}.md", report.encode()))


class AnalyticsService:
    """``get_data`` / ``get_report`` / ``dump`` over optional filters (``None`` matches anything).
    A service names its ``kind`` (the dump folder) and implements ``collect`` and ``render``."""

    kind = ""

    @classmethod
    def collect(cls, symbol: str | None, strategy_name: str | None, backtest: bool | None) -> Any:
        raise NotImplementedError

    @classmethod
    def render(cls, stats: Any, where: str) -> str:
        raise NotImplementedError

    @classmethod
    async def get_data(cls, symbol: str | None = None, *, strategy_name: str | None = None,
                       backtest: bool | None = None) -> Any:
        return cls.collect(symbol, strategy_name, backtest)

    @classmethod
    async def get_report(cls, symbol: str | None = None, *, strategy_name: str | None = None,
                         backtest: bool | None = None) -> str:
        return cls.render(cls.collect(symbol, strategy_name, backtest), scope(symbol, strategy_name, backtest))

    @classmethod
    async def dump(cls, symbol: str | None = None, *, strategy_name: str | None = None, backtest: bool | None = None,
                   path: str | None = None) -> str:
        """Write the report to ``{path}/{symbol}_{strategy_name}.md`` (``all`` for no filter; default
        path ``./dump/{kind}``); returns the file."""
        report = await cls.get_report(symbol, strategy_name=strategy_name, backtest=backtest)
        return dump_report(report, path or f"./dump/{cls.kind}", symbol, strategy_name)
