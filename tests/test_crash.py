"""Crash safety: a live replay killed with SIGKILL over and over ends exactly as an uninterrupted one.

The child (tests/crash_child.py) runs two strategies with risk profiles on one
state dir. The test kills it at random moments, and at random steps of a
state write (the child kills itself there), restarts it each time, and checks:
every state file parses after every kill; every event of the uninterrupted run
was heard (at least once: the change before a kill may be delivered again), and
every repeat is that same event (same id, minute and price); the closed signals
equal those of an uninterrupted run over the same candles.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest

import engine as bk
from engine.exchange.bundled import ensure_seeded
from engine.persistence.history import SignalHistory
from engine.persistence.journal import Journal
from engine.interval import MINUTE_MS
from engine.partial import PartialState
from engine.risk import RiskPosition
from engine.runners.live import LiveCursor

CHILD = Path(__file__).with_name("crash_child.py")
MINUTES = 8000
STATE_TYPES = {"signal": bk.SignalRow | None, "schedule": bk.SignalRow | None, "risk": list[RiskPosition],
               "partial": dict[str, PartialState], "live": LiveCursor, "journal": Journal}


def spawn(store, state_dir, journal, start, end, crash_at=None):
    env = dict(os.environ)
    env.pop("BTK_CRASH_AT", None)
    if crash_at:
        env["BTK_CRASH_AT"] = crash_at
    return subprocess.Popen([sys.executable, str(CHILD), str(store), str(state_dir), str(journal), str(start),
                             str(end)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def check_state_files(state_dir: Path) -> int:
    """Every state file decodes as its type (a torn file would not). Returns how many."""
    count = 0
    for path in state_dir.glob("*.json"):
        domain = path.name.split("_", 1)[0]
        msgspec.json.decode(path.read_bytes(), type=STATE_TYPES[domain])
        count += 1
    assert not list(state_dir.glob("*.corrupt-*")), "a state file was found corrupt"
    return count


def closed_signals(state_dir: Path):
    async def read():
        history = SignalHistory(str(state_dir / "history.sqlite"))
        await history.open()
        try:
            return await history.closed()
        finally:
            await history.close()
    # Per strategy, in the order they closed (two strategies' closes interleave by timing).
    return sorted([(c.strategy_name, c.signal.id, c.close_reason, c.close_timestamp, c.pnl.price_close,
             c.pnl.pnl_percentage, c.signal.peak_pnl, c.signal.trough_pnl) for c in asyncio.run(read())],
                  key=lambda row: row[0])


def journal(path: Path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_sigkill_at_random_moments_loses_and_duplicates_nothing(tmp_path):
    crash_campaign(tmp_path, min_kills=16, seed=20261121)


@pytest.mark.slow
def test_a_longer_campaign_of_sigkills_loses_and_duplicates_nothing(tmp_path):
    crash_campaign(tmp_path, min_kills=80, seed=20261125)


def crash_campaign(tmp_path: Path, *, min_kills: int, seed: int) -> None:
    """Kill a two-strategy replay at least ``min_kills`` times (about a third of them inside a
    state write), restart it each time, and compare the end with an uninterrupted run."""
    store = tmp_path / "store.sqlite3"
    asyncio.run(ensure_seeded(store))
    start = asyncio.run(bk.ReplayExchange(store_path=store).live_clock("BTCUSDT")).start
    end = start + MINUTES * MINUTE_MS

    # The uninterrupted run, timed to pace the kills.
    began = time.monotonic()
    reference = spawn(store, tmp_path / "ref", tmp_path / "ref.jsonl", start, end)
    assert reference.wait(timeout=120) == 0, reference.stderr.read().decode()
    work = time.monotonic() - began
    expected = closed_signals(tmp_path / "ref")
    assert len(expected) >= 20

    rng = random.Random(seed)
    state_dir, log = tmp_path / "crash", tmp_path / "crash.jsonl"
    kills = write_kills = lives = 0
    deadline = time.monotonic() + 240
    while True:
        assert time.monotonic() < deadline, f"no finish after {lives} lives"
        lives += 1
        at_write = kills < min_kills * 2 and lives % 3 == 0
        crash_at = f"{rng.choice(['fsync', 'replace', 'dirsync'])}:{rng.randint(1, 30)}" if at_write else None
        child = spawn(store, state_dir, log, start, end, crash_at)
        # Long enough to make progress, short enough that most lives die mid-run.
        delay = rng.uniform(0.25, 0.25 + work / (min_kills * 0.8)) if kills < min_kills * 2 else None
        try:
            code = child.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            child.send_signal(signal.SIGKILL)
            code = child.wait()
        stderr = child.stderr.read().decode()
        if code == 0:
            if kills >= min_kills:
                break
            continue  # finished early: a restart resumes at the saved cursor and ends again
        assert code == -signal.SIGKILL, stderr
        kills += 1
        write_kills += crash_at is not None
        check_state_files(state_dir)

    assert kills >= min_kills and write_kills >= min_kills // 5
    check_state_files(state_dir)
    check_events(journal(tmp_path / "ref.jsonl"), journal(log))
    got = closed_signals(state_dir)
    assert got == expected


def check_events(reference: list[dict], heard: list[dict]) -> int:
    """Every event of the reference was heard, nothing else was, and a repeat (a redelivery after a
    kill) is the same event. Returns how many repeats there were."""
    assert len({e["event_id"] for e in reference}) == len(reference), "the reference repeats an event"
    first: dict[str, dict] = {}
    for e in heard:
        same = {k: v for k, v in e.items() if k != "pid"}
        assert first.setdefault(e["event_id"], same) == same, f"{e['event_id']} came again with other values"
    assert set(first) == {e["event_id"] for e in reference}
    for e in reference:
        assert first[e["event_id"]] == {k: v for k, v in e.items() if k != "pid"}
    return len(heard) - len(first)
