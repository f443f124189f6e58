"""What a vectorised backtest holds beyond its candles, per candle (Python's tracemalloc).

    python benchmarks/memory.py                        # 1,000,000 and 10,000,000 candles
    python benchmarks/memory.py --candles 2000000

The candles (48 bytes each: six 8-byte columns) are made before tracing starts and served in one
request as views, so the trace holds only what the backtest itself allocates: its peak over the
run, and what is live while the signals are resolved (the VWAP, the frame's times, the signal
table), with the lines that hold it. The same SMA-cross as ``compare.py``, in memory.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT.parent))


async def measure(n: int) -> None:
    import engine as bk
    import engine.vectorised as vectorised
    from engine.exchange.synthetic import SyntheticExchange
    from peers import workload as w
    from strategies import sma_cross

    bk.clear_registry()                 # (the previous size's candles go with it)
    exchange = SyntheticExchange(n, start=w.START_MS)
    bk.add_exchange("synthetic", exchange.get_candles, candles_per_request=n)
    bk.add_frame("bench", start=w.START_MS + (w.FIRST_ROW + 1) * 60_000, end=w.START_MS + (w.last_row(n) + 1) * 60_000)
    sma_cross.register()
    seen: list[tuple[int, tracemalloc.Snapshot]] = []
    resolve = vectorised.resolve_open_many

    def watched(*args, **kwargs):                 # the moment every signal row is resolved ahead
        out = resolve(*args, **kwargs)
        seen.append((tracemalloc.get_traced_memory()[0], tracemalloc.take_snapshot()))
        return out

    vectorised.resolve_open_many = watched
    tracemalloc.start()
    try:
        trades = [r async for r in bk.Backtest.run("SYN", strategy_name=sma_cross.NAME, exchange_name="synthetic",
                                                   frame_name="bench", vectorised=True) if r.action == "closed"]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        vectorised.resolve_open_many = resolve
    print(f"\n{n:,} candles, {len(trades):,} trades: traced peak {peak / 1e6:,.1f} MB, "
          f"{peak / n:.1f} bytes a candle beyond the candles' 48")
    if seen:
        live, snapshot = seen[0]
        print(f"live while the signals are resolved: {live / n:.1f} bytes a candle, of which")
        for stat in snapshot.statistics("lineno")[:6]:
            frame = stat.traceback[0]
            where = Path(frame.filename)
            shown = where.relative_to(ROOT.parent) if where.is_relative_to(ROOT.parent) else where.name
            print(f"  {stat.size / n:5.1f}  {shown}:{frame.lineno}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candles", type=int, nargs="+", default=[1_000_000, 10_000_000])
    args = parser.parse_args()
    print(f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, Python {platform.python_version()}")
    for n in args.candles:
        asyncio.run(measure(n))


if __name__ == "__main__":
    main()
