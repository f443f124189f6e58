"""Building the console for tests: a seeded candle store shared by the session, the app on
it, deterministic engine events for the Live panes, and waiting on a condition."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import engine as bk
from console.app import BtkApp, ConsoleConfig
from console.workspace import open_workspace
from engine.interval import MINUTE_MS

T0 = 1678060800000  # 2023-03-06 00:00 UTC


def frozen_clock() -> float:
    """A clock that never moves: progress shows no rate or ETA, so screenshots are stable."""
    return 0.0


def _config(store: Path, state_dir: Path, speed: float, clock: Callable[[], float]) -> ConsoleConfig:
    return ConsoleConfig(store=store, state_dir=state_dir, reports=state_dir / "reports", speed=speed, clock=clock)


async def make_app_async(store: Path, state_dir: Path, *, speed: float = 0.0,
                         clock: Callable[[], float] = frozen_clock) -> BtkApp:
    """The console on ``store`` with the default workspace, as ``btk`` opens it."""
    await open_workspace(store)
    return BtkApp(_config(store, state_dir, speed, clock))


def make_app(store: Path, state_dir: Path, *, speed: float = 0.0, clock: Callable[[], float] = frozen_clock) -> BtkApp:
    """The same, for synchronous tests (the snapshot fixture runs the app in its own loop)."""
    asyncio.run(open_workspace(store))
    return BtkApp(_config(store, state_dir, speed, clock))


async def wait_for(pilot, predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await pilot.pause(0.05)


def _signal(sid: str, symbol: str, strategy: str, position: str, entry: float, tp: float, sl: float,
            scheduled_at: int, pending_at: int | None) -> bk.SignalRow:
    return bk.SignalRow(id=sid, position=position, price_open=entry, price_take_profit=tp, price_stop_loss=sl,
                        minute_estimated_time=240, symbol=symbol, strategy_name=strategy, exchange_name="replay",
                        scheduled_at=scheduled_at, pending_at=pending_at)


def feed_live_fixture(bridge) -> None:
    """What a few minutes of three live runs look like, as the engine host sends them: two open
    positions, a scheduled order, milestones, a risk rejection, a closed trade, an error."""
    from engine.service.messages import ErrorNote, EventBatch, Milestone, RunStatus

    now = T0 + 95 * MINUTE_MS
    tick = dict(exchange_name="replay", frame_name="", backtest=False)
    closed = _signal("c1", "BTCUSDT", "sma_cross", "long", 22000.0, 22440.0, 21780.0, T0 - 60 * MINUTE_MS,
                     T0 - 60 * MINUTE_MS)
    long = _signal("a1", "BTCUSDT", "sma_cross", "long", 22100.0, 22542.0, 21879.0, T0 + 48 * MINUTE_MS,
                   T0 + 48 * MINUTE_MS)
    short = _signal("a2", "ETHBTC", "mean_reversion", "short", 0.07120, 0.06980, 0.07190, T0 + 20 * MINUTE_MS,
                    T0 + 30 * MINUTE_MS)
    waiting = _signal("s1", "LTCBTC", "channel_breakout", "long", 0.01710, 0.01760, 0.01690,
                      T0 + 80 * MINUTE_MS, None)
    events: list = [bk.TickClosed(symbol="BTCUSDT", strategy_name="sma_cross", current_price=22440.0,
                                  created_at=T0, signal=closed, close_reason="take_profit", close_timestamp=T0,
                                  pnl=bk.PnL(pnl_percentage=1.596, price_open=22000.0, price_close=22440.0), **tick),
                    bk.TickScheduled(symbol="LTCBTC", strategy_name="channel_breakout", current_price=0.01742,
                                     created_at=now, signal=waiting, **tick)]
    for level, when in ((10, 60), (20, 75), (30, 88), (40, 95)):
        events.append(Milestone("profit", bk.PartialEvent(symbol="BTCUSDT", strategy_name="sma_cross", signal=long,
                                                          level=level, percent=float(level),
                                                          current_price=22100.0 + 4.42 * level, backtest=False,
                                                          timestamp=T0 + when * MINUTE_MS)))
    events.append(Milestone("loss", bk.PartialEvent(symbol="ETHBTC", strategy_name="mean_reversion", signal=short,
                                                    level=50, percent=50.0, current_price=0.07155, backtest=False,
                                                    timestamp=now)))
    events.append(bk.RiskEvent(symbol="LTCBTC", strategy_name="sma_cross", risk_name="max_two",
                               signal=waiting, current_price=0.01742, active_position_count=2,
                               rejection_id="max_positions", rejection_note="2 positions open, the limit is 2",
                               backtest=False, timestamp=T0 + 90 * MINUTE_MS))
    events.append(ErrorNote("ValueError: get_signal: indicator needs 50 candles, got 12", "live", "ETHBTC",
                            "broken"))
    ticks = [bk.TickActive(symbol="BTCUSDT", strategy_name="sma_cross", current_price=22277.0, created_at=now,
                           signal=long, percent_tp=40.05, percent_sl=0.0, **tick),
             bk.TickActive(symbol="ETHBTC", strategy_name="mean_reversion", current_price=0.07155,
                           created_at=now, signal=short, percent_tp=0.0, percent_sl=50.0, **tick)]
    runs = [RunStatus("BTCUSDT", "sma_cross", "replay", "running", market_time=now, speed=600.0,
                      replay_end=T0 + 20_000 * MINUTE_MS, open=True),
            RunStatus("ETHBTC", "mean_reversion", "replay", "paused", market_time=now, speed=600.0,
                      replay_end=T0 + 20_000 * MINUTE_MS, open=True),
            RunStatus("LTCBTC", "channel_breakout", "replay", "running", market_time=now - 3 * MINUTE_MS, speed=6000.0,
                      replay_end=T0 + 20_000 * MINUTE_MS, scheduled=True)]
    bridge.apply(EventBatch(events=events, ticks=ticks, runs=runs))
