"""The backtest runner (SEMANTICS.md section 5).

Frame times ``align(start)``, then every frame interval, while ``<= end``. Per
frame: progress, stop check, ``tick``. An ``opened`` or ``scheduled`` result is
resolved at once over the loaded 1m candles (the fast path); the loop then
skips every frame time ``<= close_timestamp``. Idle frames between throttle
slots are skipped without Python work when nobody observes idle ticks.

``run`` is a lazy async generator: it advances only while iterated.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
import numpy as np

from ..config import get_config
from ..context import Clock
from ..events import bus, emit_performance
from ..exchange.client import ExchangeClient
from ..interval import MINUTE_MS, align, interval_ms, iso
from ..registry import get_exchange, get_frame, get_strategy, raise_problems, reference_problems
from ..stats import BacktestStatistics, backtest_statistics
from ..strategy import ClientStrategy
from ..types import BacktestProgressEvent, DoneEvent, TickClosed, TickResult
from .supervise import run_report, start_background, supervised, write_report

# Progress is reported about this many times per run (plus the final 1.0): one event per
# frame would cost more than the frames themselves on fast strategies.
PROGRESS_STEPS = 1000
# Hand the event loop a turn this often, so a console and other runs stay responsive.
YIELD_EVERY_FRAMES = 2048


class FrameError(ValueError):
    pass


def frame_times(start: int, end: int, interval: str) -> np.ndarray:
    """``align(start)``, then every ``interval``, while ``<= end``."""
    step = interval_ms(interval)
    return np.arange(align(start, step), end + 1, step, dtype=np.int64)


class RunState(msgspec.Struct):
    symbol: str
    strategy_name: str
    exchange_name: str
    frame_name: str
    status: str = "pending"          # pending | running | done | stopped | error
    closed: list[TickClosed] = msgspec.field(default_factory=list)
    strategy: Any = None
    stop_requested: bool = False
    processed_frames: int = 0
    total_frames: int = 0


_runs: dict[tuple[str, str], RunState] = {}


def _key(symbol: str, strategy_name: str) -> tuple[str, str]:
    return (symbol, strategy_name)


class Backtest:
    """Backtests of a strategy on a symbol over a frame. Results are kept per (symbol, strategy)."""

    @staticmethod
    def run(symbol: str, *, strategy_name: str, exchange_name: str, frame_name: str) -> AsyncIterator[TickResult]:
        """Yield ``scheduled``, ``opened``, ``closed`` and ``cancelled`` results as the backtest goes."""
        ctx = {"symbol": symbol, "strategy_name": strategy_name, "exchange_name": exchange_name,
               "frame_name": frame_name, "backtest": True}
        state = RunState(symbol, strategy_name, exchange_name, frame_name, status="running")

        def check() -> None:
            raise_problems(reference_problems(strategy=strategy_name, exchange=exchange_name, frame=frame_name),
                           "Backtest.run")
        return supervised("Backtest.run", state, _runs, _key(symbol, strategy_name), ctx, check, lambda: _run(state))

    @staticmethod
    def background(symbol: str, *, strategy_name: str, exchange_name: str, frame_name: str) -> Callable[[], None]:
        """Start the backtest as a task; returns a function that stops it. Never raises: it reports
        through the same events (``listen_error``, ``listen_exit``, ``listen_done_backtest``)."""
        start_background(Backtest.run(symbol, strategy_name=strategy_name, exchange_name=exchange_name,
                                      frame_name=frame_name), f"btk-backtest-{symbol}-{strategy_name}")
        return lambda: Backtest.stop(symbol, strategy_name=strategy_name)

    @staticmethod
    def stop(symbol: str, *, strategy_name: str) -> None:
        """Take no new signals; the open position resolves, then the run ends with its done event."""
        state = _runs.get(_key(symbol, strategy_name))
        if state is not None:
            state.stop_requested = True
            if state.strategy is not None:
                state.strategy.stop()

    @staticmethod
    def list() -> list[dict[str, str]]:
        return [{"symbol": s.symbol, "strategy_name": s.strategy_name, "exchange_name": s.exchange_name,
                 "frame_name": s.frame_name, "status": s.status} for s in _runs.values()]

    @staticmethod
    async def get_data(symbol: str, *, strategy_name: str) -> BacktestStatistics:
        state = _runs.get(_key(symbol, strategy_name))
        return backtest_statistics(state.closed if state else [])

    @staticmethod
    async def get_report(symbol: str, *, strategy_name: str) -> str:
        state = _runs.get(_key(symbol, strategy_name))
        return run_report(state, symbol, strategy_name, frame_name=state.frame_name if state else "")

    @staticmethod
    async def dump(symbol: str, *, strategy_name: str, path: str = "./dump/backtest") -> str:
        """Write the markdown report to ``{path}/{symbol}_{strategy_name}.md`` (atomically); returns the file."""
        return write_report(await Backtest.get_report(symbol, strategy_name=strategy_name), path, symbol,
                            strategy_name)


def reset_backtests() -> None:
    """Forget every run's results (tests, reloading a workspace)."""
    _runs.clear()


async def _run(state: RunState) -> AsyncIterator[TickResult]:
    from ..feed import SeriesFeed

    config = get_config()
    frame = get_frame(state.frame_name)
    schema = get_strategy(state.strategy_name)
    times = frame_times(frame.start, frame.end, frame.interval)
    if frame.callbacks.on_timeframe is not None:
        frame.callbacks.on_timeframe(times, frame.start, frame.end, frame.interval)
    if len(times) == 0:
        raise FrameError(f"frame {state.frame_name!r} has no {frame.interval} time between "
                         f"{iso(frame.start)} and {iso(frame.end)}")
    end = frame.end
    # Candles: from the first VWAP window through the first 1m candle past the frame's end,
    # which closes any position still open (time_expired).
    first_needed = align(int(times[0]), MINUTE_MS) - config.CC_AVG_PRICE_CANDLES_COUNT * MINUTE_MS
    past_end = align(end, MINUTE_MS) + MINUTE_MS
    client = ExchangeClient(get_exchange(state.exchange_name))
    feed = SeriesFeed(client, horizon_end=past_end)
    started = time.perf_counter()
    try:
        series = await feed.load(state.symbol, "1m", first_needed, past_end + MINUTE_MS)
    except Exception as exc:
        raise type(exc)(f"backtest needs 1m candles of {state.symbol} from {iso(first_needed)} to "
                        f"{iso(past_end)} (the VWAP window before the frame and one candle after it): {exc}") from exc
    _performance("backtest_load_candles", started, state, int(times[0]))

    clock = Clock(int(times[0]))
    strategy = ClientStrategy(schema, symbol=state.symbol, exchange_name=state.exchange_name,
                              frame_name=state.frame_name, feed=feed, clock=clock, backtest=True)
    state.strategy = strategy
    if state.stop_requested:
        strategy.stop()
    total = len(times)
    state.total_frames = total
    progress_every = max(1, total // PROGRESS_STEPS)
    next_progress = 0
    next_yield = YIELD_EVERY_FRAMES
    slot_ms = strategy.interval_ms
    frame_step = interval_ms(frame.interval)
    progress_channel = bus.backtest_progress  # type: ignore[attr-defined]
    try:
        i = 0
        while i < total:
            if i >= next_progress:
                next_progress = i + progress_every
                state.processed_frames = i
                if progress_channel.listeners:
                    progress_channel.emit(BacktestProgressEvent(state.symbol, state.strategy_name, state.exchange_name,
                                                                state.frame_name, i, total, i / total))
            if i >= next_yield:
                next_yield = i + YIELD_EVERY_FRAMES
                await asyncio.sleep(0)
            if state.stop_requested:
                break
            when = int(times[i])
            clock.now = when
            result = await strategy.tick()
            action = result.action
            if action == "idle":
                i += 1
                if (slot_ms > frame_step and strategy.last_slot is not None and strategy.scheduled is None
                        and strategy.pending is None and not strategy._observed_idle()):
                    # Jump to the first frame of the next throttle slot.
                    next_slot_start = (strategy.last_slot + 1) * slot_ms
                    if i < total and int(times[i]) < next_slot_start:
                        i = int(np.searchsorted(times, next_slot_start, side="left"))
                continue
            yield result
            resolving = time.perf_counter()
            if action == "scheduled":
                result = await strategy.backtest_scheduled(series, end)
                if result.action == "cancelled":
                    _performance("backtest_signal", resolving, state, when)
                yield result
                resolving = time.perf_counter()
                action = result.action
            if action == "opened":
                result = await strategy.backtest_open(series, end)
                _performance("backtest_signal", resolving, state, when)
                state.closed.append(result)  # type: ignore[arg-type]
                yield result
            close_ts = result.close_timestamp  # type: ignore[union-attr]
            i = int(np.searchsorted(times, close_ts, side="right"))
    finally:
        # A backtest persists nothing: a run that ends early (stopped consumer, error) frees its slots.
        strategy.release_risk()
    state.processed_frames = total if not state.stop_requested else i
    if progress_channel.listeners:
        progress_channel.emit(BacktestProgressEvent(state.symbol, state.strategy_name, state.exchange_name,
                                                    state.frame_name, state.processed_frames, total,
                                                    state.processed_frames / total))
    state.status = "stopped" if state.stop_requested else "done"
    _performance("backtest_total", started, state, int(times[-1]))
    bus.done_backtest.emit(DoneEvent(state.symbol, state.strategy_name, state.exchange_name,  # type: ignore[attr-defined]
                                     state.frame_name, True))


def _performance(metric: str, started: float, state: RunState, when: int) -> None:
    emit_performance(metric, started, symbol=state.symbol, strategy_name=state.strategy_name,
                     exchange_name=state.exchange_name, backtest=True, when=when)
