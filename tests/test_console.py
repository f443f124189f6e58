"""The console driven by keys through Textual's Pilot, on the bundled candles and the real engine."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from textual.widgets import DataTable, Label, RichLog, Select, Static

import engine as bk
import strategies
from console.app import BtkApp
from console.bridge import EngineBridge
from console.cli import main
from console.screens.backtest import BacktestScreen
from console.screens.dialogs import ConfirmDialog, StartDialog
from console.screens.help import HelpScreen, all_bindings
from console.screens.live import LiveScreen
from console.screens.strategies import StrategiesScreen
from console.screens.walker import WalkerScreen
from themes import STYLESHEET

from .console_helpers import feed_live_fixture, make_app_async, wait_for


def log_text(app: BtkApp, feed: str = "log") -> str:
    """A feed pane's text as shown, its wrapped lines joined again."""
    return " ".join(line.text.strip() for line in app.screen.query_one(f"#feed-{feed}", RichLog).lines)


def rendered(widget) -> str:
    console = Console(width=200, color_system=None)
    with console.capture() as capture:
        console.print(widget.content)     # what the widget was given: a str, Text or Table
    return capture.get()


def table_rows(table: DataTable) -> list[list[str]]:
    return [[str(getattr(c, "plain", c)).strip() for c in table.get_row_at(i)] for i in range(table.row_count)]


async def test_every_screen_by_its_key(seeded_store, tmp_path):
    app = await make_app_async(seeded_store, tmp_path / "state")
    async with app.run_test(size=(80, 24)) as pilot:
        assert isinstance(app.screen, LiveScreen)
        titles = {w.border_title for w in app.screen.query(".pane")}
        assert titles == {"runs", "signals", "closed", "scheduled", "milestones", "risk", "log"}
        for key, screen in (("2", BacktestScreen), ("3", WalkerScreen), ("4", StrategiesScreen),
                            ("question_mark", HelpScreen), ("1", LiveScreen), ("f1", HelpScreen)):
            await pilot.press(key)
            await pilot.pause()
            assert isinstance(app.screen, screen), key
        await pilot.press("escape")
        assert isinstance(app.screen, LiveScreen)


def columns(table: DataTable) -> list[str]:
    return [str(c.label).strip() for c in table.columns.values()]


async def test_live_panes_at_80x24_all_visible(seeded_store, tmp_path):
    app = await make_app_async(seeded_store, tmp_path / "state")
    async with app.run_test(size=(80, 24)) as pilot:
        feed_live_fixture(app.bridge)
        await pilot.pause(0.3)
        for pane in app.screen.query(".pane"):
            if not pane.display:
                continue            # the closed-trades table, shown instead of the signals with v
            region = pane.region
            assert region.height >= 3 and region.right <= 80 and region.bottom <= 24, (pane.border_title, region)
        runs = table_rows(app.screen.query_one("#live-runs", DataTable))
        assert [r[:4] for r in runs] == [["sma_cross", "BTCUSDT", "running", "2023-03-06 01:35"],
                                         ["mean_reversion", "ETHBTC", "paused", "2023-03-06 01:35"],
                                         ["channel_breakout", "LTCBTC", "running", "2023-03-06 01:32"]]
        signals = app.screen.query_one("#live-signals", DataTable)
        rows = table_rows(signals)
        assert [r[:3] for r in rows] == [["BTCUSDT", "sma_cross", "long"], ["ETHBTC", "mean_reversion", "short"]]
        shown = columns(signals)
        assert "PnL" in shown and "age" in shown         # fits at 80: the age with its PnL
        assert rows[0][shown.index("PnL")] == "+0.40%" and rows[0][shown.index("age")] == "47m"
        # The scheduled order's row is in view: no horizontal scrollbar takes its place.
        scheduled = app.screen.query_one("#live-scheduled", DataTable)
        assert table_rows(scheduled)[0][:3] == ["LTCBTC", "channel_breakout", "long"]
        assert not scheduled.show_horizontal_scrollbar or scheduled.virtual_size.width <= scheduled.size.width
        assert scheduled.region.height >= 4              # border, header, the row
        # One milestone, one line (the feed does not wrap).
        milestones = app.screen.query_one("#feed-milestones", RichLog)
        assert len(milestones.lines) == 5 and "40% TP BTCUSDT" in log_text(app, "milestones")
        assert "50% SL" in log_text(app, "milestones")
        assert "[max_two] sma_cross long: 2 positions open, the limit is 2" in log_text(app, "risk")
        assert "ValueError: get_signal: indicator needs 50 candles" in log_text(app)
        pnl = rendered(app.screen.query_one("#live-pnl", Static))
        assert "+1.60% 1W/0L" in pnl and "open 2" in pnl and "err 1" in pnl and "rej 1" in pnl


async def test_a_burst_of_milestones_while_away_shows_its_newest_lines_and_counts_the_rest(seeded_store, tmp_path):
    """Back on Live after a fast replay: a feed draws its newest pane-full of lines and one line
    says how many earlier ones were not (drawing hundreds would hold the key's screen back)."""
    from engine.service.messages import EventBatch, Milestone

    from console.screens.live import FEED_BURST
    from .console_helpers import T0, _signal

    app = await make_app_async(seeded_store, tmp_path / "state")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("4")
        burst = 150
        signals = [_signal(f"b{i}", "BTCUSDT", "sma_cross", "long", 22000.0, 22440.0, 21780.0, T0, T0)
                   for i in range(burst)]      # each its own event (a repeat would be dropped)
        app.bridge.apply(EventBatch(events=[
            Milestone("profit", bk.PartialEvent(symbol="BTCUSDT", strategy_name="sma_cross", signal=signals[i],
                                                level=10, percent=float(i), current_price=22000.0 + i,
                                                backtest=False, timestamp=T0 + i * 60_000))
            for i in range(burst)]))
        await pilot.pause(0.2)
        await pilot.press("1")
        await pilot.pause(0.2)
        log = app.screen.query_one("#feed-milestones", RichLog)
        lines = [line.text.strip() for line in log.lines]
        shown = max(FEED_BURST, log.size.height)          # a pane-full, at least FEED_BURST
        assert shown < burst and len(lines) == shown + 1
        assert lines[0] == f"... {burst - shown} earlier lines not shown"
        # The newest, in order: minute 149 after T0 (00:00 UTC) last.
        first = burst - shown
        assert lines[1].startswith(f"{first // 60:02d}:{first % 60:02d} ") and lines[-1].startswith("02:29 ")


async def test_narrow_terminals_drop_columns_in_order_never_the_pnl(seeded_store, tmp_path):
    app = await make_app_async(seeded_store, tmp_path / "state")
    async with app.run_test(size=(120, 30)) as pilot:
        feed_live_fixture(app.bridge)
        await pilot.pause(0.3)
        signals = app.screen.query_one("#live-signals", DataTable)
        wide = columns(signals)
        assert wide[:3] == ["symbol", "strategy", "side"] and "time" in wide
        dropped = []
        for width in (100, 80, 64, 50, 40):
            await pilot.resize_terminal(width, 30)
            await pilot.pause(0.2)
            shown = columns(signals)
            assert "PnL" in shown and "symbol" in shown and "strategy" in shown, (width, shown)
            assert signals.virtual_size.width <= signals.size.width, (width, shown)
            dropped.append([c for c in wide if c not in shown and c not in sum(dropped, [])])
        # The chosen order: the tick's time and the bar first, the share held (100 % until a partial
        # close), then TP and SL, the entry, VWAP...
        order = sum(dropped, [])
        assert set(order[:2]) == {"time", "SL◀ ▶TP"} and order[2] == "held" and set(order[3:5]) == {"TP", "SL"}, \
            dropped


async def test_backtest_runs_and_shows_results(seeded_store, tmp_path):
    app = await make_app_async(seeded_store, tmp_path / "state")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2", "r")
        screen = app.screen
        await wait_for(pilot, lambda: screen.result is not None, "the backtest to finish")
        closed = screen.result.closed
        expected = await bk.Backtest.get_data("BTCUSDT", strategy_name="sma_cross")
        assert len(closed) == expected.total_signals > 0
        assert screen.query_one("#bt-trades", DataTable).row_count == len(closed)
        status = rendered(screen.query_one("#bt-status", Label))
        assert status.startswith(f"done · {len(closed)} closed signals · 28,799 candles")
        stats = rendered(screen.query_one("#stats", Static))
        assert f"total PnL      {expected.total_pnl:+.3f}%" in stats and "Sharpe" in stats
        await pilot.press("v", "v", "v")          # stats -> trades -> equity -> chart
        assert screen.query_one("#bt-results").active == "tab-chart"
        # A trade picked in the table zooms the chart to it, with its TP and SL.
        await pilot.press("v", "v")
        trades = screen.query_one("#bt-trades", DataTable)
        trades.focus()
        await pilot.press("down", "enter")
        assert screen.selected is closed[1]
        assert screen.query_one("#bt-results").active == "tab-chart"
        s = closed[1].signal
        assert f"TP {s.price_take_profit:.6g}  SL {s.price_stop_loss:.6g}" in screen.chart_title


async def test_a_long_trade_list_fills_in_over_turns_and_the_run_key_lifts_the_hush(seeded_store, tmp_path,
                                                                                      monkeypatch):
    import console.screens.backtest as backtest_screen
    monkeypatch.setattr(backtest_screen, "TRADES_PER_TURN", 40)     # 188 trades: five turns
    app = await make_app_async(seeded_store, tmp_path / "state")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2", "r")
        await pilot.pause()
        # A key hushes the engine while its screen is drawn; r starts work the trader waits for,
        # so once its status line is drawn the backtest goes on at the engine's full share.
        assert not app.engine.hushed
        screen = app.screen
        await wait_for(pilot, lambda: screen.result is not None, "the backtest to finish")
        closed = screen.result.closed
        trades = screen.query_one("#bt-trades", DataTable)
        await wait_for(pilot, lambda: trades.row_count == len(closed), "every trade listed")
        assert len(closed) > 4 * 40
        rows = table_rows(trades)
        assert [r[0] for r in rows] == [str(i) for i in range(1, len(closed) + 1)]
        last = closed[-1]
        assert rows[-1][6] == last.close_reason and rows[-1][7] == f"{last.pnl.pnl_percentage:+.2f}%"
        trades.focus()
        trades.move_cursor(row=len(closed) - 1)
        await pilot.pause()
        assert screen.selected is last        # the row under the cursor is its trade


async def test_replay_signal_opens_and_closes_then_stops_with_confirmation(seeded_store, tmp_path):
    # 500 replayed minutes a second: trades within seconds, and the run is still going when it is
    # stopped (at speed 0 a fast machine replays the whole month before the test gets there).
    app = await make_app_async(seeded_store, tmp_path / "state", speed=30_000.0)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("4", "enter")
        assert isinstance(app.screen, StartDialog)
        await pilot.press("enter")                  # Start: sma_cross on BTCUSDT, replayed
        board = app.bridge.board
        await wait_for(pilot, lambda: board.summary.closed >= 1 and board.open, "a closed and an open signal")
        await pilot.press("1")
        signals = app.screen.query_one("#live-signals", DataTable)
        # The replay goes on fast: positions open and close between redraws.
        await wait_for(pilot, lambda: [r[:2] for r in table_rows(signals)] == [["BTCUSDT", "sma_cross"]],
                       "an open position in the signals pane")
        assert re.search(r"[+-]\d+\.\d\d% closed BTCUSDT sma_cross long \w+", log_text(app))
        assert "opened BTCUSDT sma_cross long @" in log_text(app)
        await pilot.press("4", "x")
        assert isinstance(app.screen, ConfirmDialog)
        body = rendered(app.screen.query_one("#confirm-body", Label))
        assert "It takes no new signals." in body and "State stays in" in body
        assert "open position" in body or "holds no position" in body
        await pilot.press("n")                      # keep it running
        assert bk.Live.list()[0]["status"] == "running"
        await pilot.press("x", "y")
        await wait_for(pilot, lambda: bk.Live.list()[0]["status"] != "running", "the run to end after its stop")
        await pilot.pause(0.3)
        assert not board.open and "sma_cross on BTCUSDT: stopped" in "\n".join(line.text for line in board.log)
        assert (tmp_path / "state").is_dir()      # the run kept its state where the console said


async def test_failing_strategy_errors_reach_the_log_and_nothing_crashes(seeded_store, tmp_path):
    app = await make_app_async(seeded_store, tmp_path / "state")

    def broken(symbol, when):
        raise ZeroDivisionError("the strategy divided by zero")

    bk.add_strategy("broken", broken, note="raises on every call")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("4")
        table = app.screen.query_one("#st-table", DataTable)
        table.move_cursor(row=[r[0] for r in table_rows(table)].index("broken"))
        await pilot.press("n", "enter")
        await wait_for(pilot, lambda: app.bridge.board.summary.errors >= 3, "errors from the broken strategy")
        await pilot.press("1")
        await pilot.pause(0.2)
        assert "ZeroDivisionError: the strategy divided by zero" in log_text(app)
        assert "broken" in log_text(app)
        await pilot.press("2", "3", "1")          # the console still answers
        assert isinstance(app.screen, LiveScreen)
        bk.Live.stop("BTCUSDT", strategy_name="broken")
        await wait_for(pilot, lambda: bk.Live.list()[0]["status"] != "running", "the broken run to stop")


async def test_bad_start_input_is_refused_with_the_reason(seeded_store, tmp_path):
    app = await make_app_async(seeded_store, tmp_path / "state")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("4", "n")
        dialog = app.screen
        dialog.query_one("#start-exchange").value = "no-such-exchange"
        await pilot.press("enter")
        await pilot.pause(0.2)
        assert not bk.Live.list()
        assert "not started: unknown exchange 'no-such-exchange'" in "\n".join(x.text for x in app.bridge.board.log)
        await pilot.press("4", "n")
        app.screen.query_one("#start-exchange").value = "   "
        await pilot.press("enter")
        assert isinstance(app.screen, StartDialog)
        assert "exchange: give replay" in rendered(app.screen.query_one("#start-error", Label))
        await pilot.press("escape")
        assert isinstance(app.screen, StrategiesScreen) and not bk.Live.list()
        await pilot.press("x")                      # nothing runs: a warning, no dialog
        assert isinstance(app.screen, StrategiesScreen)


async def test_walker_leaderboard_fills_in_and_ranks(seeded_store, tmp_path):
    app = await make_app_async(seeded_store, tmp_path / "state")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("3", "r")
        screen = app.screen
        await wait_for(pilot, lambda: screen.final, "the walker to finish")
        rows = table_rows(screen.query_one("#wk-board", DataTable))
        final = await bk.Walker.get_data("BTCUSDT", walker_name="samples")
        assert [r[1] for r in rows] == [r.strategy_name for r in final.rows]
        assert rows[0][0] == "1" and rows[0][3] == f"{final.rows[0].metric_value:.4f}"
        # every cell reaches the live leaderboard (its last batch may come just after the final ranking)
        await wait_for(pilot, lambda: len(app.bridge.walker.cells) == len(strategies.SAMPLES),
                       "every cell on the live leaderboard")


async def test_help_lists_every_binding_and_the_palette_runs_them(seeded_store, tmp_path):
    app = await make_app_async(seeded_store, tmp_path / "state")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("question_mark")
        ids = [row[2] for row in table_rows(app.screen.query_one("#help-table", DataTable))]
        declared = [b.id for _, b in all_bindings(app)]
        assert ids == declared and len(set(ids)) == len(ids)
        for owner in [BtkApp, *BtkApp.MODES.values(), *BtkApp.DIALOGS.values()]:
            for binding in owner.BINDINGS:
                assert binding.id and binding.description, (owner.__name__, binding.key)
        commands = {c.title: c for c in app.get_system_commands(app.screen)}
        assert {"Backtest: Run", "Walker: Run", "Strategies: Start", "Theme", "Quit"} <= set(commands)
        await commands["Backtest: Run"].callback()
        assert isinstance(app.screen, BacktestScreen)
        await wait_for(pilot, lambda: app.screen.result is not None, "the backtest started from the palette")


async def test_theme_switches_at_runtime(seeded_store, tmp_path):
    app = await make_app_async(seeded_store, tmp_path / "state")
    async with app.run_test(size=(80, 24)) as pilot:
        assert app.theme == "btk-dark"
        dark_success = app.colors["success"]
        await pilot.press("t")
        assert app.theme == "btk-light" and app.colors["success"] != dark_success
        await pilot.press("t")
        assert app.theme == "btk-dark"


def test_stylesheet_uses_theme_variables_only():
    css = Path(STYLESHEET).read_text()
    body = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    colours = re.findall(r"#[0-9a-fA-F]{3,8}\b|\brgba?\(|\bhsla?\(", body)
    named = re.findall(r":\s*(?:round|thick|solid|tall)?\s*(white|black|red|green|blue|yellow|grey|gray)\b", body)
    assert not colours and not named, (colours, named)
    assert body.count("$") > 20


async def test_quit_with_a_live_run_asks_first(seeded_store, tmp_path):
    app = await make_app_async(seeded_store, tmp_path / "state", speed=1.0)   # one minute a minute: stays open
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("4", "enter", "enter")
        await wait_for(pilot, lambda: app.running_live(), "the live run to start")
        await pilot.press("q")
        assert isinstance(app.screen, ConfirmDialog)
        assert "state is saved in" in rendered(app.screen.query_one("#confirm-body", Label))
        await pilot.press("escape")
        assert app.is_running and app.running_live()
        await pilot.press("q", "y")
        await wait_for(pilot, lambda: not app.is_running, "the console to quit")
    run = bk.Live.list()[0]
    assert run["status"] != "running" and (tmp_path / "state").is_dir()


class FakeTimers:
    """A clock and ``call_later`` the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0
        self.pending: list[tuple[float, object]] = []

    def call_later(self, delay, fn):
        entry = (self.now + delay, fn)
        self.pending.append(entry)
        return type("Handle", (), {"cancel": lambda _: self.pending.remove(entry)})()

    def advance(self, seconds: float) -> None:
        self.now += seconds
        for due, fn in sorted(self.pending, key=lambda e: e[0]):
            if due <= self.now:
                self.pending.remove((due, fn))
                fn()


def test_bridge_coalesces_a_burst_into_one_update():
    posted = []
    timers = FakeTimers()
    bridge = EngineBridge(posted.append, refresh_hz=10, clock=lambda: timers.now, call_later=timers.call_later)
    for _ in range(1000):
        bridge.note("tick")
    assert posted == [] and len(timers.pending) == 1     # nothing drawn inside the engine's emit: one flush due
    timers.advance(0.0)
    assert len(posted) == 1 and posted[0].board_version == 1000
    timers.advance(0.02)
    bridge.note("one more")
    assert timers.pending[0][0] == pytest.approx(0.1)    # within 100 ms of the last update: held back until then
    timers.advance(0.07)
    assert len(posted) == 1
    timers.advance(0.01)
    assert len(posted) == 2
    timers.advance(10.0)
    assert len(posted) == 2 and timers.pending == []      # nothing changed: nothing posted, nothing scheduled


def test_bridge_holds_updates_back_while_a_screen_comes_up_but_never_for_long():
    from console.bridge import HELD_INTERVAL_S, KEY_HOLD_S

    posted = []
    timers = FakeTimers()
    bridge = EngineBridge(posted.append, refresh_hz=10, clock=lambda: timers.now, call_later=timers.call_later)
    bridge.note("first")
    timers.advance(0.0)
    assert len(posted) == 1                               # t = 0: the last update
    timers.advance(0.05)
    bridge.note("during the switch")                      # due at 0.1 ...
    bridge.hold()                                         # ... but a screen switch at 0.05 holds it to 0.2
    timers.advance(0.06)
    assert len(posted) == 1
    timers.advance(0.05 + KEY_HOLD_S - 0.11 - 0.001)
    assert len(posted) == 1
    timers.advance(0.002)
    assert len(posted) == 2 and timers.now == pytest.approx(0.05 + KEY_HOLD_S + 0.001)
    # Switch after switch: updates slow down but one goes out every HELD_INTERVAL_S at least.
    last = timers.now
    times = []
    for _ in range(40):
        bridge.hold()
        bridge.note("tick")
        timers.advance(0.05)
        if len(posted) > 2 + len(times):
            times.append(timers.now)
    gaps = [b - a for a, b in zip([last] + times, times)]
    assert times and max(gaps) <= HELD_INTERVAL_S + 0.05 + 1e-9 and min(gaps) >= HELD_INTERVAL_S - 1e-9


def test_console_refuses_a_missing_strategies_file(tmp_path, capsys):
    assert main(["--store", str(tmp_path / "s.sqlite3"), "--strategies", str(tmp_path / "nope.py")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_console_refuses_a_negative_speed(capsys):
    assert main(["--speed", "-1"]) == 2
    assert "--speed must be a number >= 0" in capsys.readouterr().err


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_modal_dialogs_fit(seeded_store, tmp_path, size):
    app = await make_app_async(seeded_store, tmp_path / "state")
    async with app.run_test(size=size) as pilot:
        await pilot.press("4", "n")
        dialog = app.screen.query_one(".dialog")
        assert dialog.region.bottom <= size[1] and dialog.region.right <= size[0]
        assert app.screen.query_one("#start").region.bottom <= size[1]


def test_no_color_charts_tell_up_from_down_by_shape():
    """NO_COLOR: green and red candles would look alike, so the closes are drawn as a line."""
    from plotext._figure import _figure_class

    from console import charts
    from console.format import palette
    from themes import BTK_DARK

    n = 300
    close = 100 + np.cumsum(np.sin(np.arange(n) / 7.0))
    candles = bk.Candles.from_arrays(1_677_628_800_000 + np.arange(n, dtype=np.int64) * 60_000, close, close + 0.5,
                                     close - 0.5, close + 0.1, np.ones(n))
    colors = palette({**BTK_DARK.to_color_system().generate(), "foreground": BTK_DARK.foreground,
                      "background": BTK_DARK.background})
    drawn = {}
    for no_color in (False, True):
        plt = _figure_class()
        plt.plotsize(100, 30)
        charts.draw_candles(plt, candles, [], colors, max_bars=40, no_color=no_color)
        drawn[no_color] = plt.build()
    assert "█" in drawn[False] and not any(0x2800 < ord(ch) < 0x2900 for ch in drawn[False])
    assert "█" not in drawn[True] and any(0x2800 < ord(ch) < 0x2900 for ch in drawn[True])


async def test_the_walker_screen_runs_cells_on_a_process_pool(seeded_store, tmp_path):
    """executor: process from the console (it failed at once there with "bad value(s) in fds_to_keep":
    the console's stderr has no descriptor for multiprocessing's resource tracker)."""
    app = await make_app_async(seeded_store, tmp_path / "state")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("3")
        app.screen.query_one("#wk-executor", Select).value = "process"
        await pilot.press("r")
        screen = app.screen
        await wait_for(pilot, lambda: screen.final, "the walk on the pool", timeout=120)
        rows = screen.final[0].rows
        assert [r.error for r in rows] == [None] * len(strategies.SAMPLES) and all(r.total_signals > 0 for r in rows)


async def test_a_stopped_backtest_says_stopped(seeded_store, tmp_path):
    async def slow(symbol, when):
        await asyncio.sleep(0.002)          # about a minute for the month: stopped well before its end
        return None

    bk.add_strategy("slow", slow, note="a per-frame strategy that takes its time")
    app = await make_app_async(seeded_store, tmp_path / "state")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2")
        screen = app.screen
        screen.query_one("#bt-strategy", Select).value = "slow"
        await pilot.press("r")
        await wait_for(pilot, lambda: app.bridge.progress.processed > 0, "some progress")
        await pilot.press("x")
        await wait_for(pilot, lambda: screen.result is not None, "the stopped backtest", timeout=60)
        status = rendered(screen.query_one("#bt-status", Label))
        assert status.startswith("stopped at ") and "% · 0 closed signals · " in status and "done" not in status
        assert screen.result.outcome.stopped and screen.result.outcome.processed < screen.result.outcome.total


async def test_pane_borders_stand_out_on_both_themes(seeded_store, tmp_path):
    """Unfocused pane borders were white on white on the light theme."""
    from textual.color import Color

    def contrast(a: Color, b: Color) -> float:
        la, lb = sorted((a.brightness, b.brightness))
        return (lb + 0.05) / (la + 0.05)

    app = await make_app_async(seeded_store, tmp_path / "state")
    async with app.run_test(size=(100, 30)) as pilot:
        for theme in ("btk-dark", "btk-light"):
            app.theme = theme
            await pilot.pause(0.1)
            pane = app.screen.query_one("#live-scheduled", DataTable)
            assert not pane.has_focus
            background = app.screen.styles.background
            border = background + pane.styles.border_top[1]       # the border's colour over what is behind
            assert contrast(border, pane.styles.background) > 1.6, (theme, border, pane.styles.background)


def test_the_board_counts_an_event_delivered_again_after_a_restart_once():
    """A run restarted after a crash delivers the events of its last change again (same event id):
    the closed-trades table, the P&L summary, the log and the milestone feed take each once."""
    from console.board import LiveBoard
    row = bk.SignalRow(id="r1", position="long", price_open=100.0, price_take_profit=110.0, price_stop_loss=95.0,
                       symbol="BTCUSDT", strategy_name="sma_cross", exchange_name="replay", pending_at=60_000)
    opened = bk.TickOpened("BTCUSDT", "sma_cross", "replay", "", 100.0, False, 60_000, row)
    milestone = bk.PartialEvent(symbol="BTCUSDT", strategy_name="sma_cross", signal=row, level=10, percent=12.0,
                                current_price=101.2, backtest=False, timestamp=120_000, kind="profit")
    closed = bk.TickClosed("BTCUSDT", "sma_cross", "replay", "", 110.0, False, 180_000, row, "take_profit", 180_000,
                           bk.to_profit_loss(row, 110.0))
    board = LiveBoard()
    for _ in range(2):
        board.apply_tick(opened)
        board.apply_milestone("profit", milestone)
        board.apply_tick(closed)
    board.apply_history([closed])
    assert board.summary.closed == 1 and len(board.closed[("BTCUSDT", "sma_cross")]) == 1
    assert len(board.milestones) == 1
    assert [line.text.split()[0] for line in board.log] == ["opened", "+9.57%"]
