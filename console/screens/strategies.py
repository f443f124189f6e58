"""The Strategies screen: the registry, and which strategies run live or on a replay; start one
on a symbol, stop one (after a confirmation that says what happens to its positions), or take
one to the Backtest screen."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from .. import format as fmt
from ..keybar import KeyBar
from ..messages import BacktestRequested
from ..modebar import ModeBar
from ..tables import KEEP, Column, content_width, fill
from .dialogs import ConfirmDialog, StartDialog, StartRequest
from .base import BtkScreen

if TYPE_CHECKING:
    from ..context import ConsoleApp

# Dropped in this order when the pane is narrow: the note, the risk profiles, the interval.
COLUMNS = (Column("strategy", KEEP), Column("interval", 30), Column("risk", 20), Column("running", KEEP),
           Column("position", KEEP), Column("note", 10, shrink=16))


class StrategiesScreen(BtkScreen):
    BINDINGS = [
        Binding("enter,n", "start", "Start", id="strategies.start"),
        Binding("x", "stop", "Stop", id="strategies.stop"),
        Binding("b", "backtest", "Backtest it", id="strategies.backtest"),
    ]
    app: ConsoleApp

    def compose(self) -> ComposeResult:
        yield ModeBar("strategies")
        yield DataTable(id="st-table", classes="pane", cursor_type="row", zebra_stripes=True, cell_padding=0)
        yield Static(id="st-hint", classes="status-line")
        yield KeyBar()

    def on_mount(self) -> None:
        table = self.query_one("#st-table", DataTable)
        table.border_title = "strategies"
        self.query_one("#st-hint", Static).update(
            Text("enter: start on a symbol (replay = paper trading on stored candles) · x: stop · b: backtest"))
        self.app.theme_changed_signal.subscribe(self, lambda _: self.on_engine())  # type: ignore[attr-defined]
        self.on_engine()

    def on_screen_resume(self) -> None:
        self.on_engine()

    def runs(self) -> dict[str, list[Any]]:
        """Live / replay runs going, per strategy."""
        out: dict[str, list[Any]] = {}
        for run in self.app.bridge.running():
            out.setdefault(run.strategy_name, []).append(run)
        return out

    def on_engine(self, update: Any = None) -> None:
        if update is not None and not (update.runs or update.board_version):
            return
        table = self.query_one("#st-table", DataTable)
        runs = self.runs()
        board = self.app.bridge.board
        colors = self.app.colors
        rows: list[tuple[str, list[object]]] = []
        for s in self.app.workspace.strategies:
            mine = runs.get(s.strategy_name, [])
            running = ", ".join(f"{r.symbol} ({r.exchange_name})" for r in mine) or "-"
            position: Any = "-"
            for r in mine:
                key = (r.symbol, s.strategy_name)
                if key in board.open:
                    o = board.open[key]
                    position = Text(f"{o.signal.position} ").append_text(fmt.signed(o.pnl, colors))
                elif key in board.scheduled:
                    position = Text(f"waiting {board.scheduled[key].signal.position}", style=colors["warning"])
            rows.append((s.strategy_name, [Text(s.strategy_name), s.interval, Text(", ".join(s.risk_names) or "-"),
                                           Text(running, style=colors["success"] if mine else ""), position,
                                           Text(s.note)]))
        fill(table, COLUMNS, rows, content_width(table, self.app.size.width))  # type: ignore[attr-defined]

    def on_resize(self) -> None:
        self.on_engine()

    def current(self) -> str | None:
        table = self.query_one("#st-table", DataTable)
        if not table.row_count:
            return None
        return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_start()   # enter on the table (the table takes enter before the screen's binding)

    def action_start(self) -> None:
        name = self.current()
        if name is None:
            return
        symbols = list(dict.fromkeys(symbol for _, symbol in self.app.workspace.markets))

        def started(request: StartRequest | None) -> None:
            if request is not None:
                self.run_worker(self.app.command("start_live", request.strategy_name, request.symbol,
                                                 request.exchange), group="command")

        self.app.push_screen(StartDialog(name, symbols), started)  # type: ignore[attr-defined]

    def action_stop(self) -> None:
        name = self.current()
        mine = self.runs().get(name or "", [])
        if not mine or name is None:
            self.app.notify(f"{name} is not running", severity="warning", markup=False)  # type: ignore[attr-defined]
            return
        run = mine[0]
        symbol = run.symbol
        board = self.app.bridge.board
        consequences = ["It takes no new signals."]
        waiting = board.scheduled.get((symbol, name))
        if waiting is not None or run.scheduled:
            consequences.append("Its scheduled order" + (f" (entry {fmt.price(waiting.signal.price_open)})"
                                                         if waiting else "") + " is cancelled.")
        held = board.open.get((symbol, name))
        if held is not None or run.open:
            detail = (f" {held.signal.position} from {fmt.price(held.signal.price_open)}, "
                      f"{fmt.percent(held.pnl)} now," if held else "")
            consequences.append(f"Its open position{detail} stays watched until TP, SL or its time limit "
                                "closes it; then the run ends.")
        else:
            consequences.append("It holds no position: the run ends at the next tick.")
        consequences.append(f"State stays in {self.app.workspace.state_dir}.")

        def answered(yes: bool | None) -> None:
            if yes:
                self.run_worker(self.app.command("stop_live", name, symbol), group="command")

        self.app.push_screen(ConfirmDialog(Text(f"Stop {name} on {symbol} ({run.exchange_name})?"),  # type: ignore
                                           Text("\n".join(consequences)), confirm="Stop"), answered)

    def action_backtest(self) -> None:
        name = self.current()
        if name is not None:
            self.post_message(BacktestRequested(name))
