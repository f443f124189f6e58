"""SEMANTICS.md sections 3 and 4: signals, validation, throttle, the tick state machine."""

import asyncio
import math

import pytest

import engine as bk
from tests.helpers import Harness, fixed, minute, steps


# --- entries ---------------------------------------------------------------------------------

async def test_market_entry_opens_at_the_vwap_now():
    h = Harness([100.0] * 30, fixed(position="long", price_take_profit=110, price_stop_loss=90))
    r = await h.at(10)
    assert r.action == "opened" and r.current_price == 100.0
    s = r.signal
    assert (s.price_open, s.scheduled_at, s.pending_at, s.symbol, s.strategy_name) == (100.0, minute(10), minute(10), "BTC", "s")
    assert s.minute_estimated_time == bk.get_config().CC_MAX_SIGNAL_LIFETIME_MINUTES


async def test_price_open_already_reached_is_an_immediate_entry_at_price_open():
    h = Harness([100.0] * 30, fixed(position="long", price_open=101, price_take_profit=110, price_stop_loss=95))
    r = await h.at(10)
    assert r.action == "opened" and r.signal.price_open == 101 and r.signal.pending_at == minute(10)
    assert [e.action for e in h.events] == ["opened"]  # no scheduled event


async def test_price_open_not_reached_schedules_then_activates_at_price_open():
    prices = steps((100, 15), (95, 10), (96, 10))
    h = Harness(prices, fixed(position="long", price_open=95, price_take_profit=110, price_stop_loss=90))
    r = await h.at(10)
    assert r.action == "scheduled" and r.signal.pending_at is None and r.signal.scheduled_at == minute(10)
    r = await h.at(15)                      # VWAP 100: still waiting
    assert r.action == "active" and r.percent_tp == 0 and r.percent_sl == 0
    r = await h.at(20)                      # VWAP of minutes 15..19 = 95 -> activation
    assert r.action == "opened" and r.signal.price_open == 95 and r.signal.pending_at == minute(20)
    assert r.signal.scheduled_at == minute(10)


async def test_scheduled_signal_times_out():
    bk.set_config(CC_SCHEDULE_AWAIT_MINUTES=10)
    h = Harness([100.0] * 40, fixed(position="long", price_open=95, price_take_profit=110, price_stop_loss=90))
    assert (await h.at(10)).action == "scheduled"
    assert (await h.at(19)).action == "active"
    r = await h.at(20)
    assert r.action == "cancelled" and r.reason == "timeout" and r.close_timestamp == minute(20)


async def test_stop_loss_before_activation_cancels_and_wins_over_activation():
    # VWAP jumps from 100 to 85: below SL 90 and below price_open 95 at once -> cancelled, never opened.
    h = Harness(steps((100, 15), (85, 20)), fixed(position="long", price_open=95, price_take_profit=110, price_stop_loss=90))
    assert (await h.at(10)).action == "scheduled"
    r = await h.at(20)
    assert r.action == "cancelled" and r.reason == "price_reject"
    assert "opened" not in [e.action for e in h.events]


async def test_short_scheduled_mirrors():
    h = Harness(steps((100, 15), (105, 10), (116, 10)),
                fixed(position="short", price_open=105, price_take_profit=95, price_stop_loss=115))
    assert (await h.at(10)).action == "scheduled"
    r = await h.at(20)
    assert r.action == "opened" and r.signal.price_open == 105
    r = await h.at(30)                      # VWAP 116 >= SL 115
    assert r.action == "closed" and r.close_reason == "stop_loss" and r.pnl.price_close == 115


# --- closes ----------------------------------------------------------------------------------

@pytest.mark.parametrize("position, tp, sl, later, reason, close", [
    ("long", 110, 90, 120, "take_profit", 110),
    ("long", 110, 90, 80, "stop_loss", 90),
    ("short", 90, 110, 80, "take_profit", 90),
    ("short", 90, 110, 120, "stop_loss", 110),
])
async def test_take_profit_and_stop_loss_close_at_exactly_their_price(position, tp, sl, later, reason, close):
    h = Harness(steps((100, 15), (later, 10)), fixed(position=position, price_take_profit=tp, price_stop_loss=sl))
    assert (await h.at(10)).action == "opened"
    r = await h.at(20)
    assert r.action == "closed" and r.close_reason == reason and r.pnl.price_close == close
    assert r.current_price == later and r.close_timestamp == minute(20)
    assert r.pnl.pnl_percentage == pytest.approx(bk.to_profit_loss(r.signal, close).pnl_percentage)
    assert h.strategy.pending is None


async def test_time_expired_closes_at_the_vwap():
    h = Harness(steps((100, 15), (101, 5), (102, 20)),
                fixed(position="long", price_take_profit=110, price_stop_loss=90, minute_estimated_time=10))
    assert (await h.at(10)).action == "opened"
    assert (await h.at(19)).action == "active"
    r = await h.at(20)                      # 20 - 10 >= 10 minutes
    assert r.action == "closed" and r.close_reason == "time_expired" and r.pnl.price_close == 101.0


async def test_touch_trigger_judges_extremes_and_stop_loss_first():
    bk.set_config(CC_PRICE_TRIGGER="touch")
    n = 30
    prices = [100.0] * n
    high = [100.0] * n
    low = [100.0] * n
    high[15], low[15] = 111.0, 89.0        # one candle reaches both TP and SL
    h = Harness(prices, fixed(position="long", price_take_profit=110, price_stop_loss=90), high=high, low=low)
    assert (await h.at(10)).action == "opened"
    r = await h.at(16)                      # newest closed candle is minute 15
    assert r.action == "closed" and r.close_reason == "stop_loss" and r.pnl.price_close == 90


async def test_vwap_trigger_ignores_a_wick_that_touch_would_take():
    n = 30
    high = [100.0] * n
    high[15] = 111.0
    h = Harness([100.0] * n, fixed(position="long", price_take_profit=110, price_stop_loss=90), high=high)
    await h.at(10)
    assert (await h.at(16)).action == "active"


async def test_touch_activation_and_stop_on_the_same_candle_cancels():
    bk.set_config(CC_PRICE_TRIGGER="touch")
    low = [100.0] * 30
    low[15] = 89.0                          # reaches price_open 95 and SL 90 on one candle
    h = Harness([100.0] * 30, fixed(position="long", price_open=95, price_take_profit=110, price_stop_loss=90), low=low)
    assert (await h.at(10)).action == "scheduled"
    r = await h.at(16)
    assert r.action == "cancelled" and r.reason == "price_reject"


# --- active: progress, milestones, peak/trough ----------------------------------------------

async def test_milestones_fire_once_in_ascending_order_and_clear_on_close():
    bk.set_config(CC_MAX_STOPLOSS_DISTANCE_PERCENT=25)
    profit, loss = [], []
    bk.listen_partial_profit(profit.append)
    bk.listen_partial_loss(loss.append)
    raw = []
    prices = steps((100_000, 15), (115_000, 5), (116_000, 5), (95_000, 5), (131_000, 10))
    cb = bk.StrategyCallbacks(on_partial_profit=lambda sym, sig, price, pct, bt: raw.append(pct))
    h = Harness(prices, fixed(position="long", price_take_profit=130_000, price_stop_loss=80_000), callbacks=cb)
    assert (await h.at(10)).action == "opened"
    r = await h.at(20)                      # progress (115000-100000)/(30000) = 50 %
    assert r.action == "active" and r.percent_tp == 50.0 and r.percent_sl == 0
    assert [e.level for e in profit] == [10, 20, 30, 40, 50]
    assert profit[0].current_price == 115_000 and profit[-1].percent == 50.0 and profit[0].timestamp == minute(20)
    await h.at(25)                          # 53.3 %: no new level; the callback still gets the raw progress
    assert [e.level for e in profit] == [10, 20, 30, 40, 50] and raw == [50.0, pytest.approx(53.333333333)]
    r = await h.at(30)                      # 95000: 25 % of the way to SL
    assert r.percent_sl == 25.0 and [e.level for e in loss] == [10, 20]
    assert (await h.at(40)).action == "closed"
    assert h.strategy.partial.states == {}  # cleared, silently


async def test_peak_and_trough_are_tracked_while_open():
    h = Harness(steps((100, 15), (104, 5), (97, 5), (102, 5), (120, 10)),
                fixed(position="long", price_take_profit=110, price_stop_loss=90))
    await h.at(10)
    for i in (20, 25, 30):
        await h.at(i)
    r = await h.at(40)
    assert r.close_reason == "take_profit"
    assert r.signal.peak_pnl == pytest.approx(bk.to_profit_loss(r.signal, 104).pnl_percentage)
    assert r.signal.trough_pnl == pytest.approx(bk.to_profit_loss(r.signal, 97).pnl_percentage)


# --- throttle, timeout, validation, risk, stop -----------------------------------------------

async def test_get_signal_runs_once_per_interval_slot():
    calls = []
    h = Harness([100.0] * 40, lambda s, w: calls.append(w), interval="5m")
    for i in range(10, 30):
        assert (await h.at(i)).action == "idle"
    assert [w.minute for w in calls] == [10, 15, 20, 25]


async def test_get_signal_timeout_reports_an_error_and_the_tick_is_idle():
    bk.set_config(CC_MAX_SIGNAL_GENERATION_SECONDS=0.05)
    errors = []
    bk.listen_error(errors.append)

    async def slow(symbol, when):
        await asyncio.sleep(5)

    h = Harness([100.0] * 30, slow)
    r = await h.at(10)
    assert r.action == "idle"
    assert len(errors) == 1 and "timed out after 0.05 s" in str(errors[0].error)


async def test_get_signal_that_raises_is_reported_and_the_engine_goes_on():
    errors = []
    bk.listen_error(errors.append)

    def boom(symbol, when):
        raise RuntimeError("indicator blew up")

    h = Harness([100.0] * 30, boom)
    assert (await h.at(10)).action == "idle" and (await h.at(11)).action == "idle"
    assert [str(e.error) for e in errors] == ["indicator blew up"] * 2 and errors[0].strategy_name == "s"


@pytest.mark.parametrize("dto, problems", [
    (dict(position="long", price_take_profit=90, price_stop_loss=110), ["long needs", "would close at once"]),
    (dict(position="short", price_take_profit=110, price_stop_loss=90), ["short needs", "would close at once"]),
    (dict(position="long", price_take_profit=100.1, price_stop_loss=99.95),
     ["CC_MIN_TAKEPROFIT_DISTANCE_PERCENT", "CC_MIN_STOPLOSS_DISTANCE_PERCENT"]),
    (dict(position="long", price_take_profit=120, price_stop_loss=80), ["CC_MAX_STOPLOSS_DISTANCE_PERCENT"]),
    (dict(position="long", price_take_profit=math.nan, price_stop_loss=-1), ["price_take_profit must be a finite",
                                                                              "price_stop_loss must be > 0"]),
    (dict(position="long", price_take_profit=110, price_stop_loss=95, minute_estimated_time=0), ["positive integer"]),
    (dict(position="long", price_take_profit=110, price_stop_loss=95, minute_estimated_time=2.5), ["positive integer"]),
    (dict(position="long", price_take_profit=110, price_stop_loss=95, minute_estimated_time=50_000), ["exceeds"]),
    (dict(position="long", price_take_profit=110, price_stop_loss=95, minute_estimated_time=math.inf), ["infinite only"]),
    (dict(position="long", price_open=80, price_take_profit=110, price_stop_loss=85), ["long needs"]),
    (dict(position="sideways", price_take_profit=110, price_stop_loss=95), ["position must be"]),
])
async def test_invalid_signals_are_dropped_with_every_problem_in_one_message(dto, problems):
    errors = []
    bk.listen_error(errors.append)
    h = Harness([100.0] * 30, fixed(**dto))
    assert (await h.at(10)).action == "idle"
    assert len(errors) == 1
    message = str(errors[0].error)
    for p in problems:
        assert p in message
    assert f"{len(problems)} problem(s)" in message or len(problems) == 1


async def test_infinite_lifetime_allows_an_infinite_time_limit():
    bk.set_config(CC_MAX_SIGNAL_LIFETIME_MINUTES=math.inf)
    h = Harness([100.0] * 30, fixed(position="long", price_take_profit=110, price_stop_loss=95,
                                    minute_estimated_time=math.inf))
    r = await h.at(10)
    assert r.action == "opened" and r.signal.minute_estimated_time == math.inf


async def test_non_signal_return_is_an_error():
    errors = []
    bk.listen_error(errors.append)
    h = Harness([100.0] * 30, lambda s, w: {"position": "long"})
    assert (await h.at(10)).action == "idle"
    assert "must return a SignalDto or None" in str(errors[0].error)


async def test_risk_rejection_does_not_consume_the_slot_and_is_reported():
    rejections = []
    bk.listen_risk(rejections.append)
    allow = {"now": False}
    bk.add_risk("gate", validations=[lambda args: None if allow["now"] else "market closed"])
    calls = []

    def get_signal(symbol, when):
        calls.append(when.minute)
        return bk.SignalDto(position="long", price_take_profit=110, price_stop_loss=95)

    h = Harness([100.0] * 30, get_signal, interval="5m", risk_name="gate")
    assert (await h.at(10)).action == "idle"
    assert (await h.at(11)).action == "idle"   # slot 10-14 not consumed: asked again
    allow["now"] = True
    assert (await h.at(12)).action == "opened"
    assert calls == [10, 11, 12]
    assert [r.rejection_note for r in rejections] == ["market closed"] * 2
    assert rejections[0].risk_name == "gate" and rejections[0].active_position_count == 0


async def test_risk_recheck_at_activation_cancels_with_reason_risk():
    state = {"ok": True}
    bk.add_risk("gate", validations=[{"validate": lambda a: None if state["ok"] else {"id": "r1", "note": "full"}}])
    h = Harness(steps((100, 15), (95, 10)), fixed(position="long", price_open=95, price_take_profit=110,
                                                  price_stop_loss=90), risk_name="gate")
    assert (await h.at(10)).action == "scheduled"
    state["ok"] = False
    r = await h.at(20)
    assert r.action == "cancelled" and r.reason == "risk"


async def test_stop_takes_no_new_signals_and_cancels_a_scheduled_one():
    h = Harness([100.0] * 30, fixed(position="long", price_open=95, price_take_profit=110, price_stop_loss=90))
    assert (await h.at(10)).action == "scheduled"
    h.strategy.stop()
    r = await h.at(11)
    assert r.action == "cancelled" and r.reason == "user"
    assert (await h.at(12)).action == "idle"


async def test_callbacks_fire_and_a_raising_callback_is_reported():
    seen, errors = [], []
    bk.listen_error(errors.append)

    def on_open(symbol, signal, price, backtest):
        seen.append(("open", price, backtest))
        raise ValueError("callback bug")

    cb = bk.StrategyCallbacks(on_open=on_open, on_close=lambda *a: seen.append(("close", a[2])),
                              on_tick=lambda s, r, b: seen.append(("tick", r.action)))
    h = Harness(steps((100, 15), (120, 10)), fixed(position="long", price_take_profit=110, price_stop_loss=90),
                callbacks=cb)
    await h.at(10)
    await h.at(20)
    assert seen == [("open", 100.0, False), ("tick", "opened"), ("close", 110), ("tick", "closed")]
    assert "callback bug" in str(errors[0].error) and errors[0].where == "callback on_open"
