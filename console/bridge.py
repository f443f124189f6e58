"""The engine bridge: the console's side of the engine host.

The engine runs on a thread of its own (``engine.service``); its host hands the console
``EventBatch`` es, at most ten a second, on the console's loop. ``apply`` records each in a
model (``LiveBoard``, the runs' statuses, the runs saved on disk, the backtest's progress, the
walker's finished cells) and asks for a redraw; redraws coalesce to at most ``REFRESH_HZ`` per
second, each one message (``EngineUpdate``) that the app's handler turns into widget updates.
No polling: with nothing happening, nothing is scheduled.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from textual.message import Message

import engine as bk
from engine.service.messages import BacktestProgress as BacktestProgressEvent
from engine.service.messages import Breakeven, Commit, ErrorNote, EventBatch, Milestone, Note, RunStatus

from .board import LiveBoard

REFRESH_HZ = 10
# After a screen switch the new screen is drawn first: redraws wait this long, but while switches
# keep coming one still goes out at least this often.
KEY_HOLD_S = 0.15
HELD_INTERVAL_S = 0.3


@dataclass
class BacktestProgress:
    run: tuple[str, str] | None = None  # (symbol, strategy) of the console's backtest
    processed: int = 0
    total: int = 0
    started: float | None = None      # the bridge clock's reading at the first event of the run
    updated: float | None = None

    @property
    def rate(self) -> float | None:
        """Frames per second so far (None until a measurable time has passed)."""
        if self.started is None or self.updated is None or self.updated <= self.started:
            return None
        return self.processed / (self.updated - self.started)

    @property
    def eta(self) -> float | None:
        rate = self.rate
        return None if not rate else (self.total - self.processed) / rate


@dataclass
class WalkerBoard:
    """The finished cells of the walker run in progress, for a leaderboard that fills in live."""
    walker_name: str = ""
    cells: dict[tuple[str, str], bk.WalkerEvent] = field(default_factory=dict)   # (symbol, strategy) -> event
    failed: set[tuple[str, str]] = field(default_factory=set)
    processed: int = 0
    total: int = 0

    def reset(self, walker_name: str, total: int) -> None:
        self.walker_name, self.total, self.processed = walker_name, total, 0
        self.cells.clear()
        self.failed.clear()


class EngineUpdate(Message):
    """Something the screens show has changed since the last update."""

    def __init__(self, board_version: int, backtest: bool, walker: bool, runs: bool = False) -> None:
        super().__init__()
        self.board_version, self.backtest, self.walker, self.runs = board_version, backtest, walker, runs


class EngineBridge:
    """``clock`` and ``call_later(delay, fn)`` are the running loop's by default; tests pass their
    own, so the coalescing is checked without real sleeps."""

    def __init__(self, post: Callable[[Message], Any], *, clock: Callable[[], float] = time.monotonic,
                 call_later: Callable[[float, Callable[[], None]], Any] | None = None,
                 refresh_hz: float = REFRESH_HZ) -> None:
        self.post = post
        self.clock = clock
        self.call_later = call_later
        self.interval = 1.0 / refresh_hz
        self.board = LiveBoard()
        self.progress = BacktestProgress()
        self.walker = WalkerBoard()
        self.runs: dict[tuple[str, str], RunStatus] = {}
        self.saved: list[bk.SavedRun] = []
        self.runs_version = 0          # bumped when the runs or the saved runs change
        self._handle: Any = None      # the pending flush (anything with cancel())
        self._last_flush = float("-inf")
        self._held_until = float("-inf")
        self._backtest_dirty = self._walker_dirty = self._runs_dirty = False
        self._board_seen = 0

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    # -- the host's batches ----------------------------------------------------------------
    def apply(self, batch: EventBatch) -> None:
        """Record a batch in the models (on the console's loop), then ask for one redraw."""
        board = self.board
        for event in batch.events:
            if isinstance(event, Milestone):
                board.apply_milestone(event.kind, event.event)
            elif isinstance(event, bk.RiskEvent):
                board.apply_risk(event)
            elif isinstance(event, Commit):
                board.apply_commit(event.event)
            elif isinstance(event, Breakeven):
                board.apply_breakeven(event.event)
            elif isinstance(event, ErrorNote):
                board.apply_error(event)
            elif isinstance(event, Note):
                board.note(event.text, event.kind)
            else:
                board.apply_tick(event)
        for tick in batch.ticks:
            board.apply_tick(tick)
        if batch.history:
            board.apply_history(batch.history)
        if batch.runs is not None:
            self.runs = {run.key: run for run in batch.runs}
            self._runs_dirty = True
            self.runs_version += 1
        if batch.saved is not None:
            self.saved = list(batch.saved)
            self._runs_dirty = True
            self.runs_version += 1
        if batch.backtest is not None:
            self.on_backtest_progress(batch.backtest)
        for cell in batch.walker_cells:
            self.on_walker_cell(cell)
        if batch.walker_progress is not None:
            self.on_walker_progress(batch.walker_progress)
        self._changed()

    def note(self, text: str, kind: str = "info") -> None:
        self.board.note(text, kind)
        self._changed()

    def begin_backtest(self, symbol: str, strategy_name: str) -> None:
        self.progress = BacktestProgress(run=(symbol, strategy_name), started=self.clock())
        self._backtest_dirty = True
        self._changed()

    def on_backtest_progress(self, event: BacktestProgressEvent) -> None:
        p = self.progress
        if p.run != (event.symbol, event.strategy_name):
            return
        if p.started is None:
            p.started = self.clock()
        p.processed, p.total, p.updated = event.processed, event.total, self.clock()
        self._backtest_dirty = True

    def on_walker_cell(self, event: bk.WalkerEvent) -> None:
        self.walker.cells[(event.symbol, event.strategy_name)] = event
        self._walker_dirty = True

    def on_walker_progress(self, event: bk.WalkerProgressEvent) -> None:
        self.walker.processed, self.walker.total = event.processed_cells, event.total_cells
        if event.failed:
            self.walker.failed.add((event.symbol, event.strategy_name))
        self._walker_dirty = True

    def running(self) -> list[RunStatus]:
        """The live runs going (running, paused or stopping)."""
        return [r for r in self.runs.values() if r.state != "ended"]

    # -- coalescing ---------------------------------------------------------------------------
    def hold(self, seconds: float = KEY_HOLD_S) -> None:
        """A screen is switched to: updates wait ``seconds`` so it is drawn before any redraw of
        theirs (the models keep taking batches; the screen coming up draws from them)."""
        self._held_until = self.clock() + seconds
        if self._handle is not None:       # an update due sooner waits too
            self._handle.cancel()
            self._schedule(self._wait())

    def _wait(self) -> float:
        """Seconds until the next update may go out."""
        now = self.clock()
        due = self._last_flush + self.interval
        if now < self._held_until:
            due = max(due, min(self._held_until, self._last_flush + HELD_INTERVAL_S))
        return max(0.0, due - now)

    def _changed(self) -> None:
        if self._handle is not None:
            return
        self._schedule(self._wait())

    def _schedule(self, delay: float) -> None:
        call_later = self.call_later
        if call_later is None:
            try:
                call_later = asyncio.get_running_loop().call_later
            except RuntimeError:
                return  # no loop (a synchronous caller): the next event or a screen resume redraws
        self._handle = call_later(delay, self.flush)

    def flush(self) -> None:
        """Post one update for everything that changed since the last one."""
        self._handle = None
        self._last_flush = self.clock()
        board_changed = self.board.version != self._board_seen
        if not (board_changed or self._backtest_dirty or self._walker_dirty or self._runs_dirty):
            return
        self._board_seen = self.board.version
        update = EngineUpdate(self.board.version if board_changed else 0, self._backtest_dirty, self._walker_dirty,
                              self._runs_dirty)
        self._backtest_dirty = self._walker_dirty = self._runs_dirty = False
        self.post(update)
