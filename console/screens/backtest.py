"""The Backtest screen: choose a strategy, a market and a frame, run it with a progress line
(percent, candles/s, ETA), then read its statistics, closed signals, equity and a candlestick
chart with entries, exits and the selected trade's TP and SL."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import DataTable, Label, ProgressBar, Select, Static, TabbedContent, TabPane
from textual_plotext import PlotextPlot

import engine as bk
from engine.log import describe_error
from engine.service.messages import BacktestOutcome

from .. import charts
from .. import format as fmt
from ..keybar import KeyBar
from ..modebar import ModeBar
from .base import BtkScreen

if TYPE_CHECKING:
    from ..context import ConsoleApp

STORED = "stored"     # the frame choice "all stored candles of the market"
VIEWS = ("tab-stats", "tab-trades", "tab-equity", "tab-chart")
TRADE_COLUMNS = ("#", "side", "opened", "closed", "entry", "exit", "reason", "PnL")
TRADES_PER_TURN = 200
NEXT_TURN_S = 0.01          # (a timer: the table measures the rows it was given before the next ones come)


class BacktestDone(Message):
    def __init__(self, outcome: BacktestOutcome) -> None:
        super().__init__()
        self.outcome = outcome
        self.title, self.closed, self.stats, self.candles = outcome.title, outcome.closed, outcome.stats, \
            outcome.candles
        self.start, self.frames, self.seconds = outcome.start, outcome.processed, outcome.seconds


class BacktestFailed(Message):
    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason


class BacktestScreen(BtkScreen):
    BINDINGS = [
        Binding("r", "run", "Run", id="backtest.run"),
        Binding("x", "stop", "Stop run", id="backtest.stop"),
        Binding("v", "next_view", "Next view", id="backtest.next_view"),
        Binding("d", "dump", "Save report", id="backtest.dump"),
    ]
    app: ConsoleApp

    def __init__(self) -> None:
        super().__init__()
        self.result: BacktestDone | None = None
        self.selected: Any = None
        self.running: tuple[str, str] | None = None    # (symbol, strategy) of the run in progress
        self.chart_title = ""

    def compose(self) -> ComposeResult:
        workspace = self.app.workspace
        strategies = [s.strategy_name for s in workspace.strategies]
        markets = [(Text(f"{symbol} · {exchange}"), (exchange, symbol)) for exchange, symbol in workspace.markets]
        frames = [(Text("all stored candles"), STORED)] + [(Text(f), f) for f in workspace.frames]
        yield ModeBar("backtest")
        with Horizontal(classes="form"):
            # Option labels are Text: a name such as sma_cross[fast=5,slow=30] is never read as markup.
            yield Select([(Text(s), s) for s in strategies], value=strategies[0] if strategies else Select.BLANK,
                         id="bt-strategy", prompt="strategy", allow_blank=not strategies)
            yield Select(markets, value=markets[0][1] if markets else Select.BLANK, id="bt-market",
                         prompt="market", allow_blank=not markets)
            yield Select(frames, value=STORED, id="bt-frame", allow_blank=False)
        with Horizontal(classes="progress-row"):
            yield ProgressBar(total=100, show_eta=False, id="bt-progress")
            yield Label("press r to run", id="bt-status")
        with TabbedContent(id="bt-results"):
            with TabPane("stats", id="tab-stats"):
                yield Static("no results yet", id="stats")
            with TabPane("trades", id="tab-trades"):
                yield DataTable(id="bt-trades", cursor_type="row", zebra_stripes=True)
            with TabPane("equity", id="tab-equity"):
                yield PlotextPlot(id="bt-equity")
            with TabPane("chart", id="tab-chart"):
                yield PlotextPlot(id="bt-candles")
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one("#bt-trades", DataTable).add_columns(*TRADE_COLUMNS)
        self.app.theme_changed_signal.subscribe(self, lambda _: self.redraw_results())

    def on_screen_resume(self) -> None:
        self.on_engine()

    def choose(self, strategy_name: str) -> None:
        """Show ``strategy_name`` as the strategy to run (from the Strategies screen's ``b``)."""
        self.query_one("#bt-strategy", Select).value = strategy_name

    # -- running --------------------------------------------------------------------------
    def choice(self) -> tuple[str, str, str, str] | None:
        strategy = self.query_one("#bt-strategy", Select).value
        market = self.query_one("#bt-market", Select).value
        frame = self.query_one("#bt-frame", Select).value
        if not isinstance(strategy, str) or not isinstance(market, tuple):
            return None
        return strategy, market[0], market[1], str(frame)

    def action_run(self) -> None:
        choice = self.choice()
        if choice is None:
            self.app.notify("choose a strategy and a market first", severity="warning")  # type: ignore[attr-defined]
            return
        if self.running is not None:
            self.app.notify(f"a backtest is running ({self.running[1]} on {self.running[0]}): x stops it",  # type: ignore
                            severity="warning", markup=False)
            return
        strategy, exchange, symbol, frame = choice
        self.running = (symbol, strategy)
        self.query_one("#bt-status", Label).update(Text(f"starting {strategy} on {symbol}..."))
        self.query_one("#bt-progress", ProgressBar).update(progress=0)
        self.app.bridge.begin_backtest(symbol, strategy)
        self.run_backtest(strategy, exchange, symbol, None if frame == STORED else frame)
        # This key's screen is one label: once it is drawn, the backtest the trader waits for goes
        # on at the engine's full share (a key hushes the engine for a moment).
        self.call_after_refresh(self.app.end_key_hush)  # type: ignore[attr-defined]

    @work(group="backtest", exit_on_error=False)
    async def run_backtest(self, strategy: str, exchange: str, symbol: str, frame: str | None) -> None:
        """The worker: asks the engine and posts the outcome; the handlers touch the widgets."""
        try:
            outcome = await self.app.command("run_backtest", strategy, exchange, symbol, frame)
            self.post_message(BacktestDone(outcome) if outcome is not None else
                              BacktestFailed("the engine refused it (see the log)"))
        except Exception as exc:
            self.post_message(BacktestFailed(describe_error(exc)))

    def action_stop(self) -> None:
        if self.running is None:
            self.app.notify("no backtest is running", severity="warning")  # type: ignore[attr-defined]
            return
        self.run_worker(self.app.command("stop_backtest"), group="command")
        self.query_one("#bt-status", Label).update(Text("stopping: the open position resolves, then the run ends"))

    async def action_dump(self) -> None:
        if self.result is None:
            self.app.notify("run a backtest first", severity="warning")  # type: ignore[attr-defined]
            return
        outcome = self.result.outcome
        path = await self.app.command("dump_backtest", outcome.symbol, outcome.strategy_name,
                                      str(self.app.config.reports))
        if path is not None:
            self.app.notify(f"report saved to {path}", markup=False)  # type: ignore[attr-defined]

    def action_next_view(self) -> None:
        tabs = self.query_one("#bt-results", TabbedContent)
        tabs.active = VIEWS[(VIEWS.index(tabs.active) + 1) % len(VIEWS)] if tabs.active in VIEWS else VIEWS[0]

    # -- handlers -----------------------------------------------------------------------------
    def on_engine(self, update: Any = None) -> None:
        if self.running is None:
            return
        p = self.app.bridge.progress
        if not p.total:
            return
        self.query_one("#bt-progress", ProgressBar).update(progress=100.0 * p.processed / p.total)
        rate = p.rate
        self.query_one("#bt-status", Label).update(Text(
            f"{100.0 * p.processed / p.total:5.1f}% · {p.processed:,} of {p.total:,} candles · "
            f"{f'{rate:,.0f}/s' if rate else '--/s'} · ETA {fmt.seconds(p.eta)}"))

    def on_backtest_done(self, message: BacktestDone) -> None:
        self.running = None
        self.result, self.selected = message, None
        outcome = message.outcome
        p = self.app.bridge.progress     # timed on the console's clock (frozen in tests: no rate shown)
        seconds = p.updated - p.started if p.started is not None and p.updated is not None else 0.0
        rate = f" in {seconds:.2f} s ({message.frames / seconds:,.0f}/s)" if seconds > 0 else ""
        if outcome.stopped:
            done = 100.0 * outcome.processed / outcome.total if outcome.total else 0.0
            self.query_one("#bt-progress", ProgressBar).update(progress=done)
            status = (f"stopped at {done:.0f}% · {len(message.closed)} closed signals · {outcome.processed:,} of "
                      f"{outcome.total:,} candles")
        else:
            self.query_one("#bt-progress", ProgressBar).update(progress=100)
            # The count first: a narrow terminal cuts the end of the line.
            status = f"done · {len(message.closed)} closed signals · {message.frames:,} candles{rate}"
        self.query_one("#bt-status", Label).update(Text(status))
        self.query_one("#bt-trades", DataTable).clear()
        self._list_trades(message, 0)
        self.redraw_results()

    def _list_trades(self, listed: BacktestDone, start: int) -> None:
        """Add the trades from ``start`` to the table, ``TRADES_PER_TURN`` at a time: the table
        measures every cell it is given, so a long backtest's thousands of trades fill in over a
        few turns of the loop, with keys answered between them."""
        if self.result is not listed:
            return                                   # a newer result took the table
        table = self.query_one("#bt-trades", DataTable)
        colors = self.app.colors
        closed = listed.closed[start:start + TRADES_PER_TURN]
        # Text cells: the table measures them as they are (a str would be parsed as markup first).
        table.add_rows((*(Text(cell) for cell in (str(i), t.signal.position,
                                                  fmt.when(t.signal.pending_at or t.signal.scheduled_at),
                                                  fmt.when(t.close_timestamp), fmt.price(t.pnl.price_open),
                                                  fmt.price(t.pnl.price_close), t.close_reason)),
                        fmt.signed(t.pnl.pnl_percentage, colors))
                       for i, t in enumerate(closed, start + 1))
        if start + TRADES_PER_TURN < len(listed.closed):
            self.set_timer(NEXT_TURN_S, lambda: self._list_trades(listed, start + TRADES_PER_TURN))

    def on_backtest_failed(self, message: BacktestFailed) -> None:
        self.running = None
        self.query_one("#bt-status", Label).update(Text(f"failed: {message.reason}",
                                                        style=self.app.colors["error"]))
        self.app.bridge.note(f"backtest failed: {message.reason}", "error")

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if self.result is None or event.data_table.id != "bt-trades" or not 0 <= event.cursor_row < len(
                self.result.closed):
            return
        if not event.data_table.has_focus:
            return  # the cursor placed by filling the table: keep the whole-frame chart
        self.selected = self.result.closed[event.cursor_row]
        self._draw_candles()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "bt-trades":
            self.query_one("#bt-results", TabbedContent).active = "tab-chart"

    def redraw_results(self) -> None:
        if self.result is None:
            return
        self.query_one("#stats", Static).update(stats_table(self.result.title, self.result.stats,
                                                            self.result.outcome.orders))
        plot = self.query_one("#bt-equity", PlotextPlot)
        charts.draw_equity(plot.plt, self.result.closed, self.result.start, self.app.colors)
        plot.refresh()
        self._draw_candles()

    def _draw_candles(self) -> None:
        if self.result is None:
            return
        plot = self.query_one("#bt-candles", PlotextPlot)
        width = plot.size.width or self.size.width
        self.chart_title = charts.draw_candles(plot.plt, self.result.candles, self.result.closed, self.app.colors,
                                               max_bars=max(10, (width - 14) // 2), selected=self.selected,
                                               no_color=self.app.config.no_color)
        plot.refresh()


def stats_table(title: str, s: bk.BacktestStatistics, orders: Any = None) -> Table:
    """Two columns of label / value pairs: the numbers a trader reads first on the left."""
    n = fmt.number
    left = [("closed", f"{s.total_signals} ({s.win_count}W / {s.loss_count}L)"),
            ("win rate", "N/A" if s.win_rate is None else f"{s.win_rate:.2f}%"),
            ("total PnL", fmt.percent(s.total_pnl, 3)), ("average PnL", fmt.percent(s.avg_pnl, 3)),
            ("median PnL", fmt.percent(s.median_pnl, 3)), ("std dev", n(s.std_dev)),
            ("max drawdown", fmt.drawdown(s.max_drawdown)), ("profit factor", n(s.profit_factor)),
            ("expectancy", n(s.expectancy))]
    right = [("Sharpe", n(s.sharpe_ratio)), ("annual Sharpe", n(s.annualized_sharpe_ratio)),
             ("Sortino", n(s.sortino_ratio)), ("certainty", n(s.certainty_ratio)), ("Calmar", n(s.calmar_ratio)),
             ("avg win / loss", f"{fmt.percent(s.avg_win)} / {fmt.percent(s.avg_loss)}"),
             ("streaks W / L", f"{s.max_win_streak} / {s.max_loss_streak}"),
             ("trades / year", n(s.trades_per_year, 1)), ("yearly return", fmt.percent(s.expected_yearly_returns))]
    if orders is not None:
        left.append(("entries", orders.summary()))
        right.append(("", ""))
    table = Table.grid(padding=(0, 2))
    table.title = Text(title)
    table.title_justify = "left"
    for _ in range(4):
        table.add_column()
    for (a, b), (c, d) in zip(left, right):
        table.add_row(a, Text(b), c, Text(d))
    return table
