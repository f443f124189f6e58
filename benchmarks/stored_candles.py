"""A cold ``btk backtest`` on candles imported into the store, against the same run served from memory.

    python benchmarks/stored_candles.py                      # 100k, 1M and 10M candles
    python benchmarks/stored_candles.py --sizes 100000,1000000

For each size: synthetic 1m candles (random walk, seed 42) are written to a CSV and imported with
``btk data import`` into a fresh ``BTK_HOME`` (the user's path), then ``btk backtest sma_cross``
runs on them in a fresh process, vectorised (the default) and ``--per-frame``. The same backtest
then runs with the candles served from memory: a ``--load`` file registers an exchange over the
same arrays, read from an ``.npy`` file (the cheapest way into a fresh process's memory), answering
the whole frame in one request. Wall time is the whole process (start, imports, candles, backtest,
JSON); the two runs must give the same trades. Prints one row per size and path, with the ratio
stored / memory (the target: at most 1.5x).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BTK = Path(sys.executable).with_name("btk")
START_MS = 1_577_836_800_000          # 2020-01-01T00:00Z
SYMBOL = "SYN"

MEMORY_EXCHANGE = '''
import numpy as np
import engine as bk

columns = np.load({npy!r}, mmap_mode=None)
candles = bk.Candles.from_arrays(columns[0].astype(np.int64), *columns[1:])
t0 = int(candles.timestamp[0])

def get_candles(symbol, interval, since, limit):
    a = (int(since.timestamp() * 1000) - t0) // 60_000
    return candles[a:a + limit]

bk.add_exchange("memory", get_candles, candles_per_request={n})
'''


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float, subprocess.CompletedProcess]:
    """(wall s, peak RSS MB, result) of one fresh process (its own peak: wait4, not the max over children)."""
    began = time.perf_counter()
    child = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out: dict[str, str] = {}
    readers = [threading.Thread(target=lambda name=name: out.__setitem__(name, getattr(child, name).read()))
               for name in ("stdout", "stderr")]
    for reader in readers:
        reader.start()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - began
    for reader in readers:
        reader.join()
    code = os.waitstatus_to_exitcode(status)
    child.returncode = code
    if code != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({code}): {out['stderr'].strip()[-400:]}")
    return wall, usage.ru_maxrss / 1024, subprocess.CompletedProcess(cmd, code, out["stdout"], out["stderr"])


def trades(result: subprocess.CompletedProcess) -> list[tuple]:
    doc = json.loads(result.stdout)
    return [(s["signal"]["id"], s["close_timestamp"], s["close_reason"], s["pnl"]["pnl_percentage"])
            for s in doc["signals"]]


def case(n: int, work: Path) -> list[dict]:
    from engine.exchange.synthetic import random_walk
    home = work / f"home{n}"
    env = {**os.environ, "BTK_HOME": str(home)}
    c = random_walk(n, start_ms=START_MS)
    columns = np.vstack([c.timestamp.astype(np.float64), c.open, c.high, c.low, c.close, c.volume])
    npy = work / f"candles{n}.npy"
    np.save(npy, columns)
    csv = work / f"candles{n}.csv"
    with open(csv, "w") as f:
        f.write("timestamp_ms,open,high,low,close,volume\n")
        np.savetxt(f, columns.T, fmt=["%d", "%.17g", "%.17g", "%.17g", "%.17g", "%.17g"], delimiter=",")
    imported, _, _ = timed([str(BTK), "data", "import", str(csv), "--exchange", "synth", "--symbol", SYMBOL], env)
    csv.unlink()
    loader = work / f"memory{n}.py"
    loader.write_text(MEMORY_EXCHANGE.format(npy=str(npy), n=n))
    # The same span for both: a day of warm-up (or a tenth of a short series), to one minute before the end.
    warmup = min(1440, n // 10)
    span = ["--from", iso(START_MS + warmup * 60_000), "--to", iso(START_MS + (n - 2) * 60_000)]
    rows = []
    for path, extra in (("vectorised", []), ("per-frame", ["--per-frame"])):
        stored = timed([str(BTK), "backtest", "sma_cross", "--exchange", "synth", "--symbol", SYMBOL, *span, "--json",
                        *extra], env)
        memory = timed([str(BTK), "--load", str(loader), "backtest", "sma_cross", "--exchange", "memory", "--symbol",
                        SYMBOL, *span, "--json", *extra], env)
        same = trades(stored[2]) == trades(memory[2])
        rows.append({"candles": n, "path": path, "import_s": imported, "stored_s": stored[0], "memory_s": memory[0],
                     "ratio": stored[0] / memory[0], "stored_rss": stored[1], "memory_rss": memory[1],
                     "trades": len(trades(stored[2])), "same": same})
    npy.unlink()
    return rows


def iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M", time.gmtime(ms / 1000))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000,10000000")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    print(f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, Python {platform.python_version()}, one run each\n")
    print("| candles | path | import s | cold s, stored | cold s, memory | stored / memory | RSS MB stored / memory "
          "| trades | same trades |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(x) for x in args.sizes.split(",")):
            for r in case(n, Path(tmp)):
                print(f"| {r['candles']:,} | {r['path']} | {r['import_s']:.1f} | {r['stored_s']:.2f} | "
                      f"{r['memory_s']:.2f} | {r['ratio']:.2f}x | {r['stored_rss']:.0f} / {r['memory_rss']:.0f} | "
                      f"{r['trades']:,} | {'yes' if r['same'] else 'NO'} |", flush=True)


if __name__ == "__main__":
    main()
