"""Execution and method contexts (contextvars) and the clocks behind ``when``.

Every engine call into strategy code runs inside an execution context
``(symbol, when, backtest)`` that carries its method context ``(strategy_name,
exchange_name, frame_name)``. ``when`` comes from an injected clock: frames in
a backtest, the wall clock (aligned down to the minute) live, a fake in tests.
Strategy code never reads the wall clock; it calls ``get_date()``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextvars import ContextVar
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec

from .interval import MINUTE_MS, align, to_datetime

if TYPE_CHECKING:
    from .feed import CandleFeed


class Clock:
    """A clock the engine moves: backtests set ``now`` frame by frame; tests set it by hand."""

    __slots__ = ("now",)

    def __init__(self, now: int = 0):
        self.now = now


class WallClock(Clock):
    """Live time: the wall clock aligned down to the minute.

    The live loop ticks at ``first()`` (the minute just closed), then at each minute boundary
    plus ``settle`` seconds, so the exchange has closed the candle. A closed minute is never
    skipped: a loop that falls behind (a slow exchange) ticks the minutes it owes at once, one by
    one, and a restart with ``catch_up`` (the default) begins at the saved minute and re-ticks
    every minute since (``first(resume_at)``), so a close crossed while the process was down is
    judged at its real minute. ``wake`` (set by a stop) ends a wait early.

    ``time_ms`` and ``speed`` inject the time (tests, simulations): the clock reads
    ``time_ms()`` for the wall time in ms and divides its waits by ``speed``."""

    __slots__ = ("settle", "wake", "catch_up", "time_ms", "speed")

    def __init__(self, settle: float = 2.0, *, catch_up: bool = True, time_ms: Callable[[], float] | None = None,
                 speed: float = 1.0) -> None:
        super().__init__(0)
        self.settle = settle
        self.wake = asyncio.Event()
        self.catch_up = catch_up
        self.time_ms = time_ms or (lambda: time.time() * 1000)
        self.speed = speed

    def read(self) -> int:
        """The last closed minute's tick time: now, aligned down to the minute."""
        self.now = align(int(self.time_ms()), MINUTE_MS)
        return self.now

    def continues(self, resume_at: int) -> bool:
        """Whether a run saved at ``resume_at`` may go on on this clock: the wall clock's time
        always continues a saved run's."""
        return True

    async def first(self, resume_at: int | None) -> int | None:
        now = self.read()
        if resume_at is not None and self.catch_up and resume_at < now:
            self.now = resume_at     # the saved minute again, then every minute missed since
        return self.now

    async def next(self) -> int | None:
        boundary = self.now + MINUTE_MS
        delay = (boundary - self.time_ms()) / 1000 + self.settle
        if delay > 0:
            try:
                await asyncio.wait_for(self.wake.wait(), delay / self.speed)
                self.wake.clear()
                return self.read()  # woken by a stop: tick again now
            except TimeoutError:
                pass
        self.now = boundary
        return self.now


class MethodContext(msgspec.Struct, frozen=True):
    strategy_name: str
    exchange_name: str
    frame_name: str = ""


class ExecutionContext:
    """Where and when strategy code runs, and on behalf of which strategy (``method``).
    ``when`` is read from the clock, so a backtest moves one context object through its
    frames without rebuilding it, and entering it is one ContextVar set."""

    __slots__ = ("symbol", "backtest", "clock", "feed", "method", "indicators", "owner")

    def __init__(self, symbol: str, backtest: bool, clock: Clock, feed: CandleFeed, method: MethodContext,
                 indicators: Any = None, owner: Any = None):
        self.symbol = symbol
        self.backtest = backtest
        self.clock = clock
        self.feed = feed
        self.method = method
        self.indicators = indicators     # the strategy's declared indicators: when -> a view (or None)
        self.owner = owner               # the ClientStrategy running the code (its commands act on it)

    @property
    def when(self) -> int:
        return self.clock.now


execution_context: ContextVar[ExecutionContext | None] = ContextVar("btk_execution", default=None)


def current_execution(fn_name: str) -> ExecutionContext:
    ctx = execution_context.get()
    if ctx is None:
        raise RuntimeError(
            f"bk.{fn_name}() is only valid inside a strategy's get_signal or a callback "
            "while the engine runs it (no execution context is active)"
        )
    return ctx


class running:
    """Enter the execution context for one call into strategy code (one ContextVar set)."""

    __slots__ = ("_exec", "_token")

    def __init__(self, execution: ExecutionContext):
        self._exec = execution

    def __enter__(self) -> None:
        self._token = execution_context.set(self._exec)

    def __exit__(self, *exc: Any) -> None:
        execution_context.reset(self._token)


def get_date() -> datetime:
    """The engine's "now" as an aware UTC datetime (frame time in a backtest)."""
    return to_datetime(current_execution("get_date").clock.now)


def get_mode() -> str:
    return "backtest" if current_execution("get_mode").backtest else "live"
