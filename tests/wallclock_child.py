"""A live run on the wall clock that tests/test_wallclock_crash.py kills and restarts.

The real path of a live run: two strategies (each with a risk profile) on ``binance`` through the
real ccxt client, pointed at the local exchange simulator, ticking on a ``WallClock`` whose time
is injected: market time ``start + (now - epoch) * speed``, with ``epoch`` a wall-clock second
given by the test and shared by every life of the run, so time goes on while the process is
dead and every restart comes at a later minute. The run ends at ``end``. Each event it hears is
appended to a log (one JSON line, flushed, with its event id).

Faults, from ``BTK_FAULT`` (``kind:N``, for one life):
  ``fsync:N`` / ``replace:N`` / ``dirsync:N``  SIGKILL at the N-th step of that kind of an atomic write
  ``history-before:N`` / ``history-after:N``   SIGKILL before / after the N-th close recorded in the history
  ``enospc:N``                                  atomic writes N..N+19 fail (disk full), then the disk recovers
"""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import sys
import time

import engine as bk
import engine.persistence.history as history
import engine.persistence.state as state
from engine.context import WallClock
from engine.exchange.ccxt_exchange import add_ccxt_exchange
from crash_kit import log_events, register_two_strategies

SETTLE_S = 2.0


class EndingClock(WallClock):
    """The product's wall clock, which never ends, told where the simulation ends."""

    def __init__(self, end: int, **kw):
        super().__init__(SETTLE_S, **kw)
        self.end = end

    async def first(self, resume_at):
        now = await super().first(resume_at)
        return now if now <= self.end else None

    async def next(self):
        now = await super().next()
        return now if now <= self.end else None


def arm(spec: str) -> None:
    kind, _, count = spec.partition(":")
    left = {"n": int(count)}

    def due(name: str) -> bool:
        if name == kind:
            left["n"] -= 1
            return left["n"] <= 0
        return False

    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    if kind.startswith("history"):
        record = history.SignalHistory.record

        async def recording(self, closed):
            if due("history-before"):
                die()
            await record(self, closed)
            if due("history-after"):
                die()
        history.SignalHistory.record = recording
        return

    real_fsync, real_replace, real_mkstemp = os.fsync, os.replace, state.tempfile.mkstemp
    writes = {"n": 0}

    def full() -> bool:
        if kind != "enospc":
            return False
        writes["n"] += 1
        return int(count) <= writes["n"] < int(count) + 20

    class FaultyOs:
        def __getattr__(self, attr):
            return getattr(os, attr)

        def fsync(self, fd):
            if due("fsync"):
                die()
            return real_fsync(fd)

        def replace(self, a, b):
            if due("replace"):
                die()
            result = real_replace(a, b)
            if due("dirsync"):   # after the rename, before the directory is synced
                die()
            return result

    class FaultyTempfile:
        def mkstemp(self, *a, **k):
            if full():
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real_mkstemp(*a, **k)

    state.os = FaultyOs()
    state.tempfile = FaultyTempfile()


async def main(url: str, state_dir: str, log_path: str, start: int, end: int, epoch: float, speed: float) -> None:
    def market_ms() -> float:
        return start + (time.time() - epoch) * 1000.0 * speed

    def live_clock(symbol):
        return EndingClock(end, time_ms=market_ms, speed=speed)

    adapter = add_ccxt_exchange("binance", api_url=url, live_clock=live_clock, now=lambda: int(market_ms()))
    adapter.client.enableRateLimit = False     # the simulator is local; ccxt's pacing would be the bottleneck
    register_two_strategies()
    log = log_events(log_path)

    async def run(name: str) -> None:
        async for _ in bk.Live.run("BTCUSDT", strategy_name=name, exchange_name="binance", state_dir=state_dir):
            pass

    try:
        await asyncio.gather(run("sma"), run("meanrev"))
    finally:
        await adapter.close()
        log.close()
    unsaved = [r for r in bk.Live.list() if r["unsaved"]]
    sys.exit(1 if unsaved else 0)


if __name__ == "__main__":
    if os.environ.get("BTK_FAULT"):
        arm(os.environ["BTK_FAULT"])
    url, state_dir, log_path, start, end, epoch, speed = sys.argv[1:8]
    asyncio.run(main(url, state_dir, log_path, int(start), int(end), float(epoch), float(speed)))
