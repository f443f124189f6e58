"""An open position up close: the closes and the VWAP it is judged on since before its entry,
its entry, TP and SL, and the milestones it reached (enter on a row of the Live screen's
signals pane; escape goes back). Redrawn as its run ticks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label
from textual_plotext import PlotextPlot

from engine.exchange.vwap import rolling_vwap
from engine.interval import MINUTE_MS

from .. import charts
from .. import format as fmt

if TYPE_CHECKING:
    from ..context import ConsoleApp

BEFORE_ENTRY_MINUTES = 30
MAX_MINUTES = 1440          # the newest day at most


class PositionScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,enter", "close", "Back", id="position.back")]
    app: ConsoleApp

    def __init__(self, key: tuple[str, str]) -> None:
        super().__init__()
        self.key = key
        self.title_text = ""
        self._drawn_at = -1

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Label(Text(f"{self.key[1]} on {self.key[0]}"), id="position-title")
            yield Label("", id="position-figures")
            yield PlotextPlot(id="position-chart")

    def on_mount(self) -> None:
        self.refresh_chart()

    def on_engine(self, update: Any = None) -> None:
        self.refresh_chart()

    def refresh_chart(self) -> None:
        board = self.app.bridge.board
        held = board.open.get(self.key)
        if held is None:
            self.query_one("#position-figures", Label).update(Text("the position has closed (escape goes back)"))
            return
        now = held.tick.created_at
        if now == self._drawn_at:
            return
        self._drawn_at = now
        s = held.signal
        self.query_one("#position-figures", Label).update(Text(
            f"{s.position} {fmt.percent(held.pnl)} now at {fmt.price(held.tick.current_price)}  "
            f"{held.percent_tp:.0f}% of the way to TP, {held.percent_sl:.0f}% to SL  "
            f"open {fmt.minutes(held.age_minutes)}"))
        run = self.app.bridge.runs.get(self.key)
        if run is not None:
            self.load(run.exchange_name, s, now)

    @work(group="chart", exclusive=True, exit_on_error=False)
    async def load(self, exchange: str, signal: Any, now: int) -> None:
        since = max((signal.pending_at or signal.scheduled_at) - BEFORE_ENTRY_MINUTES * MINUTE_MS,
                    now - MAX_MINUTES * MINUTE_MS)
        since -= since % MINUTE_MS
        count = (now - since) // MINUTE_MS
        if count < 1:
            return
        candles = await self.app.command("candles", exchange, signal.symbol, since, count)
        if candles is None:
            return
        vwap = rolling_vwap(candles.high, candles.low, candles.close, candles.volume, 5)
        plot = self.query_one("#position-chart", PlotextPlot)
        config = self.app.config
        self.title_text = charts.draw_position(plot.plt, candles, vwap, signal, self.app.bridge.board.levels.get(
            signal.id, []), self.app.colors, config.glyphs, no_color=config.no_color)
        plot.refresh()

    def action_close(self) -> None:
        self.dismiss(None)
