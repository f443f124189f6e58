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
from bisect import bisect_left
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
import numpy as np

from ..commands import PositionCommands
from ..config import get_config
from ..context import Clock, running
from ..events import Timings, bus, emit_performance
from ..exchange.client import ExchangeClient
from ..exchange.errors import ExchangeError, HistoryUnavailable
from ..feed import SeriesFeed
from ..interval import MINUTE_MS, align, interval_ms, iso
from ..log import describe_error
from ..registry import StrategySchema, get_exchange, get_frame, get_strategy, raise_problems, reference_problems
from ..report import OrderCounts
from ..stats import BacktestStatistics, backtest_statistics
from ..strategy import ClientStrategy
from ..vectorised import SignalFrame, Signals, SignalTable, compute_signals
from ..types import BacktestProgressEvent, Candles, DoneEvent, TickClosed, TickResult
from .supervise import run_report, start_background, supervised, write_report

# Progress is reported about this many times per run (plus the final 1.0): one event per
# frame would cost more than the frames themselves on fast strategies.
PROGRESS_STEPS = 1000
# Hand the event loop a turn, so a console and other runs stay responsive: look every this
# many frames, and give the turn if this long passed since the last one.
YIELD_EVERY_FRAMES = 2048
TURN_SECONDS = 0.004
# Records gathered for the analytics in one batch (the lane's milestones, signal timings) are
# handed over at a turn this often, and at the end.
FLUSH_SECONDS = 0.5


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
    vectorised: bool | None = None    # None: vectorised when the strategy offers get_signals (then: as run)
    orders: OrderCounts = msgspec.field(default_factory=OrderCounts)
    signal_calls: int = 0             # get_signal calls, and those that raised or timed out
    failed_signal_calls: int = 0
    warmup: tuple[int, int] | None = None   # (first stored candle, first frame time with the history asked for)


_runs: dict[tuple[str, str], RunState] = {}
LOOKBACK_MINUTES = 24 * 60


def _key(symbol: str, strategy_name: str) -> tuple[str, str]:
    return (symbol, strategy_name)


class Backtest(PositionCommands):
    """Backtests of a strategy on a symbol over a frame. Results are kept per (symbol, strategy).
    ``commit_*`` act on a running backtest's position at its clock (from a listener of its events)."""

    @classmethod
    def _running_strategy(cls, symbol: str, strategy_name: str) -> Any:
        state = _runs.get(_key(symbol, strategy_name))
        if state is None or state.status != "running" or state.strategy is None:
            raise ValueError(f"no backtest of {strategy_name} on {symbol} is running")
        return state.strategy

    @staticmethod
    def run(symbol: str, *, strategy_name: str, exchange_name: str, frame_name: str,
            vectorised: bool | None = None) -> AsyncIterator[TickResult]:
        """Yield ``scheduled``, ``opened``, ``closed`` and ``cancelled`` results as the backtest goes.

        A strategy registered with ``get_signals`` runs vectorised (its entry signals computed once
        for the whole frame) unless ``vectorised=False``; ``vectorised=True`` requires it."""
        ctx = {"symbol": symbol, "strategy_name": strategy_name, "exchange_name": exchange_name,
               "frame_name": frame_name, "backtest": True}
        state = RunState(symbol, strategy_name, exchange_name, frame_name, status="running", vectorised=vectorised)

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
    def get_status(symbol: str, *, strategy_name: str) -> dict[str, Any] | None:
        """How the run went (None if there is none): its status, frames done of all, closed
        signals, entries (``orders``: a ``bk.OrderCounts``), ``get_signal`` calls and how many
        failed, and its warm-up (``None``, or ``(first stored candle, first frame time with the
        history the strategy asks for)``)."""
        s = _runs.get(_key(symbol, strategy_name))
        if s is None:
            return None
        return {"status": s.status, "processed_frames": s.processed_frames, "total_frames": s.total_frames,
                "closed": len(s.closed), "orders": s.orders, "signal_calls": s.signal_calls,
                "failed_signal_calls": s.failed_signal_calls, "warmup": s.warmup}

    @staticmethod
    def frame_candles(symbol: str, *, strategy_name: str) -> Candles | None:
        """The 1m candles of the last run's frame, as the run read them (a view, no copy; a chart's),
        or None when it read none."""
        s = _runs.get(_key(symbol, strategy_name))
        feed = getattr(s.strategy, "feed", None) if s is not None else None
        series = feed.series.get((symbol, "1m")) if isinstance(feed, SeriesFeed) else None
        if series is None:
            return None
        frame = get_frame(s.frame_name)  # type: ignore[union-attr]
        first, last = series.index(align(frame.start, MINUTE_MS)), series.index(align(frame.end, MINUTE_MS))
        return series.candles.span(first, last + 1) if 0 <= first <= last < len(series) else None

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


def record_finished(symbol: str, strategy_name: str, exchange_name: str, frame_name: str,
                    closed: list[TickClosed]) -> None:
    """A backtest that ran elsewhere (a walker's cell, in a worker or from the cache) becomes this
    process's run of ``(symbol, strategy_name)``: ``get_data`` / ``get_report`` / ``list`` see it,
    as they see a walker's cells in backtest-kit."""
    _runs[_key(symbol, strategy_name)] = RunState(symbol, strategy_name, exchange_name, frame_name, status="done",
                                                  closed=list(closed))


async def _run(state: RunState) -> AsyncIterator[TickResult]:
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
    exchange = get_exchange(state.exchange_name)
    client = ExchangeClient(exchange)
    feed = SeriesFeed(client, horizon_end=past_end)
    # A source that answers the whole run in one request (the store, arrays in memory) gives a day
    # before it too, where it has one: the strategy's look-back comes with the first read.
    count = (past_end + MINUTE_MS - first_needed) // MINUTE_MS
    history = LOOKBACK_MINUTES if (exchange.candles_per_request or 0) >= count + LOOKBACK_MINUTES else 0
    started = time.perf_counter()
    try:
        await feed.load(state.symbol, "1m", first_needed, past_end + MINUTE_MS, history=history)
    except Exception as exc:
        message = (f"backtest needs 1m candles of {state.symbol} from {iso(first_needed)} to {iso(past_end)} (the "
                   f"VWAP window before the frame and one candle after it): {describe_error(exc)}")
        try:
            said = type(exc)(message)    # the same kind of error, saying what the backtest needed
        except Exception:
            said = ExchangeError(message)    # an error type that takes other arguments
        raise said from exc
    _performance("backtest_load_candles", started, state, int(times[0]))

    clock = Clock(int(times[0]))
    strategy = ClientStrategy(schema, symbol=state.symbol, exchange_name=state.exchange_name,
                              frame_name=state.frame_name, feed=feed, clock=clock, backtest=True)
    state.strategy = strategy
    if state.stop_requested:
        strategy.stop()
    total = len(times)
    state.total_frames = total
    first_time = int(times[0])
    frame_step = interval_ms(frame.interval)
    table = None
    checked: list[float | None] | None = None
    state.vectorised = _vectorised(state, schema)      # from here on: the path taken
    if state.vectorised:
        # Rows before ``skip`` lack the history the strategy asks for: its warm-up, no signal there.
        skip, table = await _signal_table(schema, strategy, times, feed, state)
        strategy.signal_lookup = lambda when: table.at(row) if (row := (when - first_time) // frame_step - skip) >= 0 \
            else None
        strategy.resolved_ahead = table.resolve_ahead(feed.minute_series(state.symbol), times[skip:], end_ms=end,
                                                      config=config)
        signal_rows = (table.rows + skip).tolist()
        # Limit orders are not resolved ahead (each from its fill): their checks are done ahead instead.
        checked = table.checked_prices(feed.minute_series(state.symbol), times[skip:], config) \
            if strategy.resolved_ahead is None else None
    progress_every = max(1, total // PROGRESS_STEPS)
    next_progress = 0
    next_yield = YIELD_EVERY_FRAMES
    last_turn = last_flush = time.perf_counter()
    slot_ms = strategy.interval_ms
    progress_channel = bus.backtest_progress  # type: ignore[attr-defined]
    signal_timings = Timings("backtest_signal", symbol=state.symbol, strategy_name=state.strategy_name,
                             exchange_name=state.exchange_name, backtest=True)
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
                now = time.perf_counter()
                if now - last_turn >= TURN_SECONDS:
                    if now - last_flush >= FLUSH_SECONDS:     # what others may read while they have the turn
                        strategy.flush_planned()
                        signal_timings.flush()
                        last_flush = now
                    await asyncio.sleep(0)
                    last_turn = time.perf_counter()
            if state.stop_requested:
                break
            if strategy.quiet_idle():
                # Only get_signal runs, on each throttle slot, until it gives a signal or the
                # next progress / yield point.
                stop_at = min(total, next_progress, next_yield)
                if table is None:
                    i, result = await _scan(strategy, clock, first_time, frame_step, i, stop_at)
                    if result is None:
                        continue
                else:
                    found = _next_row(strategy, first_time, frame_step, i, stop_at, signal_rows)
                    if found is None:
                        i = stop_at
                        continue
                    k, i, previous_slot = found
                    when = clock.now = first_time + i * frame_step
                    strategy.last_slot = when // slot_ms
                    ahead = strategy.resolved_ahead
                    price = ahead.valid_price(k) if ahead is not None else checked[k] if checked is not None else None
                    if price is not None and ahead is not None and ahead.series is feed.minute_series(state.symbol) \
                            and strategy.plain() is not None:
                        planned = await strategy.open_planned(ahead, k, when, price, previous_slot)
                        if planned is None:        # a risk profile rejected it
                            i += 1
                            continue
                        result = planned
                    else:
                        result = await strategy.accept_signal(strategy.signal_lookup(when), when,  # type: ignore[misc]
                                                              previous_slot, price)
                        if result.action == "idle":
                            i += 1
                            continue
                when = clock.now
            else:
                when = first_time + i * frame_step
                clock.now = when
                result = await strategy.tick()
            action = result.action
            if action == "idle":
                i += 1
                if (slot_ms > frame_step and strategy.last_slot is not None and strategy.scheduled is None
                        and strategy.pending is None and not strategy._observed_idle()):
                    # Jump to the first frame of the next throttle slot.
                    i = max(i, _first_frame_at(first_time, frame_step, (strategy.last_slot + 1) * slot_ms))
                continue
            state.orders.record(result)
            yield result
            resolving = time.perf_counter()
            if action == "scheduled":
                # The series as it is now: get_candles may have grown it backwards since.
                result = await strategy.backtest_scheduled(feed.minute_series(state.symbol), end)
                if result.action == "cancelled":
                    signal_timings.add(resolving, when)
                state.orders.record(result)
                yield result
                resolving = time.perf_counter()
                action = result.action
            if action == "opened":
                series = feed.minute_series(state.symbol)
                mode = strategy.plain() if strategy.planned is not None else None
                if mode is not None and series is strategy.resolved_ahead.series:
                    result = await strategy.close_planned(series, mode, end)
                else:
                    result = await strategy.backtest_open(series, end)
                signal_timings.add(resolving, when)
                state.closed.append(result)  # type: ignore[arg-type]
                yield result
            close_ts = result.close_timestamp  # type: ignore[union-attr]
            # The first frame after the close.
            i = _first_frame_at(first_time, frame_step, close_ts + 1)
    finally:
        state.signal_calls, state.failed_signal_calls = strategy.signal_calls, strategy.failed_signal_calls
        state.warmup = strategy.warmup
        strategy.flush_planned()
        signal_timings.flush()
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


def _first_frame_at(first_time: int, step: int, at: int) -> int:
    """Index of the first frame time ``>= at`` (frame times are ``first_time + k*step``)."""
    return max(0, -((first_time - at) // step))


async def _scan(strategy: ClientStrategy, clock: Clock, first_time: int, step: int, i: int,
                stop_at: int) -> tuple[int, TickResult | None]:
    """The per-frame path while the strategy is quietly idle: call ``get_signal`` on the first
    frame of each throttle slot from frame ``i`` until one gives a signal (returns its frame and
    the tick result of accepting it) or frame ``stop_at`` is reached (returns it and None).
    Nothing else runs per frame: no price, no tick object, frames within a taken slot skipped."""
    slot_ms = strategy.interval_ms
    while i < stop_at:
        when = first_time + i * step
        slot = when // slot_ms
        if slot == strategy.last_slot:
            i = max(i + 1, _first_frame_at(first_time, step, (slot + 1) * slot_ms))
            continue
        clock.now = when
        previous_slot, strategy.last_slot = strategy.last_slot, slot
        done, dto = strategy._start_signal(when)
        if not done:
            dto = await strategy._finish_signal(dto)
        if dto is not None and not strategy.stopped:
            result = await strategy.accept_signal(dto, when, previous_slot)
            if result.action != "idle":
                return i, result
            if strategy.last_slot == previous_slot:   # rejected by risk: the slot is not taken
                i += 1
                continue
        i = max(i + 1, _first_frame_at(first_time, step, (slot + 1) * slot_ms)) if slot_ms > step else i + 1
    return i, None


def _vectorised(state: RunState, schema: StrategySchema) -> bool:
    if state.vectorised is False:
        return False
    if schema.get_signals is None:
        if state.vectorised:
            raise ValueError(f"Backtest.run(vectorised=True): strategy {schema.strategy_name!r} has no get_signals")
        return False
    return True


async def _signal_table(schema: StrategySchema, strategy: ClientStrategy, times: np.ndarray, feed: SeriesFeed,
                        state: RunState) -> tuple[int, SignalTable]:
    """``get_signals`` over the frame: ``(skip, table)``, the table's row ``r`` being frame row
    ``skip + r``. Where the strategy asks for history from before the stored candles, the frame's
    first rows are its warm-up: it is asked again from the first row with that history, as the
    per-frame path gets no signal until then."""
    started = time.perf_counter()
    skip = 0
    with running(strategy.execution):
        while True:
            frame = SignalFrame(state.symbol, times[skip:], feed)
            try:
                table = await compute_signals(schema.get_signals, frame, f"get_signals of {schema.strategy_name}")
                break
            except HistoryUnavailable as exc:
                step = interval_ms(exc.interval)
                ready_at = exc.available_from + exc.limit * step
                strategy.note_warmup(exc.available_from, ready_at)
                later = skip + int(np.searchsorted(times[skip:] - times[skip:] % step, ready_at))
                if later <= skip:
                    raise       # the history it lacks is not before the frame: nothing to wait for
                skip = later
                if skip >= len(times):
                    table = SignalTable(Signals(long=np.zeros(0, dtype=bool), price_take_profit=1.0,
                                                price_stop_loss=1.0), 0, "warm-up")
                    break
    _performance("backtest_get_signals", started, state, int(times[0]))
    return skip, table


def _next_row(strategy: ClientStrategy, first_time: int, step: int, i: int, stop_at: int,
              rows: list[int]) -> tuple[int, int, int | None] | None:
    """``_scan`` for a vectorised strategy: the next signal row from frame ``i`` on where
    ``get_signal`` would have been called (the first frame of a throttle slot not taken yet;
    every frame, when the slot is the frame's step; or frame ``i`` itself), as ``(k, row, the
    slot taken before it)`` with ``row == rows[k]``; None if there is none before ``stop_at``
    (the slots up to there then count as taken)."""
    slot_ms = strategy.interval_ms
    k = bisect_left(rows, i)
    while k < len(rows):
        r = rows[k]
        if r >= stop_at:
            break
        when = first_time + r * step
        # The slot taken just before frame r: frame r-1's, if the scan passed it (it was called
        # there, or its slot was taken before).
        before = strategy.last_slot if r == i else (when - step) // slot_ms
        if when // slot_ms != before:
            return k, r, before
        k += 1
    if stop_at > i:
        strategy.last_slot = (first_time + (stop_at - 1) * step) // slot_ms
    return None


def _performance(metric: str, started: float, state: RunState, when: int) -> None:
    emit_performance(metric, started, symbol=state.symbol, strategy_name=state.strategy_name,
                     exchange_name=state.exchange_name, backtest=True, when=when)
