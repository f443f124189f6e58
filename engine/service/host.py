"""The engine host: the engine as a service that consoles drive and watch.

One host owns the live runs of a state dir (and what was saved there), one backtest and one
walker at a time. Commands are coroutines on the host's event loop (``start_live``,
``run_backtest``, ...); they raise ``CommandError`` with a sentence for the user when they
refuse. What happens reaches the watchers as ``EventBatch`` es, handed to ``deliver`` at most
``refresh_hz`` times a second: lifecycle events, milestones, risk rejections and errors in
order, the newest tick of each run, every run's status.

The host runs wherever its loop runs: on a thread of its own inside the console
(``engine.service.thread``), so the console's loop never runs engine work, or in a server
process that consoles attach to.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from .. import registry
from ..events import bus
from ..exchange.bundled import BUNDLED
from ..exchange.client import ExchangeClient
from ..exchange.markets import MarketError, registered_or_ccxt, stored_frame, stored_markets
from ..exchange.replay import add_replay_exchange
from ..interval import MINUTE_MS, align, iso
from ..log import describe_error
from ..runners.backtest import Backtest
from ..runners.live import Live
from ..runners.walker import OVERALL, Walker
from ..stats import backtest_statistics
from ..position import CommitPreview, CommitResult
from .messages import (BacktestOutcome, BacktestProgress, Breakeven, CommandError, Commit, ErrorNote, EventBatch,
                       Milestone, Note, RunStatus, ServerStatus, StrategyInfo, WalkerInfo, WalkerOutcome, Workspace)

LIFECYCLE = frozenset(("scheduled", "opened", "closed", "cancelled"))
REFRESH_HZ = 10.0
CLOSED_WITH_ENGINE = "closed with the engine (its state is saved: starting it again resumes it)"
RECENT_EVENTS = 200        # events a console that attaches later is shown (its feeds)
RECENT_ERRORS = 20


def replay_name(source: str) -> str:
    """The exchange a replay of store exchange ``source`` is registered as."""
    return "replay" if source == BUNDLED else f"replay-{source}"


class _LiveRun:
    __slots__ = ("symbol", "strategy_name", "exchange_name", "task", "stopping", "ended", "failed", "last")

    def __init__(self, symbol: str, strategy_name: str, exchange_name: str):
        self.symbol, self.strategy_name, self.exchange_name = symbol, strategy_name, exchange_name
        self.task: asyncio.Task[None] | None = None
        self.stopping = False
        self.ended = ""
        self.failed = False
        self.last: dict[str, Any] = {}      # the engine's Live.list() row, the newest seen


class EngineHost:
    def __init__(self, *, store: str | Path, state_dir: str | Path, speed: float,
                 deliver: Callable[[EventBatch], None], refresh_hz: float = REFRESH_HZ,
                 clock: Callable[[], float] = time.monotonic, catch_up: bool = True) -> None:
        self.store, self.state_dir, self.speed = Path(store), Path(state_dir), float(speed)
        self.catch_up = catch_up     # wall-clock runs restarted later re-tick the minutes they missed
        self.deliver = deliver
        self.interval = 1.0 / refresh_hz
        self.clock = clock
        self.runs: dict[tuple[str, str], _LiveRun] = {}
        self.markets: list[tuple[str, str]] = []
        self._events: list[Any] = []
        self._ticks: dict[tuple[str, str], Any] = {}
        self._runs_dirty = True
        self._saved_dirty = True
        self._saved: list[Any] = []
        self._history: list[Any] | None = None
        self._backtest_key: tuple[str, str] | None = None
        self._backtest: BacktestProgress | None = None
        self._walker: tuple[str, tuple[str, ...]] | None = None
        self._walker_cells: list[Any] = []
        self._walker_progress: Any = None
        self._handle: asyncio.TimerHandle | None = None
        self._last_flush = float("-inf")
        # For a console that attaches later (a server's): the newest tick of each run, and the
        # newest events and errors.
        self._latest: dict[tuple[str, str], Any] = {}
        self._recent: deque[Any] = deque(maxlen=RECENT_EVENTS)
        self._errors: deque[ErrorNote] = deque(maxlen=RECENT_ERRORS)
        self._unsubscribe: list[Callable[[], None]] = []

    # --- life ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen to the engine, and read the markets and the runs saved in the state dir."""
        # Live runs' milestones and rejections only: the console's backtests stay on their fast path.
        self._unsubscribe = [
            bus.signal_live.subscribe(self._on_tick),  # type: ignore[attr-defined]
            bus.partial_profit.subscribe(lambda e: self._add(Milestone("profit", e)), backtest=False),  # type: ignore[attr-defined]
            bus.partial_loss.subscribe(lambda e: self._add(Milestone("loss", e)), backtest=False),  # type: ignore[attr-defined]
            bus.risk.subscribe(self._add, backtest=False),  # type: ignore[attr-defined]
            bus.strategy_commit.subscribe(self._on_commit, backtest=False),  # type: ignore[attr-defined]
            bus.breakeven.subscribe(lambda e: self._add(Breakeven(e)), backtest=False),  # type: ignore[attr-defined]
            bus.error.subscribe(self._on_error),  # type: ignore[attr-defined]
            bus.backtest_progress.subscribe(self._on_backtest_progress),  # type: ignore[attr-defined]
            bus.walker.subscribe(self._on_walker_cell),  # type: ignore[attr-defined]
            bus.walker_progress.subscribe(self._on_walker_progress),  # type: ignore[attr-defined]
        ]
        self.markets = await stored_markets(self.store)
        self._history = await Live.history(self.state_dir)
        await self.refresh_saved()

    async def close(self) -> None:
        """Every live run stops now, its state saved (it resumes on the next start); a backtest or
        walk under way is stopped; a last batch says so."""
        for run in self.runs.values():
            if run.task is not None and not run.task.done():
                run.task.cancel()
        for run in self.runs.values():
            if run.task is not None:
                try:
                    await run.task
                except (asyncio.CancelledError, Exception):
                    pass
        if self._backtest_key is not None:
            Backtest.stop(self._backtest_key[0], strategy_name=self._backtest_key[1])
        if self._walker is not None:
            self._stop_walker()
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        self.flush()

    # --- what the engine says ----------------------------------------------------------------------

    def _add(self, event: Any) -> None:
        self._events.append(event)
        self._recent.append(event)
        self._schedule()

    def _on_tick(self, tick: Any) -> None:
        key = (tick.symbol, tick.strategy_name)
        if key not in self._latest and key in self.runs:
            self._report_catch_up(self.runs[key])          # its first tick: did it start from a saved minute?
        self._latest[key] = tick
        if tick.action in LIFECYCLE:
            self._ticks.pop(key, None)       # an older tick of the run would be read after this one
            self._events.append(tick)
            self._recent.append(tick)
            self._runs_dirty = True
        else:
            self._ticks[key] = tick
        self._schedule()

    def _on_commit(self, event: Any) -> None:
        """A command changed a run's row: the newest tick kept for status and consoles attaching
        later shows the row as the command left it (the run may be paused: no tick comes)."""
        key = (event.symbol, event.strategy_name)
        tick = self._latest.get(key)
        if tick is not None and getattr(tick, "signal", None) is not None and tick.signal.id == event.signal.id:
            self._latest[key] = msgspec.structs.replace(tick, signal=event.signal)
        self._add(Commit(event))

    def _on_error(self, event: Any) -> None:
        note = ErrorNote(describe_error(event.error), getattr(event, "where", "") or "",
                         getattr(event, "symbol", "") or "", getattr(event, "strategy_name", "") or "")
        self._errors.append(note)
        self._add(note)

    def _on_backtest_progress(self, event: Any) -> None:
        if (event.symbol, event.strategy_name) == self._backtest_key:
            self._backtest = BacktestProgress(event.symbol, event.strategy_name, event.processed_frames,
                                              event.total_frames)
            self._schedule()

    def _on_walker_cell(self, event: Any) -> None:
        if self._walker is not None and event.walker_name == self._walker[0]:
            self._walker_cells.append(event)
            self._schedule()

    def _on_walker_progress(self, event: Any) -> None:
        if self._walker is not None and event.walker_name == self._walker[0]:
            self._walker_progress = event
            self._schedule()

    def note(self, text: str, kind: str = "info") -> None:
        self._add(Note(text, kind))

    # --- batches ----------------------------------------------------------------------------------

    def _schedule(self) -> None:
        if self._handle is not None:
            return
        delay = max(0.0, self._last_flush + self.interval - self.clock())
        self._handle = asyncio.get_running_loop().call_later(delay, self.flush)

    def flush(self) -> None:
        """Hand over what happened since the last batch (nothing when nothing did)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._last_flush = self.clock()
        running = any(r.task is not None and not r.task.done() for r in self.runs.values())
        batch = EventBatch(events=self._events, ticks=list(self._ticks.values()),
                           runs=self.statuses() if self._runs_dirty or running else None,
                           saved=list(self._saved) if self._saved_dirty else None, history=self._history,
                           backtest=self._backtest,
                           walker_cells=self._walker_cells, walker_progress=self._walker_progress)
        self._events, self._ticks, self._walker_cells, self._history = [], {}, [], None
        self._backtest = self._walker_progress = None
        self._runs_dirty = self._saved_dirty = False
        if batch:
            self.deliver(batch)
        if running:
            self._schedule()       # market time moves while a run goes: keep the watchers' clocks fresh

    # --- status -----------------------------------------------------------------------------------

    async def attach(self) -> EventBatch:
        """Where everything stands, for a console that starts watching now: every run, what is
        saved, the history of closes, each run's newest tick (its open position or waiting order),
        and the newest events."""
        return EventBatch(events=list(self._recent), ticks=[t for t in self._latest.values()
                                                            if (t.symbol, t.strategy_name) in self.runs],
                          runs=self.statuses(), saved=list(self._saved), history=await Live.history(self.state_dir))

    async def status(self) -> ServerStatus:
        """What ``btk status`` shows (``consoles`` is the server's to fill in)."""
        positions, scheduled = [], []
        for key, tick in self._latest.items():
            run = self.runs.get(key)
            signal = getattr(tick, "signal", None)
            if run is None or run.task is None or run.task.done() or signal is None or tick.action in ("closed",
                                                                                                      "cancelled"):
                continue
            (positions if signal.pending_at is not None else scheduled).append(signal)
        return ServerStatus(str(self.state_dir), self.statuses(), positions, scheduled, list(self._errors))

    def workspace(self) -> Workspace:
        return Workspace(
            strategies=[StrategyInfo(s.strategy_name, s.interval, s.risk_names, s.note)
                        for s in registry.list_strategies()],
            walkers=[WalkerInfo(w.walker_name, tuple(w.strategies), tuple(w.symbols), w.metric)
                     for w in registry.list_walkers()],
            frames=[f.frame_name for f in registry.list_frames()], markets=list(self.markets),
            state_dir=str(self.state_dir), speed=self.speed)

    def statuses(self) -> list[RunStatus]:
        engine_rows = {(r["symbol"], r["strategy_name"]): r for r in Live.list()}
        out = []
        for key, run in self.runs.items():
            row = engine_rows.get(key) or run.last
            if row:
                run.last = row
            done = run.task is None or run.task.done()
            state = "ended" if done else "stopping" if run.stopping else \
                "paused" if row.get("paused") else "running" if row else "starting"
            out.append(RunStatus(run.symbol, run.strategy_name, run.exchange_name, state,
                                 market_time=row.get("market_time"), speed=row.get("speed"),
                                 replay_end=row.get("replay_end"), open=bool(row.get("open")),
                                 scheduled=bool(row.get("scheduled")), ended=run.ended, failed=run.failed))
        return out

    async def refresh_saved(self) -> None:
        """The runs saved in the state dir that are not running here."""
        running = {k for k, r in self.runs.items() if r.task is not None and not r.task.done()}
        self._saved = [s for s in await Live.saved_runs(self.state_dir) if (s.symbol, s.strategy_name) not in running]
        self._saved_dirty = True
        self._schedule()

    # --- live runs ----------------------------------------------------------------------------------

    def _exchange_for(self, given: str, symbol: str) -> str:
        if given == "replay":
            sources = [exchange for exchange, s in self.markets if s == symbol]
            if not sources:
                raise CommandError(f"replay: no stored 1m candles of {symbol}")
            source = BUNDLED if BUNDLED in sources else sources[0]
            name = replay_name(source)
            if name not in {e.exchange_name for e in registry.list_exchanges()}:
                add_replay_exchange(name, source=source, store_path=self.store, speed=self.speed)
            return name
        try:
            return registered_or_ccxt(given)
        except MarketError as e:
            raise CommandError(str(e)) from None

    async def start_live(self, strategy_name: str, symbol: str, exchange: str = "replay") -> RunStatus:
        """Start (or resume: its saved state comes back) a live run on a replay or an exchange."""
        key = (symbol, strategy_name)
        try:
            if strategy_name not in {s.strategy_name for s in registry.list_strategies()}:
                raise CommandError(f"unknown strategy {strategy_name!r}")
            current = self.runs.get(key)
            if current is not None and current.task is not None and not current.task.done():
                raise CommandError(f"{strategy_name} already runs on {symbol}")
            name = self._exchange_for(exchange, symbol)
        except CommandError as e:
            raise CommandError(f"{strategy_name} on {symbol} not started: {e}") from None
        run = self.runs[key] = _LiveRun(symbol, strategy_name, name)
        self._latest.pop(key, None)        # its first tick says whether it catches up
        run.task = asyncio.get_running_loop().create_task(self._live(run), name=f"btk-live-{symbol}-{strategy_name}")
        self._saved = [s for s in self._saved if (s.symbol, s.strategy_name) != key]
        self._saved_dirty = self._runs_dirty = True
        self.note(f"started {strategy_name} on {symbol} ({name})")
        return self.statuses()[list(self.runs).index(key)]

    async def _live(self, run: _LiveRun) -> None:
        try:
            async for _ in Live.run(run.symbol, strategy_name=run.strategy_name, exchange_name=run.exchange_name,
                                    state_dir=self.state_dir, catch_up=self.catch_up):
                pass
            row = next((r for r in Live.list() if (r["symbol"], r["strategy_name"]) == (run.symbol,
                                                                                        run.strategy_name)), {})
            run.last = row or run.last
            if row.get("status") == "stopped":
                run.ended = "stopped"
            elif row.get("replay_end") is not None:
                run.ended = f"end of the replay: its last minute {iso(row['replay_end'])} was ticked" + (
                    " (the stored candles end there)" if row.get("data_end") else "")
            else:
                run.ended = "ended"
        except asyncio.CancelledError:
            run.ended = CLOSED_WITH_ENGINE
            raise
        except Exception as exc:
            run.ended, run.failed = f"failed: {describe_error(exc)}", True
        finally:
            self._runs_dirty = True
            self.note(f"{run.strategy_name} on {run.symbol}: {run.ended}", "error" if run.failed else "info")

    def _report_catch_up(self, run: _LiveRun) -> None:
        row = next((r for r in Live.list() if (r["symbol"], r["strategy_name"]) == (run.symbol, run.strategy_name)),
                   {})
        start = row.get("caught_up_from")
        if start is not None and row.get("speed") is None:
            self.note(f"{run.strategy_name} on {run.symbol}: catching up from {iso(start)}, the last saved minute: "
                      "closes crossed while it was down are recorded at their minute")

    def _running(self, strategy_name: str, symbol: str) -> _LiveRun:
        run = self.runs.get((symbol, strategy_name))
        if run is None or run.task is None or run.task.done():
            raise CommandError(f"{strategy_name} is not running on {symbol}")
        return run

    async def stop_live(self, strategy_name: str, symbol: str) -> None:
        """No new signals; a scheduled order is cancelled; an open position is watched until it closes."""
        run = self._running(strategy_name, symbol)
        run.stopping = True
        Live.stop(symbol, strategy_name=strategy_name)
        self._runs_dirty = True
        self.note(f"stopping {strategy_name} on {symbol}: no new signals; an open position is watched until it closes")

    async def pause_live(self, strategy_name: str, symbol: str) -> None:
        self._running(strategy_name, symbol)
        self._replay(Live.pause, symbol, strategy_name)

    async def resume_live(self, strategy_name: str, symbol: str) -> None:
        self._running(strategy_name, symbol)
        self._replay(Live.resume, symbol, strategy_name)

    async def set_speed(self, strategy_name: str, symbol: str, speed: float) -> None:
        self._running(strategy_name, symbol)
        self._replay(Live.set_speed, symbol, strategy_name, speed=speed)

    async def preview_position(self, strategy_name: str, symbol: str, action: str, percent: float | None = None,
                               cost: float | None = None) -> CommitPreview:
        """What a command on the run's position or order would do now (for a confirmation)."""
        self._running(strategy_name, symbol)
        try:
            return await Live.preview_commit(symbol, action, strategy_name=strategy_name, percent=percent, cost=cost)
        except ValueError as e:
            raise CommandError(str(e)) from None

    async def commit_position(self, strategy_name: str, symbol: str, action: str, percent: float | None = None,
                              cost: float | None = None, source: str = "console") -> CommitResult:
        """Carry out a command on the run's position or order (after the run's minute under way)."""
        self._running(strategy_name, symbol)
        try:
            result = await Live.commit(symbol, action, strategy_name=strategy_name, percent=percent, cost=cost,
                                       source=source)
        except ValueError as e:
            raise CommandError(str(e)) from None
        if not result:
            self.note(f"{strategy_name} on {symbol}: {action.replace('_', ' ')} not done: {result.reason}", "error")
        self._runs_dirty = True
        self._schedule()
        return result

    def _replay(self, fn: Callable[..., None], symbol: str, strategy_name: str, **kw: Any) -> None:
        try:
            fn(symbol, strategy_name=strategy_name, **kw)
        except ValueError as e:
            raise CommandError(str(e)) from None
        self._runs_dirty = True
        self._schedule()

    async def reset_run(self, strategy_name: str, symbol: str) -> str | None:
        """Set a stopped run's saved state aside (``Live.set_aside``) so its next start is fresh;
        returns where it went (None: nothing was saved)."""
        run = self.runs.get((symbol, strategy_name))
        if run is not None and run.task is not None and not run.task.done():
            raise CommandError(f"{strategy_name} runs on {symbol}: stop it before resetting it")
        try:
            folder = Live.set_aside(symbol, strategy_name=strategy_name, state_dir=self.state_dir)
        except (OSError, RuntimeError, ValueError) as e:
            raise CommandError(describe_error(e)) from None
        self.runs.pop((symbol, strategy_name), None)
        self._runs_dirty = True
        await self.refresh_saved()
        self.note(f"{strategy_name} on {symbol}: saved state set aside in {folder}" if folder else
                  f"{strategy_name} on {symbol}: nothing saved to reset")
        return str(folder) if folder else None

    # --- backtests and walks ---------------------------------------------------------------------

    async def run_backtest(self, strategy_name: str, exchange: str, symbol: str,
                           frame: str | None = None) -> BacktestOutcome:
        """A backtest over ``frame`` (None: every stored candle of the market after a day of warm-up);
        progress comes in the batches. One at a time."""
        if self._backtest_key is not None:
            raise CommandError(f"a backtest is running ({self._backtest_key[1]} on {self._backtest_key[0]})")
        self._backtest_key = (symbol, strategy_name)
        started = time.perf_counter()
        try:
            try:
                frame_name = frame or await stored_frame(self.store, exchange, symbol)
            except MarketError as e:
                raise CommandError(str(e)) from None
            closed = [r async for r in Backtest.run(symbol, strategy_name=strategy_name, exchange_name=exchange,
                                                   frame_name=frame_name) if r.action == "closed"]
            status = Backtest.get_status(symbol, strategy_name=strategy_name) or {}
            f = registry.get_frame(frame_name)
            start = align(f.start, MINUTE_MS)
            count = (align(f.end, MINUTE_MS) - start) // MINUTE_MS + 1
            candles = Backtest.frame_candles(symbol, strategy_name=strategy_name)   # as the run read them
            if candles is None or len(candles) != count:
                candles = await ExchangeClient(registry.get_exchange(exchange)).fetch(symbol, "1m", start, count,
                                                                                      attempts=1)
            stopped = status.get("status") == "stopped"
            outcome = BacktestOutcome(f"{strategy_name} on {symbol} ({exchange}, {frame_name})", symbol, strategy_name,
                                      stopped, closed, backtest_statistics(closed), candles, start,
                                      status.get("processed_frames", 0), status.get("total_frames", 0),
                                      time.perf_counter() - started, status.get("orders"))
            self.note(f"backtest {outcome.title}: {'stopped, ' if stopped else ''}{len(closed)} closed")
            return outcome
        finally:
            self._backtest_key = None

    async def stop_backtest(self) -> None:
        if self._backtest_key is None:
            raise CommandError("no backtest is running")
        Backtest.stop(self._backtest_key[0], strategy_name=self._backtest_key[1])

    async def candles(self, exchange_name: str, symbol: str, since: int, count: int) -> Any:
        """``count`` closed 1m candles of ``symbol`` from ``since`` on ``exchange_name`` (a run's chart)."""
        try:
            return await ExchangeClient(registry.get_exchange(exchange_name)).fetch(symbol, "1m", since, count,
                                                                                    attempts=1)
        except Exception as e:
            raise CommandError(f"no candles of {symbol} on {exchange_name}: {describe_error(e)}") from None

    async def dump_backtest(self, symbol: str, strategy_name: str, path: str) -> str:
        written = await Backtest.dump(symbol, strategy_name=strategy_name, path=path)
        self.note(f"backtest report saved to {written}")
        return written

    async def run_walker(self, walker_name: str, executor: str = "inline",
                         symbols: tuple[str, ...] | list[str] | None = None) -> WalkerOutcome:
        """Walk ``walker_name`` (its own symbols by default); cells come in the batches as they
        finish, the rankings (per symbol, then overall) at the end. One at a time."""
        if self._walker is not None:
            raise CommandError(f"walker {self._walker[0]} is running")
        walker = next((w for w in registry.list_walkers() if w.walker_name == walker_name), None)
        if walker is None:
            raise CommandError(f"unknown walker {walker_name!r}")
        chosen = tuple(symbols or walker.symbols)
        if not chosen:
            raise CommandError(f"walker {walker_name} names no symbols (add_walker(..., symbols=[...]))")
        self._walker = (walker_name, chosen)
        try:
            async for _ in Walker.run(list(chosen) if len(chosen) > 1 else chosen[0], walker_name=walker_name,
                                      executor=executor):
                pass
            results = [r for k in (*chosen, *([OVERALL] if len(chosen) > 1 else []))
                       if (r := await Walker.get_data(k, walker_name=walker_name)) is not None]
            state = next((w for w in Walker.list() if w["walker_name"] == walker_name), {})
            return WalkerOutcome(walker_name, results, stopped=state.get("status") == "stopped")
        except (ValueError, RuntimeError, ConnectionError) as e:
            raise CommandError(describe_error(e)) from None
        finally:
            self._walker = None

    async def stop_walker(self) -> None:
        if self._walker is None:
            raise CommandError("no walker is running")
        self._stop_walker()

    def _stop_walker(self) -> None:
        assert self._walker is not None
        name, symbols = self._walker
        Walker.stop(list(symbols) if len(symbols) > 1 else symbols[0], walker_name=name)
