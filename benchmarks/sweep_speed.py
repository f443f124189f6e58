"""Wall time of the default workspace's 24-cell sweep (``sma_sweep``: 12 SMA parameter sets x
ETHBTC and LTCBTC, ten days of bundled 1m candles each) through each executor.

    python benchmarks/sweep_speed.py                    # inline, process, dask (LocalCluster)
    python benchmarks/sweep_speed.py --executors inline process

Each executor runs in a fresh process on a fresh candle store and cache (so nothing is cached),
timing the walk alone (the store is seeded before the clock starts; pool or cluster start-up is
included). The first executor also times a second, cached run of the same sweep; the process pool
and Dask a second walk, nothing cached, on the workers they kept. The last lines are the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


async def _case(executor: str, runs: int, fresh: bool = False) -> dict:
    import engine as bk
    from console.workspace import open_workspace
    from engine.executors import core_count

    await open_workspace()
    walker = bk.registry.get_walker("sma_sweep")
    symbols = list(walker.symbols)
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        cells = cached = 0
        async for event in bk.Walker.run(symbols, walker_name="sma_sweep", executor=executor, fresh=fresh):
            cells += 1
            cached += event.cached
        timings.append(time.perf_counter() - started)
    best = await bk.Walker.get_data("*", walker_name="sma_sweep")
    return {"executor": executor, "cells": cells, "cached": cached, "seconds": timings, "cores": core_count(),
            "best": best.best_strategy if best else None, "fresh": fresh}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executors", nargs="+", default=["inline", "process", "dask"])
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        executor, runs, fresh = args.case.split(":")
        print(json.dumps(asyncio.run(_case(executor, int(runs), fresh == "fresh"))))
        return
    rows = []
    for i, executor in enumerate(args.executors):
        home = tempfile.mkdtemp(prefix="btk-sweep-bench-")
        # Inline (when first) also times a cached re-run; the pool and Dask a second walk on the
        # workers they kept.
        kept = executor in ("process", "dask")
        runs = 2 if i == 0 or kept else 1
        fresh = "fresh" if kept else "cache"
        out = subprocess.run([sys.executable, __file__, "--case", f"{executor}:{runs}:{fresh}"], capture_output=True,
                             text=True, env={**os.environ, "BTK_HOME": home})
        if out.returncode != 0:
            print(f"{executor:8} failed: {out.stderr.strip().splitlines()[-1] if out.stderr.strip() else '?'}")
            continue
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    for r in rows:
        print(f"{r['executor']:8} {r['cells']} cells  {r['seconds'][0]:6.2f} s  ({r['cores']} cores)  "
              f"best overall: {r['best']}")
    for r in rows:
        if len(r["seconds"]) > 1 and r["fresh"]:
            kept = "the pool kept" if r["executor"] == "process" else "the cluster kept"
            print(f"{r['executor']:8} {r['cells']} cells  {r['seconds'][1]:6.2f} s  (a second walk, nothing cached: "
                  f"{kept})")
        elif len(r["seconds"]) > 1:
            print(f"cached   {r['cells']} cells  {r['seconds'][1]:6.2f} s  (second run, {r['cached']} from the cache)")
    by = {r["executor"]: r["seconds"] for r in rows}
    if "process" in by and "dask" in by:     # the target: Dask within 80 % of the pool's speed
        print(f"dask / process: {by['dask'][0] / by['process'][0]:.2f}x the time for a first walk, "
              f"{by['dask'][1] / by['process'][1]:.2f}x for a second")
    if "inline" in by and "process" in by:
        print(f"process / inline: {by['process'][0] / by['inline'][0]:.2f}x for a first walk (the pool's start "
              f"included), {by['process'][1] / by['inline'][0]:.2f}x for a second")


if __name__ == "__main__":
    main()
