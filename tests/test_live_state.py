"""Live state on the wall clock (issue [3 of 6]): restarts at a later minute, writes that fail for a
while, damaged or foreign state files, shared risk slots, the history file, event delivery.

A "kill" here is an exception no handler catches (``Killed``, a BaseException) raised from the
persistence adapter at a chosen write: the run stops at that instant with its files as they are,
as after SIGKILL (tests/test_crash.py and tests/test_wallclock_crash.py do it with real signals).
A restart is a new ``Live.run`` after ``reset_risks()`` (a new process keeps nothing in memory).
"""

from __future__ import annotations

import errno
import json
import math
import os
import stat

import msgspec
import pytest

import engine as bk
from engine.context import Clock
from engine.interval import MINUTE_MS
from engine.risk import reset_risks
from tests.helpers import PriceExchange, minute, steps


class Killed(BaseException):
    """The process dies here."""


class ListClock(Clock):
    """A wall clock stand-in: ticks at the given minutes, whatever the saved cursor says (a process
    restarted later resumes at the current minute)."""

    def __init__(self, minutes):
        self.now = 0
        self.minutes = list(minutes)
        self.wake = None

    def continues(self, resume_at):
        return True

    async def first(self, resume_at):
        return self._next()

    async def next(self):
        return self._next()

    def _next(self):
        if not self.minutes:
            return None
        self.now = minute(self.minutes.pop(0))
        return self.now


def on_wall_clock(prices, minutes, *, symbol="BTC", name="wall"):
    """Exchange ``name`` serving ``prices`` whose live runs tick at ``minutes`` (a list, or a list per run)."""
    ex = PriceExchange(prices)
    runs = iter(minutes if minutes and isinstance(minutes[0], list) else [minutes])
    bk.add_exchange(name, ex.get_candles, live_clock=lambda s: ListClock(next(runs)))
    return ex


class Disk(bk.FilePersistence):
    """The default files, with faults: ``kill_when(domain, data)`` -> "before" / "after" kills the
    process before or after that write; ``fail_when(domain, data)`` -> True fails it (ENOSPC)."""

    kill_when = staticmethod(lambda domain, data: None)
    fail_when = staticmethod(lambda domain, data: False)
    writes: list = []

    def write(self, domain, key, data):
        when = Disk.kill_when(domain, data)
        if when == "before":
            raise Killed(f"before {domain}")
        if Disk.fail_when(domain, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        super().write(domain, key, data)
        Disk.writes.append((domain, key, data))
        if when == "after":
            raise Killed(f"after {domain}")


@pytest.fixture
def disk():
    Disk.kill_when = staticmethod(lambda domain, data: None)
    Disk.fail_when = staticmethod(lambda domain, data: False)
    Disk.writes = []
    bk.set_persistence(Disk)
    yield Disk


async def live(state_dir, symbol="BTC", strategy="s", exchange="wall", *, events=None):
    out = []
    try:
        async for r in bk.Live.run(symbol, strategy_name=strategy, exchange_name=exchange, state_dir=state_dir):
            out.append(r)
    finally:
        if events is not None:
            events.extend(out)
    return out


def take_once(**dto):
    state = {"done": False}

    def get_signal(symbol, when):
        if state["done"]:
            return None
        state["done"] = True
        return bk.SignalDto(**dto)
    return get_signal


def saved(state_dir, domain, key="BTC_s"):
    path = state_dir / f"{domain}_{key}.json"
    return json.loads(path.read_bytes()) if path.exists() else "absent"


# --- 2. a close recorded twice ---------------------------------------------------------------------

async def test_a_kill_between_the_recorded_close_and_the_cleared_signal_never_closes_it_twice(tmp_path, disk):
    """Closed at TP on minute 25; killed before the signal file is cleared; restarted at minute 40
    (a wall-clock restart): the close is not made again at the later minute, the history and the
    statistics count it once, and the close event comes again with the same id and values."""
    on_wall_clock(steps((100, 20), (112, 40)), [list(range(10, 30)), list(range(40, 45))])
    bk.add_strategy("s", take_once(position="long", price_take_profit=110, price_stop_loss=90,
                                   minute_estimated_time=600))
    state_dir = tmp_path / "state"
    disk.kill_when = staticmethod(lambda domain, data: "before" if domain == "signal" and data == b"null" else None)
    first: list = []
    with pytest.raises(Killed):
        await live(state_dir, events=first)
    assert [r.action for r in first] == ["opened"]
    disk.kill_when = staticmethod(lambda domain, data: None)
    reset_risks()
    second = await live(state_dir)
    closes = [r for r in second if r.action == "closed"]
    assert len(closes) == 1 and closes[0].close_timestamp == minute(25) and closes[0].pnl.price_close == 110
    stats = await bk.Live.get_data("BTC", strategy_name="s")
    assert stats.total_signals == 1
    assert saved(state_dir, "signal") is None
    history = await bk.Live.history(state_dir)
    assert [(c.signal.id, c.close_timestamp) for c in history] == [(closes[0].signal.id, minute(25))]


async def test_a_restored_signal_the_history_already_closed_is_cleared_not_closed_again(tmp_path):
    """A state dir whose signal file still holds a signal its history recorded closed (written by a
    btk without the journal, or the journal lost): the restart sees it closed."""
    on_wall_clock(steps((100, 20), (112, 40)), [list(range(10, 30)), list(range(40, 45))])
    bk.add_strategy("s", take_once(position="long", price_take_profit=110, price_stop_loss=90))
    state_dir = tmp_path / "state"
    first = await live(state_dir)
    opened, closed = [r for r in first if r.action in ("opened", "closed")]
    (state_dir / "signal_BTC_s.json").write_bytes(msgspec.json.encode(opened.signal))   # as if never cleared
    for leftover in state_dir.glob("journal_*.json"):
        leftover.unlink()
    reset_risks()
    second = await live(state_dir)
    assert not [r for r in second if r.action == "closed" and r.close_timestamp != closed.close_timestamp]
    assert (await bk.Live.get_data("BTC", strategy_name="s")).total_signals == 1
    assert saved(state_dir, "signal") is None


# --- 3. failed writes keep their order ----------------------------------------------------------------

LIMIT_PRICES = steps((100, 15), (96, 10), (100, 5), (104, 5), (108, 40))


def limit_order_strategy():
    bk.add_strategy("s", take_once(position="long", price_open=97, price_take_profit=120, price_stop_loss=90,
                                   minute_estimated_time=600))


@pytest.mark.parametrize("kill_at", range(0, 7))
async def test_writes_that_failed_reach_the_disk_in_order_so_no_crash_loses_the_position(tmp_path, disk, kill_at):
    """A limit order waits (saved); the disk fails from minute 12 to 45 while it activates and its
    peak moves (the signal is saved again and again); the disk recovers and the waiting writes go
    out; the process is killed at the ``kill_at``-th write after the recovery. Whatever was
    written, the restart holds the position: the order or the open signal, never neither."""
    on_wall_clock(LIMIT_PRICES, [list(range(10, 60)), list(range(60, 62))])
    limit_order_strategy()
    state_dir = tmp_path / "state"
    clock_minute = {"m": 0}
    bk.listen_signal_live(lambda r: clock_minute.update(m=(r.created_at - minute(0)) // MINUTE_MS))
    recovered = {"writes": 0}

    def fail(domain, data):
        return 12 <= clock_minute["m"] < 45

    def kill(domain, data):
        if clock_minute["m"] >= 45:
            recovered["writes"] += 1
            if recovered["writes"] > kill_at:
                return "before"
        return None

    disk.fail_when = staticmethod(fail)
    disk.kill_when = staticmethod(kill)
    first: list = []
    with pytest.raises(Killed):
        await live(state_dir, events=first)
    assert "opened" in [r.action for r in first]
    disk.fail_when = staticmethod(lambda domain, data: False)
    disk.kill_when = staticmethod(lambda domain, data: None)
    reset_risks()
    await live(state_dir)
    run = bk.Live.list()[0]
    assert run["open"] or run["scheduled"], f"the position was lost (kill at write {kill_at} after the recovery)"


# --- 4 and 5. restored values are checked; one file per symbol and strategy --------------------------

@pytest.mark.parametrize("field, value, why", [
    ("price_open", 0.0, "price_open"), ("price_open", -5.0, "price_open"), ("price_take_profit", math.inf, "price_take_profit"),
    ("symbol", "ETH", "symbol"), ("strategy_name", "other", "strategy"), ("exchange_name", "binance", "exchange"),
    ("price_stop_loss", 105.0, "price_stop_loss"),
    # What position commands leave on a row, damaged.
    ("trailing_stop_loss", -1.0, "trailing_stop_loss"),
    ("entries", [{"price": 100.0, "cost": 0.0}], "an entry needs"),
    ("partials", [{"kind": "profit", "percent": 150.0, "price": 105.0, "cost_basis": 100.0, "entries": 1}],
     "a partial close needs"),
    ("partials", [{"kind": "profit", "percent": 100.0, "price": 105.0, "cost_basis": 100.0, "entries": 1},
                  {"kind": "profit", "percent": 100.0, "price": 105.0, "cost_basis": 100.0, "entries": 1}],
     "more than the"),
])
async def test_a_restored_signal_that_fails_the_checks_is_moved_aside_like_a_corrupt_file(tmp_path, field, value, why):
    on_wall_clock([100.0] * 40, list(range(10, 20)))
    bk.add_strategy("s", take_once(position="long", price_take_profit=110, price_stop_loss=90))
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    row = bk.SignalRow(id="x1", position="long", price_open=100, price_take_profit=110, price_stop_loss=90,
                       minute_estimated_time=600, symbol="BTC", strategy_name="s", exchange_name="wall",
                       scheduled_at=minute(1), pending_at=minute(1))
    doc = msgspec.to_builtins(row)
    doc[field] = value
    text = json.dumps(doc).replace("Infinity", "1e400")     # JSON has no infinity; msgspec reads 1e400 as one
    (state_dir / "signal_BTC_s.json").write_text(text)
    errors = []
    bk.listen_error(errors.append)
    results = await live(state_dir)
    moved = list(state_dir.glob("signal_BTC_s.json.corrupt-*"))
    assert len(moved) == 1, [str(e.error) for e in errors]
    reports = [str(e.error) for e in errors if isinstance(e.error, bk.CorruptStateError)]
    assert len(reports) == 1 and why in reports[0] and str(moved[0]) in reports[0]
    assert [r.action for r in results] == ["opened"] and results[0].signal.id != "x1"   # it trades anew
    assert not [e for e in errors if "tick" in e.where]


async def test_symbols_and_strategies_that_differ_only_in_punctuation_keep_their_own_files(tmp_path):
    prices = PriceExchange(steps((100, 20), (105, 20)))
    bk.add_replay_exchange("replay", series={"BTC/USDT": prices.candles, "BTC:USDT": prices.candles}, speed=0,
                           start=minute(10), end=minute(14))
    long_ = {"position": "long", "price_take_profit": 110, "price_stop_loss": 95}
    short = {"position": "short", "price_take_profit": 95, "price_stop_loss": 105}
    bk.add_strategy("a b", lambda symbol, when: bk.SignalDto(**long_))
    bk.add_strategy("a_b", lambda symbol, when: bk.SignalDto(**short))
    state_dir = tmp_path / "state"
    opened = {}
    for symbol in ("BTC/USDT", "BTC:USDT"):
        for strategy in ("a b", "a_b"):
            [r] = await live(state_dir, symbol, strategy, "replay")
            opened[(symbol, strategy)] = r.signal
    names = sorted(p.name for p in state_dir.glob("signal_*.json"))
    assert len(names) == 4, names
    reset_risks()
    for (symbol, strategy), signal in opened.items():
        run = bk.Live.run(symbol, strategy_name=strategy, exchange_name="replay", state_dir=state_dir)
        async for _ in run:
            pass
        row = next(r for r in bk.Live.list() if (r["symbol"], r["strategy_name"]) == (symbol, strategy))
        assert row["open"], (symbol, strategy)
        state = bk.Live.saved_runs
        runs = {(s.symbol, s.strategy_name): s for s in await state(state_dir)}
        assert runs[(symbol, strategy)].signal.id == signal.id and runs[(symbol, strategy)].signal.position == \
            signal.position


# --- 7. a stale risk slot ------------------------------------------------------------------------------

async def test_a_risk_slot_no_open_signal_holds_is_released_and_reported_at_start(tmp_path):
    on_wall_clock([100.0] * 40, list(range(10, 15)))
    bk.add_risk("one", validations=[lambda a: "one position at most" if a.active_position_count >= 1 else None])
    bk.add_strategy("s", take_once(position="long", price_take_profit=110, price_stop_loss=90), risk_name="one")
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    ghost = bk.SignalRow(id="g1", position="long", price_open=100, price_take_profit=110, price_stop_loss=90,
                         symbol="BTC", strategy_name="ghost", exchange_name="wall", pending_at=minute(1))
    (state_dir / "risk_one.json").write_bytes(msgspec.json.encode(
        [bk.RiskPosition(ghost, "ghost", "wall", "BTC", minute(1))]))
    errors, rejections = [], []
    bk.listen_error(errors.append)
    bk.listen_risk(rejections.append)
    results = await live(state_dir)
    assert [r.action for r in results] == ["opened"] and not rejections
    released = [str(e.error) for e in errors if "ghost" in str(e.error)]
    assert len(released) == 1 and "released" in released[0] and "one" in released[0]
    assert [p["strategy_name"] for p in json.loads((state_dir / "risk_one.json").read_bytes())] == ["s"]


# --- 8. a corrupt history -------------------------------------------------------------------------------

async def test_a_corrupt_history_is_moved_aside_and_a_new_one_started(tmp_path):
    on_wall_clock(steps((100, 20), (112, 40)), list(range(10, 30)))
    bk.add_strategy("s", take_once(position="long", price_take_profit=110, price_stop_loss=90))
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    (state_dir / "history.sqlite").write_bytes(b"this is not a database" * 100)
    errors = []
    bk.listen_error(errors.append)
    results = await live(state_dir)
    assert [r.action for r in results] == ["opened", "closed"]
    moved = list(state_dir.glob("history.sqlite.corrupt-*"))
    assert len(moved) == 1 and moved[0].read_bytes().startswith(b"this is not a database")
    reports = [str(e.error) for e in errors]
    assert any(str(state_dir / "history.sqlite") in r and str(moved[0]) in r for r in reports), reports
    assert len(await bk.Live.history(state_dir)) == 1


# --- 9. events at least once, with a stable id ------------------------------------------------------------

async def test_an_event_whose_state_was_saved_but_never_emitted_comes_after_the_restart(tmp_path, disk):
    on_wall_clock(steps((100, 20), (112, 40)), [list(range(10, 12)), list(range(12, 30))])
    bk.add_strategy("s", take_once(position="long", price_take_profit=110, price_stop_loss=90))
    state_dir = tmp_path / "state"
    disk.kill_when = staticmethod(lambda domain, data: "after" if domain == "signal" and data != b"null" else None)
    heard: list = []
    bk.listen_signal_live(lambda r: heard.append(r) if r.action != "active" and r.action != "idle" else None)
    with pytest.raises(Killed):
        await live(state_dir)
    assert heard == []                                   # saved, then killed before anyone heard of it
    disk.kill_when = staticmethod(lambda domain, data: None)
    reset_risks()
    await live(state_dir)
    assert [r.action for r in heard] == ["opened", "closed"]
    assert heard[0].event_id == f"{heard[0].signal.id}:opened" and heard[1].event_id == f"{heard[1].signal.id}:closed"


async def test_milestone_events_carry_stable_ids_when_a_damaged_milestone_file_repeats_them(tmp_path):
    on_wall_clock(steps((100, 20), (104, 10), (108, 30)), [list(range(10, 30)), list(range(30, 32))])
    bk.add_strategy("s", take_once(position="long", price_take_profit=110, price_stop_loss=90,
                                   minute_estimated_time=600))
    state_dir = tmp_path / "state"
    ids: list = []
    bk.listen_partial_profit(lambda e: ids.append(e.event_id))
    await live(state_dir)
    first = list(ids)
    assert first and all(i.endswith(f":profit:{lv}") for i, lv in zip(first, range(10, 101, 10)))
    (state_dir / "partial_BTC_s.json").write_bytes(b"{torn")
    reset_risks()
    await live(state_dir)
    assert ids[len(first):] and set(ids[len(first):]) <= set(first)      # repeats keep their ids


# --- 1 and 10. what is unsaved, file modes, the disk full at start, a lost minute ------------------------

async def test_a_run_that_ends_with_writes_still_failing_says_what_is_unsaved(tmp_path, disk):
    on_wall_clock(steps((100, 20), (112, 40)), list(range(10, 30)))
    bk.add_strategy("s", take_once(position="long", price_take_profit=110, price_stop_loss=90))
    state_dir = tmp_path / "state"
    disk.fail_when = staticmethod(lambda domain, data: domain != "live")
    await live(state_dir)
    run = bk.Live.list()[0]
    assert run["unsaved"], run
    assert any("signal" in what and str(state_dir) in what for what in run["unsaved"])


async def test_history_and_lock_files_are_private_like_the_state_files(tmp_path):
    on_wall_clock(steps((100, 20), (112, 40)), list(range(10, 30)))
    bk.add_strategy("s", take_once(position="long", price_take_profit=110, price_stop_loss=90))
    state_dir = tmp_path / "state"
    await live(state_dir)
    for name in ("history.sqlite", ".btk.lock", "signal_BTC_s.json"):
        mode = stat.S_IMODE((state_dir / name).stat().st_mode)
        assert mode & 0o077 == 0, f"{name} is {mode:04o}"


async def test_a_failing_get_signal_does_not_spend_its_throttle_slot_live(tmp_path):
    """A 5-minute strategy whose candle read fails on the first minute of its slot is asked again
    on the next minute, not five minutes later (a minute lost to an exchange fault)."""
    on_wall_clock([100.0] * 40, list(range(10, 14)))
    asked = []

    async def get_signal(symbol, when):
        asked.append(when)
        if len(asked) == 1:
            raise bk.ExchangeError("exchange unavailable")
        return None

    bk.add_strategy("s", get_signal, interval="5m")
    await live(tmp_path / "state")
    assert len(asked) == 2 and asked[1].minute == 11


def test_timing_samples_are_bounded_and_their_moments_exact():
    """A year of minutes keeps no more samples than RECENT_SAMPLES per metric and run; count,
    mean, min, max and std still cover every one."""
    import statistics

    from engine.analytics import performance
    from engine.types import PerformanceEvent
    values = [float((i * 37) % 101) for i in range(30_000)]
    for i, v in enumerate(values):
        performance._record(PerformanceEvent("live_tick", v, "BTC", "s", "wall", False, i))
    for i, v in enumerate(values[:500]):
        performance._record(PerformanceEvent("live_tick", v + 0.5, "ETH", "s", "wall", False, i))
    tick = bk.Performance.collect(None, None, None).metrics["live_tick"]
    everything = values + [v + 0.5 for v in values[:500]]
    assert tick.count == len(everything) and (tick.min_ms, tick.max_ms) == (min(everything), max(everything))
    assert tick.mean_ms == pytest.approx(statistics.fmean(everything), rel=1e-12)
    assert tick.std_ms == pytest.approx(statistics.stdev(everything), rel=1e-9)
    kept = [len(m.recent) for d in performance._recorder.by_key.values() for m in d.values()]
    assert kept == [performance.RECENT_SAMPLES, 500]


# --- the same on the command line ------------------------------------------------------------------------

def btk_live(seeded_store, state_dir, *extra):
    from console.cli import main
    return main(["--store", str(seeded_store), "live", "sma_cross", "--speed", "0", "--from", "2023-03-10",
                 "--to", "2023-03-10T03:00", "--state-dir", str(state_dir), "--quiet", *extra])


def test_btk_live_exits_1_and_names_what_it_could_not_save(seeded_store, tmp_path, disk, capsys):
    disk.fail_when = staticmethod(lambda domain, data: domain in ("journal", "signal"))
    assert btk_live(seeded_store, tmp_path / "st") == 1
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("btk: the run failed to save its state:") and str(tmp_path / "st") in last


def test_btk_live_says_when_a_replay_ends_holding_a_position(seeded_store, tmp_path, capsys):
    assert btk_live(seeded_store, tmp_path / "st") == 0
    err = capsys.readouterr().err
    assert "the replay ended at 2023-03-10T03:00Z with an open position: saved in" in err


def test_a_full_disk_at_start_names_the_file_it_could_not_write(seeded_store, tmp_path, monkeypatch, capsys):
    import engine.persistence.state as state

    class FullDisk:
        def __getattr__(self, attr):
            return getattr(os, attr)

        def pwrite(self, fd, data, offset):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(state, "os", FullDisk())
    assert btk_live(seeded_store, tmp_path / "st") == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert str(tmp_path / "st" / ".btk.lock") in last and "No space left on device" in last
    assert "Traceback" not in last


@pytest.mark.parametrize("owner, taken", [("BTC/USDT", True), ("BTC:USDT", False)])
async def test_state_files_an_older_btk_named_are_renamed_when_they_name_the_run(tmp_path, owner, taken):
    """Before keys were injective, BTC/USDT and BTC:USDT both wrote signal_BTC_USDT_s.json: the file
    moves to the run's own name only when the signal in it is that run's."""
    prices = PriceExchange([100.0] * 40)
    bk.add_replay_exchange("replay", series={"BTC/USDT": prices.candles}, speed=0, start=minute(10), end=minute(12))
    bk.add_strategy("s", lambda symbol, when: None)
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    row = bk.SignalRow(id="old1", position="long", price_open=100, price_take_profit=110, price_stop_loss=95,
                       minute_estimated_time=600, symbol=owner, strategy_name="s", exchange_name="replay",
                       scheduled_at=minute(9), pending_at=minute(9))
    (state_dir / "signal_BTC_USDT_s.json").write_bytes(msgspec.json.encode(row))
    await live(state_dir, "BTC/USDT", "s", "replay")
    assert (state_dir / "signal_BTC%2FUSDT_s.json").exists() == taken
    assert (state_dir / "signal_BTC_USDT_s.json").exists() != taken
    assert bk.Live.list()[0]["open"] == taken


# --- the wall clock ------------------------------------------------------------------------------------------

async def test_the_wall_clock_catches_up_minute_by_minute_and_never_skips_one():
    from engine.context import WallClock
    wall = {"ms": minute(100) + 30_000}                 # 30 s into minute 100
    clock = WallClock(settle=2.0, time_ms=lambda: wall["ms"], speed=1000.0)
    assert await clock.first(minute(95)) == minute(95)  # the saved minute first
    assert [await clock.next() for _ in range(5)] == [minute(m) for m in range(96, 101)]   # no waiting
    wall["ms"] = minute(101) + 2_500                      # past the boundary and its settle
    assert await clock.next() == minute(101)
    wall["ms"] = minute(140)                               # a tick that took 39 minutes: none skipped
    assert await clock.next() == minute(102)
    fresh = WallClock(catch_up=False, time_ms=lambda: wall["ms"])
    assert await fresh.first(minute(95)) == minute(140)  # resumes now
