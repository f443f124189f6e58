"""btk against other backtesters: the same candles, the same rules, one table.

    python benchmarks/compare.py                       # 1,000,000 synthetic 1m candles
    python benchmarks/compare.py --candles 100000 --systems "btk per-frame" numpy

Workload and trade-list rules: ``benchmarks/peers/workload.py``. backtesting.py and vectorbt
run when installed (``pip install -e '.[bench]'``); a missing one gets a line saying so.

Every system runs in a fresh process, so its peak RSS is its own and "cold s" is the whole
process: start, imports, making the candles, the backtest and its report. "wall s" is the
backtest alone. Each trade list is checked against btk per-frame's: same trades (entry and exit
candle) and PnL within the stated tolerance; differences are listed under the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.peers import workload as w  # noqa: E402
from benchmarks.peers.systems import SYSTEMS, Missing, run  # noqa: E402

REFERENCE = "btk per-frame"
# Which btk path each system is measured against in the ratio column.
PAIRED = {"btk per-frame": "btk per-frame", "backtesting.py": "btk per-frame",
          "btk per-frame, numpy means": "btk per-frame", "btk per-frame, declared indicators": "btk per-frame",
          "btk vectorised": "btk vectorised", "vectorbt": "btk vectorised", "numpy": "btk vectorised"}


def _child(system: str, n: int, out: str) -> None:
    import resource

    import numpy as np
    try:
        trades, wall, report = run(system, n)
    except Missing as e:
        print(json.dumps({"missing": str(e)}))
        return
    np.savez(out, entry_row=trades.entry_row, exit_row=trades.exit_row, pnl=trades.pnl)
    print(json.dumps({"wall": wall, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "report": report}))


def measure(system: str, n: int, folder: str) -> dict:
    """Run one system in a fresh process; its figures and trade list."""
    import numpy as np
    out = os.path.join(folder, f"{system.replace(' ', '_')}.npz")
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--child", system, "--candles", str(n), "--out", out],
                          capture_output=True, text=True, cwd=ROOT)
    cold = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{system} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if "missing" in result:
        return {"system": system, "missing": result["missing"]}
    with np.load(out) as f:
        trades = w.Trades.of(f["entry_row"], f["exit_row"], f["pnl"])
    return {"system": system, "cold": cold, "trades": trades, **result}


def table(results: list[dict], n: int) -> str:
    by_name = {r["system"]: r for r in results if "missing" not in r}
    head = (f"| {'system':<34} | {'candles':>9} | {'wall s':>7} | {'candles/s':>11} | {'cold s':>6} | "
            f"{'peak RSS MB':>11} | {'trades':>6} | {'ratio to ours':>13} |")
    lines = [head, "|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|"]
    for r in results:
        if "missing" in r:
            lines.append(f"| {r['system']:<34} | not installed: {r['missing']}")
            continue
        ours = by_name.get(PAIRED[r["system"]])
        ratio = f"{(n / r['wall']) / (n / ours['wall']):.3f}x" if ours else "-"
        lines.append(f"| {r['system']:<34} | {n:>9,} | {r['wall']:>7.3f} | {n / r['wall']:>11,.0f} | {r['cold']:>6.2f} | "
                     f"{r['rss_mb']:>11.1f} | {len(r['trades'].entry_row):>6,} | {ratio:>13} |")
    return "\n".join(lines)


def agreement(results: list[dict]) -> list[str]:
    ref = next((r for r in results if r["system"] == REFERENCE and "missing" not in r), None)
    if ref is None:
        return []
    lines = []
    for r in results:
        if "missing" in r or r is ref:
            continue
        a = w.compare(ref["trades"], r["trades"],
                      describe=lambda e, x: f"entry candle {e}, exit candle {x}")
        verdict = "agree" if a.agrees else "differ"
        lines.append(f"- {r['system']} vs {REFERENCE}: {verdict}: {a.matched:,} of {a.ours:,} trades the same "
                     f"(entry and exit candle), {a.pnl_within:,} of them with PnL within {w.PNL_TOLERANCE:g} pp "
                     f"(largest gap {a.max_pnl_gap:.2g} pp)" + (f"; first difference at {a.first_difference}"
                                                               if a.first_difference else ""))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candles", type=int, default=1_000_000)
    parser.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS))
    parser.add_argument("--child", choices=SYSTEMS, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.candles < 1000:
        parser.error("--candles must be at least 1000")
    if args.child:
        _child(args.child, args.candles, args.out)
        return
    systems = [REFERENCE] + [s for s in args.systems if s != REFERENCE]
    with tempfile.TemporaryDirectory(prefix="btk-compare-") as folder:
        results = [measure(s, args.candles, folder) for s in systems]
    print(f"{date.today().isoformat()}, {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}; {args.candles:,} synthetic 1m candles; SMA({w.FAST})/SMA({w.SLOW}) long, "
          f"TP +{w.TAKE_PROFIT:.0%}, SL -{w.STOP_LOSS:.0%}, {w.MINUTES} min, fee and slippage {w.FEE:.1%}\n")
    print(table(results, args.candles))
    print("\nratio to ours: the system's candles/s over btk's on the same kind of path "
          "(per-frame for backtesting.py, vectorised for vectorbt and numpy)\n")
    speeds = {r["system"]: args.candles / r["wall"] for r in results if "missing" not in r}
    peer = speeds.get("backtesting.py")
    if peer:
        for name in ("btk per-frame", "btk per-frame, numpy means", "btk per-frame, declared indicators"):
            if name in speeds:
                print(f"- {name}: {speeds[name] / peer:.2f}x backtesting.py")
    if "numpy" in speeds and "btk vectorised" in speeds:
        print(f"- btk vectorised: {speeds['btk vectorised'] / speeds['numpy']:.2f}x the plain numpy pass")
    print()
    for line in agreement(results):
        print(line)


if __name__ == "__main__":
    main()
