"""Screenshots of every screen at 80x24 and 120x40 (pytest-textual-snapshot), from fixture
events and runs on the bundled candles. Nothing in the pixels depends on the clock: the app's
clock is frozen (no rate or ETA) and the panes show engine time only.

After a deliberate change: ``pytest tests/test_console_snapshots.py --snapshot-update``, then
review the changed SVGs under ``tests/__snapshots__`` before committing them."""

from __future__ import annotations

import pytest

from .console_helpers import feed_live_fixture, make_app, wait_for

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]


@pytest.mark.parametrize("size", SIZES)
def test_live(snap_compare, seeded_store, tmp_path, size):
    app = make_app(seeded_store, tmp_path / "state")

    async def run_before(pilot):
        feed_live_fixture(app.bridge)
        await pilot.pause(0.3)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size,views", [pytest.param((80, 24), 0, id="80x24-stats"),
                                        pytest.param((120, 40), 3, id="120x40-chart"),
                                        pytest.param((120, 40), 2, id="120x40-equity")])
def test_backtest(snap_compare, seeded_store, tmp_path, size, views):
    app = make_app(seeded_store, tmp_path / "state")

    async def run_before(pilot):
        await pilot.press("2", "r")
        await wait_for(pilot, lambda: app.screen.result is not None, "the backtest")
        await pilot.press(*["v"] * views)
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_walker(snap_compare, seeded_store, tmp_path, size):
    app = make_app(seeded_store, tmp_path / "state")

    async def run_before(pilot):
        await pilot.press("3", "r")
        await wait_for(pilot, lambda: app.screen.final, "the walker")
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_strategies(snap_compare, seeded_store, tmp_path, size):
    assert snap_compare(make_app(seeded_store, tmp_path / "state"), terminal_size=size, press=["4", "_"])


@pytest.mark.parametrize("size", SIZES)
def test_help(snap_compare, seeded_store, tmp_path, size):
    assert snap_compare(make_app(seeded_store, tmp_path / "state"), terminal_size=size, press=["question_mark", "_"])


@pytest.mark.parametrize("size", SIZES)
def test_stop_confirmation(snap_compare, seeded_store, tmp_path, size):
    """The dialog before stopping a live run, over the Strategies screen, light theme."""
    app = make_app(seeded_store, tmp_path / "state")

    async def run_before(pilot):
        from console.screens.dialogs import ConfirmDialog
        await pilot.press("t", "4")
        app.push_screen(ConfirmDialog("Stop sma_cross on BTCUSDT (replay)?",
                                      "It takes no new signals.\nIts open position long from 22100, +0.40% now, "
                                      "stays watched until TP, SL or its time limit closes it; then the run ends.\n"
                                      "State stays in ./state.", confirm="Stop"))
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=size, run_before=run_before)
