"""What the general path costs against the lane: the same vectorised SMA-cross backtest with a risk
profile, with callbacks, with limit entries, with listeners.

    python benchmarks/general_path.py                  # 500,000 synthetic candles
    python benchmarks/general_path.py --candles 200000

Each case runs in a fresh process on the same candles (in memory, the whole frame in one request),
five times, and prints the median backtest wall time, its trades, and the ratio to the plain run (nothing but the
engine's recorders hears it, so its trades take the lane). Targets (issue [4 of 6]): at most 1.5x
for a risk profile, limit entries and listeners; per-candle callbacks (on_active, on_partial_*,
on_active_ping and the position commands it makes) are priced, not bounded (docs/strategies.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

START_MS = 1_577_836_800_000
REPEATS = 5
CASES = {
    "plain (the lane)": "plain",
    "a risk profile": "risk",
    "on_open / on_close": "open_close",
    "limit entries": "limit",
    "milestone listeners": "milestones",
    "a signal listener": "signals",
    "on_active (per candle)": "on_active",
    "position commands (sma_trail's on_active_ping)": "commands",
}


async def _case(kind: str, n: int) -> dict:
    import engine as bk
    from engine.exchange.synthetic import SyntheticExchange
    from strategies import sma_cross

    bk.add_exchange("synthetic", SyntheticExchange(n, start=START_MS).get_candles, candles_per_request=n)
    bk.add_frame("bench", start=START_MS + 60 * 60_000, end=START_MS + (n - 2) * 60_000)
    options: dict = {}
    get_signal, get_signals = sma_cross.get_signal, sma_cross.get_signals
    if kind == "risk":
        bk.add_risk("one", validations=[{"validate": lambda a: "one open" if a.active_position_count else None,
                                         "note": "one position at most"}])
        options["risk_name"] = "one"
    elif kind == "open_close":
        options["callbacks"] = bk.StrategyCallbacks(on_open=lambda *a: None, on_close=lambda *a: None)
    elif kind == "on_active":
        options["callbacks"] = bk.StrategyCallbacks(on_active=lambda *a: None)
    elif kind == "commands":
        from strategies import sma_trail
        options["callbacks"] = bk.StrategyCallbacks(on_active_ping=sma_trail.on_active_ping)
    elif kind == "milestones":
        bk.listen_partial_profit(lambda e: None)
        bk.listen_partial_loss(lambda e: None)
    elif kind == "signals":
        bk.listen_signal_backtest(lambda r: None)
    elif kind == "limit":
        get_signal, get_signals = _limit(sma_cross.get_signal, sma_cross.get_signals)
    bk.add_strategy("s", get_signal, get_signals=get_signals, **options)
    walls = []
    for _ in range(REPEATS):       # the median of a few: one run of a tenth of a second is noisy here
        bk.reset_analytics()
        started = time.perf_counter()
        closed = [r async for r in bk.Backtest.run("SYN", strategy_name="s", exchange_name="synthetic",
                                                   frame_name="bench") if r.action == "closed"]
        walls.append(time.perf_counter() - started)
    return {"wall": statistics.median(walls), "trades": len(closed), "pnl": sum(r.pnl.pnl_percentage for r in closed)}


LIMIT_BELOW = 0.999      # a limit entry 0.1 % under the price: most fill within minutes, some time out


def _limit(get_signal, get_signals):
    """sma_cross with limit entries (scheduled orders), per frame and vectorised alike."""
    import engine as bk

    async def limit_signal(symbol, when):
        dto = await get_signal(symbol, when)
        if dto is None:
            return None
        price = await bk.get_average_price(symbol)
        return bk.SignalDto(position="long", price_open=price * LIMIT_BELOW, price_take_profit=dto.price_take_profit,
                            price_stop_loss=dto.price_stop_loss, minute_estimated_time=dto.minute_estimated_time)

    async def limit_signals(symbol, frame):
        s = await get_signals(symbol, frame)
        price = frame.price[s.long]
        return bk.Signals(long=s.long, price_open=price * LIMIT_BELOW, price_take_profit=s.price_take_profit,
                          price_stop_loss=s.price_stop_loss, minute_estimated_time=s.minute_estimated_time)
    return limit_signal, limit_signals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candles", type=int, default=500_000)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(asyncio.run(_case(args.case, args.candles))))
        return
    print(f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{args.candles:,} synthetic 1m candles in memory, one run each\n")
    print("| case | wall s | trades | x the plain run |")
    print("|---|---:|---:|---:|")
    base = None
    for title, kind in CASES.items():
        out = subprocess.run([sys.executable, __file__, "--candles", str(args.candles), "--case", kind],
                             capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.splitlines()[-1])
        base = base or r["wall"]
        print(f"| {title} | {r['wall']:.3f} | {r['trades']:,} | {r['wall'] / base:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
