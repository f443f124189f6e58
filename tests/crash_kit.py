"""What the crash children share (tests/crash_child.py, tests/wallclock_child.py): the two strategies
they run and the log of every event they hear (one JSON line each, flushed, with its event id)."""

from __future__ import annotations

import json
import os
import sys
from typing import IO

import engine as bk
from strategies import mean_reversion, sma_cross


def register_two_strategies() -> None:
    """sma (1m, market entries) and meanrev (5m, limit entries), one risk profile each: two runs
    advance on their own clocks, so a shared limit would depend on how their ticks interleave."""
    for name in ("sma", "meanrev"):
        bk.add_risk(f"cap_{name}", validations=[lambda a: "one open at most" if a.active_position_count else None])
    bk.add_strategy("sma", sma_cross.get_signal, risk_name="cap_sma")
    bk.add_strategy("meanrev", mean_reversion.get_signal, interval="5m", risk_name="cap_meanrev")


def log_events(path: str) -> IO[str]:
    """Append each lifecycle and milestone event heard to ``path``; errors go to stderr."""
    log = open(path, "a", buffering=1)

    def write(kind: str, event, **extra) -> None:
        log.write(json.dumps({"kind": kind, "id": event.signal.id, "event_id": event.event_id, "pid": os.getpid(),
                              **extra}) + "\n")

    def on_signal(r) -> None:
        if r.action in ("opened", "closed", "scheduled", "cancelled"):
            write(r.action, r, strategy=r.strategy_name, at=r.created_at,
                  price=r.pnl.price_close if r.action == "closed" else r.signal.price_open)

    bk.listen_signal_live(on_signal)
    bk.listen_partial_profit(lambda e: write("profit", e, level=e.level, at=e.timestamp))
    bk.listen_partial_loss(lambda e: write("loss", e, level=e.level, at=e.timestamp))
    bk.listen_error(lambda e: sys.stderr.write(f"error: {e.where}: {e.error}\n"))
    return log
