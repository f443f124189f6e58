"""The ``btk`` command line.

Exit status 0 on success, 2 on bad arguments, 1 on a failed run; the reason
is one line on stderr. ``--json`` prints one JSON document on stdout and
nothing else there.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

import engine as bk
from engine.interval import MINUTE_MS, interval_ms, iso, to_ms
from engine.log import describe_error
from engine.position import ACTIONS as COMMIT_ACTIONS
from engine.persistence.candles import CandleFileError, StoreError, connect, delete_candles, default_store_path, import_candles, read_candle_file, summaries

from engine.exchange.bundled import BUNDLED, StoreExchange, ensure_seeded
from engine.exchange.markets import MarketError, reserved_exchange_name, stored_frame, stored_series

from .progress import ProgressBar
from .usage import UsageError, check_writable, parse_time
from .workspace import WorkspaceError, open_workspace

def bk_executors() -> tuple[str, ...]:
    from engine.executors import EXECUTORS
    return EXECUTORS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="btk", description="Terminal trading console and backtest engine.")
    parser.add_argument("--version", action="version", version=f"btk {_version()}")
    parser.add_argument("--store", type=Path, default=None, help="candle store (default $BTK_HOME/btk.sqlite3)")
    parser.add_argument("--load", "--strategies", dest="load", action="append", default=[], metavar="FILE",
                        help="a Python file that registers strategies, frames, risks (repeatable)")
    parser.add_argument("--state-dir", dest="console_state_dir", type=Path, default=None,
                        help="console: where live runs keep their state (default $BTK_HOME/state)")
    parser.add_argument("--speed", dest="console_speed", type=float, default=None,
                        help="console: replay speed, market minutes per wall minute (default 600; 0 = flat out)")
    sub = parser.add_subparsers(dest="command")

    bt = sub.add_parser("backtest", help="backtest a strategy on stored candles")
    bt.add_argument("strategy", help="a registered strategy (see `btk strategies`)")
    bt.add_argument("--symbol", default="BTCUSDT", help="default BTCUSDT")
    bt.add_argument("--exchange", default="bundled", help="a stored exchange (see `btk data list`; default bundled)")
    bt.add_argument("--frame", help="a registered frame (see --load)")
    bt.add_argument("--from", dest="start", help="frame start, ISO date/time, UTC unless given")
    bt.add_argument("--to", dest="end", help="frame end, ISO date/time, UTC unless given")
    bt.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    bt.add_argument("--report", type=Path, help="write the markdown report to this file")
    bt.add_argument("--per-frame", action="store_true",
                    help="call get_signal on every frame even when the strategy offers get_signals")

    lv = sub.add_parser("live", help="run a strategy live (default: paper trading on a replay of stored candles)")
    lv.add_argument("strategy", help="a registered strategy (see `btk strategies`)")
    lv.add_argument("--symbol", default="BTCUSDT", help="default BTCUSDT")
    lv.add_argument("--exchange", default="replay",
                    help="replay (stored candles on an accelerated clock), a registered exchange, "
                         "or any ccxt exchange id such as binance (public candles, no keys)")
    lv.add_argument("--state-dir", default=None, type=Path,
                    help="where live state is kept; a restart resumes from it (default: one folder per exchange, "
                         "symbol and strategy under $BTK_HOME/live)")
    lv.add_argument("--fresh", action="store_true",
                    help="set the saved run of this strategy and symbol aside (into the state dir) and start anew")
    lv.add_argument("--speed", type=float, default=600.0,
                    help="replay: market minutes per 60 s of wall time (default 600; 0 = as fast as possible)")
    lv.add_argument("--source", default="bundled", help="replay: the stored exchange to replay (default bundled)")
    lv.add_argument("--from", dest="start", help="replay: first tick, ISO date/time (default: a day into the data)")
    lv.add_argument("--to", dest="end", help="replay: last tick, ISO date/time (default: the end of the data)")
    lv.add_argument("--quiet", action="store_true", help="no per-tick status line, only opens and closes")
    lv.add_argument("--no-catch-up", dest="catch_up", action="store_false",
                    help="a restart on the wall clock resumes at the current minute instead of first re-ticking "
                         "the minutes missed since the saved cursor")

    wk = sub.add_parser("walker", help="rank a walker's strategies (or a parameter sweep) by its metric")
    wk.add_argument("walker", help="a registered walker (see `btk walkers`)")
    wk.add_argument("--symbol", action="append", default=[], metavar="S",
                    help="symbol to walk (repeat or comma-separate for several; default: the walker's own)")
    wk.add_argument("--executor", default="inline", choices=bk_executors(),
                    help="where cells run: inline (default), process (one worker per core), dask")
    wk.add_argument("--scheduler", metavar="ADDRESS", help="dask: a scheduler, e.g. tcp://10.0.0.5:8786 "
                    "(default: a LocalCluster on this machine)")
    wk.add_argument("--workers", type=int, help="process / dask LocalCluster: worker count (default: the cores)")
    wk.add_argument("--fresh", action="store_true", help="ignore cached cells and compute every one again")
    wk.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    wk.add_argument("--report", type=Path, help="write the markdown report to this file")
    sub.add_parser("walkers", help="list the registered walkers")

    data = sub.add_parser("data", help="the candle store")
    data_sub = data.add_subparsers(dest="data_command")
    imp = data_sub.add_parser("import", help="import a timestamp_ms,open,high,low,close,volume CSV (.gz ok)")
    imp.add_argument("file", type=Path, help="timestamp_ms,open,high,low,close,volume rows after that header")
    imp.add_argument("--exchange", required=True, help="the name to store them under (not replay, not a ccxt id)")
    imp.add_argument("--symbol", required=True)
    imp.add_argument("--interval", default="1m", help="1m (default), 3m, 5m, 15m, 30m, 1h, 2h, 4h, 6h, 8h, 12h, 1d")
    data_sub.add_parser("list", help="what is stored: symbol, interval, first, last, rows, gaps")
    delete = data_sub.add_parser("delete", help="delete an exchange's stored candles (one symbol, or all)")
    delete.add_argument("--exchange", required=True, help="a stored exchange (not bundled)")
    delete.add_argument("--symbol", help="only this symbol (default: every symbol of the exchange)")
    delete.add_argument("--yes", action="store_true", help="do not ask first")

    sub.add_parser("strategies", help="list the registered strategies")

    sv = sub.add_parser("serve", help="run the engine headless, long-lived: consoles attach to it (btk attach)")
    sv.add_argument("--state-dir", dest="state_dir", type=Path, default=None,
                    help="the live runs' state (default $BTK_HOME/state, the console's)")
    sv.add_argument("--socket", type=Path, default=None, help="where to listen (default: .btk.sock in the state dir)")
    sv.add_argument("--speed", type=float, default=None, help="replay speed (default 600; 0 = flat out)")
    sv.add_argument("--log", type=Path, default=None, help="log file (default: serve.log in the state dir)")
    sv.add_argument("--no-catch-up", dest="catch_up", action="store_false",
                    help="runs started again on the wall clock resume at the current minute instead of first "
                         "re-ticking the minutes missed")

    at = sub.add_parser("attach", help="open the console on a running `btk serve`")
    at.add_argument("--state-dir", dest="state_dir", type=Path, default=None, help="the server's state dir")
    at.add_argument("--socket", type=Path, default=None, help="the server's socket")

    st = sub.add_parser("status", help="what a running `btk serve` runs: runs, positions, orders, errors")
    st.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    start = sub.add_parser("start", help="start a live run on a running `btk serve`")
    start.add_argument("strategy")
    start.add_argument("--symbol", default="BTCUSDT", help="default BTCUSDT")
    start.add_argument("--exchange", default="replay", help="replay (default), a stored exchange or a ccxt id")
    stop = sub.add_parser("stop", help="stop a live run on a running `btk serve` (its open position is watched "
                                       "until it closes)")
    stop.add_argument("strategy")
    stop.add_argument("--symbol", default=None, help="default: the strategy's only run")
    cm = sub.add_parser("commit", help="act on a live run's position or order on a running `btk serve`")
    cm.add_argument("action", choices=COMMIT_ACTIONS, help="what to do (position commands: docs/strategies.md)")
    cm.add_argument("strategy")
    cm.add_argument("--symbol", default=None, help="default: the strategy's only run")
    cm.add_argument("--percent", type=float, default=None,
                    help="partial_profit / partial_loss: the share of what is held to close; trailing_stop / "
                         "trailing_take: the shift of the original distance, in percent (negative: closer)")
    cm.add_argument("--cost", type=float, default=None, help="average_buy: the money of the new entry")
    cm.add_argument("--dry-run", dest="dry_run", action="store_true", help="say what it would do, do nothing")
    for p in (st, start, stop, cm):
        p.add_argument("--state-dir", dest="state_dir", type=Path, default=None, help="the server's state dir")
        p.add_argument("--socket", type=Path, default=None, help="the server's socket")

    ck = sub.add_parser("check", help="check a strategy's declared indicators for look-ahead and a short warm-up")
    ck.add_argument("strategy", help="a strategy that declares indicators (add_strategy(..., indicators=...))")
    ck.add_argument("--symbol", default="BTCUSDT", help="default BTCUSDT")
    ck.add_argument("--exchange", default="bundled", help="a stored exchange (default bundled)")
    ck.add_argument("--cuts", type=int, default=50, help="frames checked, spread over the stored candles (default 50)")
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("btk")
    except PackageNotFoundError:      # run from a source tree that was never installed
        return "(not installed)"


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        # The reader went away (`btk strategies | head -1`): say nothing more, and let the
        # interpreter's last flush go nowhere instead of failing with a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None or args.command == "attach":
        return _console(args)
    if args.command in ("serve", "status", "start", "stop", "commit"):
        from .commands.server import run_server_command
        try:
            return run_server_command(args)
        except UsageError as e:
            print(f"btk: {e}", file=sys.stderr)
            return 2
    if args.command == "data" and args.data_command is None:
        parser.parse_args(["data", "--help"])
    try:
        return asyncio.run(_dispatch(args))
    except (UsageError, MarketError) as e:
        print(f"btk: {e}", file=sys.stderr)
        return 2
    except (WorkspaceError, CandleFileError) as e:
        print(f"btk: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("btk: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        raise
    except Exception as e:
        print(f"btk: {describe_error(e)}", file=sys.stderr)
        return 1


def _console(args: argparse.Namespace) -> int:
    """``btk`` alone: open the console on the default workspace (bundled data, offline)."""
    from .app import BtkApp, exit_words
    from .context import DEFAULT_SPEED, ConsoleConfig
    from .glyphs import for_terminal
    speed = DEFAULT_SPEED if args.console_speed is None else args.console_speed
    if not speed >= 0:
        print(f"btk: --speed must be a number >= 0 (0: as fast as possible), got {speed}", file=sys.stderr)
        return 2
    store = args.store or default_store_path()
    config = ConsoleConfig(store=store, speed=speed, glyphs=for_terminal(), no_color=bool(os.environ.get("NO_COLOR")))
    state_dir = getattr(args, "state_dir", None) or args.console_state_dir
    if state_dir is not None:
        config.state_dir = state_dir
    # A server of this state dir (`btk serve`) owns its runs: attach to it; else host the engine here.
    from engine.service.remote import RemoteEngine
    from engine.service.server import reachable, socket_for
    where = getattr(args, "socket", None) or socket_for(config.state_dir)
    engine = None
    if args.command == "attach" or where.exists():
        if asyncio.run(reachable(where)):
            engine = RemoteEngine(where)
            if args.load:
                print(f"btk: attaching to the server at {where}: its strategies are the ones it loaded "
                      "(`btk serve --load FILE`); --load here is not used", file=sys.stderr)
        elif args.command == "attach":
            print(f"btk: no btk server answers on {where}: start one with `btk serve`", file=sys.stderr)
            return 1
    if engine is None:
        try:
            asyncio.run(open_workspace(store, args.load))
        except WorkspaceError as e:
            print(f"btk: {e}", file=sys.stderr)
            return 2
        except StoreError as e:
            print(f"btk: {e}", file=sys.stderr)
            return 1
    app = BtkApp(config, engine=engine)
    try:
        app.run()
    finally:
        app.engine.stop()        # whatever ended the console, live runs stop with their state saved
    words, code = exit_words(app)
    if words:
        print(words, file=sys.stderr)
    return code


async def _dispatch(args: argparse.Namespace) -> int:
    store = args.store or default_store_path()
    if args.command == "data" and args.data_command == "import":
        return await _data_import(args, store)
    if args.command == "data" and args.data_command == "delete":
        return await _data_delete(args, store)
    await open_workspace(store, args.load)
    if args.command == "data":
        return await _data_list(store)
    if args.command == "strategies":
        listed = bk.list_strategies()
        width = max((len(s.strategy_name) for s in listed), default=0)
        for s in listed:
            print(f"{s.strategy_name:{width}}  {s.interval:>4}  {s.note}")
        return 0
    if args.command == "live":
        from .commands.live import run_live
        return await run_live(args, store)
    if args.command == "walkers":
        listed = bk.list_walkers()
        width = max((len(w.walker_name) for w in listed), default=0)
        for w in listed:
            print(f"{w.walker_name:{width}}  {len(w.strategies):>3} strategies  {','.join(w.symbols) or '-':16} "
                  f"{w.frame_name:18} {w.metric:14} {w.note}")
        return 0
    if args.command == "walker":
        from .commands.walker import run_walker
        return await run_walker(args)
    if args.command == "check":
        return await _check(args, store)
    return await _backtest(args, store)


async def _check(args: argparse.Namespace, store: Path) -> int:
    """``btk check``: each declared indicator recomputed on the stored candles cut at ``--cuts``
    frames must give the full series' value there (no look-ahead), and recomputed on its
    ``startup`` candles alone too (a long enough warm-up for live)."""
    schema = next((s for s in bk.list_strategies() if s.strategy_name == args.strategy), None)
    if schema is None:
        raise UsageError(f"unknown strategy {args.strategy!r} (see `btk strategies`)")
    if not schema.indicators:
        raise UsageError(f"{args.strategy} declares no indicators: nothing to check")
    if args.cuts < 1:
        raise UsageError("--cuts must be at least 1")
    exchange = StoreExchange(args.exchange, store)
    problems = 0
    for name, ind in schema.indicators.items():
        summary = await stored_series(store, args.exchange, args.symbol)      # 1m: other intervals aggregate it
        step = interval_ms(ind.interval)
        since = -(-summary.first // step) * step
        count = (summary.last + MINUTE_MS - since) // step
        candles = await exchange.get_candles(args.symbol, ind.interval, since, count)
        cuts = sorted({int(k) for k in np.linspace(ind.startup, count - 1, min(args.cuts, count))})
        found = bk.indicator_problems(name, ind, candles, cuts)
        problems += len(found)
        for line in found:
            print(f"btk: {args.strategy}: {line}", file=sys.stderr)
        if not found:
            print(f"{args.strategy}.{name}: ok ({len(cuts)} frames of {count:,} {ind.interval} candles: no look-ahead, "
                  f"startup={ind.startup} is enough)")
    return 1 if problems else 0


async def _data_import(args: argparse.Namespace, store: Path) -> int:
    try:
        interval_ms(args.interval)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if not args.symbol.strip() or not args.exchange.strip():
        raise UsageError("--symbol and --exchange must not be empty")
    refusal = reserved_exchange_name(args.exchange)
    if refusal:
        raise UsageError(f"--exchange {args.exchange!r}: {refusal}; import under another name, e.g. "
                         f"--exchange {args.exchange}-csv")
    candles = read_candle_file(args.file, interval=args.interval)
    await ensure_seeded(store)  # seed first, so the bundled data never lands on top of user data
    db = await connect(store)
    try:
        result = await import_candles(db, args.exchange, args.symbol, args.interval, candles)
    finally:
        await db.close()
    print(f"imported {result.inserted} of {result.rows_read} candles into {args.exchange} {args.symbol} "
          f"{args.interval} ({result.already_stored} already stored"
          f"{f', {result.conflicts} differing from the stored values, which were kept' if result.conflicts else ''})")
    return 0


async def _data_delete(args: argparse.Namespace, store: Path) -> int:
    if args.exchange == BUNDLED:
        raise UsageError("the bundled candles come with btk and the console's samples use them: they cannot be "
                         "deleted (import your own under another exchange name)")
    db = await connect(store)
    try:
        stored = [s for s in await summaries(db)
                  if s.exchange == args.exchange and (args.symbol is None or s.symbol == args.symbol)]
        what = f"{args.exchange} {args.symbol}" if args.symbol else f"{args.exchange} (every symbol)"
        if not stored:
            raise UsageError(f"nothing stored for {what} (see `btk data list`)")
        rows = sum(s.rows for s in stored)
        if not args.yes:
            if not sys.stdin.isatty():
                raise UsageError(f"this would delete {rows:,} candles of {what}: add --yes to do it")
            answer = input(f"delete {rows:,} candles of {what} from {store}? [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                print("nothing deleted", file=sys.stderr)
                return 0
        deleted = await delete_candles(db, args.exchange, args.symbol)
    finally:
        await db.close()
    print(f"deleted {deleted:,} candles of {what}")
    return 0


async def _data_list(store: Path) -> int:
    db = await connect(store)
    try:
        rows = await summaries(db)
    finally:
        await db.close()
    print(f"{'exchange':12} {'symbol':10} {'interval':8} {'first':18} {'last':18} {'rows':>9} {'gaps':>6}")
    for s in rows:
        print(f"{s.exchange:12} {s.symbol:10} {s.interval:8} {iso(s.first):18} {iso(s.last):18} "
              f"{s.rows:>9,} {s.gaps:>6,}")
    return 0


async def _frame_for(args: argparse.Namespace, store: Path) -> str:
    if args.frame:
        if args.start or args.end:
            raise UsageError("give --frame or --from/--to, not both")
        if args.frame not in {f.frame_name for f in bk.list_frames()}:
            raise UsageError(f"unknown frame {args.frame!r} (known: "
                             f"{', '.join(f.frame_name for f in bk.list_frames()) or 'none; register one with --load'})")
        return args.frame
    start = to_ms(parse_time(args.start, "--from")) if args.start else None
    end = to_ms(parse_time(args.end, "--to")) if args.end else None
    return await stored_frame(store, args.exchange, args.symbol, start, end)


async def _backtest(args: argparse.Namespace, store: Path) -> int:
    known = {s.strategy_name for s in bk.list_strategies()}
    if args.strategy not in known:
        raise UsageError(f"unknown strategy {args.strategy!r} (known: {', '.join(sorted(known))})")
    if args.exchange not in {e.exchange_name for e in bk.list_exchanges()}:
        raise UsageError(f"unknown exchange {args.exchange!r} (known: "
                         f"{', '.join(e.exchange_name for e in bk.list_exchanges())})")
    if args.report:
        check_writable(args.report, "--report")
    frame = await _frame_for(args, store)
    bar = ProgressBar() if sys.stderr.isatty() else None
    unsubscribe = bk.listen_backtest_progress(bar.update) if bar else (lambda: None)
    errors: list[Any] = []
    stop_errors = bk.listen_error(errors.append)
    closed = []
    try:
        async for result in bk.Backtest.run(args.symbol, strategy_name=args.strategy, exchange_name=args.exchange,
                                            frame_name=frame, vectorised=False if args.per_frame else None):
            if result.action == "closed":
                closed.append(result)
    finally:
        unsubscribe()
        stop_errors()
        if bar:
            bar.finish()
    run = bk.Backtest.get_status(args.symbol, strategy_name=args.strategy)
    assert run is not None
    stats = bk.backtest_statistics(closed)
    if args.report:
        from engine.persistence.state import atomic_write
        report = await bk.Backtest.get_report(args.symbol, strategy_name=args.strategy)
        atomic_write(args.report, report.encode())
    if run["warmup"] is not None:
        stored_from, ready_at = run["warmup"]
        print(f"btk: note: {args.strategy} asks for history from before the stored candles (they begin at "
              f"{iso(stored_from)}): the frame's first minutes are its warm-up, no signal before {iso(ready_at)}",
              file=sys.stderr)
    if args.json:
        doc = {"symbol": args.symbol, "strategy_name": args.strategy, "exchange_name": args.exchange,
               "frame_name": frame, "stats": stats_dict(stats), "signals": closed, "errors": len(errors),
               "orders": run["orders"]}
        sys.stdout.buffer.write(msgspec.json.encode(doc) + b"\n")
    else:
        print(_summary(stats, args, frame, run["orders"]))
    if run["signal_calls"] and run["failed_signal_calls"] == run["signal_calls"]:
        print(f"btk: the run failed: every one of {run['signal_calls']:,} get_signal calls failed, first: "
              f"{describe_error(errors[0].error)}", file=sys.stderr)
        return 1
    if errors:
        print(f"btk: {len(errors):,} error(s) during the run, first: {describe_error(errors[0].error)}",
              file=sys.stderr)
    return 0


def stats_dict(stats: bk.BacktestStatistics) -> dict[str, Any]:
    out = msgspec.structs.asdict(stats)
    del out["signal_list"]
    return out


def _summary(stats: bk.BacktestStatistics, args: argparse.Namespace, frame: str, orders: Any) -> str:
    def f(v: Any, unit: str = "", digits: int = 3) -> str:
        return "N/A" if v is None else f"{v:.{digits}f}{unit}"
    return "\n".join([
        f"{args.strategy} on {args.symbol} ({args.exchange}, {frame})",
        f"  entries         {orders.summary()}",
        f"  closed signals  {stats.total_signals} ({stats.win_count} won, {stats.loss_count} lost)",
        f"  win rate        {f(stats.win_rate, '%', 2)}",
        f"  total PnL       {f(stats.total_pnl, '%')}",
        f"  average PnL     {f(stats.avg_pnl, '%')}",
        f"  Sharpe          {f(stats.sharpe_ratio)}",
        f"  Sortino         {f(stats.sortino_ratio)}",
        f"  max drawdown    {f(stats.max_drawdown, '%')}",
        f"  report          {args.report if args.report else '--report FILE writes the markdown report'}",
    ])


if __name__ == "__main__":
    sys.exit(main())
