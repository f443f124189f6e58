"""The Live screen (the one ``btk`` opens on): the runs (with their market time, speed and
figures, and the runs saved on disk), the open positions or the closed trades, the scheduled
orders, the milestone / risk / log feeds and a P&L line, all from the bridge's models.

Keys act on the run under the runs table's cursor (pause, speed, stop, resume, reset), on the
position under the signals table's cursor (enter: its chart; close it, move its stop, close part
of it: ``console/commits.py``) or on the order under the scheduled table's cursor (activate,
cancel). A command on a position asks first, with its effect in figures."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import DataTable, RichLog, Static

from .. import format as fmt
from ..board import FeedLine, LiveBoard
from ..commits import KEYS, PositionKey, effect, partial_kind, trail_shift
from ..bridge import EngineUpdate
from ..keybar import KeyBar
from ..modebar import ModeBar
from ..tables import KEEP, Column, content_width, fill
from .base import BtkScreen
from .dialogs import ConfirmDialog
from .position import PositionScreen

if TYPE_CHECKING:
    from ..context import ConsoleApp

FEEDS = ("milestones", "risk", "log")
EMPTY_HINT = "no open signals: press 4 for Strategies, then enter to start one on a replay"
SPEED_STEP = 2.0            # + and - double or halve a replay's speed
KEY_SEP = "\x1f"
FEED_BURST = 12            # feed lines written in one redraw at most, or a pane-full (more are counted)


def run_key(symbol: str, strategy: str) -> str:
    return f"{symbol}{KEY_SEP}{strategy}"


def _columns(*specs: tuple[str, int] | tuple[str, int, bool]) -> tuple[Column, ...]:
    return tuple(Column(*spec) for spec in specs)


RUN_COLUMNS = _columns(("strategy", KEEP), ("symbol", KEEP), ("state", KEEP), ("market time", 60),
                       ("speed", 30, True), ("trades", 50, True), ("win", 40, True), ("PnL", KEEP, True),
                       ("max DD", 20, True), ("exchange", 10))
CLOSED_COLUMNS = _columns(("closed", 40), ("symbol", KEEP), ("strategy", KEEP), ("side", 70),
                          ("entry", 30, True), ("exit", 35, True), ("reason", 50), ("PnL", KEEP, True))
SCHEDULED_COLUMNS = _columns(("symbol", KEEP), ("strategy", KEEP), ("side", 70), ("entry", 90, True),
                             ("VWAP", 40, True), ("distance", 60, True), ("TP", 30, True), ("SL", 30, True),
                             ("time left", 80, True))


def signal_columns(glyphs: Any) -> tuple[Column, ...]:
    return _columns(("symbol", KEEP), ("strategy", KEEP), ("side", 70), ("entry", 60, True), ("TP", 35, True),
                    ("SL", 35, True), ("VWAP", 45, True), (f"SL{glyphs.left} {glyphs.right}TP", 20),
                    ("PnL", KEEP, True), ("held", 30, True), ("age", 80, True), ("time", 10, True))


class LiveScreen(BtkScreen):
    BINDINGS = [
        Binding("v", "next_view", "Positions / closed", id="live.next_view"),
        Binding("p", "pause", "Pause / resume", id="live.pause"),
        Binding("plus,equals_sign", "faster", "Faster", id="live.faster"),
        Binding("minus", "slower", "Slower", id="live.slower"),
        Binding("x", "stop", "Stop run", id="live.stop"),
        Binding("r", "resume", "Resume saved", id="live.resume"),
        Binding("R", "reset", "Reset saved", id="live.reset"),
        Binding("c", "clear_feeds", "Clear feeds", id="live.clear_feeds"),
        Binding("f", "focus_next_pane", "Next pane", id="live.next_pane"),
        # (named on the signals and scheduled panes' borders, and on the help screen)
        *(Binding(k.key, f"position('{k.key}')", k.label, show=False, id=f"live.position.{k.key}") for k in KEYS),
    ]
    app: ConsoleApp

    def __init__(self) -> None:
        super().__init__()
        self.view = "positions"        # or "closed"
        self._written: dict[str, int] = {name: 0 for name in FEEDS}
        self._drawn = (-1, -1)         # (board version, runs version) last drawn

    def compose(self) -> ComposeResult:
        yield ModeBar("live")
        yield DataTable(id="live-runs", classes="pane", cursor_type="row", cell_padding=0)
        yield DataTable(id="live-signals", classes="pane", cursor_type="row", zebra_stripes=True, cell_padding=0)
        yield DataTable(id="live-closed", classes="pane", cursor_type="row", zebra_stripes=True, cell_padding=0)
        yield DataTable(id="live-scheduled", classes="pane", cursor_type="row", cell_padding=0)
        with Horizontal(id="live-feeds"):
            for name in FEEDS:
                # A milestone is one line; a rejection's reason and an error's text wrap whole.
                yield RichLog(id=f"feed-{name}", classes="pane", max_lines=200, wrap=name != "milestones",
                              markup=False, min_width=16)
        yield Static(id="live-pnl", classes="status-line")
        yield KeyBar()

    def on_mount(self) -> None:
        for id_, title in (("#live-runs", "runs"), ("#live-signals", "signals"), ("#live-closed", "closed"),
                           ("#live-scheduled", "scheduled")):
            self.query_one(id_, DataTable).border_title = title
        self.query_one("#live-closed", DataTable).display = False
        for name in FEEDS:
            self.query_one(f"#feed-{name}", RichLog).border_title = name
        self.app.theme_changed_signal.subscribe(self, lambda _: self.redraw(force=True))  # type: ignore[attr-defined]
        self.redraw()

    def on_screen_resume(self) -> None:
        self.redraw()

    def on_resize(self) -> None:
        self.redraw(force=True)

    def on_engine(self, update: EngineUpdate) -> None:
        if update.board_version or update.runs:
            self.redraw()

    # -- drawing ----------------------------------------------------------------------------------
    def redraw(self, force: bool = False) -> None:
        bridge = self.app.bridge
        drawn = (bridge.board.version, bridge.runs_version)
        if drawn == self._drawn and not force:
            return            # nothing changed since the last draw (a switch back costs nothing)
        self._drawn = drawn
        board, colors = bridge.board, self.app.colors
        self._fill_runs(board, colors)
        if self.view == "positions":
            self._fill_signals(board, colors)
        else:
            self._fill_closed(board, colors)
        self._fill_scheduled(board, colors)
        for name in FEEDS:
            self._append(name, getattr(board, name), colors)
        self._pnl_line(board, colors)

    def _width(self, table: DataTable) -> int:
        return content_width(table, self.app.size.width if hasattr(self.app, "size") else 80)  # type: ignore

    def _fill_runs(self, board: LiveBoard, colors: dict[str, str]) -> None:
        table = self.query_one("#live-runs", DataTable)
        bridge = self.app.bridge
        rows: list[tuple[str, list[object]]] = []
        for run in bridge.runs.values():
            trades, win, total, drawdown = board.run_figures(run.key)
            state = run.state if run.state != "ended" else ("failed" if run.failed else "ended")
            style = colors["error"] if run.failed else colors["warning"] if run.state in ("paused", "stopping") else \
                colors["muted"] if run.state == "ended" else colors["success"]
            rows.append((run_key(run.symbol, run.strategy_name), [
                Text(run.strategy_name), Text(run.symbol), Text(state, style=style),
                fmt.when(run.market_time) if run.market_time else "-",
                fmt.speed(run.speed), str(trades), fmt.win_rate(win), fmt.signed(total, colors),
                fmt.drawdown(drawdown), Text(run.exchange_name)]))
        for saved in bridge.saved:
            key = (saved.symbol, saved.strategy_name)
            if key in bridge.runs:
                continue
            trades, win, total, drawdown = board.run_figures(key)
            holds = "open" if saved.signal else "order" if saved.scheduled else "flat"
            rows.append((run_key(*key), [
                Text(saved.strategy_name), Text(saved.symbol), Text(f"saved ({holds})", style=colors["accent"]),
                fmt.when(saved.last_tick) if saved.last_tick else "-", "-", str(max(trades, saved.closed)),
                fmt.win_rate(win), fmt.signed(total, colors), fmt.drawdown(drawdown), Text(saved.exchange_name)]))
        fill(table, RUN_COLUMNS, rows, self._width(table))
        table.styles.height = min(2 + 1 + max(1, len(rows)), 8)
        saved = sum(1 for r in rows if str(r[1][2]).startswith("saved"))
        table.border_subtitle = Text(f"{saved} saved: r resumes, R resets" if saved else
                                     "p pause · +/- speed · x stop" if bridge.running() else "")

    def _fill_signals(self, board: LiveBoard, colors: dict[str, str]) -> None:
        table = self.query_one("#live-signals", DataTable)
        glyphs = self.app.config.glyphs
        rows = []
        for (symbol, strategy), o in sorted(board.open.items()):
            s = o.signal
            # A level a command moved (trailed, breakeven) and a partly closed share stand out.
            moved = colors["accent"]
            rows.append((run_key(symbol, strategy), [
                Text(symbol), Text(strategy), s.position, fmt.price(o.entry),
                Text(fmt.price(s.take_profit), style=moved if s.trailing_take_profit is not None else ""),
                Text(fmt.price(s.stop_loss), style=moved if s.trailing_stop_loss is not None else ""),
                fmt.price(o.tick.current_price),
                fmt.progress_bar(o.percent_tp, o.percent_sl, colors, glyphs, width=8),
                fmt.signed(o.pnl, colors), Text(f"{o.held:.0f}%", style=moved if s.partials else ""),
                fmt.minutes(o.age_minutes), fmt.clock(o.tick.created_at)]))
        fill(table, signal_columns(glyphs), rows, self._width(table))
        table.border_subtitle = Text(f"{len(board.open)} open · enter chart · e close · b BE · s trail · a/h 25/50%"
                                     if board.open else EMPTY_HINT)

    def _fill_closed(self, board: LiveBoard, colors: dict[str, str]) -> None:
        table = self.query_one("#live-closed", DataTable)
        trades = sorted((t for ts in board.closed.values() for t in ts), key=lambda t: t.close_timestamp,
                        reverse=True)
        rows = [(t.signal.id, [fmt.clock(t.close_timestamp), Text(t.symbol), Text(t.strategy_name), t.signal.position,
                               fmt.price(t.pnl.price_open), fmt.price(t.pnl.price_close), t.close_reason,
                               fmt.signed(t.pnl.pnl_percentage, colors)]) for t in trades[:500]]
        fill(table, CLOSED_COLUMNS, rows, self._width(table))
        table.border_subtitle = Text(f"{len(trades)} closed, newest first" if trades else "no closed trades yet")

    def _fill_scheduled(self, board: LiveBoard, colors: dict[str, str]) -> None:
        table = self.query_one("#live-scheduled", DataTable)
        rows = []
        for (symbol, strategy), o in sorted(board.scheduled.items()):
            s = o.signal
            rows.append((run_key(symbol, strategy), [
                Text(symbol), Text(strategy), Text(s.position, style=colors["warning"]), fmt.price(s.price_open),
                fmt.price(o.tick.current_price), fmt.percent(o.distance), fmt.price(s.price_take_profit),
                fmt.price(s.price_stop_loss), fmt.minutes(o.minutes_left)]))
        fill(table, SCHEDULED_COLUMNS, rows, self._width(table))
        table.styles.height = 2 + 1 + max(1, min(len(rows), 4))
        table.border_subtitle = Text(f"{len(board.scheduled)} waiting · o activate · d cancel" if board.scheduled
                                     else "")

    def _append(self, name: str, feed: Any, colors: dict[str, str]) -> None:
        log = self.query_one(f"#feed-{name}", RichLog)
        styles = {"profit": colors["success"], "loss": colors["error"], "error": colors["error"],
                  "risk": colors["warning"], "info": ""}
        glyphs = self.app.config.glyphs
        marks = {"profit": glyphs.up + " ", "loss": glyphs.down + " "}
        unseen = [line for line in feed if line.seq > self._written[name]]
        burst = max(FEED_BURST, log.size.height)
        if len(unseen) > burst:
            # Back on the screen after a fast stretch: the newest pane-full, and a word for the
            # rest (writing them all would hold this key's screen back for tens of milliseconds).
            log.write(Text(f"... {len(unseen) - burst} earlier lines not shown", style=colors["muted"]))
            unseen = unseen[-burst:]
        line: FeedLine
        for line in unseen:
            text = Text(fmt.hhmm(line.timestamp) + " " if line.timestamp else "", style=colors["muted"])
            text.append(marks.get(line.kind, ""), style=styles.get(line.kind, ""))
            text.append(line.text, style=styles.get(line.kind, ""))
            log.write(text)
            self._written[name] = line.seq

    def _pnl_line(self, board: LiveBoard, colors: dict[str, str]) -> None:
        # The figures a trader scans for first, in 80 columns: realised, unrealised, the counts.
        s = board.summary
        sep = f" {self.app.config.glyphs.sep} "
        line = Text("P&L ", style="bold")
        line.append_text(fmt.signed(s.realised, colors))
        line.append(f" {s.wins}W/{s.losses}L{sep}open {len(board.open)} ")
        line.append_text(fmt.signed(board.unrealised, colors))
        line.append(f"{sep}sched {len(board.scheduled)}{sep}rej {s.rejections}{sep}err ")
        line.append(str(s.errors), style=colors["error"] if s.errors else "")
        self.query_one("#live-pnl", Static).update(line, layout=False)    # one line: its size never changes

    # -- actions ----------------------------------------------------------------------------------
    def action_next_view(self) -> None:
        self.view = "closed" if self.view == "positions" else "positions"
        self.query_one("#live-signals", DataTable).display = self.view == "positions"
        self.query_one("#live-closed", DataTable).display = self.view == "closed"
        self.redraw(force=True)

    def _selected(self, table_id: str) -> tuple[str, str] | None:
        table = self.query_one(table_id, DataTable)
        if not table.row_count:
            return None
        key = str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)
        symbol, _, strategy = key.partition(KEY_SEP)
        return symbol, strategy

    def _run(self) -> Any:
        """The run under the runs table's cursor (a RunStatus, a SavedRun, or None)."""
        selected = self._selected("#live-runs")
        if selected is None:
            return None
        bridge = self.app.bridge
        return bridge.runs.get(selected) or next(
            (s for s in bridge.saved if (s.symbol, s.strategy_name) == selected), None)

    def _command(self, name: str, *args: Any) -> None:
        self.run_worker(self.app.command(name, *args), group="command")

    def _warn(self, text: str) -> None:
        self.app.notify(text, severity="warning", markup=False)  # type: ignore[attr-defined]

    def _going(self) -> Any:
        run = self._run()
        if run is None or not hasattr(run, "state") or run.state == "ended":
            self._warn("no run going under the cursor of the runs pane")
            return None
        return run

    def action_pause(self) -> None:
        run = self._going()
        if run is None:
            return
        if not run.replay:
            self._warn(f"{run.strategy_name} on {run.symbol} runs on the wall clock: it cannot be paused")
            return
        self._command("resume_live" if run.state == "paused" else "pause_live", run.strategy_name, run.symbol)

    def _speed(self, factor: float) -> None:
        run = self._going()
        if run is None:
            return
        if not run.replay:
            self._warn(f"{run.strategy_name} on {run.symbol} runs on the wall clock: its pace is the market's")
            return
        if not run.speed:
            self._warn("the replay runs as fast as it can (speed 0): - slows it to 600x")
            if factor < 1:
                self._command("set_speed", run.strategy_name, run.symbol, 600.0)
            return
        self._command("set_speed", run.strategy_name, run.symbol, run.speed * factor)

    def action_faster(self) -> None:
        self._speed(SPEED_STEP)

    def action_slower(self) -> None:
        self._speed(1 / SPEED_STEP)

    def action_stop(self) -> None:
        run = self._going()
        if run is None:
            return
        board = self.app.bridge.board
        key = run.key
        held = board.open.get(key)
        consequences = ["It takes no new signals."]
        if run.scheduled or key in board.scheduled:
            consequences.append("Its scheduled order is cancelled.")
        if held is not None or run.open:
            detail = f" {held.signal.position} from {fmt.price(held.signal.price_open)}, {fmt.percent(held.pnl)} now," \
                if held else ""
            consequences.append(f"Its open position{detail} stays watched until TP, SL or its time limit closes it; "
                                "then the run ends.")
        else:
            consequences.append("It holds no position: the run ends at the next tick.")
        consequences.append(f"State stays in {self.app.workspace.state_dir}.")

        def answered(yes: bool | None) -> None:
            if yes:
                self._command("stop_live", run.strategy_name, run.symbol)

        self.app.push_screen(ConfirmDialog(Text(f"Stop {run.strategy_name} on {run.symbol} ({run.exchange_name})?"),  # type: ignore
                                           Text("\n".join(consequences)), confirm="Stop"), answered)

    def _stopped(self) -> Any:
        run = self._run()
        if run is None or (hasattr(run, "state") and run.state != "ended"):
            self._warn("choose a saved or ended run in the runs pane")
            return None
        return run

    def action_resume(self) -> None:
        run = self._stopped()
        if run is None:
            return
        exchange = "replay" if run.exchange_name.startswith("replay") else run.exchange_name
        self._command("start_live", run.strategy_name, run.symbol, exchange)

    def action_reset(self) -> None:
        run = self._stopped()
        if run is None:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._command("reset_run", run.strategy_name, run.symbol)

        self.app.push_screen(ConfirmDialog(  # type: ignore[attr-defined]
            Text(f"Reset {run.strategy_name} on {run.symbol}?"),
            Text("Its saved state (open position, scheduled order, milestones, where it stopped) is moved into a "
                 f"set-aside folder in {self.app.workspace.state_dir}: nothing is deleted. Its next start begins "
                 "afresh; its closed trades stay in the history."), confirm="Reset"), answered)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "live-signals":
            selected = self._selected("#live-signals")
            board = self.app.bridge.board
            if selected is not None and selected in board.open:
                self.app.push_screen(PositionScreen(selected))  # type: ignore[attr-defined]
        elif event.data_table.id == "live-runs":
            run = self._run()
            if run is not None and (not hasattr(run, "state") or run.state == "ended"):
                self.action_resume()

    def action_position(self, key: str) -> None:
        """A command on the position (or order) under the cursor: previewed, confirmed, then sent."""
        command = next(k for k in KEYS if k.key == key)
        board = self.app.bridge.board
        table, held = ("#live-scheduled", board.scheduled) if command.on_order else ("#live-signals", board.open)
        selected = self._selected(table)
        if selected is None or selected not in held:
            self._warn(f"no {'scheduled order' if command.on_order else 'open position'} under the cursor of the "
                       f"{'scheduled' if command.on_order else 'signals'} pane")
            return
        symbol, strategy = selected
        run = self.app.bridge.runs.get(selected)
        if run is None or run.state == "ended":
            self._warn(f"{strategy} on {symbol} is not running: resume it (r) to act on its position")
            return
        row = held[selected].signal
        action, percent = command.action, command.percent
        if action == "trailing_stop":
            percent = trail_shift(row)
        elif action == "partial_profit":
            action = partial_kind(row, held[selected].tick.current_price)
        self.run_worker(self._confirm(command, symbol, strategy, action, percent), group="command")

    async def _confirm(self, command: PositionKey, symbol: str, strategy: str, action: str,
                       percent: float | None) -> None:
        preview = await self.app.command("preview_position", strategy, symbol, action, percent)
        if preview is None:
            return                   # refused: the user was told why
        if not preview.ok:
            self._warn(f"{command.label}: {strategy} on {symbol}: {preview.reason}")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._command("commit_position", strategy, symbol, action, percent)

        self.app.push_screen(ConfirmDialog(Text(f"{command.label}: {strategy} on {symbol}?"),  # type: ignore
                                           Text(effect(preview, command.percent)), confirm=command.label), answered)

    def action_clear_feeds(self) -> None:
        for name in FEEDS:
            self.query_one(f"#feed-{name}", RichLog).clear()

    def action_focus_next_pane(self) -> None:
        self.focus_next()
