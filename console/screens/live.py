"""The Live screen (the one ``btk`` opens on): open signals, scheduled orders, the milestone,
risk and log feeds and a P&L line, all from the bridge's ``LiveBoard``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import DataTable, RichLog, Static

from .. import format as fmt
from ..board import FeedLine, LiveBoard
from ..bridge import EngineUpdate
from ..keybar import KeyBar
from ..modebar import ModeBar
from .base import BtkScreen

if TYPE_CHECKING:
    from ..context import ConsoleApp

SIGNAL_COLUMNS = ("symbol", "strategy", "side", "entry", "TP", "SL", "VWAP", "SL◀ ▶TP", "PnL", "age")
SCHEDULED_COLUMNS = ("symbol", "strategy", "side", "entry", "VWAP", "distance", "TP", "SL", "time left")
FEEDS = ("milestones", "risk", "log")
EMPTY_HINT = "no open signals: press 4 for Strategies, then enter to start one on a replay"


class LiveScreen(BtkScreen):
    BINDINGS = [
        Binding("c", "clear_feeds", "Clear feeds", id="live.clear_feeds"),
        Binding("f", "focus_next_pane", "Next pane", id="live.next_pane"),
    ]
    app: ConsoleApp

    def compose(self) -> ComposeResult:
        yield ModeBar("live")
        yield DataTable(id="live-signals", classes="pane", cursor_type="row", zebra_stripes=True, cell_padding=0)
        yield DataTable(id="live-scheduled", classes="pane", cursor_type="row", cell_padding=0)
        with Horizontal(id="live-feeds"):
            for name in FEEDS:
                yield RichLog(id=f"feed-{name}", classes="pane", max_lines=200, wrap=True, markup=False, min_width=16)
        yield Static(id="live-pnl", classes="status-line")
        yield KeyBar()

    def on_mount(self) -> None:
        signals = self.query_one("#live-signals", DataTable)
        signals.border_title = "signals"
        signals.add_columns(*fmt.spaced(*SIGNAL_COLUMNS))
        scheduled = self.query_one("#live-scheduled", DataTable)
        scheduled.border_title = "scheduled"
        scheduled.add_columns(*fmt.spaced(*SCHEDULED_COLUMNS))
        for name in FEEDS:
            self.query_one(f"#feed-{name}", RichLog).border_title = name
        self._written = {name: 0 for name in FEEDS}
        self.redraw()

    def on_screen_resume(self) -> None:
        self.redraw()

    def on_engine(self, update: EngineUpdate) -> None:
        if update.board_version:
            self.redraw()

    def redraw(self) -> None:
        board: LiveBoard = self.app.bridge.board
        colors = self.app.colors
        self._fill_signals(board, colors)
        self._fill_scheduled(board, colors)
        for name in FEEDS:
            self._append(name, getattr(board, name), colors)
        self._pnl_line(board, colors)

    def _fill_signals(self, board: LiveBoard, colors: dict[str, str]) -> None:
        table = self.query_one("#live-signals", DataTable)
        row = table.cursor_row
        table.clear()
        for (symbol, strategy), o in sorted(board.open.items()):
            s = o.signal
            table.add_row(*fmt.spaced(symbol, strategy, s.position, fmt.price(s.price_open),
                                      fmt.price(s.price_take_profit), fmt.price(s.price_stop_loss),
                                      fmt.price(o.tick.current_price),
                                      fmt.progress_bar(o.percent_tp, o.percent_sl, colors, width=8),
                                      fmt.signed(o.pnl, colors), fmt.minutes(o.age_minutes)))
        table.border_subtitle = f"{len(board.open)} open" if board.open else EMPTY_HINT
        if board.open:
            table.move_cursor(row=min(row, len(board.open) - 1))

    def _fill_scheduled(self, board: LiveBoard, colors: dict[str, str]) -> None:
        table = self.query_one("#live-scheduled", DataTable)
        table.clear()
        for (symbol, strategy), o in sorted(board.scheduled.items()):
            s = o.signal
            table.add_row(*fmt.spaced(symbol, strategy, Text(s.position, style=colors["warning"]),
                                      fmt.price(s.price_open), fmt.price(o.tick.current_price), fmt.percent(o.distance),
                                      fmt.price(s.price_take_profit), fmt.price(s.price_stop_loss),
                                      fmt.minutes(o.minutes_left)))
        table.border_subtitle = f"{len(board.scheduled)} waiting" if board.scheduled else ""

    def _append(self, name: str, feed: list[FeedLine], colors: dict[str, str]) -> None:
        log = self.query_one(f"#feed-{name}", RichLog)
        styles = {"profit": colors["success"], "loss": colors["error"], "error": colors["error"],
                  "risk": colors["warning"], "info": ""}
        for line in feed:
            if line.seq <= self._written[name]:
                continue
            text = Text(fmt.clock(line.timestamp) + " " if line.timestamp else "", style=colors["muted"])
            text.append(line.text, style=styles.get(line.kind, ""))
            log.write(text)
            self._written[name] = line.seq

    def _pnl_line(self, board: LiveBoard, colors: dict[str, str]) -> None:
        # The figures a trader scans for first, in 80 columns: realised, unrealised, the counts.
        s = board.summary
        line = Text("P&L ", style="bold")
        line.append_text(fmt.signed(s.realised, colors))
        line.append(f" {s.wins}W/{s.losses}L · open {len(board.open)} ")
        line.append_text(fmt.signed(board.unrealised, colors))
        line.append(f" · sched {len(board.scheduled)} · rej {s.rejections} · err ")
        line.append(str(s.errors), style=colors["error"] if s.errors else "")
        if board.last_time:
            line.append(f" · {fmt.when(board.last_time)}", style=colors["muted"])
        self.query_one("#live-pnl", Static).update(line)

    def action_clear_feeds(self) -> None:
        for name in FEEDS:
            self.query_one(f"#feed-{name}", RichLog).clear()

    def action_focus_next_pane(self) -> None:
        self.focus_next()
