"""Backtest speed and memory: SMA(20)/SMA(50) crossover (strategies/sma_cross.py: long entries,
TP +2 %, SL -1 %, 120 minutes), get_signal on every 1m frame (the per-frame Python path).

    python benchmarks/backtest_speed.py                 # 1,000,000 synthetic candles, then bundled BTCUSDT
    python benchmarks/backtest_speed.py --candles 200000

Each case runs in a fresh process so its peak RSS is its own. Prints one line per case.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


async def _case(kind: str, n: int) -> dict:
    import engine as bk
    import strategies

    calls = {"get_signal": 0}
    original = strategies.sma_cross.get_signal

    async def counted(symbol, when):
        calls["get_signal"] += 1
        return await original(symbol, when)

    if kind == "synthetic":
        from engine.exchange.synthetic import SyntheticExchange
        start = datetime(2020, 1, 1, tzinfo=timezone.utc)
        ex = SyntheticExchange(n, start=start)      # seed 42, sigma 0.08 %/min, from 20,000
        bk.add_exchange("synthetic", ex.get_candles, candles_per_request=n)   # in memory: one call
        t0 = int(ex.candles.timestamp[0])
        bk.add_frame("bench", start=t0 + 60 * 60_000, end=t0 + (n - 2) * 60_000)  # warm-up hour; one candle after
        exchange, symbol = "synthetic", "SYN"
    else:
        from console.workspace import open_workspace
        os.environ["BTK_HOME"] = tempfile.mkdtemp(prefix="btk-bench-")
        await open_workspace()
        bk.clear_registry()
        await open_workspace()
        from engine.interval import to_ms
        bk.add_frame("bench", start=to_ms(datetime(2023, 3, 1, 1, tzinfo=timezone.utc)),
                     end=to_ms(datetime(2023, 3, 21, 23, 58, tzinfo=timezone.utc)))
        exchange, symbol = "bundled", "BTCUSDT"
    bk.add_strategy("sma_bench", counted, interval="1m")
    frame = bk.list_frames()[-1]
    frames = (frame.end - frame.start) // 60_000 + 1
    started = time.perf_counter()
    trades = 0
    async for r in bk.Backtest.run(symbol, strategy_name="sma_bench", exchange_name=exchange, frame_name="bench"):
        trades += r.action == "closed"
    wall = time.perf_counter() - started
    stats = await bk.Backtest.get_data(symbol, strategy_name="sma_bench")
    return {"case": kind, "candles": frames, "frames": frames, "wall_s": wall, "frames_per_s": frames / wall,
            "get_signal_calls": calls["get_signal"], "get_signal_per_s": calls["get_signal"] / wall,
            "trades": trades, "total_pnl": stats.total_pnl,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--candles", type=int, default=1_000_000)
    parser.add_argument("--case", choices=("synthetic", "bundled"))
    args = parser.parse_args()
    if args.case:
        print(json.dumps(asyncio.run(_case(args.case, args.candles))))
        return
    for case in ("synthetic", "bundled"):
        out = subprocess.run([sys.executable, __file__, "--case", case, "--candles", str(args.candles)],
                             capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{r['case']:9}  {r['frames']:>9,} frames  {r['wall_s']:6.2f} s  {r['frames_per_s']:>9,.0f} frames/s  "
              f"get_signal {r['get_signal_calls']:>9,} calls ({r['get_signal_per_s']:,.0f}/s)  "
              f"trades {r['trades']:>6,}  peak RSS {r['peak_rss_mb']:6.1f} MB")


if __name__ == "__main__":
    main()
