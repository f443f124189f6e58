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
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label, ProgressBar, Select, Static, TabbedContent, TabPane
from textual_plotext import PlotextPlot

import engine as bk
from engine.exchange.client import ExchangeClient
from engine.interval import MINUTE_MS, align
from engine.registry import get_exchange, get_frame

from .. import charts
from .. import format as fmt
from ..modebar import ModeBar
from engine.exchange.markets import stored_frame

if TYPE_CHECKING:
    from ..app import BtkApp

STORED = "stored"     # the frame choice "all stored candles of the market"
VIEWS = ("tab-stats", "tab-trades", "tab-equity", "tab-chart")
TRADE_COLUMNS = ("#", "side", "opened", "closed", "entry", "exit", "reason", "PnL")


class BacktestDone(Message):
    def __init__(self, title: str, closed: list[Any], stats: bk.BacktestStatistics, candles: Any, start: int,
                 frames: int, seconds: float | None) -> None:
        super().__init__()
        self.title, self.closed, self.stats, self.candles, self.start = title, closed, stats, candles, start
        self.frames, self.seconds = frames, seconds


class BacktestFailed(Message):
    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason


class BacktestScreen(Screen):
    BINDINGS = [
        Binding("r", "run", "Run", id="backtest.run"),
        Binding("x", "stop", "Stop run", id="backtest.stop"),
        Binding("v", "next_view", "Next view", id="backtest.next_view"),
        Binding("d", "dump", "Save report", id="backtest.dump"),
    ]
    app: BtkApp

    def __init__(self) -> None:
        super().__init__()
        self.result: BacktestDone | None = None
        self.selected: Any = None
        self.running: tuple[str, str] | None = None    # (symbol, strategy) of the run in progress
        self.chart_title = ""

    def compose(self) -> ComposeResult:
        strategies = [s.strategy_name for s in bk.list_strategies()]
        markets = [(f"{symbol} · {exchange}", (exchange, symbol)) for exchange, symbol in self.app.markets]
        frames = [("all stored candles", STORED)] + [(f.frame_name, f.frame_name) for f in bk.list_frames()]
        yield ModeBar("backtest")
        with Horizontal(classes="form"):
            yield Select([(s, s) for s in strategies], value=strategies[0] if strategies else Select.BLANK,
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
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one("#bt-trades", DataTable).add_columns(*TRADE_COLUMNS)
        self.app.theme_changed_signal.subscribe(self, lambda _: self.redraw_results())

    def on_screen_resume(self) -> None:
        self.on_engine()

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
            self.app.notify("choose a strategy and a market first", severity="warning")
            return
        if self.running is not None:
            self.app.notify(f"a backtest is running ({self.running[1]} on {self.running[0]}): x stops it",
                            severity="warning")
            return
        strategy, exchange, symbol, frame = choice
        self.running = (symbol, strategy)
        self.query_one("#bt-status", Label).update(f"starting {strategy} on {symbol}...")
        self.query_one("#bt-progress", ProgressBar).update(progress=0)
        self.run_backtest(strategy, exchange, symbol, frame)

    @work(group="backtest", exit_on_error=False)
    async def run_backtest(self, strategy: str, exchange: str, symbol: str, frame: str) -> None:
        """The worker: runs the engine and posts the outcome; the handlers touch the widgets."""
        bridge = self.app.bridge
        try:
            frame_name = await stored_frame(self.app.config.store, exchange, symbol) if frame == STORED else frame
            bridge.begin_backtest(symbol, strategy)
            closed: list[Any] = []
            async for result in bk.Backtest.run(symbol, strategy_name=strategy, exchange_name=exchange,
                                                frame_name=frame_name):
                if result.action == "closed":
                    closed.append(result)
            progress = bridge.progress
            seconds = (progress.updated - progress.started) if progress.started is not None and \
                progress.updated is not None and progress.updated > progress.started else None
            f = get_frame(frame_name)
            start = align(f.start, MINUTE_MS)
            count = (align(f.end, MINUTE_MS) - start) // MINUTE_MS + 1
            candles = await ExchangeClient(get_exchange(exchange)).fetch(symbol, "1m", start, count, attempts=1)
            self.post_message(BacktestDone(f"{strategy} on {symbol} ({exchange}, {frame_name})", closed,
                                           bk.backtest_statistics(closed), candles, start, progress.total, seconds))
        except Exception as exc:
            self.post_message(BacktestFailed(f"{type(exc).__name__}: {' '.join(str(exc).split())}"))
        finally:
            self.running = None

    def action_stop(self) -> None:
        if self.running is None:
            self.app.notify("no backtest is running", severity="warning")
            return
        bk.Backtest.stop(self.running[0], strategy_name=self.running[1])
        self.query_one("#bt-status", Label).update("stopping: the open position resolves, then the run ends")

    async def action_dump(self) -> None:
        choice = self.choice()
        if self.result is None or choice is None:
            self.app.notify("run a backtest first", severity="warning")
            return
        path = await bk.Backtest.dump(choice[2], strategy_name=choice[0], path=str(self.app.config.reports))
        self.app.notify(f"report saved to {path}")
        self.app.bridge.note(f"backtest report saved to {path}")

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
        self.query_one("#bt-status", Label).update(
            f"{100.0 * p.processed / p.total:5.1f}%  {p.processed:,} of {p.total:,} candles  "
            f"{f'{rate:,.0f}/s' if rate else '--/s'}  ETA {fmt.seconds(p.eta)}")

    def on_backtest_done(self, message: BacktestDone) -> None:
        self.result, self.selected = message, None
        self.query_one("#bt-progress", ProgressBar).update(progress=100)
        rate = f" in {message.seconds:.2f} s ({message.frames / message.seconds:,.0f}/s)" if message.seconds else ""
        self.query_one("#bt-status", Label).update(
            f"done: {message.frames:,} candles{rate}, {len(message.closed)} closed signals")
        table = self.query_one("#bt-trades", DataTable)
        table.clear()
        colors = self.app.colors
        for i, t in enumerate(message.closed, 1):
            s = t.signal
            table.add_row(str(i), s.position, fmt.when(s.pending_at or s.scheduled_at), fmt.when(t.close_timestamp),
                          fmt.price(s.price_open), fmt.price(t.pnl.price_close), t.close_reason,
                          fmt.signed(t.pnl.pnl_percentage, colors), key=str(i))
        self.redraw_results()
        self.app.bridge.note(f"backtest {message.title}: {len(message.closed)} closed, total PnL "
                             f"{fmt.percent(message.stats.total_pnl)}")

    def on_backtest_failed(self, message: BacktestFailed) -> None:
        self.query_one("#bt-status", Label).update(Text(f"failed: {message.reason}",
                                                        style=self.app.colors["error"]))
        self.app.bridge.note(f"backtest failed: {message.reason}", "error")

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if self.result is None or event.data_table.id != "bt-trades" or event.row_key.value is None:
            return
        if not event.data_table.has_focus:
            return  # the cursor placed by filling the table: keep the whole-frame chart
        self.selected = self.result.closed[int(event.row_key.value) - 1]
        self._draw_candles()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "bt-trades":
            self.query_one("#bt-results", TabbedContent).active = "tab-chart"

    def redraw_results(self) -> None:
        if self.result is None:
            return
        self.query_one("#stats", Static).update(stats_table(self.result.title, self.result.stats))
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
                            max_bars=max(10, (width - 14) // 2), selected=self.selected)
        plot.refresh()


def stats_table(title: str, s: bk.BacktestStatistics) -> Table:
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
    table = Table.grid(padding=(0, 2))
    table.title = title
    table.title_justify = "left"
    for _ in range(4):
        table.add_column()
    for (a, b), (c, d) in zip(left, right):
        table.add_row(a, b, c, d)
    return table
