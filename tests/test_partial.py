"""SEMANTICS.md section 6: partial profit / loss milestones, in live ticks, the backtest fast path
and across a live restart."""

import engine as bk
from tests.helpers import Harness, PriceExchange, collect, fixed, minute, once, register, steps

LONG = dict(position="long", price_take_profit=110, price_stop_loss=90)


def climb(start=100.0, step=0.5, count=30, flat=15):
    """``flat`` minutes at ``start``, then one candle per minute ``step`` higher."""
    return [start] * flat + [start + step * k for k in range(1, count + 1)]


def record():
    events = []
    bk.listen_partial_profit(lambda e: events.append(("profit", e.level, e.timestamp, e.signal.id)))
    bk.listen_partial_loss(lambda e: events.append(("loss", e.level, e.timestamp, e.signal.id)))
    return events


async def test_a_steady_climb_to_tp_emits_10_to_90_in_order_exactly_once_and_the_close_none():
    events = record()
    order = []
    bk.listen_partial_profit(lambda e: order.append(e.level))
    bk.listen_signal(lambda r: order.append(r.action) if r.action == "closed" else None)
    h = Harness(climb(), fixed(**LONG))
    assert (await h.at(10)).action == "opened"
    results = [await h.at(i) for i in range(11, 45)]
    closed = [r for r in results if r.action == "closed"]
    assert len(closed) == 1 and closed[0].close_reason == "take_profit"
    assert [(kind, level) for kind, level, *_ in events] == [("profit", lv) for lv in range(10, 100, 10)]
    # The tick that closes the signal fires no milestone (SEMANTICS.md 5): the TP hit is not level 100.
    assert events[-1][2] < closed[0].close_timestamp and order[-2:] == [90, "closed"]
    assert h.strategy.partial.states == {}


async def test_a_jump_straight_past_tp_closes_without_a_milestone():
    events = record()
    h = Harness(steps((100, 15), (130, 10)), fixed(**LONG))
    await h.at(10)
    r = await h.at(20)
    assert r.action == "closed" and r.close_reason == "take_profit"
    assert events == []


async def test_a_jump_short_of_tp_fires_every_level_it_passed_at_once_in_ascending_order():
    events = record()
    h = Harness(steps((100, 15), (107, 10)), fixed(**LONG))   # one tick from 0 % to 70 % of the way
    await h.at(10)
    r = await h.at(20)
    assert r.action == "active" and r.percent_tp == 70.0
    assert [level for _, level, *_ in events] == [10, 20, 30, 40, 50, 60, 70]
    assert {t for _, _, t, _ in events} == {minute(20)}


async def test_an_oscillating_price_never_repeats_a_level():
    bk.set_config(CC_MAX_STOPLOSS_DISTANCE_PERCENT=20)
    events = record()
    raw = []
    cb = bk.StrategyCallbacks(on_partial_profit=lambda sym, s, price, pct, bt: raw.append(pct),
                              on_partial_loss=lambda sym, s, price, pct, bt: raw.append(-pct))
    # Up 45 % of the way to TP, down 35 % of the way to SL, and again, three times.
    wave = [(104.5, 6), (96.5, 6)] * 3
    h = Harness(steps((100, 15), *wave, (100, 10)), fixed(**LONG, minute_estimated_time=60), callbacks=cb)
    await h.at(10)
    for i in range(11, 15 + 36 + 5):
        r = await h.at(i)
        assert r.action == "active"
    levels = [(kind, level) for kind, level, *_ in events]
    assert levels == [("profit", lv) for lv in (10, 20, 30, 40)] + [("loss", lv) for lv in (10, 20, 30)]
    assert len(levels) == len(set(levels))
    # The callbacks see the raw progress on every tick, repeats and all.
    assert sum(1 for x in raw if x >= 45) >= 3 and sum(1 for x in raw if x <= -35) >= 3


async def test_the_fast_path_emits_the_same_levels_as_ticking_minute_by_minute():
    prices = climb(count=40)
    live_events = record()
    h = Harness(prices, fixed(**LONG))
    await h.at(10)
    for i in range(11, 50):
        if (await h.at(i)).action == "closed":
            break
    live = [(kind, level, t) for kind, level, t, _ in live_events]
    bk.clear_registry()
    from engine.events import clear_listeners
    clear_listeners()

    backtest_events = record()
    register(prices, strategy=once(lambda: bk.SignalDto(**LONG), at_minute=10), frame=(10, 50))
    await collect()
    # The backtest stamps each candle's open time, a live tick the minute after it closed.
    assert [(kind, level, t + 60_000) for kind, level, t, _ in backtest_events] == live


async def test_a_stop_loss_close_adds_no_loss_level():
    events = record()
    h = Harness(steps((100, 15), (95, 6), (80, 10)), fixed(**LONG))
    await h.at(10)
    assert (await h.at(21)).action == "active"            # VWAP 95: 50 % of the way to SL
    assert (await h.at(22)).action == "active"            # VWAP 92: 80 %
    r = await h.at(23)                                    # VWAP 89: past SL 90
    assert r.action == "closed" and r.close_reason == "stop_loss"
    assert [(kind, level) for kind, level, *_ in events] == [("loss", lv) for lv in range(10, 90, 10)]


async def test_a_live_restart_never_repeats_a_level(tmp_path):
    prices = climb(count=40)

    def setup(end):
        bk.clear_registry()
        bk.add_replay_exchange("replay", series={"BTC": PriceExchange(prices).candles}, speed=0, start=minute(10),
                               end=minute(end))
        bk.add_strategy("s", once(lambda: bk.SignalDto(**LONG), at_minute=10))

    events = record()
    state_dir = tmp_path / "state"
    setup(end=24)                           # the "process" stops at minute 24, the position still open
    first = [r.action async for r in bk.Live.run("BTC", strategy_name="s", exchange_name="replay",
                                                 state_dir=state_dir)]
    assert first == ["opened"]
    before = [level for _, level, *_ in events]
    assert before and before[-1] < 100
    setup(end=60)                           # a new run over the same state dir resumes the position
    second = [r async for r in bk.Live.run("BTC", strategy_name="s", exchange_name="replay", state_dir=state_dir)]
    assert [r.action for r in second] == ["closed"] and second[0].close_reason == "take_profit"
    levels = [level for _, level, *_ in events]
    assert levels == list(range(10, 100, 10))         # the second run went on from where the first stopped
    assert len(levels) > len(before)



# Prices at exactly a level's share of the way to TP, where ``move * (100 / span)`` rounds below
# the level and SEMANTICS.md's ``(cur - open) / (TP - open) * 100`` does not.
EXACT_LEVELS = [(167.76, 173.89, 173.277, 90), (103.0, 109.07, 104.214, 20), (69.56, 74.47, 72.506, 60),
                (151.9, 157.79, 156.612, 80), (72.75, 74.15, 73.31, 40), (164.54, 169.9, 166.148, 30)]


def test_the_fast_path_computes_progress_as_the_tick_does_to_the_last_bit():
    import numpy as np
    from engine.fastpath import milestone_crossings, milestone_reach
    from engine.partial import PartialTracker
    from engine.pnl import progress

    for price_open, take_profit, price, level in EXACT_LEVELS:
        stop_loss = price_open * 0.95
        percent_tp, _ = progress("long", price_open, take_profit, stop_loss, price)
        assert percent_tp == level
        assert PartialTracker().reach("id", "profit", percent_tp)[-1] == level
        crossings = milestone_crossings(np.array([price]), position="long", price_open=price_open,
                                        take_profit=take_profit, stop_loss=stop_loss)
        assert [lv for _, kind, lv, _ in crossings if kind == "profit"][-1] == level
        assert milestone_reach(position="long", price_open=price_open, take_profit=take_profit,
                               stop_loss=stop_loss, low=price, high=price)[0] == level // 10

    rng = np.random.default_rng(11)
    for position in ("long", "short"):
        for _ in range(300):
            price_open = float(rng.uniform(1, 1000))
            up, down = price_open * (1 + rng.uniform(0.002, 0.2)), price_open * (1 - rng.uniform(0.002, 0.1))
            take_profit, stop_loss = (up, down) if position == "long" else (down, up)
            prices = rng.uniform(price_open * 0.85, price_open * 1.25, 50)
            array_tp, array_sl = progress(position, price_open, take_profit, stop_loss, prices)
            for p, a_tp, a_sl in zip(prices.tolist(), array_tp.tolist(), array_sl.tolist()):
                assert (a_tp, a_sl) == progress(position, price_open, take_profit, stop_loss, p)
