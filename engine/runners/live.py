"""The live runner (SEMANTICS.md sections 11 and 12).

One tick per closed minute on the exchange's clock (the wall clock, or the
replay exchange's accelerated one). After a tick that closes or cancels a
signal the same minute is ticked again, so a new signal can be taken at once,
as a backtest's next frame does: live and backtest give the same trades.

State goes through a ``StateStore`` before each event (``engine/persistence/state.py``),
closed signals into the state dir's history (``engine/persistence/history.py``). Before
the first state change of a tick the loop saves its cursor (that tick's
time); a restarted run resumes at the cursor and ticks that minute again,
which is safe: every step of a tick is idempotent once its state is saved.
A failing tick is reported on ``listen_error`` and the loop goes on.
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

from ..context import WallClock
from ..events import bus, emit_performance
from ..exchange.client import ExchangeClient
from ..feed import ExchangeFeed
from ..persistence.history import SignalHistory, history_for
from ..interval import iso
from ..log import get_logger
from ..partial import PartialState, PartialTracker
from ..persistence.state import FilePersistence, StateStore, persistence_for, safe_name
from ..registry import get_exchange, get_strategy, raise_problems, reference_problems
from ..risk import RiskPosition
from ..stats import BacktestStatistics, backtest_statistics
from ..strategy import ClientStrategy
from ..types import DoneEvent, SignalRow, TickClosed, TickResult
from .supervise import run_report, start_background, supervised, write_report

DEFAULT_STATE_DIR = "./dump"
LIFECYCLE = frozenset(("scheduled", "opened", "closed", "cancelled"))


class StateConflict(RuntimeError):
    """The state dir holds another exchange's signal for this symbol and strategy."""


class ResumeConflict(ValueError):
    """The state dir holds a saved run of this strategy and symbol that the requested span does
    not continue (a replay asked to start later than it stopped, or to end before it)."""


class LiveCursor(msgspec.Struct):
    last_tick: int                 # the tick whose state changes began last (at the end: the last tick)
    last_slot: int | None = None   # get_signal throttle slot as that tick began
    symbol: str = ""               # whose run it is (files written before these fields have none)
    strategy_name: str = ""
    exchange_name: str = ""


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


class LiveSession:
    """One live run's persistence: implements ``ClientStrategy``'s ``Persistence``."""

    def __init__(self, state: LiveRunState):
        self.state = state
        self.key = run_key(state.symbol, state.strategy_name)
        self.adapter = persistence_for(state.state_dir)
        self.store = StateStore(self.adapter, self._report)
        self.history: SignalHistory | None = None
        # An adapter without a history file (a custom one) keeps closed signals in memory.
        path = getattr(self.adapter, "history_path", None)
        self.history_path = path() if path is not None else f":memory:{id(self.adapter)}"
        self.unrecorded: list[TickClosed] = []     # closes whose history write failed, retried
        self.tick_time: int | None = None
        self.tick_slot: int | None = None
        self.cursor_saved = False

    def _report(self, exc: BaseException, where: str) -> None:
        bus.report(exc, where=where, symbol=self.state.symbol, strategy_name=self.state.strategy_name,
                   exchange_name=self.state.exchange_name, backtest=False)

    async def open(self) -> None:
        self.adapter.open()
        try:
            self.history = history_for(self.history_path)
            await self.history.open()
        except BaseException:
            self.adapter.close()
            raise

    async def close(self) -> None:
        try:
            if self.history is not None:
                await self.history.close()
        finally:
            self.adapter.close()

    # --- restore ---------------------------------------------------------------------------

    def cursor(self) -> LiveCursor | None:
        """Where the saved run (if any) stopped."""
        return self.store.load("live", self.key, LiveCursor)

    async def refuse_unless_continued(self, cursor: LiveCursor | None, clock: Any) -> None:
        """A saved run resumes only where the clock continues it: two spans are never mixed."""
        continues = getattr(clock, "continues", None)
        if cursor is None or continues is None or continues(cursor.last_tick):
            return
        st = self.state
        signal = self.store.load("signal", self.key, SignalRow | None)
        scheduled = self.store.load("schedule", self.key, SignalRow | None)
        assert self.history is not None
        closed = len(await self.history.closed(st.symbol, st.strategy_name))
        holding = ", ".join(x for x in (
            signal and f"an open {signal.position} position ({signal.id[:8]}, entry {signal.price_open:.8g})",
            scheduled and f"a scheduled {scheduled.position} order ({scheduled.id[:8]})") if x) or "nothing open"
        start, end = getattr(clock, "start", None), getattr(clock, "end", None)
        asked = f"from {iso(start)} to {iso(end)}" if start is not None and end is not None else "now"
        raise ResumeConflict(
            f"{st.state_dir} holds a saved run of {st.strategy_name} on {st.symbol} that stopped at "
            f"{iso(cursor.last_tick)} ({holding}, {closed} closed signal(s)); a replay {asked} does not continue it. "
            "Resume it with a span that does, start fresh (btk live --fresh sets the saved run aside), or use "
            "another --state-dir")

    async def restore(self, strategy: ClientStrategy) -> LiveCursor | None:
        st = self.state
        signal = self.store.load("signal", self.key, SignalRow | None)
        scheduled = self.store.load("schedule", self.key, SignalRow | None)
        for row in (signal, scheduled):
            if row is not None and (row.strategy_name != st.strategy_name or row.exchange_name != st.exchange_name):
                raise StateConflict(
                    f"{self.adapter.describe('signal', self.key)}: the saved signal {row.id} belongs to "
                    f"{row.strategy_name} on exchange {row.exchange_name!r}, not {st.strategy_name} on "
                    f"{st.exchange_name!r}; resume it with --exchange {row.exchange_name} or use another --state-dir")
        if signal is not None and scheduled is not None and scheduled.id == signal.id:
            scheduled = None  # killed between saving the activated signal and clearing the schedule
        partial = self.store.load("partial", self.key, dict[str, PartialState]) or {}
        strategy.pending, strategy.scheduled = signal, scheduled
        strategy.partial = PartialTracker({k: v for k, v in partial.items() if signal is not None and k == signal.id})
        cursor = self.cursor()
        if cursor is not None:
            strategy.last_slot = cursor.last_slot
        for risk in strategy.risks:
            if not risk.restored:
                saved = self.store.load("risk", safe_name(risk.schema.risk_name), list[RiskPosition]) or []
                for p in saved:
                    risk.confirm(p.signal, strategy_name=p.strategy_name, exchange_name=p.exchange_name,
                                 symbol=p.symbol, when=p.opened_at)
                risk.restored = True
            # The signal file is the truth for this strategy's own slot (a kill may have come between them).
            owner = {"strategy_name": st.strategy_name, "exchange_name": st.exchange_name, "symbol": st.symbol}
            if signal is not None and not risk.has(**owner):
                risk.confirm(signal, **owner, when=signal.pending_at or signal.scheduled_at)
                self.store.save("risk", safe_name(risk.schema.risk_name), list(risk.positions.values()))
            elif signal is None and risk.has(**owner):
                risk.release(**owner)
                self.store.save("risk", safe_name(risk.schema.risk_name), list(risk.positions.values()))
            if scheduled is not None:  # a waiting order keeps the slot it reserved before the restart
                risk.reserve(scheduled, **owner, when=scheduled.scheduled_at)
        assert self.history is not None
        st.closed = await self.history.closed(st.symbol, st.strategy_name)
        if signal is not None or scheduled is not None:
            get_logger().info("btk: %s %s resumed from %s: open %s, scheduled %s", st.strategy_name, st.symbol,
                              st.state_dir, signal.id if signal else "-", scheduled.id if scheduled else "-")
        return cursor

    # --- save ------------------------------------------------------------------------------

    def begin_tick(self, when: int, last_slot: int | None) -> None:
        # The slot as the tick begins: a tick re-run after a restart must ask get_signal again if
        # the first run asked it but died before saving what it answered.
        self.tick_time, self.tick_slot, self.cursor_saved = when, last_slot, False
        if not self.unrecorded:
            self.store.flush()

    def end(self) -> None:
        """The run ended (its span, or a stop): the cursor records its last tick, so a later run
        knows where it stopped (a replay that starts the minute after continues it)."""
        if self.tick_time is not None and not self.cursor_saved:
            self._write_all([("live", self.key, self._cursor())])
            self.cursor_saved = True

    def _cursor(self) -> LiveCursor:
        assert self.tick_time is not None
        st = self.state
        return LiveCursor(self.tick_time, self.tick_slot, st.symbol, st.strategy_name, st.exchange_name)

    async def flush_history(self) -> None:
        while self.unrecorded:
            try:
                await self._record(self.unrecorded[0])
            except Exception:
                return
            self.unrecorded.pop(0)

    async def _record(self, closed: TickClosed) -> None:
        assert self.history is not None
        await self.history.record(closed)

    async def save(self, strategy: ClientStrategy, changes: tuple[tuple[str, Any], ...]) -> None:
        writes: list[tuple[str, str, Any]] = []
        if not self.cursor_saved and self.tick_time is not None:
            writes.append(("live", self.key, self._cursor()))
            self.cursor_saved = True
        for kind, value in changes:
            if kind in ("signal", "schedule"):
                writes.append((kind, self.key, value))
            elif kind == "risk":
                writes += [("risk", safe_name(r.schema.risk_name), list(r.positions.values())) for r in strategy.risks]
            elif kind == "partial":
                writes.append(("partial", self.key, strategy.partial.states))
            elif kind == "closed":
                self._write_all(writes)
                writes = []
                self.state.closed.append(value)
                await self._record_close(value)
        self._write_all(writes)

    def _write_all(self, writes: list[tuple[str, str, Any]]) -> None:
        for domain, key, value in writes:
            if self.unrecorded:   # a close waits to be recorded: nothing may be written after it yet
                self.store.defer(domain, key, value)
            else:
                self.store.save(domain, key, value)

    async def _record_close(self, closed: TickClosed) -> None:
        if not self.unrecorded:
            try:
                await self._record(closed)
                return
            except Exception as exc:
                self._report(OSError(f"could not record the close of {closed.signal.id} in {self.history_path}: {exc}; "
                                     "it is kept in memory, state writes wait behind it, and both are retried "
                                     "every tick"), "history save")
        self.unrecorded.append(closed)


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


def run_key(symbol: str, strategy_name: str) -> str:
    """The key of a run's state entries in its state dir."""
    return f"{safe_name(symbol)}_{safe_name(strategy_name)}"


RUN_DOMAINS = ("signal", "schedule", "partial", "live")     # a run's own entries (risk files are shared)


class Live:
    """Live runs of a strategy on a symbol. One tick per closed minute; state in ``state_dir``."""

    @staticmethod
    def run(symbol: str, *, strategy_name: str, exchange_name: str,
                  state_dir: str | os.PathLike[str] = DEFAULT_STATE_DIR) -> AsyncIterator[TickResult]:
        """Yield ``scheduled``, ``opened``, ``closed`` and ``cancelled`` results as they happen."""
        ctx = {"symbol": symbol, "strategy_name": strategy_name, "exchange_name": exchange_name, "backtest": False}
        state = LiveRunState(symbol, strategy_name, exchange_name, str(state_dir), status="running")

        def check() -> None:
            raise_problems(reference_problems(strategy=strategy_name, exchange=exchange_name), "Live.run")
        return supervised("Live.run", state, _runs, _key(symbol, strategy_name), ctx, check, lambda: _run(state))

    @staticmethod
    def background(symbol: str, *, strategy_name: str, exchange_name: str,
                   state_dir: str | os.PathLike[str] = DEFAULT_STATE_DIR) -> Callable[[], None]:
        """Start the run as a task; returns a function that stops it gracefully. Never raises:
        it reports through ``listen_error``, ``listen_exit`` and ``listen_done_live``."""
        start_background(Live.run(symbol, strategy_name=strategy_name, exchange_name=exchange_name,
                                  state_dir=state_dir), f"btk-live-{symbol}-{strategy_name}")
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
        (None / False on the wall clock)."""
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
                        "data_end": clock.data_end if replay else None, "paused": clock.paused if replay else False})
        return out

    @staticmethod
    async def history(state_dir: str | os.PathLike[str] = DEFAULT_STATE_DIR, limit: int = 2000) -> list[TickClosed]:
        """The newest ``limit`` closed signals of every run in ``state_dir``'s history, oldest first
        (the default file persistence; [] without a history)."""
        adapter = persistence_for(str(state_dir))
        if not isinstance(adapter, FilePersistence) or not (adapter.dir / "history.sqlite").exists():
            return []
        history = history_for(adapter.history_path())
        await history.open()
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
                if history is None and (adapter.dir / "history.sqlite").exists():
                    history = history_for(adapter.history_path())
                    await history.open()
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


async def _make_clock(exchange: Any, symbol: str) -> Any:
    if exchange.live_clock is None:
        return WallClock()
    clock = exchange.live_clock(symbol)
    return await clock if inspect.isawaitable(clock) else clock


async def _run(state: LiveRunState) -> AsyncIterator[TickResult]:
    exchange = get_exchange(state.exchange_name)
    schema = get_strategy(state.strategy_name)
    clock = await _make_clock(exchange, state.symbol)
    state.clock = clock
    session = LiveSession(state)
    await session.open()
    try:
        await session.refuse_unless_continued(session.cursor(), clock)
        strategy = ClientStrategy(schema, symbol=state.symbol, exchange_name=state.exchange_name, frame_name="",
                                  feed=ExchangeFeed(ExchangeClient(exchange)), clock=clock, backtest=False,
                                  persistence=session)
        state.strategy = strategy
        cursor = await session.restore(strategy)
        if state.stop_requested:
            strategy.stop()
        now = await clock.first(cursor.last_tick if cursor is not None else None)
        restored = True
        while now is not None:
            state.last_tick = now
            await session.flush_history()
            session.begin_tick(now, strategy.last_slot)
            if restored:
                restored = False
                await _restored_callbacks(strategy, now)
            try:
                started = time.perf_counter()
                result = await strategy.tick()
                emit_performance("live_tick", started, symbol=state.symbol, strategy_name=state.strategy_name,
                                 exchange_name=state.exchange_name, backtest=False, when=now)
                state.ticks += 1
                if result.action in LIFECYCLE:
                    yield result
                if result.action in ("closed", "cancelled"):
                    result = await strategy.tick()  # the same minute again: a new signal may be taken now
                    if result.action in LIFECYCLE:
                        yield result
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                state.failed_ticks += 1
                bus.report(exc, where=f"live tick at {iso(now)} (retried next minute)", symbol=state.symbol,
                           strategy_name=state.strategy_name, exchange_name=state.exchange_name, backtest=False)
            if state.stop_requested and strategy.pending is None and strategy.scheduled is None:
                break
            now = await clock.next()
        session.end()
        state.status = "stopped" if state.stop_requested else "done"
        bus.done_live.emit(DoneEvent(state.symbol, state.strategy_name, state.exchange_name, "", False))  # type: ignore[attr-defined]
    except asyncio.CancelledError:
        # Closed from outside (a console quitting, a crash): the cursor says where it stopped. The
        # tick under way is ticked again on restart, which is safe: its saved steps are idempotent.
        try:
            session.end()
        except OSError:
            pass       # a disk that fails now was reported as it failed; the older cursor stands
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
