"""A live replay that the crash test kills with SIGKILL and restarts (tests/test_crash.py).

Runs two strategies (each with a risk profile) on one state dir until the replay's end, appending every
lifecycle and milestone event it hears to a log (one JSON line each, flushed, with its event id).
``BTK_CRASH_AT=step:N`` makes the process SIGKILL itself at the N-th call of
``step`` inside the atomic write (``fsync``, ``replace``, ``dirsync``), i.e.
in the middle of a state write.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys

import engine as bk
import engine.persistence.state as persist
from strategies import mean_reversion, sma_cross


def arm_self_kill(spec: str) -> None:
    step, _, count = spec.partition(":")
    left = {"n": int(count)}
    real_fsync, real_replace = os.fsync, os.replace

    def tick(name: str) -> None:
        if name == step:
            left["n"] -= 1
            if left["n"] <= 0:
                os.kill(os.getpid(), signal.SIGKILL)

    class CrashingOs:
        def __getattr__(self, attr):
            return getattr(os, attr)

        def fsync(self, fd):
            tick("fsync")
            return real_fsync(fd)

        def replace(self, a, b):
            tick("replace")
            result = real_replace(a, b)
            tick("dirsync")   # after the rename, before the directory is synced
            return result

    persist.os = CrashingOs()


async def main(store: str, state_dir: str, journal_path: str, start: int, end: int) -> None:
    bk.add_replay_exchange("replay", store_path=store, speed=0, start=start, end=end)
    # One risk profile each: two replay runs advance on their own clocks, so a shared limit would
    # depend on how their ticks interleave (as it depends on timing live).
    for name in ("sma", "meanrev"):
        bk.add_risk(f"cap_{name}", validations=[lambda a: "one open at most" if a.active_position_count else None])
    bk.add_strategy("sma", sma_cross.get_signal, risk_name="cap_sma")
    bk.add_strategy("meanrev", mean_reversion.get_signal, interval="5m", risk_name="cap_meanrev")
    journal = open(journal_path, "a", buffering=1)

    def write(kind: str, event, **extra) -> None:
        journal.write(json.dumps({"kind": kind, "id": event.signal.id, "event_id": event.event_id,
                                  "pid": os.getpid(), **extra}) + "\n")

    def on_signal(r) -> None:
        if r.action in ("opened", "closed", "scheduled", "cancelled"):
            write(r.action, r, strategy=r.strategy_name, at=r.created_at,
                  price=r.pnl.price_close if r.action == "closed" else r.signal.price_open)

    bk.listen_signal_live(on_signal)
    bk.listen_partial_profit(lambda e: write("profit", e, level=e.level, at=e.timestamp))
    bk.listen_partial_loss(lambda e: write("loss", e, level=e.level, at=e.timestamp))
    bk.listen_error(lambda e: sys.stderr.write(f"error: {e.where}: {e.error}\n"))

    async def run(name: str) -> None:
        async for _ in bk.Live.run("BTCUSDT", strategy_name=name, exchange_name="replay", state_dir=state_dir):
            pass

    await asyncio.gather(run("sma"), run("meanrev"))
    journal.close()


if __name__ == "__main__":
    if os.environ.get("BTK_CRASH_AT"):
        arm_self_kill(os.environ["BTK_CRASH_AT"])
    store, state_dir, journal_path, start, end = sys.argv[1:6]
    asyncio.run(main(store, state_dir, journal_path, int(start), int(end)))
