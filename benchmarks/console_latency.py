"""Key latency of the console while it backtests 30 days of 1m candles.

    python benchmarks/console_latency.py                # 30 days, keys every 50 ms
    python benchmarks/console_latency.py --days 60 --every 0.02

The console runs headless (Textual's test driver: the same app, event loop and message
queue as in a terminal) on a store holding 31 days of synthetic 1m candles. It starts the
SMA crossover backtest over the last 30 days from the Backtest screen, then, until the run
and the drawing of its results are over, presses a key every ``--every`` seconds:
alternately a probe key (its action only records the time) and a screen switch (1 / 2).
A key's latency is the time from its press to the start of its action. Also printed: the
event loop's longest stall, seen by a 5 ms ticker. Target: every key answered within 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


async def main(days: int, every: float) -> None:
    os.environ["BTK_HOME"] = tempfile.mkdtemp(prefix="btk-latency-")
    from textual.binding import Binding

    from console.app import BtkApp, ConsoleConfig
    from console.workspace import open_workspace
from engine.exchange.markets import stored_markets
    from engine.exchange.synthetic import SyntheticExchange
    from engine.interval import MINUTE_MS
    from engine.store import connect, default_store_path, import_candles

    store = default_store_path()
    await open_workspace(store)
    minutes = (days + 1) * 1440
    synthetic = SyntheticExchange(minutes, start=datetime(2024, 1, 1, tzinfo=timezone.utc))
    db = await connect(store)
    try:
        await import_candles(db, "synthetic", "SYN", "1m", synthetic.candles)
    finally:
        await db.close()
    await open_workspace(store)     # registers the new store exchange

    pressed: dict[str, float] = {}
    answered: list[float] = []

    class ProbedApp(BtkApp):
        BINDINGS = BtkApp.BINDINGS + [Binding("f12", "probe", "Probe", show=False, id="bench.probe")]

        def action_probe(self) -> None:
            answered.append(time.perf_counter() - pressed.pop("f12"))

        async def action_switch_mode(self, mode: str) -> None:
            if "switch" in pressed:
                answered.append(time.perf_counter() - pressed.pop("switch"))
            await super().action_switch_mode(mode)

    app = ProbedApp(ConsoleConfig(store=store), await stored_markets(store))
    stalls: list[float] = []

    async def ticker() -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            stalls.append(now - last - 0.005)
            last = now

    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2")
        screen = app.screen
        screen.query_one("#bt-market").value = ("synthetic", "SYN")
        await pilot.pause(0.1)
        tick_task = asyncio.create_task(ticker())
        started = time.perf_counter()
        # Keys are sent from tasks: Pilot.press waits for the app to go idle, which it does not while
        # the backtest runs; a person at the keyboard does not wait either.
        sending = [asyncio.create_task(pilot.press("r"))]
        await asyncio.sleep(0.01)
        presses = 0
        while screen.running is not None or screen.result is None:
            await asyncio.sleep(every)
            if presses % 2 == 0:
                pressed["f12"] = time.perf_counter()
                sending.append(asyncio.create_task(pilot.press("f12")))
            else:
                pressed["switch"] = time.perf_counter()
                sending.append(asyncio.create_task(pilot.press("1" if app.current_mode == "backtest" else "2")))
            presses += 1
        await asyncio.gather(*sending)
        elapsed = time.perf_counter() - started
        tick_task.cancel()
        frames = screen.result.frames
    ms = sorted(x * 1000 for x in answered)
    p95 = ms[min(len(ms) - 1, int(0.95 * len(ms)))]
    print(f"console key latency while backtesting {frames:,} 1m candles ({frames * MINUTE_MS / 86_400_000:.1f} days), "
          f"run and results drawn in {elapsed:.2f} s")
    print(f"  keys answered {len(ms)}: median {statistics.median(ms):.1f} ms, p95 {p95:.1f} ms, max {ms[-1]:.1f} ms "
          f"(target < 100 ms)")
    print(f"  longest event-loop stall {max(stalls) * 1000:.1f} ms (5 ms ticker, {len(stalls)} ticks)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--every", type=float, default=0.05, help="seconds between key presses")
    args = parser.parse_args()
    asyncio.run(main(args.days, args.every))
