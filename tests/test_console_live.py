"""The Live screen as a trader drives it through keys (Pilot, the engine on its own thread, real
replays of stored candles): replay controls and the end of a replay, runs saved on disk found at
the next start, risk rejections of the default workspace, a position's chart, a crash."""

from __future__ import annotations

import asyncio

import pytest
from textual.widgets import DataTable, Label, RichLog, Select

import engine as bk
from console.app import exit_words
from console.screens.dialogs import ConfirmDialog, StartDialog
from console.screens.live import LiveScreen
from console.screens.position import PositionScreen
from engine.exchange.bundled import StoreExchange, ensure_seeded
from engine.persistence.candles import connect, import_candles

from .console_helpers import make_app_async, wait_for
from .test_console import rendered, table_rows

SHORT = ("short", "BTC2D")     # a two-day market: its replay (after a day of warm-up) ends within seconds


@pytest.fixture(scope="module")
def short_store(tmp_path_factory):
    """The bundled candles plus two days of BTCUSDT stored as exchange ``short``, symbol ``BTC2D``."""
    async def make(path):
        await ensure_seeded(path)
        first = await StoreExchange("bundled", path).get_candles("BTCUSDT", "1m", 1677628800000, 2 * 1440)
        db = await connect(path)
        try:
            await import_candles(db, *SHORT, "1m", first)
        finally:
            await db.close()
    path = tmp_path_factory.mktemp("short-store") / "btk.sqlite3"
    asyncio.run(make(path))
    return path


def run_row(app, strategy: str, symbol: str) -> list[str] | None:
    for row in table_rows(app.screen.query_one("#live-runs", DataTable)):
        if row[:2] == [strategy, symbol]:
            return row
    return None


async def start(pilot, app, strategy: str, symbol: str) -> None:
    """Strategies screen: the strategy's row, enter, the symbol, enter (a replay)."""
    await pilot.press("4")
    table = app.screen.query_one("#st-table", DataTable)
    table.move_cursor(row=[r[0] for r in table_rows(table)].index(strategy))
    await pilot.press("enter")
    assert isinstance(app.screen, StartDialog)
    app.screen.query_one("#start-symbol", Select).value = symbol
    await pilot.press("enter")
    await wait_for(pilot, lambda: (symbol, strategy) in app.bridge.runs, f"{strategy} on {symbol} to start")


async def test_a_replay_pauses_resumes_changes_speed_ends_and_resets(short_store, tmp_path):
    app = await make_app_async(short_store, tmp_path / "state", speed=3000.0)
    async with app.run_test(size=(100, 30)) as pilot:
        await start(pilot, app, "sma_cross", SHORT[1])
        await pilot.press("1")
        key = (SHORT[1], "sma_cross")
        bridge = app.bridge
        await wait_for(pilot, lambda: bridge.runs[key].market_time is not None, "the replay's first tick")
        # the row follows the model on the next coalesced redraw (held a moment after a screen switch)
        await wait_for(pilot, lambda: (run_row(app, "sma_cross", SHORT[1]) or [""] * 5)[4] == "3000x", "its speed shown")
        await pilot.press("p")
        await wait_for(pilot, lambda: bridge.runs[key].state == "paused", "the pause")
        paused_at = bridge.runs[key].market_time
        await pilot.pause(0.5)
        assert bridge.runs[key].market_time == paused_at and run_row(app, "sma_cross", SHORT[1])[2] == "paused"
        await pilot.press("p")
        await wait_for(pilot, lambda: bridge.runs[key].state == "running" and bridge.runs[key].market_time > paused_at,
                       "the replay going again")
        await pilot.press("plus")
        await wait_for(pilot, lambda: bridge.runs[key].speed == 6000.0, "twice the speed")
        await pilot.press("minus")
        await wait_for(pilot, lambda: bridge.runs[key].speed == 3000.0, "half of it again")
        for _ in range(5):
            await pilot.press("plus")                  # 96,000x: the last day goes by in a second
        await wait_for(pilot, lambda: bridge.runs[key].state == "ended", "the end of the stored candles", timeout=60)
        assert "the stored candles end there" in bridge.runs[key].ended
        await wait_for(pilot, lambda: run_row(app, "sma_cross", SHORT[1])[2] == "ended", "the ended row")
        log = " ".join(" ".join(line.text for line in app.screen.query_one("#feed-log", RichLog).lines).split())
        assert "sma_cross on BTC2D: end of the replay" in log
        # R resets it (after a confirmation that says nothing is deleted): its saved state set aside.
        await pilot.press("R")
        assert isinstance(app.screen, ConfirmDialog)
        assert "nothing is deleted" in " ".join(rendered(app.screen.query_one("#confirm-body", Label)).split())
        await pilot.press("y")
        await wait_for(pilot, lambda: key not in app.bridge.runs, "the reset")
        assert list((tmp_path / "state").glob("set-aside-*/live_BTC2D_sma_cross.json"))
        await wait_for(pilot, lambda: run_row(app, "sma_cross", SHORT[1]) is None, "its row to go")


async def test_runs_saved_on_disk_are_listed_at_the_next_start_and_resume(seeded_store, tmp_path):
    state = tmp_path / "state"
    first = await make_app_async(seeded_store, state, speed=6000.0)
    async with first.run_test(size=(100, 30)) as pilot:
        await start(pilot, first, "sma_cross", "BTCUSDT")
        board = first.bridge.board
        await wait_for(pilot, lambda: ("BTCUSDT", "sma_cross") in board.open, "an open position", timeout=60)
        await pilot.press("q", "y")                     # quit: the run stops with its state saved
    second = await make_app_async(seeded_store, state, speed=1.0)
    async with second.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: second.bridge.saved, "the saved runs")
        row = run_row(second, "sma_cross", "BTCUSDT")
        assert row is not None and row[2] in ("saved (open)", "saved (flat)")
        saved = second.bridge.saved[0]
        second.screen.query_one("#live-runs", DataTable).focus()
        await pilot.press("r")                          # resume it
        await wait_for(pilot, lambda: second.bridge.runs.get(("BTCUSDT", "sma_cross")) is not None
                       and second.bridge.runs[("BTCUSDT", "sma_cross")].state == "running", "the resumed run")
        if saved.signal is not None:
            # The saved position comes back: it is open again, or (its time ran out while the
            # replay caught up) it closes; either way it is that position, never lost.
            board = second.bridge.board
            await wait_for(pilot, lambda: saved.signal.id in {o.signal.id for o in board.open.values()} |
                           {t.signal.id for ts in board.closed.values() for t in ts}, "its position back")
        await pilot.press("q", "y")


async def test_two_samples_on_one_symbol_fill_the_risk_pane_and_a_position_opens_its_chart(seeded_store, tmp_path):
    app = await make_app_async(seeded_store, tmp_path / "state", speed=0.0)
    async with app.run_test(size=(120, 40)) as pilot:
        await start(pilot, app, "sma_cross", "BTCUSDT")
        await start(pilot, app, "channel_breakout", "BTCUSDT")
        await pilot.press("1")
        board = app.bridge.board
        await wait_for(pilot, lambda: board.summary.rejections >= 1, "a rejection of the portfolio profile",
                       timeout=60)
        await pilot.pause(0.2)
        risk = " ".join(line.text for line in app.screen.query_one("#feed-risk", RichLog).lines)
        assert "[portfolio]" in risk and "BTCUSDT is already held by" in risk
        # A position's chart: hold both replays (flat out, positions come and go) while one is open.
        runs = [("sma_cross", "BTCUSDT"), ("channel_breakout", "BTCUSDT")]
        for _ in range(30):
            await wait_for(pilot, lambda: board.open, "an open position", timeout=60)
            for run in runs:
                await app.command("pause_live", *run)
            await wait_for(pilot, lambda: all(app.bridge.runs[(s, n)].state == "paused" for n, s in runs), "paused")
            await pilot.pause(0.3)
            if board.open:
                break
            for run in runs:
                await app.command("resume_live", *run)
        symbol, strategy = next(iter(board.open))
        signals = app.screen.query_one("#live-signals", DataTable)
        await wait_for(pilot, lambda: signals.row_count >= 1, "its row")
        signals.focus()
        await pilot.press("enter")
        assert isinstance(app.screen, PositionScreen)
        chart = app.screen
        await wait_for(pilot, lambda: chart.title_text, "the chart")
        s = board.open[(symbol, strategy)].signal
        assert f"TP {s.price_take_profit:.6g}" in chart.title_text and f"SL {s.price_stop_loss:.6g}" in chart.title_text
        assert "milestones:" in chart.title_text
        assert "of the way to TP" in rendered(chart.query_one("#position-figures", Label))
        await pilot.press("escape")
        assert isinstance(app.screen, LiveScreen)
        # v: the closed trades, newest first.
        await pilot.press("v")
        await wait_for(pilot, lambda: app.screen.query_one("#live-closed", DataTable).row_count >= 1, "closed trades",
                       timeout=60)
        await pilot.press("q", "y")


async def test_a_crash_in_a_handler_stops_live_runs_with_their_state_and_says_so(seeded_store, tmp_path, monkeypatch):
    app = await make_app_async(seeded_store, tmp_path / "state", speed=600.0)
    with pytest.raises(RuntimeError, match="a widget failed"):
        async with app.run_test(size=(100, 30)) as pilot:
            await start(pilot, app, "sma_cross", "BTCUSDT")
            await pilot.press("1")
            await wait_for(pilot, lambda: app.bridge.runs[("BTCUSDT", "sma_cross")].market_time, "a tick")

            def broken(self, *args, **kwargs):
                raise RuntimeError("a widget failed")

            monkeypatch.setattr(LiveScreen, "redraw", broken)
            await wait_for(pilot, lambda: not app.is_running, "the console to end")
    words, code = exit_words(app)
    assert code == 1 and "stopped on an error: RuntimeError: a widget failed" in words and str(tmp_path / "state") in words
    assert not app.engine._thread.is_alive()                 # the engine stopped with the console
    run = next(r for r in bk.Live.list() if r["strategy_name"] == "sma_cross")
    assert run["status"] != "running"
    assert (tmp_path / "state" / "live_BTCUSDT_sma_cross.json").exists()      # its state is on disk


async def hold_a(pilot, app, key, table):
    """Pause the replay of ``key`` while ``table`` (board.open or board.scheduled) holds its row,
    after at least one tick since it came (the price has moved off the entry)."""
    board = app.bridge.board
    run = (key[1], key[0])
    for _ in range(40):
        await wait_for(pilot, lambda: key in getattr(board, table), f"a row in board.{table}", timeout=60)
        await app.command("pause_live", *run)
        await wait_for(pilot, lambda: app.bridge.runs[key].state == "paused", "the pause")
        await pilot.pause(0.3)
        held = getattr(board, table).get(key)
        if held is not None and (table == "scheduled" or held.tick.action == "active"):
            return held
        await app.command("resume_live", *run)
    raise AssertionError(f"no {table} row held")


def notes(app) -> str:
    return " ".join(n.message for n in app._notifications)


async def press_and_check(pilot, app, key, expected) -> bool:
    """Press ``key``: a confirmation whose body holds ``expected`` (a list of texts) is answered
    yes and True returned; ``expected`` a str is a refusal's reason, told as a warning, no dialog."""
    await pilot.press(key)
    if isinstance(expected, str):
        await wait_for(pilot, lambda: expected in notes(app), f"the refusal: {expected}")
        assert not isinstance(app.screen, ConfirmDialog)
        return False
    await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), f"the confirmation of {key}")
    body = " ".join(rendered(app.screen.query_one("#confirm-body", Label)).split())
    for text in expected:
        assert text in body, (text, body)
    await pilot.press("y")
    return True


async def test_position_keys_ask_with_the_effect_then_act_and_show_it(seeded_store, tmp_path):
    """On the default workspace's sma_cross (a replay of bundled BTCUSDT): half closed, the stop
    trailed and moved to breakeven where the price allows, then closed now; on mean_reversion's
    scheduled order: cancelled. Each asks first with its figures (from the engine's own rules)."""
    from console.commits import trail_shift
    from engine.position import Refusal, plan

    app = await make_app_async(seeded_store, tmp_path / "state", speed=0.0)
    async with app.run_test(size=(120, 40)) as pilot:
        await start(pilot, app, "sma_cross", "BTCUSDT")
        await pilot.press("1")
        board = app.bridge.board
        key = ("BTCUSDT", "sma_cross")
        held = await hold_a(pilot, app, key, "open")
        signals = app.screen.query_one("#live-signals", DataTable)
        await wait_for(pilot, lambda: signals.row_count >= 1, "its row")
        row, price = held.signal, held.tick.current_price
        profit = price > row.price_open
        # h: half of it, at a profit or a loss as the price stands.
        assert await press_and_check(pilot, app, "h", ["Closes 50 % of what is held; 50 % of the position stays open.",
                                                       "Realises"])
        await wait_for(pilot, lambda: board.open[key].signal.partials, "the partial close on the row")
        assert board.open[key].signal.partials[0].kind == ("profit" if profit else "loss")
        await wait_for(pilot, lambda: "50%" in " ".join(str(c) for r in table_rows(signals) for c in r), "held 50%")
        log = lambda: " ".join(line.text for line in board.log)  # noqa: E731  (the feed pane wraps them)
        await wait_for(pilot, lambda: "closed 50% BTCUSDT sma_cross @" in log() and "held (console)" in log(),
                       "its log line")
        # s then b: whatever the engine's rules say at this price, the console says and does.
        for k, action, percent in (("s", "trailing_stop", trail_shift(board.open[key].signal)), ("b", "breakeven", None)):
            current = board.open[key].signal
            planned = plan(action, current, price, 0, bk.get_config(), percent=percent)
            if isinstance(planned, Refusal):
                await press_and_check(pilot, app, k, planned.reason)
                continue
            new_stop = planned[0].stop_loss
            assert await press_and_check(pilot, app, k, [f"Stop-loss {current.stop_loss:.8g} -> {new_stop:.8g}."])
            await wait_for(pilot, lambda: board.open[key].signal.stop_loss == new_stop, "the moved stop on the row")
        # e: close now.
        assert await press_and_check(pilot, app, "e", ["Closes the whole position now (reason: closed)."])
        await wait_for(pilot, lambda: key not in board.open, "the position closed")
        closed = board.closed[key][-1]
        assert closed.close_reason == "closed" and closed.signal.partials
        # A scheduled order: d cancels it (its reason: user).
        await start(pilot, app, "mean_reversion", "BTCUSDT")
        await pilot.press("1")
        order_key = ("BTCUSDT", "mean_reversion")
        await hold_a(pilot, app, order_key, "scheduled")
        scheduled = app.screen.query_one("#live-scheduled", DataTable)
        await wait_for(pilot, lambda: scheduled.row_count >= 1, "its row")
        assert await press_and_check(pilot, app, "d", ["The order is cancelled"])
        await wait_for(pilot, lambda: order_key not in board.scheduled, "the order gone")
        await wait_for(pilot, lambda: "cancelled BTCUSDT mean_reversion order (console)" in log(), "its log line")
        # Nothing under the cursor: said, not a dialog.
        await pilot.press("o")
        await wait_for(pilot, lambda: "no scheduled order under the cursor" in notes(app), "the warning")
        # The next order: o opens it now, at its own price (sma_cross, paused, holds nothing on BTCUSDT).
        await app.command("resume_live", "mean_reversion", "BTCUSDT")
        order = await hold_a(pilot, app, order_key, "scheduled")
        await wait_for(pilot, lambda: scheduled.row_count >= 1, "its row")
        assert await press_and_check(pilot, app, "o", [f"Opens now at the order's price {order.signal.price_open:.8g}"])
        await wait_for(pilot, lambda: order_key in board.open, "the order open as a position")
        assert board.open[order_key].signal.price_open == order.signal.price_open
        await pilot.press("q", "y")
