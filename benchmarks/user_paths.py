"""One backtest the ways users start it: the CLI, the console, a walker cell inline and in a worker.

    python benchmarks/user_paths.py                    # 1,000,000 candles
    python benchmarks/user_paths.py --candles 200000

Synthetic 1m candles (random walk, seed 42) are written to a CSV and imported with ``btk data
import`` into a fresh ``BTK_HOME``. Then ``sma_cross`` is backtested over all of them after a day of
warm-up (the frame ``btk backtest`` and the console take by default), each way in a fresh process:

* **CLI**: ``btk backtest sma_cross --exchange synth --symbol SYN --json``, through ``console.cli.main``
  in the process (its imports done first, as they are for the console);
* **console**: the console app (headless, Textual's ``run_test``) on that store: the Backtest
  screen, the market picked, ``r`` pressed; timed from the key to the results on screen (status,
  statistics, charts, the first trades), and to every trade listed in the table;
* **walker, inline** and **walker, process pool**: ``btk --load one.py walker one --executor ...
  --fresh --json``, a walker of that one cell (the pool's start included), and the cell's own time.

Prints each path's seconds and its ratio to the CLI's (the target: the same run as fast from the
console, the CLI and a worker); every path must close the same trades.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BTK = Path(sys.executable).with_name("btk")
START_MS = 1_577_836_800_000          # 2020-01-01T00:00Z
SYMBOL, EXCHANGE = "SYN", "synth"
WARMUP_MINUTES = 24 * 60              # the stored frame's day of warm-up (engine/exchange/markets.py)

ONE_CELL_WALKER = '''
import engine as bk

bk.add_frame("stored", start={start}, end={end})     # the span `btk backtest` takes by default
bk.add_walker("one", exchange_name="synth", frame_name="stored", strategies=["sma_cross"], symbols=["SYN"])
'''

CASES = ("cli", "console", "walker inline", "walker process")


def prepare(n: int, home: Path) -> Path:
    """Import ``n`` candles into ``home``'s store; returns the walker file."""
    from engine.exchange.synthetic import random_walk
    c = random_walk(n, start_ms=START_MS)
    csv = home / "candles.csv"
    home.mkdir(parents=True, exist_ok=True)
    with open(csv, "w") as f:
        f.write("timestamp_ms,open,high,low,close,volume\n")
        columns = np.vstack([c.timestamp.astype(np.float64), c.open, c.high, c.low, c.close, c.volume])
        np.savetxt(f, columns.T, fmt=["%d", "%.17g", "%.17g", "%.17g", "%.17g", "%.17g"], delimiter=",")
    subprocess.run([str(BTK), "data", "import", str(csv), "--exchange", EXCHANGE, "--symbol", SYMBOL],
                   env={**os.environ, "BTK_HOME": str(home)}, check=True, capture_output=True)
    csv.unlink()
    walker = home / "one.py"
    walker.write_text(ONE_CELL_WALKER.format(start=START_MS + WARMUP_MINUTES * 60_000, end=START_MS + (n - 2) * 60_000))
    return walker


def _cli(argv: list[str]) -> tuple[float, dict]:
    from console.cli import main
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")      # the CLI writes JSON to stdout's buffer
    began = time.perf_counter()
    with redirect_stdout(out):
        code = main(argv)
    wall = time.perf_counter() - began
    if code != 0:
        raise SystemExit(f"btk {' '.join(argv)} exited {code}")
    out.flush()
    return wall, json.loads(out.buffer.getvalue())


def _console(home: Path) -> tuple[float, dict]:
    from textual.widgets import DataTable, Select

    from console.app import BtkApp
    from console.context import ConsoleConfig
    from console.workspace import open_workspace
    from engine.persistence.candles import default_store_path

    async def run() -> tuple[float, dict]:
        store = default_store_path()
        await open_workspace(store)
        app = BtkApp(ConsoleConfig(store=store, state_dir=home / "state", speed=0.0))
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("2")
            screen = app.screen
            screen.query_one("#bt-strategy", Select).value = "sma_cross"
            screen.query_one("#bt-market", Select).value = (EXCHANGE, SYMBOL)
            await pilot.pause()
            table = screen.query_one("#bt-trades", DataTable)
            began = time.perf_counter()
            # Pilot.press returns once the screen is idle: long after the results show. Poll instead.
            press = asyncio.create_task(pilot.press("r"))
            while screen.result is None:
                await asyncio.sleep(0.002)
            shown = time.perf_counter() - began      # status, statistics, charts and the first trades
            closed = screen.result.closed
            while table.row_count < len(closed):
                await asyncio.sleep(0.002)
            await pilot.pause()                      # the table measures the last rows it was given
            listed = time.perf_counter() - began     # every trade in the table
            await press
            return shown, {"listed": listed, "trades": len(closed), "pnl": sum(r.pnl.pnl_percentage for r in closed)}
    return asyncio.run(run())


def run_case(case: str, home: Path, walker: Path) -> dict:
    if case == "cli":
        wall, doc = _cli(["backtest", "sma_cross", "--exchange", EXCHANGE, "--symbol", SYMBOL, "--json"])
        signals = doc["signals"]
        return {"wall": wall, "trades": len(signals), "pnl": sum(s["pnl"]["pnl_percentage"] for s in signals)}
    if case == "console":
        wall, out = _console(home)
        return {"wall": wall, **out}
    executor = case.split()[-1]
    wall, doc = _cli(["--load", str(walker), "walker", "one", "--executor", executor, "--fresh", "--json"])
    row = doc["results"][0]
    if row["error"]:
        raise SystemExit(f"the walker's cell failed: {row['error']}")
    return {"wall": wall, "cell": row["seconds"], "vectorised": row["vectorised"], "trades": row["total_signals"],
            "pnl": row["stats"]["total_pnl"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candles", type=int, default=1_000_000)
    parser.add_argument("--case", choices=CASES, help=argparse.SUPPRESS)
    parser.add_argument("--home", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.case:
        home = Path(args.home)
        print(json.dumps(run_case(args.case, home, home / "one.py")))
        return
    print(f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{args.candles:,} synthetic 1m candles imported into the store, one run each\n")
    print("| path | seconds | x the CLI | and then | trades |")
    print("|---|---:|---:|---|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        prepare(args.candles, home)
        env = {**os.environ, "BTK_HOME": str(home)}
        base, first = None, None
        for case in CASES:
            out = subprocess.run([sys.executable, __file__, "--candles", str(args.candles), "--case", case,
                                  "--home", str(home)], env=env, capture_output=True, text=True)
            if out.returncode != 0:
                raise SystemExit(f"{case} failed: {out.stderr.strip()[-600:]}")
            r = json.loads(out.stdout.splitlines()[-1])
            base = base or r["wall"]
            first = first or r
            if (r["trades"], round(r["pnl"], 9)) != (first["trades"], round(first["pnl"], 9)):
                raise SystemExit(f"{case} closed other trades: {r['trades']} ({r['pnl']:.6f} %) against the CLI's "
                                 f"{first['trades']} ({first['pnl']:.6f} %)")
            note = (f"the cell alone {r['cell']:.2f} s ({'vectorised' if r['vectorised'] else 'per frame'})"
                    if "cell" in r else f"every trade listed at {r['listed']:.2f} s" if "listed" in r else "")
            print(f"| {case} | {r['wall']:.2f} | {r['wall'] / base:.2f}x | {note} | {r['trades']:,} |", flush=True)


if __name__ == "__main__":
    main()
