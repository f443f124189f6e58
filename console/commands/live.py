"""``btk live``: one strategy on one symbol, live or on a replay, with a status line per tick.

Ctrl-C once stops gracefully (no new signals, a scheduled order is cancelled,
an open position is watched until it closes); Ctrl-C again, or SIGTERM, exits
at once. State is saved before every event, so the next start resumes.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

import engine as bk
from engine.config import get_config
from engine.interval import MINUTE_MS, iso, to_ms
from engine.exchange.markets import market_problem, registered_or_ccxt, stored_series
from engine.runners.live import ResumeConflict
from engine.persistence.candles import DEFAULT_WARMUP_MINUTES, default_home

from ..usage import UsageError, parse_time



def _path_part(name: str) -> str:
    """A name as one path component, percent-encoded (``BTC/USDT`` -> ``BTC%2FUSDT``; never ``..``)."""
    part = quote(name, safe="")
    return part.replace(".", "%2E") if part in (".", "..") else part


def default_state_dir(args: argparse.Namespace) -> Path:
    """Each strategy, symbol and exchange (a replay: and its source) keeps its own live state
    under ``$BTK_HOME/live``, so runs of other spans or markets never share a saved run."""
    where = ["replay", args.source] if args.exchange == "replay" else [args.exchange]
    return default_home().joinpath("live", *map(_path_part, [*where, args.symbol, args.strategy]))


async def _replay_span(args: argparse.Namespace, store: Path) -> tuple[int | None, int | None]:
    """``--from`` / ``--to`` of a replay, checked against the stored candles: a tick needs the
    VWAP window of closed candles before it, and the last tick judges the last candle."""
    start = to_ms(parse_time(args.start, "--from")) if args.start else None
    end = to_ms(parse_time(args.end, "--to")) if args.end else None
    if start is not None and end is not None and start > end:
        raise UsageError(f"--from {iso(start)} is after --to {iso(end)}")
    stored = await stored_series(store, args.source, args.symbol)
    earliest = stored.first + get_config().CC_AVG_PRICE_CANDLES_COUNT * MINUTE_MS
    latest = stored.last + MINUTE_MS
    first_tick = start if start is not None else stored.first + DEFAULT_WARMUP_MINUTES * MINUTE_MS
    last_tick = end if end is not None else latest
    if first_tick < earliest or last_tick > latest or first_tick > last_tick:
        raise UsageError(f"{args.symbol} on {args.source}: the stored 1m candles cover {iso(stored.first)} to "
                         f"{iso(stored.last)}, so a replay can tick from {iso(earliest)} to {iso(latest)}: give "
                         "--from/--to within that")
    return start, end


async def _exchange_for(args: argparse.Namespace, store: Path) -> str:
    known = {e.exchange_name for e in bk.list_exchanges()}
    if args.exchange == "replay":
        if args.source not in known:
            raise UsageError(f"--source {args.source!r}: no such stored exchange (known: {', '.join(sorted(known))})")
        start, end = await _replay_span(args, store)
        try:
            bk.add_replay_exchange("replay", source=args.source, store_path=store, speed=args.speed, start=start,
                                   end=end)
        except ValueError as e:
            raise UsageError(str(e)) from None
        return "replay"
    if args.start or args.end:
        raise UsageError("--from and --to apply to --exchange replay only")
    name = registered_or_ccxt(args.exchange)
    problem = await market_problem(name, args.symbol)
    if problem:
        raise UsageError(problem)
    return name


class StatusLine:
    """One compact line per tick on stderr (rewritten in place on a terminal)."""

    def __init__(self, stream: TextIO | None = None, quiet: bool = False):
        self.stream, self.quiet = stream or sys.stderr, quiet
        self.tty = self.stream.isatty()
        self.closed = 0
        self.total_pnl = 0.0
        self.errors = 0
        self.partial = ""
        self.announced = False

    def _announce(self, r: Any) -> None:
        """Once the run ticks: whether it catches up on minutes missed while it was down."""
        run = next((x for x in bk.Live.list() if (x["symbol"], x["strategy_name"]) == (r.symbol, r.strategy_name)), None)
        if run is None or run["last_tick"] is None:
            return
        self.announced = True
        start = run["caught_up_from"]
        if start is not None and run["speed"] is None and run["last_tick"] is not None:
            self._line(f"btk: catching up: re-ticking the minutes from {iso(start)} (the last saved) to now, "
                       "so closes crossed while btk was down are recorded at their minute (--no-catch-up skips "
                       "them)", True)

    def _line(self, text: str, final: bool) -> None:
        if self.tty:
            self.stream.write("\r\x1b[2K" + text + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def tick(self, r: Any) -> None:
        if not self.announced:
            self._announce(r)
        when = iso(r.created_at)
        if r.action in ("opened", "scheduled", "closed", "cancelled"):
            s = r.signal
            if r.action == "closed":
                self.closed += 1
                self.total_pnl += r.pnl.pnl_percentage
                detail = f"{r.close_reason} at {r.pnl.price_close:.8g}  pnl {r.pnl.pnl_percentage:+.3f}%"
            elif r.action == "cancelled":
                detail = f"reason {r.reason}"
            else:
                detail = f"entry {s.price_open:.8g}  TP {s.price_take_profit:.8g}  SL {s.price_stop_loss:.8g}"
            self._line(f"{when} {r.action.upper():9} {s.position:5} {s.id[:8]}  {detail}", True)
            return
        if self.quiet:
            return
        if r.action == "active" and r.signal.pending_at is not None:
            s = r.signal
            pnl = bk.to_profit_loss(s, r.current_price).pnl_percentage
            state = f"open {s.position} {pnl:+.3f}%  TP {r.percent_tp:3.0f}%  SL {r.percent_sl:3.0f}%"
        elif r.action == "active":
            state = f"waiting {r.signal.position} entry {r.signal.price_open:.8g}"
        else:
            state = "flat"
        self._line(f"{when} {r.symbol} {r.strategy_name}  vwap {r.current_price:.8g}  {state}  "
                   f"closed {self.closed} ({self.total_pnl:+.2f}%)  errors {self.errors}", False)

    def error(self, event: Any) -> None:
        if event.where == "live":
            return  # the run ends on it; run_live's caller prints it once
        self.errors += 1
        self._line(f"error: {event.where}: {' '.join(str(event.error).split())}", True)

    def milestone(self, kind: str, event: Any) -> None:
        if not self.quiet:
            self._line(f"{iso(event.timestamp)} {kind.upper():9} {event.level:3d}% of the way to "
                       f"{'TP' if kind == 'profit' else 'SL'}  {event.signal.id[:8]}  at {event.current_price:.8g}", True)


async def run_live(args: argparse.Namespace, store: Path) -> int:
    known = {s.strategy_name for s in bk.list_strategies()}
    if args.strategy not in known:
        raise UsageError(f"unknown strategy {args.strategy!r} (known: {', '.join(sorted(known))})")
    if not args.symbol.strip():
        raise UsageError("--symbol must not be empty")
    try:
        return await _run(args, store)
    finally:
        for e in bk.list_exchanges():      # a ccxt client that was opened, even to check a symbol
            if e.close is not None:
                await e.close()


async def _run(args: argparse.Namespace, store: Path) -> int:
    exchange = await _exchange_for(args, store)
    if args.state_dir is None:
        args.state_dir = default_state_dir(args)
    if args.fresh:
        folder = bk.Live.set_aside(args.symbol, strategy_name=args.strategy, state_dir=args.state_dir)
        if folder is not None:
            print(f"btk: the saved run of {args.strategy} on {args.symbol} was set aside in {folder}; starting fresh",
                  file=sys.stderr)
    status = StatusLine(quiet=args.quiet)
    unsubscribe = [bk.listen_signal_live(status.tick), bk.listen_error(status.error),
                   bk.listen_partial_profit(lambda e: status.milestone("profit", e)),
                   bk.listen_partial_loss(lambda e: status.milestone("loss", e))]
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    interrupts = 0

    def on_interrupt() -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts == 1:
            print("\nbtk: stopping: no new signals, an open position is watched until it closes "
                  "(Ctrl-C again exits now; the next start resumes it)", file=sys.stderr)
            bk.Live.stop(args.symbol, strategy_name=args.strategy)
        elif task is not None:
            task.cancel()

    def on_term() -> None:
        if task is not None:
            task.cancel()

    loop.add_signal_handler(signal.SIGINT, on_interrupt)
    loop.add_signal_handler(signal.SIGTERM, on_term)
    try:
        async for _ in bk.Live.run(args.symbol, strategy_name=args.strategy, exchange_name=exchange,
                                   state_dir=args.state_dir, catch_up=args.catch_up):
            pass
    except asyncio.CancelledError:
        print(f"btk: exited; state is in {args.state_dir}, the next start resumes it", file=sys.stderr)
        return 130
    except ResumeConflict as e:
        raise UsageError(str(e)) from None
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        loop.remove_signal_handler(signal.SIGTERM)
        for stop in unsubscribe:
            stop()
    stats = await bk.Live.get_data(args.symbol, strategy_name=args.strategy)
    run = next(r for r in bk.Live.list() if r["symbol"] == args.symbol and r["strategy_name"] == args.strategy)
    if run["redelivered"]:
        print(f"btk: {run['redelivered']} event(s) of the last change before the restart were delivered again "
              "(the process may have died before they went out; their event ids are the same)", file=sys.stderr)
    if run["status"] == "done" and (run["open"] or run["scheduled"]):
        held = " and ".join(x for x in ("an open position" if run["open"] else "",
                                         "a scheduled order" if run["scheduled"] else "") if x)
        print(f"btk: the replay ended at {iso(run['last_tick'])} with {held}: saved in {args.state_dir}; a run "
              "that continues from the next minute (a later --to) resumes it", file=sys.stderr)
    print(f"btk: {args.strategy} on {args.symbol} ({exchange}) ended: {status.closed} closed signal(s) this run, "
          f"{stats.total_signals} in the history of {args.state_dir} (total PnL "
          f"{stats.total_pnl if stats.total_pnl is not None else 0:+.3f}%), {status.errors} error(s)", file=sys.stderr)
    if run["unsaved"]:
        print(f"btk: the run failed to save its state: {'; '.join(run['unsaved'])} (see the errors above); "
              f"the files in {args.state_dir} hold the state before it", file=sys.stderr)
        return 1
    ticks = run["ticks"] + run["failed_ticks"]
    every_tick = bool(ticks) and run["failed_ticks"] == ticks
    if every_tick or (run["signal_calls"] and run["failed_signal_calls"] == run["signal_calls"]):
        print(f"btk: the run failed: every {'tick' if every_tick else 'get_signal call'} failed", file=sys.stderr)
        return 1
    return 0
