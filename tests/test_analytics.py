"""Analytics: Schedule, Risk, Partial, Performance and Heat (get_data / get_report / dump)."""

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import engine as bk
from engine.analytics.base import MAX_EVENTS
from engine.analytics.performance import percentile
from engine.events import clear_listeners
from tests.helpers import Portfolio, collect, minute, once, register, steps
from tests.test_pnl_stats_sizing import _assert_matches, _closed

VECTORS = json.loads((Path(__file__).parent / "data" / "stats_vectors.json").read_text())
LIMIT = dict(position="long", price_open=95, price_take_profit=110, price_stop_loss=90)


# --- heat ----------------------------------------------------------------------------------------

def test_heat_reproduces_the_two_symbol_vector():
    case = VECTORS["heat_two_symbols"]
    heat = bk.heat_statistics(list(reversed(_closed(case["trades"]))), "s")
    assert [r.symbol for r in heat.symbols] == case["expected_symbol_order"]
    for r in heat.symbols:
        as_stats = SimpleNamespace(**{f: getattr(r, f) for f in r.__struct_fields__}, total_signals=r.total_trades)
        _assert_matches(as_stats, case["expected_per_symbol"][r.symbol])
    for key, want in case["expected_portfolio"].items():
        field = "total_symbols" if key == "totalSymbols" else "portfolio_" + _snake_tail(key)
        assert getattr(heat, field) == pytest.approx(want, rel=1e-9, abs=1e-12), key


def _snake_tail(key):
    import re
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key.removeprefix("portfolio")).lower().lstrip("_")


def test_heat_sorts_by_sharpe_with_none_last_and_an_empty_heat_is_none_not_zero():
    case = VECTORS["heat_two_symbols"]
    closed = _closed(case["trades"])
    few = [c for c in closed if c.symbol == "BTCUSDT"][:3]       # 3 trades: Sharpe is None
    few = [bk.TickClosed(**{**{f: getattr(c, f) for f in c.__struct_fields__}, "symbol": "AAA"}) for c in few]
    heat = bk.heat_statistics(closed + few)
    assert [r.symbol for r in heat.symbols] == ["ETHUSDT", "BTCUSDT", "AAA"]
    empty = bk.heat_statistics([])
    assert (empty.total_symbols, empty.portfolio_total_trades, empty.symbols) == (0, 0, [])
    assert empty.portfolio_sharpe_ratio is None and empty.portfolio_total_pnl is None
    assert empty.portfolio_avg_duration is None and empty.portfolio_win_rate is None


async def test_heat_collects_a_strategy_across_symbols_from_backtests(tmp_path):
    def at_minute_10(symbol, when):
        if when.minute == 10:
            return bk.SignalDto(position="long", price_take_profit=110, price_stop_loss=90)

    register(steps((100, 20), (120, 30)), strategy=at_minute_10, frame=(10, 45))
    for symbol in ("BTC", "ETH"):
        await collect(symbol)
    heat = await bk.Heat.get_data("s")
    assert [r.symbol for r in heat.symbols] == ["BTC", "ETH"]      # both Sharpe None (1 trade): by symbol
    assert heat.portfolio_total_trades == 2 and heat.symbols[0].total_trades == 1
    assert heat.portfolio_total_pnl == pytest.approx(2 * heat.symbols[0].total_pnl)
    assert (await bk.Heat.get_data("s", backtest=False)).total_symbols == 0
    report = await bk.Heat.get_report("s")
    assert "# Heat: s" in report and "| BTC | 1 |" in report and "| ETH | 1 |" in report
    path = await bk.Heat.dump("s", path=str(tmp_path / "heat"))
    assert Path(path).name == "s.md" and Path(path).read_text() == report


# --- schedule -------------------------------------------------------------------------------------

async def test_schedule_two_scheduled_one_activated_one_cancelled_is_50_50(tmp_path):
    bk.set_config(CC_SCHEDULE_AWAIT_MINUTES=20)
    # BTC drops to the entry at minute 15 and fills; ETH never does and times out.
    p = Portfolio({"BTC": steps((100, 15), (95, 60)), "ETH": [100.0] * 75},
                  {"lim": {"get_signal": lambda s, w: bk.SignalDto(**LIMIT)}}, ["BTC", "ETH"])
    assert await p.tick(10) == {("lim", "BTC"): "scheduled", ("lim", "ETH"): "scheduled"}
    assert await p.tick(20, ("lim", "BTC")) == {("lim", "BTC"): "opened"}
    assert await p.tick(30, ("lim", "ETH")) == {("lim", "ETH"): "cancelled"}
    stats = await bk.Schedule.get_data(strategy_name="lim")
    assert (stats.total_scheduled, stats.total_opened, stats.total_cancelled) == (2, 1, 1)
    assert (stats.activation_rate, stats.cancellation_rate) == (50.0, 50.0)
    assert (stats.avg_activation_wait, stats.avg_cancellation_wait) == (10.0, 20.0)
    assert stats.cancel_reasons == {"timeout": 1}
    assert [(e.action, e.symbol) for e in stats.event_list] == [
        ("scheduled", "BTC"), ("scheduled", "ETH"), ("opened", "BTC"), ("cancelled", "ETH")]
    btc = await bk.Schedule.get_data("BTC", strategy_name="lim")
    assert (btc.total_scheduled, btc.activation_rate, btc.cancellation_rate) == (1, 100.0, 0.0)
    assert (await bk.Schedule.get_data(backtest=True)).total_scheduled == 0
    report = await bk.Schedule.get_report(strategy_name="lim")
    assert "| Activation rate | 50.00 % |" in report and "| Cancellation rate | 50.00 % |" in report
    path = await bk.Schedule.dump(strategy_name="lim", path=str(tmp_path))
    assert Path(path).name == "all_lim.md" and Path(path).read_text() == report


async def test_schedule_counts_scheduled_signals_of_a_backtest_but_not_market_entries():
    prices = steps((100, 20), (94, 30))
    register(prices, strategy=once(lambda: bk.SignalDto(**LIMIT)), frame=(10, 45))
    results = await collect()
    assert [r.action for r in results] == ["scheduled", "opened", "closed"]
    stats = await bk.Schedule.get_data("BTC", strategy_name="s", backtest=True)
    assert (stats.total_scheduled, stats.total_opened, stats.activation_rate) == (1, 1, 100.0)


async def test_empty_analytics_answer_none_not_zero():
    schedule = await bk.Schedule.get_data()
    assert (schedule.total_scheduled, schedule.event_list) == (0, [])
    assert schedule.activation_rate is None and schedule.cancellation_rate is None
    assert schedule.avg_activation_wait is None and schedule.avg_cancellation_wait is None
    risk = await bk.Risk.get_data()
    assert (risk.total_rejections, risk.by_symbol, risk.event_list) == (0, {}, [])
    partial = await bk.Partial.get_data()
    assert (partial.total_events, partial.profit_levels, partial.loss_levels) == (0, {}, {})
    perf = await bk.Performance.get_data()
    assert (perf.total_events, perf.metrics) == (0, {})
    assert "N/A" in await bk.Schedule.get_report()
    assert "No rejections." in await bk.Risk.get_report()
    assert "No milestones reached." in await bk.Partial.get_report()
    assert "No timings recorded." in await bk.Performance.get_report()
    assert "No closed signals." in await bk.Heat.get_report("nobody")


# --- risk -----------------------------------------------------------------------------------------

async def test_risk_analytics_count_rejections_by_symbol_strategy_and_profile(tmp_path):
    bk.add_risk("max1", validations=[lambda a: "one at a time" if a.active_position_count >= 1 else None])
    p = Portfolio([100.0] * 40, {"a": {"risk_name": "max1"}, "b": {"risk_name": "max1"}}, ["BTC", "ETH"])
    await p.tick(10)          # a/BTC opens; a/ETH, b/BTC, b/ETH are rejected
    await p.tick(11)          # the three are asked again (a rejection does not consume the slot)
    stats = await bk.Risk.get_data()
    assert stats.total_rejections == 6
    assert stats.by_symbol == {"ETH": 4, "BTC": 2} and stats.by_strategy == {"b": 4, "a": 2}
    assert stats.by_risk == {"max1": 6} and stats.by_note == {"one at a time": 6}
    assert [(e.strategy_name, e.symbol) for e in stats.event_list[:3]] == [("a", "ETH"), ("b", "BTC"), ("b", "ETH")]
    only_b = await bk.Risk.get_data(strategy_name="b")
    assert only_b.total_rejections == 4 and only_b.by_strategy == {"b": 4}
    report = await bk.Risk.get_report()
    assert "Total rejections: 6" in report and "| ETH | 4 |" in report and "one at a time" in report
    assert Path(await bk.Risk.dump(path=str(tmp_path))).read_text() == report


async def test_risk_analytics_keep_every_count_but_only_the_newest_events():
    bk.add_risk("never", validations=[lambda a: "closed"])
    p = Portfolio([100.0] * (MAX_EVENTS + 60), {"s": {"risk_name": "never"}}, ["BTC"])
    for i in range(10, MAX_EVENTS + 50):
        await p.tick(i)
    stats = await bk.Risk.get_data()
    assert stats.total_rejections == MAX_EVENTS + 40
    assert len(stats.event_list) == MAX_EVENTS and stats.event_list[-1].timestamp == minute(MAX_EVENTS + 49)


async def test_analytics_keep_recording_after_clear_listeners():
    bk.add_risk("never", validations=[lambda a: "closed"])
    p = Portfolio([100.0] * 30, {"s": {"risk_name": "never"}}, ["BTC"])
    clear_listeners()
    await p.tick(10)
    assert (await bk.Risk.get_data()).total_rejections == 1


# --- partial --------------------------------------------------------------------------------------

async def test_partial_analytics_count_levels_per_signal():
    register(steps((100, 20), (104, 10), (106, 10), (120, 10)),
             strategy=once(lambda: bk.SignalDto(position="long", price_take_profit=110, price_stop_loss=95)),
             frame=(10, 45))
    await collect()
    stats = await bk.Partial.get_data("BTC", strategy_name="s")
    # The VWAP reaches 108.8 (80 % of the way) while open; the candle at TP closes it and reaches none.
    assert stats.total_profit == 8 and stats.total_loss == 0 and stats.total_events == 8
    assert stats.profit_levels == {lv: 1 for lv in range(10, 81, 10)}
    assert [e.level for e in stats.event_list] == list(range(10, 81, 10))
    report = await bk.Partial.get_report()
    assert "| 80 % | 1 | 0 |" in report and "| 90 % | 0 | 0 |" in report and "profit 50 %" in report


# --- performance ----------------------------------------------------------------------------------

def test_percentile_matches_numpy():
    rng = np.random.default_rng(7)
    for n in (1, 2, 5, 101):
        xs = sorted(rng.exponential(3.0, n).tolist())
        for q in (0.5, 0.95, 0.99):
            assert percentile(xs, q) == pytest.approx(float(np.percentile(xs, q * 100)), rel=1e-12)


async def test_performance_records_backtest_timings_and_emits_them():
    seen = []
    bk.listen_performance(seen.append)
    register(steps((100, 20), (120, 30)),
             strategy=once(lambda: bk.SignalDto(position="long", price_take_profit=110, price_stop_loss=90)),
             frame=(10, 45))
    await collect()
    assert {e.metric for e in seen} == {"backtest_load_candles", "backtest_signal", "backtest_total"}
    stats = await bk.Performance.get_data("BTC", strategy_name="s")
    assert set(stats.metrics) == {e.metric for e in seen} and stats.total_events == len(seen)
    total = stats.metrics["backtest_total"]
    assert total.count == 1 and total.min_ms == total.max_ms == total.mean_ms == total.median_ms
    assert total.std_ms is None and total.mean_ms >= stats.metrics["backtest_signal"].mean_ms
    assert math.isclose(stats.total_ms, sum(e.duration_ms for e in seen), rel_tol=1e-12)
    report = await bk.Performance.get_report()
    assert "| backtest_total | 1 |" in report


async def test_performance_of_a_live_run_times_each_tick_and_get_signal(tmp_path):
    from tests.helpers import PriceExchange
    ex = PriceExchange([100.0] * 40)
    bk.add_replay_exchange("replay", series={"BTC": ex.candles}, speed=0, start=minute(10), end=minute(30))
    bk.add_strategy("s", lambda s, w: None)
    async for _ in bk.Live.run("BTC", strategy_name="s", exchange_name="replay", state_dir=tmp_path / "state"):
        pass
    stats = await bk.Performance.get_data("BTC", strategy_name="s", backtest=False)
    assert stats.metrics["live_tick"].count == 21 and stats.metrics["get_signal"].count == 21
    m = stats.metrics["live_tick"]
    assert m.min_ms <= m.median_ms <= m.p95_ms <= m.p99_ms <= m.max_ms and m.std_ms is not None
