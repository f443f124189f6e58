"""Vectorised signals (engine/vectorised.py): a strategy's get_signals gives the same backtest as
its get_signal, event for event, on real candles; bad answers get clear errors."""

from __future__ import annotations

import itertools
import math

import msgspec
import numpy as np
import pytest

import engine as bk
import strategies
from console.workspace import open_workspace
from engine.exchange.synthetic import SyntheticExchange
from engine.fastpath import active_extremes, milestone_reach, milestone_reach_many, resolve_open, resolve_open_many
from engine.pnl import pnl_percentage, pnl_percentages
from engine.feed import Series
from engine.interval import to_ms
from engine.runners.backtest import frame_times, reset_backtests
from engine.signal import signal_problems, valid_market_signals
from engine.windows import BlockSums, window_prefix_sums
from strategies import sma_cross

START = 1_577_836_800_000      # 2020-01-01


async def _backtest(symbol: str, strategy: str, frame: str, *, vectorised: bool, listen: bool = True):
    """Closed signals, and (with ``listen``) every signal, risk and milestone event, in order."""
    events: list = []
    if listen:
        for listen_fn in (bk.listen_signal_backtest, bk.listen_risk, bk.listen_partial_profit,
                          bk.listen_partial_loss):
            listen_fn(events.append)
    results = [r async for r in bk.Backtest.run(symbol, strategy_name=strategy, exchange_name="bundled",
                                               frame_name=frame, vectorised=vectorised)]
    await bk.drain_events()
    from engine.events import clear_listeners
    clear_listeners()
    return results, events


@pytest.mark.parametrize("symbol, frame", [("BTCUSDT", "bundled-btcusdt"), ("ETHBTC", "bundled-2018"),
                                           ("LTCBTC", "bundled-2018")])
async def test_sma_cross_vectorised_gives_the_same_backtest_as_per_frame(seeded_store, symbol, frame):
    await open_workspace(seeded_store)
    per_frame, events_per_frame = await _backtest(symbol, sma_cross.NAME, frame, vectorised=False)
    vectorised, events_vectorised = await _backtest(symbol, sma_cross.NAME, frame, vectorised=True)
    closed = [r for r in per_frame if r.action == "closed"]
    assert len(closed) > 20                        # a real test: the strategy trades on this data
    assert vectorised == per_frame                 # every result, field for field (ids, peaks, PnL)
    assert events_vectorised == events_per_frame   # and every event, in the same order
    assert any(e for e in events_per_frame if isinstance(e, bk.PartialEvent))


async def test_sma_cross_decides_like_per_frame_on_every_frame_of_flat_data(seeded_store):
    """ETHBTC has long flat stretches (exact ties between the averages): get_signals must read
    every frame as get_signal does, not only the frames that end up trading."""
    await open_workspace(seeded_store)
    frame = next(f for f in bk.list_frames() if f.frame_name == "bundled-2018")
    calls: dict[int, bool] = {}

    async def recording(symbol, when):
        dto = await sma_cross.get_signal(symbol, when)
        calls[to_ms(when)] = dto is not None
        return dto

    bk.add_strategy("recording", recording, interval="1m")
    # Observing idle ticks makes the per-frame path call get_signal on every frame it is idle.
    bk.listen_signal_backtest(lambda r: None)
    [r async for r in bk.Backtest.run("ETHBTC", strategy_name="recording", exchange_name="bundled",
                                      frame_name="bundled-2018", vectorised=False)]
    from engine.exchange.client import ExchangeClient
    from engine.feed import SeriesFeed
    from engine.registry import get_exchange
    times = frame_times(frame.start, frame.end, frame.interval)
    feed = SeriesFeed(ExchangeClient(get_exchange("bundled")), horizon_end=frame.end + 60_000)
    await feed.load("ETHBTC", "1m", int(times[0]) - 5 * 60_000, frame.end + 120_000)
    answer = await sma_cross.get_signals("ETHBTC", bk.SignalFrame("ETHBTC", times, feed))
    rows = {int(times[k]) for k in np.flatnonzero(answer.long)}
    assert len(calls) > 3000
    assert {t for t, signal in calls.items() if signal} == {t for t in calls if t in rows}


async def _analytics(symbol: str, strategy: str) -> tuple:
    return (await bk.Backtest.get_data(symbol, strategy_name=strategy),
            await bk.Heat.get_data(strategy, backtest=True),
            await bk.Partial.get_data(symbol, strategy_name=strategy),
            await bk.Schedule.get_data(symbol, strategy_name=strategy))


def plain_sma_cross() -> str:
    """sma_cross without the default workspace's portfolio risk profile: nothing but the engine's
    recorders hears its backtests, so they may take the lane."""
    bk.add_strategy("sma_cross_plain", sma_cross.get_signal, get_signals=sma_cross.get_signals)
    return "sma_cross_plain"


@pytest.mark.parametrize("symbol, frame", [("BTCUSDT", "bundled-btcusdt"), ("ETHBTC", "bundled-2018")])
async def test_the_lane_for_plain_backtests_gives_the_same_results_and_analytics(seeded_store, monkeypatch, symbol,
                                                                                frame):
    """Nobody listens: valid market rows open and close through the lane (open_planned /
    close_planned), and everything a user can read afterwards is what per-frame gives."""
    from engine.strategy import ClientStrategy
    await open_workspace(seeded_store)
    plain = plain_sma_cross()
    per_frame, _ = await _backtest(symbol, plain, frame, vectorised=False, listen=False)
    expected = await _analytics(symbol, plain)
    bk.reset_analytics()
    reset_backtests()
    lane = []
    original = ClientStrategy.open_planned
    monkeypatch.setattr(ClientStrategy, "open_planned", lambda self, *a: lane.append(a[1]) or original(self, *a))
    vectorised, _ = await _backtest(symbol, plain, frame, vectorised=True, listen=False)
    closed = [r for r in per_frame if r.action == "closed"]
    assert len(lane) == len(closed) > 20          # every trade went through the lane
    assert vectorised == per_frame
    assert await _analytics(symbol, plain) == expected
    assert expected[2].total_events > 50 and expected[1].portfolio_total_trades == len(closed)
    # Signal timings gathered in batches: one sample per closed signal, as one event each gives.
    timings = (await bk.Performance.get_data(symbol, strategy_name=plain)).metrics["backtest_signal"]
    assert timings.count == len(closed) and timings.min_ms > 0


async def test_a_listener_arriving_mid_run_hears_what_per_frame_would_emit(seeded_store):
    """The lane is chosen trade by trade: once someone listens (here, from the consumer, right
    after an ``opened``), the general path takes over, with every event from then on."""
    await open_workspace(seeded_store)
    per_frame, events = await _backtest("BTCUSDT", sma_cross.NAME, "bundled-btcusdt", vectorised=False)
    heard: list = []
    results = []
    async for r in bk.Backtest.run("BTCUSDT", strategy_name=sma_cross.NAME, exchange_name="bundled",
                                   frame_name="bundled-btcusdt", vectorised=True):
        results.append(r)
        if r.action == "opened" and len(results) == 21:     # the 11th trade has just opened
            bk.listen_signal_backtest(heard.append)
            bk.listen_partial_profit(heard.append)
            bk.listen_partial_loss(heard.append)
    await bk.drain_events()
    assert results == per_frame
    tail = events[events.index(per_frame[20]) + 1:]        # everything after that opened event
    assert len(tail) > 50 and heard == tail


# --- a throttled strategy with limit entries, shorts and a risk profile ------------------------------

LOOKBACK = 30


async def _dip_signal(symbol, when):
    close = (await bk.get_candles(symbol, "1m", LOOKBACK + 1)).close
    last, before = float(close[-1]), close[:-1]
    if before.min() <= last <= before.max():
        return None
    price = await bk.get_average_price(symbol)
    minute = to_ms(when) // 60_000
    entry = None if minute % 10 == 0 else (price * 0.999 if last < before.min() else price * 1.001)
    if last < before.min():     # a new low: buy the dip
        return bk.SignalDto("long", price * 1.01, price * 0.99, 60, price_open=entry, note="dip")
    return bk.SignalDto("short", price * 0.99, price * 1.01, 60, price_open=entry, note="pop")


async def _dip_signals(symbol, frame: bk.SignalFrame) -> bk.Signals:
    candles, newest = await frame.candles("1m", LOOKBACK + 1)
    close = candles.close
    windows = np.lib.stride_tricks.sliding_window_view(close, LOOKBACK)
    low, high = windows.min(axis=1), windows.max(axis=1)       # over candles j..j+LOOKBACK-1
    last = close[newest]
    low, high = low[newest - LOOKBACK], high[newest - LOOKBACK]
    long, short = last < low, last > high
    price = frame.price
    market = (frame.times // 60_000) % 10 == 0
    entry = np.where(market, np.nan, np.where(long, price * 0.999, price * 1.001))
    return bk.Signals(long=long, short=short, price_take_profit=np.where(long, price * 1.01, price * 0.99),
                      price_stop_loss=np.where(long, price * 0.99, price * 1.01), minute_estimated_time=60,
                      price_open=entry, note=("dip", "pop"))


def _every_third_minute(args) -> str | None:
    return "every third minute is closed" if (args.timestamp // 60_000) % 3 == 0 else None


@pytest.mark.parametrize("interval", ["1m", "5m"])
async def test_throttled_limit_entries_shorts_and_risk_give_the_same_backtest(seeded_store, interval):
    await open_workspace(seeded_store)
    bk.add_risk("thirds", validations=[_every_third_minute])
    bk.add_strategy("dips", _dip_signal, interval=interval, risk_name="thirds", get_signals=_dip_signals)
    per_frame, events_per_frame = await _backtest("BTCUSDT", "dips", "bundled-btcusdt", vectorised=False)
    bk.reset_analytics()
    vectorised, events_vectorised = await _backtest("BTCUSDT", "dips", "bundled-btcusdt", vectorised=True)
    actions = {r.action for r in per_frame}
    assert {"scheduled", "opened", "closed", "cancelled"} <= actions
    assert {r.signal.position for r in per_frame} == {"long", "short"}
    assert any(isinstance(e, bk.RiskEvent) for e in events_per_frame)
    assert vectorised == per_frame
    assert events_vectorised == events_per_frame


def _minutes_of(times):
    """A time limit per frame time: 30, 45, 60 or 75 minutes."""
    return 30 + (times // 60_000 % 4) * 15


async def _dip_market_signal(symbol, when):
    dto = await _dip_signal(symbol, when)
    if dto is None:
        return None
    return msgspec.structs.replace(dto, price_open=None, minute_estimated_time=int(_minutes_of(to_ms(when))))


def _dip_market_signals(per_signal: bool):
    async def get_signals(symbol, frame: bk.SignalFrame) -> bk.Signals:
        answer = await _dip_signals(symbol, frame)
        minutes = _minutes_of(frame.times)
        if per_signal:
            minutes = minutes[answer.long | answer.short]
        return bk.Signals(long=answer.long, short=answer.short, price_take_profit=answer.price_take_profit,
                          price_stop_loss=answer.price_stop_loss, minute_estimated_time=minutes, note=answer.note)
    return get_signals


@pytest.mark.parametrize("per_signal", [False, True])
async def test_a_time_limit_per_row_gives_the_same_backtest_and_takes_the_lane(seeded_store, monkeypatch, per_signal):
    """``minute_estimated_time`` as an array (one per frame time, or one per signal), as documented."""
    from engine.strategy import ClientStrategy
    await open_workspace(seeded_store)
    bk.add_strategy("dips", _dip_market_signal, get_signals=_dip_market_signals(per_signal))
    per_frame, _ = await _backtest("BTCUSDT", "dips", "bundled-btcusdt", vectorised=False, listen=False)
    lane = []
    original = ClientStrategy.open_planned
    monkeypatch.setattr(ClientStrategy, "open_planned", lambda self, *a: lane.append(a[1]) or original(self, *a))
    vectorised, _ = await _backtest("BTCUSDT", "dips", "bundled-btcusdt", vectorised=True, listen=False)
    closed = [r for r in per_frame if r.action == "closed"]
    assert len({r.signal.minute_estimated_time for r in closed}) == 4 and len(lane) == len(closed) > 20
    assert any(r.close_reason == "time_expired" for r in closed)
    assert vectorised == per_frame


async def test_idle_ticks_are_the_same_when_someone_watches_them(seeded_store):
    idle: dict[bool, list] = {False: [], True: []}
    for vectorised in (False, True):
        bk.clear_registry()
        await open_workspace(seeded_store)
        bk.add_strategy("watched", sma_cross.get_signal, get_signals=sma_cross.get_signals,
                        callbacks=bk.StrategyCallbacks(on_idle=lambda *a, v=vectorised: idle[v].append(a)))
        [r async for r in bk.Backtest.run("ETHBTC", strategy_name="watched", exchange_name="bundled",
                                          frame_name="bundled-2018", vectorised=vectorised)]
    assert len(idle[False]) > 1000 and idle[True] == idle[False]


async def test_milestone_analytics_are_the_same_from_digests_and_from_events(seeded_store):
    await open_workspace(seeded_store)
    [r async for r in bk.Backtest.run("BTCUSDT", strategy_name=sma_cross.NAME, exchange_name="bundled",
                                      frame_name="bundled-btcusdt")]
    from_digests = await bk.Partial.get_data("BTCUSDT", strategy_name=sma_cross.NAME)
    bk.reset_analytics()
    reset_backtests()
    bk.listen_partial_profit(lambda e: None)      # someone listens: events one by one
    [r async for r in bk.Backtest.run("BTCUSDT", strategy_name=sma_cross.NAME, exchange_name="bundled",
                                      frame_name="bundled-btcusdt")]
    from_events = await bk.Partial.get_data("BTCUSDT", strategy_name=sma_cross.NAME)
    assert from_events.total_events > 100
    assert from_digests == from_events


# --- errors ------------------------------------------------------------------------------------------

def _synthetic(n=5000):
    exchange = SyntheticExchange(n, start=START)
    bk.add_exchange("syn", exchange.get_candles)
    bk.add_frame("f", start=START + 3600_000, end=START + (n - 2) * 60_000)


@pytest.mark.parametrize("answer, message", [
    (lambda n: None, "returned NoneType, expected bk.Signals"),
    (lambda n: bk.Signals(price_take_profit=1.0, price_stop_loss=1.0), "needs long or short"),
    (lambda n: bk.Signals(long=np.zeros(n - 1, bool), price_take_profit=1.0, price_stop_loss=1.0),
     r"long has shape .*expected \({n},\)"),
    (lambda n: bk.Signals(long=np.zeros(n), price_take_profit=1.0, price_stop_loss=1.0),
     "long must be a boolean array"),
    (lambda n: bk.Signals(long=np.ones(n, bool), short=np.ones(n, bool), price_take_profit=1.0,
                          price_stop_loss=1.0), "row 0 is both long and short"),
    (lambda n: bk.Signals(long=np.ones(n, bool), price_take_profit=np.ones(3), price_stop_loss=1.0),
     "price_take_profit has shape"),
    (lambda n: bk.Signals(long=np.ones(n, bool), price_take_profit=1.0, price_stop_loss=1.0, note=3),
     "note must be a string"),
])
async def test_a_malformed_answer_fails_the_run_with_a_clear_error(answer, message):
    _synthetic()
    frames = len(frame_times(START + 3600_000, START + 4998 * 60_000, "1m"))

    def get_signals(symbol, frame):
        return answer(len(frame))

    bk.add_strategy("bad", sma_cross.get_signal, get_signals=get_signals)
    errors = []
    bk.listen_error(errors.append)
    with pytest.raises(bk.SignalsError, match=message.replace("{n}", str(frames))):
        [r async for r in bk.Backtest.run("SYN", strategy_name="bad", exchange_name="syn", frame_name="f")]
    await bk.drain_events()
    assert errors and "get_signals of bad" in str(errors[0].error)


async def test_vectorised_true_needs_get_signals():
    _synthetic()
    bk.add_strategy("plain", sma_cross.get_signal)
    with pytest.raises(ValueError, match="has no get_signals"):
        [r async for r in bk.Backtest.run("SYN", strategy_name="plain", exchange_name="syn", frame_name="f",
                                          vectorised=True)]


async def test_look_ahead_is_found_and_sma_cross_has_none():
    _synthetic(20_000)
    from engine.exchange.client import ExchangeClient
    from engine.feed import SeriesFeed
    from engine.registry import get_exchange
    times = frame_times(START + 3600_000, START + 19_000 * 60_000, "1m")
    feed = SeriesFeed(ExchangeClient(get_exchange("syn")), horizon_end=int(times[-1]) + 60_000)
    await feed.load("SYN", "1m", int(times[0]) - 5 * 60_000, int(times[-1]) + 120_000)
    frame = bk.SignalFrame("SYN", times, feed)

    async def peeks(symbol, f):             # the next candle's close decides: look-ahead
        candles, newest = await f.candles("1m", 1)
        close = candles.close
        up = np.zeros(len(f), bool)
        ok = newest + 1 < len(close)
        up[ok] = close[newest[ok] + 1] > close[newest[ok]]
        return bk.Signals(long=up, price_take_profit=f.price * 1.02, price_stop_loss=f.price * 0.99)

    cuts = list(range(3000, 13_000, 1000))
    assert await bk.lookahead_problems(sma_cross.get_signals, frame, cuts) == []
    problems = await bk.lookahead_problems(peeks, frame, cuts)
    assert problems and "look-ahead" in problems[0]


# --- the array parts against their one-by-one twins ----------------------------------------------

def test_bulk_validation_agrees_with_signal_problems_row_by_row():
    rng = np.random.default_rng(7)
    n = 4000
    price = rng.choice([100.0, np.nan, -1.0, 0.0, np.inf], n, p=[0.9, 0.025, 0.025, 0.025, 0.025])
    long = rng.random(n) < 0.5
    scale = rng.choice([1.0005, 1.002, 1.02, 1.3, 0.99, 1.0, np.nan], n)
    tp = np.where(long, price * scale, price / scale)
    sl = np.where(long, price / rng.choice([1.0005, 1.01, 1.4, 1.0], n), price * rng.choice([1.0005, 1.01, 1.4], n))
    for minutes in (None, 120, 0, 1.5, math.inf):
        bk.reset_config()
        bk.set_config(CC_MIN_TAKEPROFIT_DISTANCE_PERCENT=0.5, CC_MIN_STOPLOSS_DISTANCE_PERCENT=0.2,
                      CC_MAX_STOPLOSS_DISTANCE_PERCENT=20)
        config = bk.get_config()
        bulk = valid_market_signals(long=long, take_profit=tp, stop_loss=sl, price=price, minutes=minutes,
                                    config=config)
        one_by_one = [not signal_problems(bk.SignalDto("long" if long[k] else "short", float(tp[k]), float(sl[k]),
                                                       minutes), current_price=float(price[k]), scheduled=False,
                                          config=config) for k in range(n)]
        assert bulk.tolist() == one_by_one
        assert 0 < sum(one_by_one) < n or minutes in (0, 1.5, math.inf)


@pytest.mark.parametrize("trigger", ["vwap", "touch"])
def test_closes_resolved_ahead_agree_with_resolving_one_by_one(trigger):
    series = Series("X", "1m", SyntheticExchange(40_000, start=START).candles)
    rng = np.random.default_rng(11)
    rows = np.sort(rng.choice(np.arange(10, 39_000), 2000, replace=False))
    pending = series.ts[rows] + 60_000
    long = rng.random(2000) < 0.6
    price = series.vwap[rows]
    tp, sl = np.where(long, price * 1.01, price * 0.99), np.where(long, price * 0.995, price * 1.005)
    minutes = rng.choice([1, 5, 120, 600, np.inf], 2000).astype(float)
    end = int(series.ts[-3])
    many = resolve_open_many(series, pending, long=long, take_profit=tp, stop_loss=sl, minutes=minutes,
                             end_ms=end, trigger=trigger)
    reasons = set()
    for k in range(2000):
        first = series.index(int(pending[k]))
        one = resolve_open(series, first, position="long" if long[k] else "short", take_profit=tp[k],
                           stop_loss=sl[k], pending_at=int(pending[k]), minutes=minutes[k], end_ms=end, trigger=trigger)
        reason = "take_profit" if many.take_profit[k] else "stop_loss" if many.stop_loss[k] else "time_expired"
        extremes = None if many.low[k] > many.high[k] else (many.low[k], many.high[k])
        assert (one.index, one.reason, active_extremes(series, first, one.index)) == \
            (many.index[k], reason, extremes), k
        reasons.add(reason)
    assert reasons == {"take_profit", "stop_loss", "time_expired"}


def test_pnl_and_milestone_reach_for_many_signals_match_one_by_one():
    rng = np.random.default_rng(5)
    n = 5000
    long = rng.random(n) < 0.5
    price = rng.uniform(0.01, 50_000, n)
    close = price * rng.uniform(0.9, 1.1, n)
    tp = np.where(long, price * rng.uniform(1.001, 1.05, n), price * rng.uniform(0.95, 0.999, n))
    sl = np.where(long, price * rng.uniform(0.95, 0.999, n), price * rng.uniform(1.001, 1.05, n))
    low, high = np.minimum(close, price * rng.uniform(0.9, 1.0, n)), np.maximum(close, price * rng.uniform(1.0, 1.1, n))
    pnl = pnl_percentages(long, price, close)
    profit, loss = milestone_reach_many(long=long, price_open=price, take_profit=tp, stop_loss=sl, low=low, high=high)
    for k in range(n):
        position = "long" if long[k] else "short"
        assert pnl[k] == pnl_percentage(position, float(price[k]), float(close[k])), k
        assert (profit[k], loss[k]) == milestone_reach(position=position, price_open=float(price[k]),
                                                       take_profit=float(tp[k]), stop_loss=float(sl[k]),
                                                       low=float(low[k]), high=float(high[k])), k
    assert len(set(profit.tolist())) == len(set(loss.tolist())) == 11     # every count, 0..10, occurs


def test_window_sums_are_within_their_bound_and_prefix_sums_match_accumulate():
    x = SyntheticExchange(20_000, start=START).candles.close
    sums = BlockSums(x)
    for a, b, (fast, slow) in sums.chunks((20, 51), rows=2 * 4096):          # chunks as get_signals reads them
        assert np.array_equal(fast, sums.sums(20)[a:b], equal_nan=True)
        assert np.array_equal(slow, sums.sums(51)[a:b], equal_nan=True)
    for length in (1, 20, 50, 51):
        approx = sums.sums(length)
        assert np.isnan(approx[:length - 1]).all()
        for j in itertools.chain(range(length - 1, length + 3), range(4090, 4200), range(length - 1, len(x), 101)):
            assert abs(approx[j] - math.fsum(x[j - length + 1:j + 1])) <= sums.bound_unit
    ends = np.array([50, 4095, 4096, 19_999])
    prefix = window_prefix_sums(x, ends, 51)
    for row, e in zip(prefix, ends):
        assert row.tolist() == list(itertools.accumulate(x[e - 50:e + 1].tolist()))


def test_samples_that_offer_both_paths_are_registered_with_both(seeded_store):
    strategies.register_all()
    schema = next(s for s in bk.list_strategies() if s.strategy_name == sma_cross.NAME)
    assert schema.get_signals is sma_cross.get_signals


async def test_listeners_of_live_runs_only_leave_backtests_on_the_lane(seeded_store, monkeypatch):
    """The console listens to live runs' milestones and rejections (listen_partial_*_live,
    listen_risk_live): its backtests stay on the lane, and those listeners hear none of theirs."""
    from engine.strategy import ClientStrategy
    await open_workspace(seeded_store)
    plain = plain_sma_cross()
    heard = []
    for listen in (bk.listen_partial_profit_live, bk.listen_partial_loss_live, bk.listen_risk_live):
        listen(heard.append)
    lane = []
    original = ClientStrategy.open_planned
    monkeypatch.setattr(ClientStrategy, "open_planned", lambda self, *a: lane.append(a[1]) or original(self, *a))
    results, _ = await _backtest("BTCUSDT", plain, "bundled-btcusdt", vectorised=True, listen=False)
    closed = [r for r in results if r.action == "closed"]
    assert len(lane) == len(closed) > 20 and heard == []
    assert (await bk.Partial.get_data("BTCUSDT", strategy_name=plain)).total_events > 50


async def test_the_lane_with_a_risk_profile_callbacks_and_milestone_listeners_equals_the_general_path(
        seeded_store, monkeypatch):
    """A risk profile (rejecting signals of odd minutes), on_open / on_close and milestone and risk
    listeners no longer take a backtest off the lane: every trade goes through it, with the same
    results, the same events in the same order and the same callbacks as per frame."""
    from engine.risk import reset_risks
    from engine.strategy import ClientStrategy
    await open_workspace(seeded_store)
    bk.add_risk("odd", validations=[{"validate": lambda a: "odd minute" if (a.timestamp // 60_000) % 2 else None,
                                     "note": "even minutes only"}])
    calls: list = []
    callbacks = bk.StrategyCallbacks(on_open=lambda symbol, row, price, bt: calls.append(("open", row.id, price)),
                                     on_close=lambda symbol, row, price, bt: calls.append(("close", row.id, price)))
    bk.add_strategy("guarded", sma_cross.get_signal, get_signals=sma_cross.get_signals, risk_name="odd",
                    callbacks=callbacks)

    async def run(vectorised: bool):
        events: list = []
        for listen in (bk.listen_risk, bk.listen_partial_profit, bk.listen_partial_loss):
            listen(events.append)
        results = [r async for r in bk.Backtest.run("BTCUSDT", strategy_name="guarded", exchange_name="bundled",
                                                   frame_name="bundled-btcusdt", vectorised=vectorised)]
        await bk.drain_events()
        from engine.events import clear_listeners
        clear_listeners()
        reset_risks()
        seen, calls[:] = list(calls), []
        return results, events, seen

    per_frame = await run(False)
    lane = []
    original = ClientStrategy.open_planned
    monkeypatch.setattr(ClientStrategy, "open_planned", lambda self, *a: lane.append(a[1]) or original(self, *a))
    vectorised = await run(True)
    closed = [r for r in per_frame[0] if r.action == "closed"]
    rejections = [e for e in per_frame[1] if isinstance(e, bk.RiskEvent)]
    assert len(closed) > 20 and len(rejections) > 20
    assert len([r for r in vectorised[0] if r.action == "closed"]) == len(closed)
    assert len(lane) == len(closed) + len(rejections)       # every signal went through the lane
    assert vectorised == per_frame
    assert sum(isinstance(e, bk.PartialEvent) for e in per_frame[1]) > 50


def test_milestone_crossings_from_known_counts_equal_the_full_scan():
    from engine.fastpath import milestone_crossings, milestone_crossings_known, milestone_reach
    rng = np.random.default_rng(7)
    for _ in range(500):
        position = "long" if rng.random() < 0.5 else "short"
        price_open = 100.0
        tp, sl = (102.0, 99.0) if position == "long" else (98.0, 101.0)
        prices = price_open + np.cumsum(rng.normal(0, 0.15, int(rng.integers(1, 120))))
        prices = np.clip(prices, min(tp, sl) + 1e-9, max(tp, sl) - 1e-9)    # active candles: neither hit
        full = milestone_crossings(prices, position=position, price_open=price_open, take_profit=tp, stop_loss=sl)
        profit, loss = milestone_reach(position=position, price_open=price_open, take_profit=tp, stop_loss=sl,
                                       low=float(prices.min()), high=float(prices.max()))
        assert milestone_crossings_known(prices, position=position, price_open=price_open, take_profit=tp,
                                         stop_loss=sl, profit_levels=profit, loss_levels=loss) == full


def test_milestone_crossings_from_thresholds_equal_the_scan_at_every_scale_and_at_the_threshold_itself():
    from engine.fastpath import milestone_crossings_known, milestone_crossings_past, milestone_reach, \
        milestone_thresholds
    rng = np.random.default_rng(13)
    signals = 400
    long = rng.random(signals) < 0.5
    price_open = 10.0 ** rng.uniform(-6, 5, signals) * rng.uniform(1, 2, signals)
    width = rng.uniform(0.001, 0.2, signals)
    tp = np.where(long, price_open * (1 + width), price_open * (1 - width))
    sl = np.where(long, price_open * (1 - width / 3), price_open * (1 + width / 3))
    t = milestone_thresholds(long=long, price_open=price_open, take_profit=tp, stop_loss=sl)
    assert t.exact.all()
    compared = at_threshold = 0
    for k in range(signals):
        position = "long" if long[k] else "short"
        po, take, stop = float(price_open[k]), float(tp[k]), float(sl[k])
        lo, hi = min(take, stop), max(take, stop)
        walk = po + np.cumsum(rng.normal(0, (hi - lo) / 25, int(rng.integers(1, 160))))
        # The thresholds themselves and their neighbours, as prices the VWAP can take.
        edges = np.concatenate([t.profit[k], t.loss[k]])
        edges = np.concatenate([edges, np.nextafter(edges, np.inf), np.nextafter(edges, -np.inf)])
        prices = np.concatenate([walk, rng.permutation(edges)[:int(rng.integers(0, 12))]])
        prices = prices[(prices > lo) & (prices < hi)]                   # active candles: neither level hit
        if not len(prices):
            continue
        rng.shuffle(prices)
        at_threshold += int(np.isin(prices, edges).sum())
        profit, loss = milestone_reach(position=position, price_open=po, take_profit=take, stop_loss=stop,
                                       low=float(prices.min()), high=float(prices.max()))
        known = milestone_crossings_known(prices, position=position, price_open=po, take_profit=take, stop_loss=stop,
                                          profit_levels=profit, loss_levels=loss)
        past = milestone_crossings_past(prices, position=position, price_open=po, take_profit=take, stop_loss=stop,
                                        profit_levels=profit, loss_levels=loss, profit_thresholds=t.profit[k],
                                        loss_thresholds=t.loss[k])
        assert [c[:4] for c in past] == known, k
        assert [c[4] for c in past] == prices[[c[0] for c in known]].tolist(), k
        compared += len(known)
    assert compared > 1000 and at_threshold > 100


def test_milestone_thresholds_are_refused_where_no_exact_price_exists():
    from engine.fastpath import milestone_thresholds
    t = milestone_thresholds(long=np.array([True, True, False]), price_open=np.array([100.0, np.nan, 100.0]),
                             take_profit=np.array([100.0, 101.0, 98.0]), stop_loss=np.array([99.0, 99.0, 101.0]))
    assert t.exact.tolist() == [False, False, True]          # no way to TP; no price; a sound short
