"""A live replay that the crash test kills with SIGKILL and restarts (tests/test_crash.py).

Runs two strategies (each with a risk profile) on one state dir until the replay's end, appending every
lifecycle and milestone event it hears to a log (one JSON line each, flushed, with its event id).
``BTK_CRASH_AT=step:N`` makes the process SIGKILL itself at the N-th call of
``step`` inside the atomic write (``fsync``, ``replace``, ``dirsync``), i.e.
in the middle of a state write.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import engine as bk
import engine.persistence.state as persist
from crash_kit import log_events, register_two_strategies


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
    register_two_strategies()
    journal = log_events(journal_path)

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
