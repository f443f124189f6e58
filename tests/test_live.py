"""SEMANTICS.md sections 11 and 12: the live loop, its persistence and recovery (replay clock)."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys

import pytest

import engine as bk
import engine.persistence.state as persist
import strategies
from engine.exchange.bundled import StoreExchange, ensure_seeded
from engine.exchange.vwap import vwap
from engine.interval import MINUTE_MS
from tests.helpers import PriceExchange, minute, steps


@pytest.fixture(scope="session")
def seeded_store(tmp_path_factory):
    import asyncio
    path = tmp_path_factory.mktemp("store") / "store.sqlite3"
    asyncio.run(ensure_seeded(path))
    return path


def replay(prices, *, start=10, end=None, name="replay", **kw):
    ex = PriceExchange(prices, **kw)
    last = len(ex.candles)  # the tick at `last` judges the last candle
    return bk.add_replay_exchange(name, series={"BTC": ex.candles}, speed=0, start=minute(start),
                                  end=minute(end if end is not None else last))


def lifecycle_key(r):
    return (r.action, r.signal.id, getattr(r, "close_reason", getattr(r, "reason", None)),
            r.pnl.price_close if r.action == "closed" else None, r.pnl.pnl_percentage if r.action == "closed" else None,
            r.signal.peak_pnl, r.signal.trough_pnl)


async def run_live(state_dir, symbol="BTC", strategy="s", exchange="replay"):
    return [r async for r in bk.Live.run(symbol, strategy_name=strategy, exchange_name=exchange, state_dir=state_dir)]


def read_state(state_dir, domain, key="BTC_s"):
    path = state_dir / f"{domain}_{key}.json"
    return json.loads(path.read_bytes()) if path.exists() else "absent"


@pytest.mark.parametrize("name", ["sma_cross", "mean_reversion", "channel_breakout"])
async def test_replay_and_backtest_over_the_same_candles_close_the_same_signals(name, seeded_store, tmp_path):
    """The same signals, closed for the same reasons at the same prices, with the one known
    difference of SEMANTICS.md 5: a backtest's time exit comes one candle after the live tick's
    (the tick at T judges candles T-5..T-1; the backtest's candle T is judged on T-4..T). So a
    time exit closes at the VWAP one minute later in the backtest, and where the live loop takes
    a new signal on the minute of a time exit, the backtest can first take one a minute later:
    the lists are compared up to there."""
    strategies.register_all()
    store = StoreExchange("bundled", seeded_store)
    bk.add_exchange("bundled", store.get_candles)
    clock = await bk.ReplayExchange(store_path=seeded_store).live_clock("BTCUSDT")
    start, end = clock.start, clock.start + 6000 * MINUTE_MS
    bk.add_replay_exchange("replay", store_path=seeded_store, speed=0, start=start, end=end)
    bk.add_frame("f", start=start, end=end)
    backtest = [r async for r in bk.Backtest.run("BTCUSDT", strategy_name=name, exchange_name="bundled",
                                                 frame_name="f") if r.action in ("closed", "cancelled")]
    live = [r for r in await run_live(tmp_path / "state", "BTCUSDT", name) if r.action in ("closed", "cancelled")]
    # The backtest also closes the position still open at the frame's end (time_expired past the end).
    if len(backtest) == len(live) + 1:
        assert backtest[-1].close_timestamp > end - 24 * 60 * MINUTE_MS
        backtest = backtest[:-1]
    assert len(live) >= 2, "the window must hold trades to compare"
    compared = 0
    for previous, (b, lv) in zip([None, *live], zip(backtest, live)):
        if b.signal.id != lv.signal.id:
            # Only after a time exit, by a live signal taken on that very minute.
            assert previous is not None and previous.close_reason == "time_expired"
            assert lv.signal.scheduled_at == previous.close_timestamp < b.signal.scheduled_at
            break
        compared += 1
        reason = getattr(b, "close_reason", getattr(b, "reason", None))
        assert reason == getattr(lv, "close_reason", getattr(lv, "reason", None)) and b.action == lv.action
        if reason in ("time_expired", "timeout"):
            # Judged at the same number, the backtest's candle T, the live tick T: one candle apart.
            assert b.close_timestamp == lv.close_timestamp
            if reason == "time_expired":
                window = await store.get_candles("BTCUSDT", "1m", b.close_timestamp - 4 * MINUTE_MS, 5)
                assert b.pnl.price_close == vwap(window.high, window.low, window.close, window.volume)
        else:
            # The backtest records the deciding candle's open time, live the tick one minute later.
            assert lv.close_timestamp == b.close_timestamp + MINUTE_MS
            assert lifecycle_key(lv) == lifecycle_key(b)
    assert compared >= 2
    assert any(getattr(r, "close_reason", None) == "time_expired" for r in live[:compared]) or name == "mean_reversion"


async def test_every_state_change_is_on_disk_before_its_event(tmp_path):
    prices = steps((100, 20), (103, 10), (107, 10), (111, 20))
    replay(prices)
    bk.add_strategy("s", lambda symbol, when: bk.SignalDto(position="long", price_take_profit=110,
                                                           price_stop_loss=90, minute_estimated_time=600))
    state_dir = tmp_path / "state"
    seen = []

    def on_signal(r):
        seen.append((r.action, read_state(state_dir, "signal")))

    def on_partial(e):
        seen.append(("partial", read_state(state_dir, "partial")))

    bk.listen_signal_live(on_signal)
    bk.listen_partial_profit(on_partial)
    results = await run_live(state_dir)
    opened = next(r for r in results if r.action == "opened")
    assert next(s for a, s in seen if a == "opened")["id"] == opened.signal.id
    partials = [s for a, s in seen if a == "partial"]
    assert partials and all(opened.signal.id in p for p in partials)
    closed_state = next(s for a, s in seen if a == "closed")
    assert closed_state is None   # the file says "no open signal" before anyone hears of the close
    assert [r.signal.id for r in (await bk.Live.get_data("BTC", strategy_name="s")).signal_list] == [opened.signal.id]


async def test_a_restart_resumes_the_open_signal_and_counts_time_from_its_pending_at(tmp_path):
    prices = [100.0] * 200
    replay(prices)
    calls = {"n": 0}

    async def get_signal(symbol, when):
        calls["n"] += 1
        return bk.SignalDto(position="long", price_take_profit=110, price_stop_loss=90, minute_estimated_time=30)

    restored = []
    bk.add_strategy("s", get_signal, callbacks={"on_active": lambda s, row, price, bt: restored.append(row.id)})
    state_dir = tmp_path / "state"
    run = bk.Live.run("BTC", strategy_name="s", exchange_name="replay", state_dir=state_dir)
    opened = await anext(run)   # opened at minute 10; the "process" dies here
    await run.aclose()
    assert opened.action == "opened" and opened.signal.pending_at == minute(10)
    assert read_state(state_dir, "signal")["id"] == opened.signal.id

    restored.clear()
    again = bk.Live.run("BTC", strategy_name="s", exchange_name="replay", state_dir=state_dir)
    closed = await anext(again)
    await again.aclose()
    assert restored and restored[0] == opened.signal.id           # on_active for the restored signal
    assert closed.action == "closed" and closed.signal.id == opened.signal.id
    assert closed.close_reason == "time_expired" and closed.close_timestamp == minute(40)
    assert calls["n"] == 1                                        # not asked again while it was open


async def test_a_corrupt_state_file_is_moved_aside_reported_and_that_state_starts_empty(tmp_path):
    replay([100.0] * 40)
    bk.add_strategy("s", lambda symbol, when: None)
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    (state_dir / "signal_BTC_s.json").write_bytes(b'{"id": "abc", "position": "lo')   # torn by hand
    errors = []
    bk.listen_error(errors.append)
    await run_live(state_dir)
    corrupt = list(state_dir.glob("signal_BTC_s.json.corrupt-*"))
    assert len(corrupt) == 1 and corrupt[0].read_bytes() == b'{"id": "abc", "position": "lo'
    assert any(isinstance(e.error, bk.CorruptStateError) and "moved aside" in str(e.error)
               and str(corrupt[0]) in str(e.error) for e in errors)


async def test_stale_temp_files_are_removed_at_start(tmp_path):
    replay([100.0] * 30)
    bk.add_strategy("s", lambda symbol, when: None)
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    stale = state_dir / f".signal_BTC_s.json.abc{persist.TEMP_SUFFIX}"
    stale.write_bytes(b"half")
    await run_live(state_dir)
    assert not stale.exists()


def _failing(monkeypatch, step, err):
    """Make one step of the atomic write fail with ``err`` while ``armed``."""
    armed = {"on": True, "failures": 0}
    real = {"fsync": os.fsync, "replace": os.replace, "mkstemp": persist.tempfile.mkstemp}

    def guard(name, *a, **k):
        if armed["on"] and name == step:
            armed["failures"] += 1
            raise OSError(err, os.strerror(err))
        return real[name](*a, **k)

    class FakeOs:
        def __getattr__(self, attr):
            return getattr(os, attr)

        def fsync(self, fd):
            return guard("fsync", fd)

        def replace(self, a, b):
            return guard("replace", a, b)

    class FakeTempfile:
        def mkstemp(self, *a, **k):
            return guard("mkstemp", *a, **k)

    monkeypatch.setattr(persist, "os", FakeOs())
    monkeypatch.setattr(persist, "tempfile", FakeTempfile())
    return armed


@pytest.mark.parametrize("step, err", [("mkstemp", errno.EACCES), ("fsync", errno.ENOSPC),
                                       ("replace", errno.EIO), ("mkstemp", errno.ENOSPC),
                                       ("replace", errno.ENOSPC), ("fsync", errno.EIO)])
async def test_a_failing_write_keeps_the_old_file_reports_once_and_is_retried_next_tick(tmp_path, monkeypatch,
                                                                                         step, err):
    replay(steps((100, 30), (112, 30)))
    bk.add_strategy("s", lambda symbol, when: bk.SignalDto(position="long", price_take_profit=110,
                                                           price_stop_loss=90, minute_estimated_time=600))
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    (state_dir / "signal_BTC_s.json").write_bytes(b"null")
    armed = _failing(monkeypatch, step, err)
    errors, opened_on_disk = [], []
    bk.listen_error(errors.append)
    ticks = []

    def on_tick(r):
        ticks.append(r)
        if r.action == "opened":
            opened_on_disk.append(read_state(state_dir, "signal"))
        if len(ticks) == 5:
            armed["on"] = False   # the disk recovers; the next tick writes what is pending

    bk.listen_signal_live(on_tick)
    run = bk.Live.run("BTC", strategy_name="s", exchange_name="replay", state_dir=state_dir)
    results = [r async for r in run]
    assert opened_on_disk == [None]                       # the failed write left the old file intact
    persist_errors = [e.error for e in errors if isinstance(e.error, bk.PersistError)]
    assert persist_errors and all(os.strerror(err) in str(e) for e in persist_errors)
    assert len({str(e).split(":")[0] for e in persist_errors}) == len(persist_errors)   # once per file
    assert "retries the write every tick" in str(persist_errors[0])
    assert not list(state_dir.glob(f"*{persist.TEMP_SUFFIX}"))
    # The loop went on in memory: the signal opened and closed at TP; the state on disk caught up.
    assert [r.action for r in results] == ["opened", "closed"] and results[1].close_reason == "take_profit"
    assert read_state(state_dir, "signal") is None
    assert armed["failures"] >= 1


async def test_a_failing_tick_is_reported_and_the_loop_goes_on(tmp_path):
    replay([100.0] * 40, start=10, end=20)
    seen = []

    def get_signal(symbol, when):
        seen.append(when)
        if len(seen) == 2:
            raise RuntimeError("strategy bug")
        return None

    bk.add_strategy("s", get_signal)
    errors = []
    bk.listen_error(errors.append)
    done = []
    bk.listen_done_live(done.append)
    await run_live(tmp_path / "state")
    assert len(seen) == 11 and len(done) == 1
    assert [str(e.error) for e in errors] == ["strategy bug"]


async def test_stop_cancels_the_scheduled_order_and_watches_the_open_position_until_it_closes(tmp_path):
    replay(steps((100, 30), (104, 40)), start=10)
    bk.add_strategy("s", lambda symbol, when: bk.SignalDto(position="long", price_take_profit=103,
                                                           price_stop_loss=90, minute_estimated_time=600))
    results = []
    async for r in bk.Live.run("BTC", strategy_name="s", exchange_name="replay", state_dir=tmp_path / "a"):
        results.append(r)
        if r.action == "opened":
            bk.Live.stop("BTC", strategy_name="s")
    assert [r.action for r in results] == ["opened", "closed"]      # nothing new after the stop
    assert results[1].close_reason == "take_profit"
    assert bk.Live.list()[0]["status"] == "stopped"

    bk.add_strategy("w", lambda symbol, when: bk.SignalDto(position="long", price_open=95, price_take_profit=110,
                                                           price_stop_loss=90))
    results = []
    async for r in bk.Live.run("BTC", strategy_name="w", exchange_name="replay", state_dir=tmp_path / "b"):
        results.append(r)
        bk.Live.stop("BTC", strategy_name="w")
    assert [(r.action, getattr(r, "reason", None)) for r in results] == [("scheduled", None), ("cancelled", "user")]


def test_a_second_process_cannot_drive_the_same_state_dir(tmp_path):
    adapter = bk.FilePersistence(tmp_path / "state")
    adapter.open()
    try:
        code = ("import engine as bk, sys\n"
                "try:\n    bk.FilePersistence(sys.argv[1]).open()\nexcept bk.StateDirBusy as e:\n"
                "    print(e); sys.exit(3)\n")
        child = subprocess.run([sys.executable, "-c", code, str(tmp_path / "state")], capture_output=True, text=True,
                               timeout=60)
        assert child.returncode == 3, child.stderr
        assert f"in use by another btk process (pid {os.getpid()})" in child.stdout
    finally:
        adapter.close()
    child = subprocess.run([sys.executable, "-c", "import engine as bk, sys; bk.FilePersistence(sys.argv[1]).open()",
                            str(tmp_path / "state")], capture_output=True, text=True, timeout=60)
    assert child.returncode == 0, child.stderr                   # released on close


async def test_memory_persistence_plugs_in_with_one_call(tmp_path):
    adapters = []

    def factory(state_dir):
        adapters.append(bk.MemoryPersistence())
        return adapters[-1]

    bk.set_persistence(factory)
    replay(steps((100, 20), (111, 20)))
    bk.add_strategy("s", lambda symbol, when: bk.SignalDto(position="long", price_take_profit=110,
                                                           price_stop_loss=90))
    results = await run_live(tmp_path / "never")
    assert [r.action for r in results][:2] == ["opened", "closed"]
    assert not (tmp_path / "never").exists()
    assert adapters[0].data[("signal", "BTC_s")] != b""


async def test_a_restored_scheduled_signal_holds_its_risk_slot(tmp_path):
    from engine.risk import reset_risks, risk_for

    def setup(end):
        bk.clear_registry()
        replay(steps((100, 15), (97, 60)), end=end)
        bk.add_risk("max2", validations=[lambda a: "full" if a.active_position_count >= 2 else None])
        bk.add_strategy("s", lambda symbol, when: bk.SignalDto(position="long", price_open=95, price_take_profit=110,
                                                               price_stop_loss=90), risk_name="max2")

    setup(end=12)
    assert [r.action async for r in bk.Live.run("BTC", strategy_name="s", exchange_name="replay",
                                               state_dir=tmp_path / "a")] == ["scheduled"]
    reset_risks()                               # a new process: nothing in memory
    setup(end=13)
    assert [r.action async for r in bk.Live.run("BTC", strategy_name="s", exchange_name="replay",
                                               state_dir=tmp_path / "a")] == []
    assert list(risk_for("max2").reserved) == ["s:replay:BTC"] and risk_for("max2").positions == {}
