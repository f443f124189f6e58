"""The Walker screen: pick a walker (or a parameter sweep) and an executor, run it, and watch
the leaderboard fill in as cells finish; the final ranking replaces it when the walk ends."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import DataTable, Label, ProgressBar, Select

import engine as bk
from engine.log import describe_error
from engine.runners.walker import OVERALL

from .. import format as fmt
from ..bridge import EngineUpdate
from ..keybar import KeyBar
from ..modebar import ModeBar
from ..tables import KEEP, Column, content_width, fill
from .base import BtkScreen

if TYPE_CHECKING:
    from ..context import ConsoleApp

# Dropped from the right of this order when the pane is narrow: the note, the drawdown, the win rate...
COLUMNS = (Column("#", KEEP, True), Column("strategy", KEEP), Column("symbol", 30), Column("metric", KEEP, True),
           Column("trades", 60, True), Column("win rate", 40, True), Column("total PnL", KEEP, True),
           Column("max DD", 20, True), Column("note", 10, shrink=12))
EXECUTORS = ("inline", "process")


class WalkerDone(Message):
    def __init__(self, walker_name: str, results: list[bk.WalkerResults], error: str | None,
                 stopped: bool = False) -> None:
        super().__init__()
        self.walker_name, self.results, self.error, self.stopped = walker_name, results, error, stopped


class WalkerScreen(BtkScreen):
    BINDINGS = [
        Binding("r", "run", "Run", id="walker.run"),
        Binding("x", "stop", "Stop", id="walker.stop"),
        Binding("o", "cycle_board", "Symbol / overall", id="walker.cycle_board"),
    ]
    app: ConsoleApp

    def __init__(self) -> None:
        super().__init__()
        self.running: tuple[str, list[str]] | None = None   # (walker, symbols) in progress
        self.final: list[bk.WalkerResults] = []
        self.board_index = -1      # which final ranking is shown: the last is the overall one

    def compose(self) -> ComposeResult:
        listed = self.app.workspace.walkers
        walkers = [w.walker_name for w in listed]
        yield ModeBar("walker")
        with Horizontal(classes="form"):
            yield Select([(Text(f"{w.walker_name} ({len(w.strategies)} strategies)"), w.walker_name)
                          for w in listed], value=walkers[0] if walkers else Select.BLANK,
                         id="wk-walker", prompt="walker", allow_blank=not walkers)
            yield Select([(Text(f"executor: {e}"), e) for e in EXECUTORS], value="inline", id="wk-executor",
                         allow_blank=False)
        with Horizontal(classes="progress-row"):
            yield ProgressBar(total=100, show_eta=False, id="wk-progress")
            yield Label("press r to run", id="wk-status")
        yield DataTable(id="wk-board", classes="pane", cursor_type="row", zebra_stripes=True, cell_padding=0)
        yield KeyBar()

    def on_mount(self) -> None:
        board = self.query_one("#wk-board", DataTable)
        board.border_title = "leaderboard"
        self.app.theme_changed_signal.subscribe(self, lambda _: self.on_engine())

    def on_screen_resume(self) -> None:
        self.on_engine()

    def action_run(self) -> None:
        name = self.query_one("#wk-walker", Select).value
        executor = self.query_one("#wk-executor", Select).value
        notify = self.app.notify  # type: ignore[attr-defined]
        if not isinstance(name, str):
            notify("no walker registered (see --strategies)", severity="warning")
            return
        if self.running is not None:
            notify(f"walker {self.running[0]} is running: x stops it", severity="warning", markup=False)
            return
        walker = next(w for w in self.app.workspace.walkers if w.walker_name == name)
        symbols = list(walker.symbols)
        if not symbols:
            notify(f"walker {name} names no symbols (add_walker(..., symbols=[...]))", severity="error", markup=False)
            return
        self.running, self.final, self.board_index = (name, symbols), [], -1
        self.app.bridge.walker.reset(name, len(walker.strategies) * max(1, len(walker.symbols)))
        self.query_one("#wk-status", Label).update(Text(f"walking {name} ({executor})..."))
        self.on_engine()
        self.walk(name, str(executor), symbols)
        self.call_after_refresh(self.app.end_key_hush)  # type: ignore[attr-defined]   (as a backtest's r)

    @work(group="walker", exit_on_error=False)
    async def walk(self, name: str, executor: str, symbols: list[str]) -> None:
        """The worker: asks the engine and posts the outcome; the handlers touch the widgets."""
        try:
            outcome = await self.app.command("run_walker", name, executor, symbols)
        except Exception as exc:
            self.post_message(WalkerDone(name, [], describe_error(exc)))
            return
        if outcome is None:
            self.post_message(WalkerDone(name, [], "the engine refused it (see the log)"))
        else:
            self.post_message(WalkerDone(name, outcome.results, None, outcome.stopped))

    def action_stop(self) -> None:
        if self.running is None:
            self.app.notify("no walker is running", severity="warning")  # type: ignore[attr-defined]
            return
        self.run_worker(self.app.command("stop_walker"), group="command")
        self.query_one("#wk-status", Label).update(Text("stopping: cells still waiting are skipped"))

    def action_cycle_board(self) -> None:
        if len(self.final) > 1:
            self.board_index = (self.board_index + 1) % len(self.final)
            self.on_engine()

    def on_walker_done(self, message: WalkerDone) -> None:
        self.running = None
        self.final, self.board_index = message.results, len(message.results) - 1
        status = self.query_one("#wk-status", Label)
        if message.error:
            status.update(Text(f"failed: {message.error}", style=self.app.colors["error"]))
            self.app.bridge.note(f"walker {message.walker_name} failed: {message.error}", "error")
        else:
            best = message.results[-1] if message.results else None
            said = "stopped" if message.stopped else "done"
            status.update(Text(f"{said} · best {best.best_strategy} ({best.metric} {fmt.number(best.best_metric)})"
                               if best and best.best_strategy else f"{said} · no strategy has a value for the metric"))
            if not message.stopped:
                self.query_one("#wk-progress", ProgressBar).update(progress=100)
        self.on_engine()
        board = self.query_one("#wk-board", DataTable)
        if board.row_count:
            board.move_cursor(row=0)     # the final ranking opens on its best, wherever the cursor was

    def on_engine(self, update: EngineUpdate | None = None) -> None:
        if update is not None and not update.walker:
            return  # a live tick or a backtest's progress: nothing here changed
        board = self.query_one("#wk-board", DataTable)
        colors = self.app.colors
        rows: list[tuple[str, list[object]]] = []
        if self.final and not self.running:
            results = self.final[self.board_index]
            where = "all symbols (pooled)" if results.symbol == OVERALL else results.symbol
            board.border_title = Text(f"leaderboard: {results.walker_name} on {where}, by {results.metric}")
            board.border_subtitle = "o: next symbol / overall" if len(self.final) > 1 else ""
            for r in results.rows:
                note = r.error or ("below gates (<10 trades)" if r.below_gates else "")
                rows.append(self._row(r.rank, r.strategy_name, where if results.symbol != OVERALL else "all",
                                      r.metric_value, r.stats, note, colors))
        else:
            live = self.app.bridge.walker
            if live.total:
                self.query_one("#wk-progress", ProgressBar).update(progress=100.0 * live.processed / live.total)
                if self.running:
                    self.query_one("#wk-status", Label).update(Text(f"{live.processed} of {live.total} cells"))
            board.border_title = Text(f"leaderboard: {live.walker_name} (filling in)") if live.walker_name \
                else "leaderboard"
            ranked = sorted(live.cells.values(), key=lambda e: (e.metric_value is None, -(e.metric_value or 0.0)))
            for i, e in enumerate(ranked, 1):
                rows.append(self._row(i if e.metric_value is not None else None, e.strategy_name, e.symbol,
                                      e.metric_value, e.stats, "cached" if e.cached else "", colors))
        fill(board, COLUMNS, rows, content_width(board, self.app.size.width))  # type: ignore[attr-defined]

    def on_resize(self) -> None:
        self.on_engine()

    @staticmethod
    def _row(rank: int | None, strategy: str, symbol: str, value: float | None, stats: bk.BacktestStatistics | None,
             note: str, colors: dict[str, str]) -> tuple[str, list[object]]:
        s = stats
        return f"{symbol}\x1f{strategy}", [
            str(rank) if rank else "-", Text(strategy), Text(symbol), fmt.number(value, 4),
            str(s.total_signals) if s else "-", "N/A" if s is None or s.win_rate is None else f"{s.win_rate:.1f}%",
            fmt.signed(s.total_pnl if s else None, colors), fmt.drawdown(s.max_drawdown if s else None), Text(note)]
