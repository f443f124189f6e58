"""Crash safety on the real path of a live run: the wall clock, the real ccxt client, restarts at
later minutes (tests/wallclock_child.py).

The child runs two strategies on ``binance`` through ccxt, pointed at the exchange simulator (a
process of its own on 127.0.0.1), on a wall clock whose time runs ``SPEED`` times faster and goes
on while the child is dead. The test kills it (SIGKILL) at random moments, at random steps of a
state write, before and after a close is recorded in the history, and runs lives whose disk is full
for twenty writes; it restarts it each time, at a later minute. A restarted run catches up: it
re-ticks the minutes since its saved cursor, so every close is judged at its real minute. At the
end, every state file parses, the closed signals equal an uninterrupted run's (ids, minutes,
reasons, prices, PnL, peak and trough), and the events heard equal its events, each at least once
(a repeat is the same event).
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.exchange.bundled import ensure_seeded
from engine.interval import MINUTE_MS

from .test_crash import check_events, check_state_files, closed_signals, journal

CHILD = Path(__file__).with_name("wallclock_child.py")
START = 1677715200000          # 2023-03-02T00:00Z, a day into the bundled BTCUSDT candles
FAULTS = ("fsync", "replace", "dirsync", "history-before", "history-after", "enospc")


@pytest.fixture(scope="module")
def simulator(tmp_path_factory):
    store = tmp_path_factory.mktemp("sim") / "store.sqlite3"
    asyncio.run(ensure_seeded(store))
    sim = subprocess.Popen([sys.executable, "-m", "engine.exchange.simulator", "--port", "0", "--store", str(store)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = sim.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert url, line + sim.stderr.read()
        yield url.group(0)
    finally:
        sim.send_signal(signal.SIGTERM)
        sim.wait(timeout=30)


def spawn(url, state_dir, log, end, epoch, speed, fault=None):
    env = {k: v for k, v in os.environ.items() if k != "BTK_FAULT"}
    if fault:
        env["BTK_FAULT"] = fault
    return subprocess.Popen([sys.executable, str(CHILD), url, str(state_dir), str(log), str(START), str(end),
                             repr(epoch), str(speed)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_a_wall_clock_run_killed_and_restarted_at_later_minutes_ends_as_an_uninterrupted_one(simulator, tmp_path):
    campaign(simulator, tmp_path, minutes=960, speed=4800.0, min_kills=6, seed=20261206)   # 12 s of wall time


@pytest.mark.slow
def test_two_hundred_kills_on_the_wall_clock(simulator, tmp_path):
    campaign(simulator, tmp_path, minutes=8000, speed=1200.0, min_kills=200, seed=20261207)  # 400 s


def campaign(url: str, tmp_path: Path, *, minutes: int, speed: float, min_kills: int, seed: int) -> None:
    end = START + minutes * MINUTE_MS
    reference = spawn(url, tmp_path / "ref", tmp_path / "ref.jsonl", end, time.time(), speed)
    assert reference.wait(timeout=minutes * 60 / speed + 120) == 0, reference.stderr.read().decode()
    expected = closed_signals(tmp_path / "ref")
    assert len(expected) >= 5

    rng = random.Random(seed)
    state_dir, log = tmp_path / "crash", tmp_path / "crash.jsonl"
    epoch = time.time()          # the crash run's clock: it goes on while the child is dead
    kills, faults, lives = 0, {kind: 0 for kind in FAULTS}, 0
    while True:
        lives += 1
        assert lives < min_kills * 4 + 20, f"no end after {lives} lives ({kills} kills)"
        fault = None
        if lives % 2 == 0:
            kind = FAULTS[(lives // 2) % len(FAULTS)]
            fault = f"{kind}:{rng.randint(1, 3 if kind.startswith('history') else 40)}"
        child = spawn(url, state_dir, log, end, epoch, speed, fault)
        # Kills while the span lasts; past its end, the life that catches up is let finish.
        over = time.time() > epoch + minutes * 60 / speed
        try:
            code = child.wait(timeout=120 if over and not fault else rng.uniform(0.8, 2.0))
        except subprocess.TimeoutExpired:
            child.send_signal(signal.SIGKILL)
            code = child.wait()
        stderr = child.stderr.read().decode()
        if code == -signal.SIGKILL:
            kills += 1
            if fault:
                faults[fault.split(":")[0]] += 1
            check_state_files(state_dir)
            continue
        assert code == 0, stderr
        assert "Traceback" not in stderr, stderr
        break                    # the clock passed the end: the run ended (after its catch-up)
    print(f"wall-clock campaign: {lives} lives, {kills} kills, faults {faults}")
    assert kills >= min_kills, f"only {kills} kills before the end"
    assert sum(faults.values()) >= min_kills // 3, faults
    check_state_files(state_dir)
    check_events(journal(tmp_path / "ref.jsonl"), journal(log))
    assert closed_signals(state_dir) == expected
