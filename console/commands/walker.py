"""``btk walker``: run a walker (or a sweep) with a progress bar and print its leaderboard,
or one JSON document (spec/API.md) with ``--json``."""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any

import msgspec

import engine as bk
from engine.persistence.state import atomic_write
from engine.runners.walker import OVERALL, walker_report

from ..progress import ProgressBar
from ..usage import UsageError, check_writable, one_line


# What Dask's Client accepts: [tcp|tls|inproc|ucx|ws|wss]://host:port, or host:port.
SCHEDULER_ADDRESS = re.compile(r"((tcp|tls|ucx|ws|wss)://)?(\[[0-9a-fA-F:]+\]|[\w.-]+):\d{1,5}|inproc://\S+")


def _symbols(args: argparse.Namespace, walker: Any) -> list[str]:
    given = [s.strip() for item in args.symbol for s in item.split(",") if s.strip()]
    symbols = list(dict.fromkeys(given)) or list(walker.symbols)
    if not symbols:
        raise UsageError(f"walker {walker.walker_name!r} names no symbols: give --symbol")
    return symbols


def results_doc(results: bk.WalkerResults) -> dict[str, Any]:
    """The API.md JSON contract, plus each row's rank, trade count, gates, error, seconds and path."""
    def stats(s: bk.BacktestStatistics | None) -> dict[str, Any] | None:
        if s is None:
            return None
        out = msgspec.structs.asdict(s)
        del out["signal_list"]
        return out

    return {"walker_name": results.walker_name, "symbol": results.symbol, "metric": results.metric,
            "best_strategy": results.best_strategy, "best_metric": results.best_metric,
            "results": [{"strategy_name": r.strategy_name, "metric_value": r.metric_value, "stats": stats(r.stats),
                         "rank": r.rank, "total_signals": r.total_signals, "below_gates": r.below_gates,
                         "error": r.error, "cached": r.cached, "seconds": r.seconds, "vectorised": r.vectorised}
                        for r in results.rows]}


def leaderboard(results: bk.WalkerResults) -> str:
    title = "all symbols (signals pooled)" if results.symbol == OVERALL else results.symbol
    lines = [f"{results.walker_name} on {title}, by {results.metric}:"]
    for r in results.rows:
        value = "N/A" if r.metric_value is None else f"{r.metric_value:10.4f}"
        note = r.error or ("below gates (<10 trades)" if r.below_gates else "")
        lines.append(f"  {r.rank or '-':>3}  {r.strategy_name:28} {value:>10}  {r.total_signals:>5} trades  "
                     f"{'cached ' if r.cached else ''}{note}")
    if results.best_strategy is not None:
        lead = f", {results.lead:.4f} ahead of {results.runner_up}" if results.lead is not None else ""
        lines.append(f"  best: {results.best_strategy}{lead}")
    else:
        lines.append("  best: none (no strategy has a value for the metric)")
    return "\n".join(lines)


async def run_walker(args: argparse.Namespace) -> int:
    known = {w.walker_name: w for w in bk.list_walkers()}
    if args.walker not in known:
        raise UsageError(f"unknown walker {args.walker!r} (known: {', '.join(sorted(known)) or 'none'})")
    if args.scheduler and args.executor != "dask":
        raise UsageError("--scheduler needs --executor dask")
    if args.scheduler and not SCHEDULER_ADDRESS.fullmatch(args.scheduler):
        raise UsageError(f"--scheduler {args.scheduler!r}: expected a Dask scheduler address such as "
                         "tcp://10.0.0.5:8786 (or host:port)")
    if args.report:
        check_writable(args.report, "--report")
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers must be at least 1, got {args.workers}")
    walker = known[args.walker]
    symbols = _symbols(args, walker)
    bar = ProgressBar() if sys.stderr.isatty() else None
    errors: list[Any] = []
    unsubscribe = [bk.listen_error(errors.append)]
    if bar is not None:
        unsubscribe.append(bk.listen_walker_progress(lambda e: bar.show(e.processed_cells, e.total_cells, "cells")))
    try:
        async for _ in bk.Walker.run(symbols if len(symbols) > 1 else symbols[0], walker_name=args.walker,
                                     executor=args.executor, scheduler=args.scheduler, fresh=args.fresh,
                                     workers=args.workers):
            pass
    finally:
        for stop in unsubscribe:
            stop()
        if bar is not None:
            bar.finish()
    keys = symbols + ([OVERALL] if len(symbols) > 1 else [])
    all_results = [r for r in [await bk.Walker.get_data(k, walker_name=args.walker) for k in keys] if r is not None]
    per_symbol = [r for r in all_results if r.symbol != OVERALL]
    cells = [(r.symbol, row) for r in per_symbol for row in r.rows]
    failed = [(symbol, row) for symbol, row in cells if row.error is not None and row.error != "not run"]
    if args.report:
        atomic_write(args.report, "\n".join(walker_report(r) for r in all_results).encode())
    if args.json:
        docs = [results_doc(r) for r in all_results]
        doc = docs[0] if len(docs) == 1 else {**docs[-1], "symbols": {d["symbol"]: d for d in docs[:-1]}}
        doc["errors"] = len(failed)
        sys.stdout.buffer.write(msgspec.json.encode(doc) + b"\n")
    else:
        print("\n\n".join(leaderboard(r) for r in all_results))
    if failed:
        symbol, row = failed[0]
        print(f"btk: {len(failed)} of {len(cells)} cells failed, first: {row.strategy_name} on {symbol}: "
              f"{one_line(row.error)}", file=sys.stderr)
        return 1
    if errors:
        print(f"btk: {len(errors)} error(s) during the walk, first: {one_line(errors[0].error)}", file=sys.stderr)
    return 0
