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

import engine as bk
from engine.interval import iso, to_ms

from .usage import UsageError, parse_time
from .workspace import registered_or_ccxt


def _exchange_for(args: argparse.Namespace, store: Path) -> str:
    known = {e.exchange_name for e in bk.list_exchanges()}
    if args.exchange == "replay":
        start = to_ms(parse_time(args.start, "--from")) if args.start else None
        end = to_ms(parse_time(args.end, "--to")) if args.end else None
        if args.source not in known:
            raise UsageError(f"--source {args.source!r}: no such stored exchange (known: {', '.join(sorted(known))})")
        try:
            bk.add_replay_exchange("replay", source=args.source, store_path=store, speed=args.speed, start=start,
                                   end=end)
        except ValueError as e:
            raise UsageError(str(e)) from None
        return "replay"
    if args.start or args.end:
        raise UsageError("--from and --to apply to --exchange replay only")
    try:
        return registered_or_ccxt(args.exchange)
    except ValueError as e:
        raise UsageError(str(e)) from None


class StatusLine:
    """One compact line per tick on stderr (rewritten in place on a terminal)."""

    def __init__(self, stream: TextIO = sys.stderr, quiet: bool = False):
        self.stream, self.quiet = stream, quiet
        self.tty = stream.isatty()
        self.closed = 0
        self.total_pnl = 0.0
        self.errors = 0
        self.partial = ""

    def _line(self, text: str, final: bool) -> None:
        if self.tty:
            self.stream.write("\r\x1b[2K" + text + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def tick(self, r: Any) -> None:
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
    exchange = _exchange_for(args, store)
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
                                   state_dir=args.state_dir):
            pass
    except asyncio.CancelledError:
        print(f"btk: exited; state is in {args.state_dir}, the next start resumes it", file=sys.stderr)
        return 130
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        loop.remove_signal_handler(signal.SIGTERM)
        for stop in unsubscribe:
            stop()
        for e in bk.list_exchanges():
            if e.close is not None:
                await e.close()
    stats = await bk.Live.get_data(args.symbol, strategy_name=args.strategy)
    print(f"btk: {args.strategy} on {args.symbol} ({exchange}) ended: {stats.total_signals} closed signal(s) "
          f"in {args.state_dir}, total PnL {stats.total_pnl if stats.total_pnl is not None else 0:+.3f}%",
          file=sys.stderr)
    return 0
