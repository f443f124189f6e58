"""The live runner (SEMANTICS.md sections 11 and 12).

One tick per closed minute on the exchange's clock (the wall clock, or the
replay exchange's accelerated one). After a tick that closes or cancels a
signal the same minute is ticked again, so a new signal can be taken at once,
as a backtest's next frame does: live and backtest give the same trades.

Each state change is journaled and saved before its events (``session.py``);
with the first change of a tick (and now and then while idle) the loop saves
its cursor, that tick's time. A restarted run applies what the last process
journaled, delivers that change's events again (at least once), and resumes
at the cursor: it ticks that minute again, which is safe (every step of a tick
is idempotent once its state is saved), and on the wall clock every closed
minute after it until it has caught up with now, unless told not to
(``catch_up=False``), so a close crossed while the process was down is recorded
at its real minute. A failing tick is reported on ``listen_error`` and the loop
goes on.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import msgspec

from ..commands import PositionCommands
from ..context import WallClock
from ..events import bus, emit_performance
from ..exchange.client import ExchangeClient
from ..feed import ExchangeFeed
from ..interval import iso
from ..log import get_logger
from ..persistence.history import HistoryError, SignalHistory, history_for
from ..persistence.state import FilePersistence, persistence_for, run_key
from ..registry import get_exchange, get_strategy, raise_problems, reference_problems
from ..stats import BacktestStatistics, backtest_statistics
from ..strategy import ClientStrategy
from ..types import DoneEvent, SignalRow, TickClosed, TickResult
from .session import RUN_DOMAINS, LiveCursor, LiveSession, ResumeConflict, UnsavedStateError
from .supervise import run_report, start_background, supervised, write_report

__all__ = ["Live", "LiveCursor", "ResumeConflict", "SavedRun", "UnsavedStateError", "reset_live"]

DEFAULT_STATE_DIR = "./dump"
LIFECYCLE = frozenset(("scheduled", "opened", "closed", "cancelled"))


class LiveRunState(msgspec.Struct):
    symbol: str
    strategy_name: str
    exchange_name: str
    state_dir: str
    status: str = "pending"        # pending | running | done | stopped | error
    closed: list[TickClosed] = msgspec.field(default_factory=list)
    strategy: Any = None
    clock: Any = None
    stop_requested: bool = False
    last_tick: int | None = None
    ticks: int = 0                 # ticks made, and ticks that raised (reported, retried next minute)
    failed_ticks: int = 0
    caught_up_from: int | None = None    # the saved minute a wall-clock restart re-ticked from
    redelivered: int = 0           # events of the last process's last change delivered again
    unsaved: list[str] = msgspec.field(default_factory=list)   # what the store never took, at the end


_runs: dict[tuple[str, str], LiveRunState] = {}


class SavedRun(msgspec.Struct, frozen=True):
    """A run whose state is saved in a state dir: where it stopped, what it holds open, how many
    signals it closed there (``Live.saved_runs``)."""

    symbol: str
    strategy_name: str
    exchange_name: str
    last_tick: int | None
    signal: SignalRow | None
    scheduled: SignalRow | None
    closed: int


def _key(symbol: str, strategy_name: str) -> tuple[str, str]:
    return (symbol, strategy_name)


def _replay_clock(symbol: str, strategy_name: str, what: str) -> Any:
    state = _runs.get(_key(symbol, strategy_name))
    if state is None or state.status != "running" or state.clock is None:
        raise ValueError(f"{strategy_name} on {symbol} is not running")
    if not hasattr(state.clock, "pause"):
        raise ValueError(f"{strategy_name} on {symbol} runs on the wall clock: it cannot be {what}")
    return state.clock


def _decoded(path: Path, type_: Any) -> Any:
    """A state file's value, or None when it is missing or unreadable (a listing never moves files)."""
    try:
        return msgspec.json.decode(path.read_bytes(), type=type_)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None


class Live(PositionCommands):
    """Live runs of a strategy on a symbol. One tick per closed minute; state in ``state_dir``.
    ``commit_*`` act on a running run's position (``engine/commands.py``)."""

    @classmethod
    def _running_strategy(cls, symbol: str, strategy_name: str) -> Any:
        state = _runs.get(_key(symbol, strategy_name))
        if state is None or state.status != "running" or state.strategy is None:
            raise ValueError(f"{strategy_name} on {symbol} is not running live")
        return state.strategy

    @staticmethod
    def run(symbol: str, *, strategy_name: str, exchange_name: str,
            state_dir: str | os.PathLike[str] = DEFAULT_STATE_DIR, catch_up: bool = True) -> AsyncIterator[TickResult]:
        """Yield ``scheduled``, ``opened``, ``closed`` and ``cancelled`` results as they happen
        (after a restart, first those of the last change before it, again). ``catch_up``: a run
        restarted on the wall clock first re-ticks the minutes it missed (False: it resumes now)."""
        ctx = {"symbol": symbol, "strategy_name": strategy_name, "exchange_name": exchange_name, "backtest": False}
        state = LiveRunState(symbol, strategy_name, exchange_name, str(state_dir), status="running")

        def check() -> None:
            raise_problems(reference_problems(strategy=strategy_name, exchange=exchange_name), "Live.run")
        return supervised("Live.run", state, _runs, _key(symbol, strategy_name), ctx, check,
                          lambda: _run(state, catch_up))

    @staticmethod
    def background(symbol: str, *, strategy_name: str, exchange_name: str,
                   state_dir: str | os.PathLike[str] = DEFAULT_STATE_DIR, catch_up: bool = True) -> Callable[[], None]:
        """Start the run as a task; returns a function that stops it gracefully. Never raises:
        it reports through ``listen_error``, ``listen_exit`` and ``listen_done_live``."""
        start_background(Live.run(symbol, strategy_name=strategy_name, exchange_name=exchange_name,
                                  state_dir=state_dir, catch_up=catch_up), f"btk-live-{symbol}-{strategy_name}")
        return lambda: Live.stop(symbol, strategy_name=strategy_name)

    @staticmethod
    def stop(symbol: str, *, strategy_name: str) -> None:
        """No new signals; a scheduled one is cancelled; an open position is watched until it closes."""
        state = _runs.get(_key(symbol, strategy_name))
        if state is None:
            return
        state.stop_requested = True
        if state.strategy is not None:
            state.strategy.stop()
        wake = getattr(state.clock, "wake", None)
        if wake is not None:
            wake.set()

    @staticmethod
    def set_aside(symbol: str, *, strategy_name: str, state_dir: str | os.PathLike[str] = DEFAULT_STATE_DIR
                  ) -> Path | None:
        """Move the saved run of ``strategy_name`` on ``symbol`` (its signal, schedule, milestone
        and cursor files) into ``{state_dir}/set-aside-{UTC time}/``, so the next run there starts
        fresh; nothing is deleted, and the history of closed signals stays. Returns the folder,
        or None when nothing was saved. Needs the default file persistence and the state dir
        free (raises ``StateDirBusy`` while a run drives it)."""
        state = _runs.get(_key(symbol, strategy_name))
        if state is not None and state.status == "running":
            raise RuntimeError(f"Live.set_aside: {strategy_name} on {symbol} is running; stop it first")
        adapter = persistence_for(str(state_dir))
        if not isinstance(adapter, FilePersistence):
            raise ValueError("Live.set_aside works on the default file persistence only")
        adapter.open()
        try:
            key = run_key(symbol, strategy_name)
            saved = [adapter.path(domain, key) for domain in RUN_DOMAINS if adapter.path(domain, key).exists()]
            if not saved:
                return None
            stamp = time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())
            folder = adapter.dir / f"set-aside-{stamp}"
            n = 1
            while folder.exists():        # never onto an earlier set-aside's files
                n += 1
                folder = adapter.dir / f"set-aside-{stamp}-{n}"
            folder.mkdir()
            for path in saved:
                os.replace(path, folder / path.name)
            return folder
        finally:
            adapter.close()

    @staticmethod
    def pause(symbol: str, *, strategy_name: str) -> None:
        """Hold a replay after the tick under way (a run on the wall clock cannot be paused)."""
        _replay_clock(symbol, strategy_name, "paused").pause()

    @staticmethod
    def resume(symbol: str, *, strategy_name: str) -> None:
        _replay_clock(symbol, strategy_name, "resumed").resume()

    @staticmethod
    def set_speed(symbol: str, *, strategy_name: str, speed: float) -> None:
        """A replay's pace from now on: market minutes per wall minute (0: as fast as it goes)."""
        _replay_clock(symbol, strategy_name, "sped up or slowed down").set_speed(speed)

    @staticmethod
    def list() -> list[dict[str, Any]]:
        """Every run: names, state dir, status, last tick, whether a position is open or an order
        scheduled, ticks made and failed, ``get_signal`` calls and failures; a replay's market
        time, speed, end (``data_end``: where the stored candles end) and whether it is paused
        (None / False on the wall clock); ``caught_up_from`` (a restart re-ticked the minutes
        from there), ``redelivered`` (events of the change before a restart delivered again) and
        ``unsaved`` (at the end: what the store never took, each with where it should have gone)."""
        out = []
        for s in _runs.values():
            clock, strategy = s.clock, s.strategy
            replay = hasattr(clock, "pause")
            out.append({"symbol": s.symbol, "strategy_name": s.strategy_name, "exchange_name": s.exchange_name,
                        "state_dir": s.state_dir, "status": s.status, "last_tick": s.last_tick,
                        "open": strategy is not None and strategy.pending is not None,
                        "scheduled": strategy is not None and strategy.scheduled is not None,
                        "ticks": s.ticks, "failed_ticks": s.failed_ticks,
                        "signal_calls": strategy.signal_calls if strategy is not None else 0,
                        "failed_signal_calls": strategy.failed_signal_calls if strategy is not None else 0,
                        "market_time": clock.now if clock is not None and clock.now else None,
                        "speed": clock.speed if replay else None, "replay_end": clock.end if replay else None,
                        "data_end": clock.data_end if replay else None, "paused": clock.paused if replay else False,
                        "caught_up_from": s.caught_up_from, "redelivered": s.redelivered, "unsaved": list(s.unsaved)})
        return out

    @staticmethod
    async def history(state_dir: str | os.PathLike[str] = DEFAULT_STATE_DIR, limit: int = 2000) -> list[TickClosed]:
        """The newest ``limit`` closed signals of every run in ``state_dir``'s history, oldest first
        (the default file persistence; [] without a history)."""
        adapter = persistence_for(str(state_dir))
        if not isinstance(adapter, FilePersistence) or not (adapter.dir / "history.sqlite").exists():
            return []
        history = history_for(adapter.history_path())
        try:
            await history.open(repair=False)
        except HistoryError:
            return []           # damaged: the next run there moves it aside and says so
        try:
            return (await history.closed())[-limit:]
        finally:
            await history.close()

    @staticmethod
    async def saved_runs(state_dir: str | os.PathLike[str] = DEFAULT_STATE_DIR) -> list[SavedRun]:
        """The runs saved in ``state_dir`` (default file persistence), oldest key first: each with
        its names, last tick, open signal and scheduled order, and closed signals in its history.
        A run that left nothing open and no names (written by an older btk) is not listed."""
        adapter = persistence_for(str(state_dir))
        if not isinstance(adapter, FilePersistence) or not adapter.dir.is_dir():
            return []
        keys = sorted({path.name[len(domain) + 1:-len(".json")] for domain in RUN_DOMAINS
                       for path in adapter.dir.glob(f"{domain}_*.json")})
        history: SignalHistory | None = None
        tried = False
        found = []
        try:
            for key in keys:
                cursor = _decoded(adapter.path("live", key), LiveCursor)
                signal = _decoded(adapter.path("signal", key), SignalRow | None)
                scheduled = _decoded(adapter.path("schedule", key), SignalRow | None)
                named = signal or scheduled
                symbol = cursor.symbol if cursor is not None and cursor.symbol else named.symbol if named else ""
                strategy = cursor.strategy_name if cursor is not None and cursor.strategy_name else \
                    named.strategy_name if named else ""
                exchange = cursor.exchange_name if cursor is not None and cursor.exchange_name else \
                    named.exchange_name if named else ""
                if not symbol or not strategy:
                    continue
                if not tried and (adapter.dir / "history.sqlite").exists():
                    tried = True
                    candidate = history_for(adapter.history_path())
                    try:
                        await candidate.open(repair=False)
                        history = candidate
                    except HistoryError:
                        pass    # damaged: listed without closes (the next run there moves it aside)
                closed = len(await history.closed(symbol, strategy)) if history is not None else 0
                found.append(SavedRun(symbol, strategy, exchange, cursor.last_tick if cursor else None, signal,
                                      scheduled, closed))
        finally:
            if history is not None:
                await history.close()
        return found

    @staticmethod
    async def get_data(symbol: str, *, strategy_name: str) -> BacktestStatistics:
        """Statistics of the run's closed signals, including those of earlier runs in the same state dir."""
        state = _runs.get(_key(symbol, strategy_name))
        return backtest_statistics(state.closed if state else [])

    @staticmethod
    async def get_report(symbol: str, *, strategy_name: str) -> str:
        return run_report(_runs.get(_key(symbol, strategy_name)), symbol, strategy_name, frame_name="live")

    @staticmethod
    async def dump(symbol: str, *, strategy_name: str, path: str = "./dump/live") -> str:
        return write_report(await Live.get_report(symbol, strategy_name=strategy_name), path, symbol, strategy_name)


def reset_live() -> None:
    """Forget finished runs (tests, reloading a workspace)."""
    for key in [k for k, s in _runs.items() if s.status != "running"]:
        del _runs[key]


async def _make_clock(exchange: Any, symbol: str, catch_up: bool) -> Any:
    if exchange.live_clock is None:
        return WallClock(catch_up=catch_up)
    clock = exchange.live_clock(symbol)
    clock = await clock if inspect.isawaitable(clock) else clock
    if hasattr(clock, "catch_up"):
        clock.catch_up = catch_up
    return clock


async def _run(state: LiveRunState, catch_up: bool = True) -> AsyncIterator[TickResult]:
    exchange = get_exchange(state.exchange_name)
    schema = get_strategy(state.strategy_name)
    clock = await _make_clock(exchange, state.symbol, catch_up)
    state.clock = clock
    session = LiveSession(state)
    await session.open()
    try:
        await session.recover()
        await session.refuse_unless_continued(session.cursor(), clock)
        strategy = ClientStrategy(schema, symbol=state.symbol, exchange_name=state.exchange_name, frame_name="",
                                  feed=ExchangeFeed(ExchangeClient(exchange)), clock=clock, backtest=False,
                                  persistence=session)
        state.strategy = strategy
        cursor = await session.restore(strategy)
        if state.stop_requested:
            strategy.stop()
        for event in session.take_redeliveries():
            state.redelivered += 1
            result = await strategy.redeliver(event)
            if result is not None:
                yield result
        resume_at = cursor.last_tick if cursor is not None else None
        now = await clock.first(resume_at)
        if resume_at is not None and now == resume_at and getattr(clock, "catch_up", False):
            state.caught_up_from = resume_at
            get_logger().info("btk: %s %s: catching up from %s, the last saved minute", state.strategy_name,
                              state.symbol, iso(resume_at))
        restored = True
        while now is not None:
            # Each step of the minute's work is whole: a command from outside (Live.commit_*) waits
            # for it. The lock is never held while a result is handed out: its consumer may command.
            state.last_tick = now
            async with strategy.acting:
                await session.begin_tick(now, strategy.last_slot)
                if restored:
                    restored = False
                    await _restored_callbacks(strategy, now)
            try:
                for made in strategy.take_made():      # what commands from outside did since the last minute
                    yield made
                async with strategy.acting:
                    started = time.perf_counter()
                    result = await strategy.tick()
                    emit_performance("live_tick", started, symbol=state.symbol, strategy_name=state.strategy_name,
                                     exchange_name=state.exchange_name, backtest=False, when=now)
                    state.ticks += 1
                if result.action in LIFECYCLE:
                    yield result
                for made in strategy.take_made():      # what the strategy's own commands did in that tick
                    if made is not result:
                        yield made
                if result.action in ("closed", "cancelled"):
                    async with strategy.acting:
                        result = await strategy.tick()  # the same minute again: a new signal may be taken now
                    if result.action in LIFECYCLE:
                        yield result
                    for made in strategy.take_made():
                        if made is not result:
                            yield made
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                state.failed_ticks += 1
                bus.report(exc, where=f"live tick at {iso(now)} (retried next minute)", symbol=state.symbol,
                           strategy_name=state.strategy_name, exchange_name=state.exchange_name, backtest=False)
            async with strategy.acting:
                await session.checkpoint()
            if state.stop_requested and strategy.pending is None and strategy.scheduled is None:
                break
            now = await clock.next()
        for made in strategy.take_made():       # a command's, after the last minute
            yield made
        await session.end()
        state.status = "stopped" if state.stop_requested else "done"
        bus.done_live.emit(DoneEvent(state.symbol, state.strategy_name, state.exchange_name, "", False))  # type: ignore[attr-defined]
    except (asyncio.CancelledError, GeneratorExit):
        # Closed from outside (a console quitting, a crash, a consumer that stopped early): the
        # cursor says where it stopped and the events handed out so far count as delivered. The tick
        # under way is ticked again on restart, which is safe: its saved steps are idempotent.
        try:
            await session.end()
        except Exception:
            pass       # a store that fails now was reported as it failed; the older cursor stands
        raise
    finally:
        await session.close()


async def _restored_callbacks(strategy: ClientStrategy, now: int) -> None:
    """``on_active`` / ``on_schedule`` for what a restart brought back (SEMANTICS.md 11)."""
    if strategy.pending is None and strategy.scheduled is None:
        return
    try:
        price = await strategy.feed.average_price(strategy.symbol, now)
    except Exception:
        price = math.nan  # the first tick will report the exchange's problem
    if strategy.pending is not None:
        await strategy._callback("on_active", strategy.symbol, strategy.pending, price, False)
    if strategy.scheduled is not None:
        await strategy._callback("on_schedule", strategy.symbol, strategy.scheduled, price, False)
