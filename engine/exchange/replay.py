"""The replay exchange: stored candles played through the live loop on an accelerated clock.

Paper trading, the recovery path and the console all run offline on it. A live
run on ``replay`` gets a ``ReplayClock`` that starts at ``start`` (or where the
run's saved state says it stopped) and advances one minute per
``60 / speed`` seconds of wall time (``speed=0``: as fast as the loop goes)
until the stored data ends. Candles come from the candle store, loaded once
per symbol and served as slices; the feed never asks for a candle that has not
closed at the clock's time, exactly as live.
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import datetime

import engine.registry as registry

from ..context import Clock
from ..interval import MINUTE_MS, interval_ms, iso, to_ms
from ..persistence.candles import DEFAULT_WARMUP_MINUTES, connect, default_store_path, series_summary
from ..types import Candles
from .bundled import BUNDLED, StoreExchange, aggregate, ensure_seeded
from .errors import CandlesUnavailable

REPLAY = "replay"


class ReplayClock(Clock):
    """A replay's market clock. ``start_given``: the span's start was asked for (``--from``)
    rather than the default; ``data_end``: ``end`` is where the stored candles end (not a
    ``--to``). It may be paused, resumed and sped up or slowed down while it runs."""

    __slots__ = ("start", "end", "speed", "start_given", "data_end", "wake", "_paced_from", "_running")

    def __init__(self, start: int, end: int, speed: float, start_given: bool = True, data_end: bool = False):
        super().__init__(start)
        self.start, self.end, self.speed, self.start_given = start, end, speed, start_given
        self.data_end = data_end
        self.wake = asyncio.Event()
        self._paced_from: tuple[float, int] | None = None
        self._running = asyncio.Event()
        self._running.set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def pause(self) -> None:
        """No tick after the one under way until ``resume`` (or a stop, which wakes it)."""
        self._running.clear()

    def resume(self) -> None:
        self._paced_from = (time.monotonic(), self.now)     # pace from here, not from before the pause
        self._running.set()

    def set_speed(self, speed: float) -> None:
        """Market minutes per wall minute from now on (0: as fast as the loop goes)."""
        if not isinstance(speed, (int, float)) or isinstance(speed, bool) or not speed >= 0:
            raise ValueError(f"replay speed must be a number >= 0 (0: as fast as possible), got {speed!r}")
        self.speed = float(speed)
        self._paced_from = (time.monotonic(), self.now)
        self.wake.set()       # a tick waiting on the old pace goes now

    def continues(self, resume_at: int) -> bool:
        """Whether a run saved at ``resume_at`` (its last tick) goes on in this replay: its span
        reaches that tick, and an asked-for start is no later than the minute after it."""
        return resume_at <= self.end and (not self.start_given or self.start <= resume_at + MINUTE_MS)

    async def first(self, resume_at: int | None) -> int | None:
        """Resume at ``resume_at`` (the last tick a stopped run began: it is ticked again) if
        given, else ``start``."""
        self.now = self.start if resume_at is None else resume_at
        self._paced_from = (time.monotonic(), self.now)
        return self.now if self.now <= self.end else None

    async def next(self) -> int | None:
        if not self._running.is_set():
            await _first_of(self._running, self.wake)        # paused: until resumed or stopped
            self.wake.clear()
        self.now += MINUTE_MS
        if self.now > self.end:
            return None
        if self.speed > 0 and self._paced_from is not None:
            wall0, t0 = self._paced_from
            due = wall0 + (self.now - t0) / MINUTE_MS * 60.0 / self.speed
            delay = due - time.monotonic()
            if delay > 0:
                try:
                    await asyncio.wait_for(self.wake.wait(), delay)
                    self.wake.clear()
                except TimeoutError:
                    pass
        else:
            await asyncio.sleep(0)  # let the console and other runs breathe
        return self.now


async def _first_of(*events: asyncio.Event) -> None:
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()


class ReplayExchange:
    """Serves one store exchange's candles from memory and gives live runs a replay clock."""

    def __init__(self, source: str = BUNDLED, store_path: str | os.PathLike[str] | None = None, *,
                 speed: float = 600.0, start: datetime | int | None = None, end: datetime | int | None = None,
                 series: dict[str, Candles] | None = None):
        """``series`` replays given 1m candles per symbol instead of the store's (tests, demos)."""
        if not isinstance(speed, (int, float)) or isinstance(speed, bool) or speed < 0 or speed != speed:
            raise ValueError(f"replay speed must be a number >= 0 (0: as fast as possible), got {speed!r}")
        self.source = source
        self.store_path = str(store_path or default_store_path())
        self.speed = float(speed)
        self.start = None if start is None else to_ms(start)
        self.end = None if end is None else to_ms(end)
        self._series: dict[str, Candles] = dict(series or {})
        self._lock = asyncio.Lock()

    async def _minutes(self, symbol: str) -> Candles:
        series = self._series.get(symbol)
        if series is not None:
            return series
        async with self._lock:
            if symbol not in self._series:
                if self.source == BUNDLED:
                    await ensure_seeded(self.store_path)
                db = await connect(self.store_path)
                try:
                    summary = await series_summary(db, self.source, symbol, "1m")
                finally:
                    await db.close()
                if summary is None:
                    raise CandlesUnavailable(f"replay: {self.source} has no {symbol} 1m candles in {self.store_path} "
                                             "(see `btk data list`; import some with `btk data import`)")
                count = (summary.last - summary.first) // MINUTE_MS + 1
                self._series[symbol] = await StoreExchange(self.source, self.store_path).get_candles(
                    symbol, "1m", summary.first, count)
        return self._series[symbol]

    async def get_candles(self, symbol: str, interval: str, since: datetime, limit: int) -> Candles:
        minutes = await self._minutes(symbol)
        step = interval_ms(interval)
        ratio = step // MINUTE_MS
        since_ms = to_ms(since)
        t0 = int(minutes.timestamp[0])
        a = (since_ms - t0) // MINUTE_MS
        b = a + limit * ratio
        if since_ms % MINUTE_MS or a < 0 or b > len(minutes):
            last = t0 + (len(minutes) - 1) * MINUTE_MS
            raise CandlesUnavailable(f"replay {self.source} {symbol}: stored candles cover {iso(t0)} to {iso(last)}, "
                                     f"the request needs {iso(since_ms)} to {iso(since_ms + (limit - 1) * step)}",
                                     first=t0, last=last)
        window = minutes.span(a, b)
        return window if ratio == 1 else aggregate(window, ratio)

    async def live_clock(self, symbol: str) -> ReplayClock:
        minutes = await self._minutes(symbol)
        first = int(minutes.timestamp[0])
        last = first + (len(minutes) - 1) * MINUTE_MS
        # The tick at t judges candles before t: the last tick is one minute past the last candle.
        end = min(self.end if self.end is not None else last + MINUTE_MS, last + MINUTE_MS)
        start = self.start if self.start is not None else first + DEFAULT_WARMUP_MINUTES * MINUTE_MS
        if start > end:
            raise ValueError(f"replay {symbol}: start {iso(start)} is after the end of the stored data / --to "
                             f"({iso(end)})")
        return ReplayClock(start - start % MINUTE_MS, end, self.speed, start_given=self.start is not None,
                           data_end=end == last + MINUTE_MS)


def add_replay_exchange(exchange_name: str = REPLAY, *, source: str = BUNDLED,
                        store_path: str | os.PathLike[str] | None = None, speed: float = 600.0,
                        start: datetime | int | None = None, end: datetime | int | None = None,
                        series: dict[str, Candles] | None = None) -> ReplayExchange:
    """Register a replay of store exchange ``source`` (``bundled`` by default) for live runs."""
    replay = ReplayExchange(source, store_path, speed=speed, start=start, end=end, series=series)
    registry.add_exchange(exchange_name, replay.get_candles, live_clock=replay.live_clock,
                          note=f"replay of {source} at {speed:g}x")
    return replay
