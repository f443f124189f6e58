"""Names a user chooses are shown as they are, never read as Textual markup: the default
workspace's sweep names (``sma_cross[fast=5,slow=30]``) and hostile ones (``[bold]``, ``[/]``,
``[@click=app.quit]``, emoji, 200 characters) on every screen, through the keys a trader presses."""

from __future__ import annotations

import pytest
from textual.widgets import DataTable, Label, RichLog, Select

import engine as bk
from console.screens.backtest import BacktestScreen
from console.screens.dialogs import ConfirmDialog, StartDialog
from console.screens.strategies import StrategiesScreen
from console.screens.walker import WalkerScreen

from .console_helpers import make_app_async, wait_for
from .test_console import rendered, table_rows

HOSTILE = ["[bold]loud", "[/]", "[@click=app.quit]gone", "🚀 moon", "x" * 200]


def hostile_signal(symbol, when):
    raise ValueError("[red]not red[/red] [@click=app.quit]and no click")


def register_hostile() -> None:
    for name in HOSTILE:
        bk.add_strategy(name, hostile_signal, note=f"note of {name} [i]plain[/i]")
    bk.add_walker("[b]walk", exchange_name="bundled", frame_name="bundled-btcusdt", strategies=HOSTILE[:3],
                  symbols=["BTCUSDT"], note="[blink]")


def row_of(table: DataTable, name: str) -> int:
    return [r[0] for r in table_rows(table)].index(name)


@pytest.mark.parametrize("keys", [("down",) * 4 + ("b",), ("down",) * 4 + ("enter",)])
async def test_sweep_names_from_the_strategies_screen(seeded_store, tmp_path, keys):
    """``4``, Down x4 (past the four samples) is ``sma_cross[fast=5,slow=30]``: ``b`` takes it to the Backtest screen,
    enter opens its start dialog (both crashed on the name)."""
    app = await make_app_async(seeded_store, tmp_path / "state")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("4", *keys)
        await pilot.pause(0.2)
        if keys[-1] == "b":
            assert isinstance(app.screen, BacktestScreen)
            assert app.screen.query_one("#bt-strategy", Select).value == "sma_cross[fast=5,slow=30]"
            await pilot.press("r")
            await wait_for(pilot, lambda: app.screen.result is not None, "the sweep strategy's backtest")
            assert "sma_cross[fast=5,slow=30] on BTCUSDT" in rendered(app.screen.query_one("#stats"))
        else:
            assert isinstance(app.screen, StartDialog)
            assert rendered(app.screen.query_one("#start-title", Label)).strip() == "Start sma_cross[fast=5,slow=30]"
            await pilot.press("escape")
        assert app.is_running and app.return_code in (None, 0)


async def test_hostile_names_on_every_screen(seeded_store, tmp_path):
    register_hostile()
    # 30,000x: the hostile replay lasts over a minute, so it still runs when it is stopped below
    # (flat out, a faster engine replayed the whole month before the stop key came)
    app = await make_app_async(seeded_store, tmp_path / "state", speed=30000.0)
    async with app.run_test(size=(120, 40)) as pilot:
        # Strategies: every name and note as written.
        await pilot.press("4")
        table = app.screen.query_one("#st-table", DataTable)
        shown = [r[0] for r in table_rows(table)]
        assert all(name in shown for name in HOSTILE)
        await pilot.resize_terminal(700, 40)           # room for the 200-character name and its note
        await pilot.pause(0.2)
        notes = [str(c.label).strip() for c in table.columns.values()].index("note")
        assert "note of [bold]loud [i]plain[/i]" in [r[notes] for r in table_rows(table)]
        await pilot.resize_terminal(120, 40)
        await pilot.pause(0.2)
        # Start one whose name clicks "app.quit" as markup: it runs and reports its errors.
        table.move_cursor(row=row_of(table, "[@click=app.quit]gone"))
        await pilot.press("enter")
        assert isinstance(app.screen, StartDialog)
        assert rendered(app.screen.query_one("#start-title", Label)).strip() == "Start [@click=app.quit]gone"
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.bridge.board.summary.errors >= 2, "the hostile run's errors")
        # Stop it: the confirmation names it as written.
        await pilot.press("4")
        table = app.screen.query_one("#st-table", DataTable)
        table.move_cursor(row=row_of(table, "[@click=app.quit]gone"))
        await pilot.press("x")
        assert isinstance(app.screen, ConfirmDialog)
        assert "Stop [@click=app.quit]gone on BTCUSDT" in rendered(app.screen.query_one("#confirm-title", Label))
        await pilot.press("y")
        # Live: the log shows the error text with its brackets.
        await pilot.press("1")
        await pilot.pause(0.3)
        log = " ".join(" ".join(line.text for line in app.screen.query_one("#feed-log", RichLog).lines).split())
        assert "[red]not red[/red] [@click=app.quit]and no click" in log
        # Backtest: each hostile strategy in the picker, one run to its results.
        await pilot.press("2")
        picker = app.screen.query_one("#bt-strategy", Select)
        picker.focus()
        await pilot.press("enter")                           # the picker's list opens with every name
        await pilot.pause(0.2)
        await pilot.press("escape")
        picker.value = "x" * 200
        await pilot.press("r")
        await wait_for(pilot, lambda: app.screen.result is not None, "the long name's backtest")
        # Walker: a walker named [b]walk over hostile strategies; then the sweep, stopped on the way.
        await pilot.press("3")
        walker = app.screen.query_one("#wk-walker", Select)
        walker.value = "[b]walk"
        await pilot.press("r")
        await wait_for(pilot, lambda: app.screen.final, "the hostile walker")
        board = table_rows(app.screen.query_one("#wk-board", DataTable))
        assert {r[1] for r in board} == set(HOSTILE[:3])
        walker.value = "sma_sweep"
        await pilot.press("r")
        await wait_for(pilot, lambda: len(app.bridge.walker.cells) >= 2, "two sweep cells")
        await pilot.press("x")
        await wait_for(pilot, lambda: app.screen.final and not app.screen.running, "the stopped sweep")
        assert isinstance(app.screen, WalkerScreen)
        assert any("sma_cross[" in r[1] for r in table_rows(app.screen.query_one("#wk-board", DataTable)))
        assert app.is_running and app.return_code in (None, 0)
        assert isinstance(app.screen, WalkerScreen) and not isinstance(app.screen, StrategiesScreen)
