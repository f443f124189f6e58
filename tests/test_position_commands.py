"""Commands on a position (issue [6 of 6]): the rules, then each command in a backtest and in a
live replay, their events, and a kill between a command's write and its event.

Prices are exact (tests/helpers.py): the VWAP at minute i is the mean of the closes of minutes
i-5..i-1, so a run of five equal closes makes the price a command acts at known.
"""

from __future__ import annotations

import math

import pytest

import engine as bk
from engine.persistence.journal import decode
from engine.pnl import effective_price, position_pnl
from engine.position import breakeven_threshold, plan
from engine.types import Entry
from engine.interval import to_ms
from tests.helpers import Harness, PriceExchange, minute, register, steps


def long_row(**kw):
    return bk.SignalRow("x", "long", 100.0, 110.0, 90.0, **kw)


# --- the rules ---------------------------------------------------------------------------------

def test_a_trailing_stop_counts_from_the_original_distance_and_only_tightens():
    config = bk.get_config()
    after, _ = plan("trailing_stop", long_row(), 104.0, 0, config, percent=-5)
    assert after.stop_loss == pytest.approx(95.0) and after.price_stop_loss == 90.0 and after.commits == 1
    # -3 from the original 10 % is 93: looser than 95, refused with the reason.
    refused = plan("trailing_stop", after, 104.0, 0, config, percent=-3)
    assert "only tightens" in refused.reason
    tighter, _ = plan("trailing_stop", after, 104.0, 0, config, percent=-7)
    assert tighter.stop_loss == pytest.approx(97.0)
    # Past the price it would close at once: refused.
    assert "past the price" in plan("trailing_stop", after, 96.0, 0, config, percent=-7).reason
    bk.set_config(CC_ENABLE_TRAILING_EVERYWHERE=True)
    looser, _ = plan("trailing_stop", after, 104.0, 0, bk.get_config(), percent=-3)
    assert looser.stop_loss == pytest.approx(93.0)


def test_a_trailing_take_only_comes_closer_to_the_entry():
    config = bk.get_config()
    closer, _ = plan("trailing_take", long_row(), 104.0, 0, config, percent=-4)
    assert closer.take_profit == pytest.approx(106.0)
    assert "only comes closer" in plan("trailing_take", closer, 104.0, 0, config, percent=-2).reason
    assert "past the price" in plan("trailing_take", closer, 104.0, 0, config, percent=-7).reason


def test_breakeven_needs_the_price_past_fees_slippage_and_the_threshold():
    config = bk.get_config()
    # (0.1 slippage + 0.1 fee) * 2 + 0.2 = 0.6 % above the entry.
    assert breakeven_threshold(long_row(), config) == pytest.approx(100.6)
    assert "needs the price past 100.6" in plan("breakeven", long_row(), 100.5, 0, config).reason
    after, _ = plan("breakeven", long_row(), 100.6, 0, config)
    assert after.stop_loss == 100.0
    assert "already protects" in plan("breakeven", after, 101.0, 0, config).reason
    # Short: below the entry.
    short = bk.SignalRow("y", "short", 100.0, 90.0, 110.0)
    assert plan("breakeven", short, 99.4, 0, config)[0].stop_loss == 100.0


def test_partial_closes_record_their_share_and_never_close_more_than_is_held():
    config = bk.get_config()
    after, pnl = plan("partial_profit", long_row(), 105.0, 7, config, percent=60)
    (close,) = after.partials
    assert (close.kind, close.percent, close.price, close.cost_basis, close.entries, close.timestamp) == \
        ("profit", 60, 105.0, 100.0, 1, 7)
    assert pnl.pnl_entries == pytest.approx(60.0) and pnl.pnl_percentage == pytest.approx(
        bk.to_profit_loss(long_row(), 105.0).pnl_percentage)
    # 50 % of the 40 held is 20: fine; 100 % of it closes the rest; more than that does not exist.
    assert plan("partial_profit", after, 105.0, 0, config, percent=100)[0].partials[-1].cost_basis == \
        pytest.approx(40.0)
    again, _ = plan("partial_profit", after, 105.0, 0, config, percent=100)
    assert "more than the position" in plan("partial_profit", again, 105.0, 0, config, percent=1).reason
    assert "above the entry" in plan("partial_profit", long_row(), 99.0, 0, config, percent=10).reason
    assert "below the entry" in plan("partial_loss", long_row(), 101.0, 0, config, percent=10).reason
    assert "past the take-profit" in plan("partial_profit", long_row(), 110.0, 0, config, percent=10).reason


def test_a_dca_entry_beats_every_earlier_one_and_prices_the_position_harmonically():
    config = bk.get_config()
    after, _ = plan("average_buy", long_row(), 80.0, 0, config, cost=100)
    assert after.entries == (Entry(100.0, 100.0), Entry(80.0, 100.0))
    assert effective_price(after) == pytest.approx(200 / (1 + 1.25))
    assert "lowest entry" in plan("average_buy", after, 85.0, 0, config).reason


@pytest.mark.parametrize("action, kw, message", [
    ("partial_profit", {"percent": 0}, "percent_to_close must be in (0, 100]"),
    ("partial_loss", {"percent": 101}, "percent_to_close must be in (0, 100]"),
    ("partial_profit", {"percent": math.nan}, "must be a finite number"),
    ("trailing_stop", {"percent": 0}, "percent_shift must be in [-100, 100] and not 0"),
    ("average_buy", {"cost": -5}, "cost must be > 0"),
    ("sell_everything", {}, "unknown command 'sell_everything'"),
])
def test_arguments_that_can_never_be_right_raise_a_clear_error(action, kw, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
                       .replace("]", r"\]")):
        plan(action, long_row(), 104.0, 0, bk.get_config(), **kw)


# --- live: on a ClientStrategy ticked minute by minute --------------------------------------------

PATH = steps((100, 12), (104, 8), (99.9, 8))     # opens at 100, rises to 104, falls back under 100


async def test_commands_act_at_the_vwap_and_the_position_closes_on_the_trailed_stop():
    h = Harness(PATH, lambda symbol, when: bk.SignalDto(position="long", price_take_profit=110,
                                                         price_stop_loss=90))
    commits = []
    bk.listen_strategy_commit(commits.append)
    s = h.strategy
    assert not await s.commit("partial_profit", percent=25)          # nothing open yet
    assert "no open position of s on BTC" in (await s.commit("partial_profit", percent=25)).reason
    assert (await h.at(10)).action == "opened"
    await h.at(17)                                                      # the VWAP is 104 now
    result = await s.commit("partial_profit", percent=50, source="test")
    assert result and result.event.pnl.pnl_entries == pytest.approx(50.0)
    assert (await s.commit("trailing_stop", percent=-5)).event.signal.stop_loss == pytest.approx(95.0)
    refused = await s.commit("trailing_stop", percent=-3)
    assert not refused and "only tightens" in refused.reason
    assert await s.commit("breakeven")
    assert not await s.commit("average_buy")                            # 104 is not below 100
    assert s.pending.stop_loss == 100.0 and s.pending.commits == 3
    assert [c.action for c in commits] == ["partial_profit", "trailing_stop", "breakeven"]
    assert [c.event_id for c in commits] == [f"{s.pending.id}:commit:{n}" for n in (1, 2, 3)]
    assert commits[0].source == "test" and commits[1].source == "strategy"
    closed = None
    for i in range(18, 28):
        r = await h.at(i)
        if r.action == "closed":
            closed = r
            break
    assert closed.close_reason == "stop_loss" and closed.pnl.price_close == 100.0
    expected = position_pnl(closed.signal, 100.0)
    assert closed.pnl.pnl_percentage == pytest.approx(expected.pnl_percentage)
    # Half sold at 104 in profit, half stopped at the entry: a gain, less than the full move.
    assert 0 < closed.pnl.pnl_percentage < bk.to_profit_loss(long_row(), 104.0).pnl_percentage


async def test_close_pending_closes_now_and_a_full_partial_close_closes_the_position():
    h = Harness(PATH, lambda symbol, when: bk.SignalDto(position="long", price_take_profit=112,
                                                         price_stop_loss=95))
    await h.at(10)
    await h.at(17)
    assert await h.strategy.commit("partial_profit", percent=100)
    (closed,) = [e for e in h.events if e.action == "closed"]
    assert closed.close_reason == "closed" and h.strategy.pending is None
    assert closed.pnl.pnl_percentage == pytest.approx(bk.to_profit_loss(long_row(), 104.0).pnl_percentage)
    # The next signal, closed by command.
    assert (await h.at(18)).action == "opened"
    result = await h.strategy.commit("close_pending")
    assert result and h.events[-1].action == "closed" and h.events[-1].close_reason == "closed"


async def test_a_scheduled_order_is_cancelled_or_activated_at_its_own_price_by_command():
    dto = {"position": "long", "price_open": 95, "price_take_profit": 110, "price_stop_loss": 90}
    h = Harness(steps((100, 40)), lambda symbol, when: bk.SignalDto(**dto), interval="5m")
    assert (await h.at(10)).action == "scheduled"
    assert not await h.strategy.commit("close_pending")                   # nothing open: the order waits
    result = await h.strategy.commit("activate_scheduled")
    assert result and h.strategy.pending.price_open == 95 and h.strategy.scheduled is None
    assert [e.action for e in h.events][-1] == "opened"
    await h.strategy.commit("close_pending")
    assert (await h.at(15)).action == "scheduled"
    assert await h.strategy.commit("cancel_scheduled")
    assert h.events[-1].action == "cancelled" and h.events[-1].reason == "user"


async def test_a_stopped_strategy_does_not_activate_its_order():
    dto = {"position": "long", "price_open": 95, "price_take_profit": 110, "price_stop_loss": 90}
    h = Harness(steps((100, 40)), lambda symbol, when: bk.SignalDto(**dto))
    await h.at(10)
    h.strategy.stop()
    refused = await h.strategy.commit("activate_scheduled")
    assert not refused and "stopped" in refused.reason


async def test_breakeven_and_pings_come_once_and_each_minute_and_callbacks_may_command():
    seen = {"breakeven": [], "ping": []}

    async def on_breakeven(symbol, signal, price, backtest):
        seen["breakeven"].append(price)
        assert await bk.commit_breakeven(symbol)

    def on_active_ping(symbol, signal, price, backtest):
        seen["ping"].append(price)

    h = Harness(PATH, lambda symbol, when: bk.SignalDto(position="long", price_take_profit=110, price_stop_loss=90),
                callbacks=bk.StrategyCallbacks(on_breakeven=on_breakeven, on_active_ping=on_active_ping))
    events, pings = [], []
    bk.listen_breakeven(events.append)
    bk.listen_active_ping(pings.append)
    for i in range(10, 28):
        r = await h.at(i)
        if r.action == "closed":
            break
    assert len(events) == 1 and events[0].event_id.endswith(":breakeven")
    assert seen["breakeven"] == [events[0].current_price] and events[0].current_price >= 100.6
    assert r.close_reason == "stop_loss" and r.pnl.price_close == 100.0      # the breakeven stop
    assert len(seen["ping"]) >= 5
    assert [p.current_price for p in pings] == seen["ping"] and {p.kind for p in pings} == {"active"}
    assert len({p.timestamp for p in pings}) == len(pings)            # one a minute


def test_strategy_code_commands_its_own_symbol_only():
    async def main():
        async def on_open(symbol, signal, price, backtest):
            with pytest.raises(ValueError, match="runs on 'BTC'"):
                await bk.commit_close_pending("ETH")
            assert bk.get_pending_signal(symbol).id == signal.id
            assert bk.get_position_percent_held(symbol) == 100.0
            assert bk.get_position_entries(symbol) == (Entry(100.0, 100.0),)
            assert bk.get_position_partials(symbol) == ()
            assert bk.get_position_effective_price(symbol) == 100.0

        h = Harness(PATH, lambda symbol, when: bk.SignalDto(position="long", price_take_profit=110,
                                                             price_stop_loss=90),
                    callbacks=bk.StrategyCallbacks(on_open=on_open))
        errors = []
        bk.listen_error(errors.append)
        await h.at(10)
        assert not errors
    import asyncio
    asyncio.run(main())
    with pytest.raises(RuntimeError, match="only valid inside a strategy"):
        bk.get_pending_signal("BTC")


# --- backtests: the fast path resolves again after a command -------------------------------------

def managed_strategy(log):
    """Takes half off at +4 % and trails the stop to -5 % of the original distance, from its ping."""
    async def on_active_ping(symbol, signal, price, backtest):
        if price >= 104 and not signal.partials:
            log.append(("partial", await bk.commit_partial_profit(symbol, 50)))
            log.append(("trail", await bk.commit_trailing_stop(symbol, -5)))
    return bk.StrategyCallbacks(on_active_ping=on_active_ping)


def first_signal(symbol, when):
    """One long at minute 10, for an hour."""
    if to_ms(when) != minute(10):
        return None
    return bk.SignalDto(position="long", price_take_profit=110, price_stop_loss=90, minute_estimated_time=60)


async def test_a_backtest_carries_out_commands_from_callbacks_and_closes_as_they_left_it():
    log = []
    register(steps((100, 12), (104, 8), (94, 10), (100, 60)), strategy=first_signal,
             callbacks=managed_strategy(log), frame=(10, 75))
    commits = []
    bk.listen_strategy_commit(commits.append)
    closes = [r async for r in bk.Backtest.run("BTC", strategy_name="s", exchange_name="prices", frame_name="f")
              if r.action == "closed"]
    assert [bool(ok) for _, ok in log] == [True, True]
    (closed,) = closes
    # The trailed stop (95), not the original (90), closed it.
    assert closed.close_reason == "stop_loss" and closed.pnl.price_close == pytest.approx(95.0)
    assert len(closed.signal.partials) == 1 and closed.signal.partials[0].price == 104.0
    assert closed.pnl.pnl_percentage == pytest.approx(position_pnl(closed.signal, 95.0).pnl_percentage)
    assert [c.action for c in commits] == ["partial_profit", "trailing_stop"] and commits[0].backtest


async def test_a_backtest_command_from_a_milestone_listener_leaves_the_lane():
    register(steps((100, 12), (104, 8), (94, 10), (100, 60)), strategy=first_signal, frame=(10, 75))

    async def on_profit(event):
        if event.level == 30:
            await bk.Backtest.commit_trailing_stop("BTC", -5, strategy_name="s")
    bk.listen_partial_profit(on_profit)
    (closed,) = [r async for r in bk.Backtest.run("BTC", strategy_name="s", exchange_name="prices",
                                                  frame_name="f") if r.action == "closed"]
    assert closed.close_reason == "stop_loss" and closed.pnl.price_close == pytest.approx(95.0)
    stats = await bk.Backtest.get_data("BTC", strategy_name="s")
    assert stats.total_signals == 1 and stats.avg_pnl == pytest.approx(closed.pnl.pnl_percentage)


async def test_backtest_and_live_replay_agree_on_a_managed_position(tmp_path):
    """Flat stretches of prices, so the backtest's candle and the live tick judge the same VWAP."""
    prices = steps((100, 12), (104, 10), (94, 12), (100, 50))
    backtest_log, live_log = [], []
    register(prices, strategy=first_signal, callbacks=managed_strategy(backtest_log), frame=(10, 75))
    (b,) = [r async for r in bk.Backtest.run("BTC", strategy_name="s", exchange_name="prices", frame_name="f")
            if r.action == "closed"]
    bk.add_strategy("m", first_signal, callbacks=managed_strategy(live_log))
    ex = PriceExchange(prices)
    bk.add_replay_exchange("replay", series={"BTC": ex.candles}, speed=0, start=minute(10), end=minute(60))
    lv = [r async for r in bk.Live.run("BTC", strategy_name="m", exchange_name="replay", state_dir=tmp_path)
          if r.action == "closed"][0]
    assert (b.close_reason, b.pnl.price_close) == (lv.close_reason, lv.pnl.price_close)
    assert [(p.kind, p.percent, p.price) for p in b.signal.partials] == \
        [(p.kind, p.percent, p.price) for p in lv.signal.partials]
    assert b.pnl.pnl_percentage == pytest.approx(lv.pnl.pnl_percentage)
    assert b.signal.trailing_stop_loss == pytest.approx(lv.signal.trailing_stop_loss)


async def test_a_backtest_order_is_activated_by_its_schedule_ping():
    async def on_schedule_ping(symbol, signal, price, backtest):
        assert await bk.commit_activate_scheduled(symbol)

    def limit(symbol, when):
        if to_ms(when) != minute(10):
            return None
        return bk.SignalDto(position="long", price_open=95, price_take_profit=110, price_stop_loss=90,
                            minute_estimated_time=30)
    register(steps((100, 80)), strategy=limit, callbacks=bk.StrategyCallbacks(on_schedule_ping=on_schedule_ping),
             frame=(10, 75))
    results = [r async for r in bk.Backtest.run("BTC", strategy_name="s", exchange_name="prices", frame_name="f")]
    assert [r.action for r in results] == ["scheduled", "opened", "closed"]
    assert results[1].signal.price_open == 95 and results[1].signal.pending_at == minute(12)
    assert results[2].close_reason == "time_expired"


# --- live replay: persisted, and at least once across a kill ---------------------------------------

class Killed(BaseException):
    pass


async def test_a_kill_between_a_commands_write_and_its_event_delivers_it_after_the_restart(tmp_path):
    prices = steps((100, 12), (104, 10), (100, 60))
    ex = PriceExchange(prices)
    bk.add_replay_exchange("replay", series={"BTC": ex.candles}, speed=0, start=minute(10), end=minute(80))

    async def on_active_ping(symbol, signal, price, backtest):
        if price >= 104 and not signal.partials:
            await bk.commit_partial_profit(symbol, 40)

    bk.add_strategy("s", first_signal, callbacks=bk.StrategyCallbacks(on_active_ping=on_active_ping))
    heard = []

    def kill_on_first(event):
        heard.append(event)
        raise Killed("after the write, before the event reached everyone")
    stop = bk.listen_strategy_commit(kill_on_first)
    with pytest.raises(Killed):
        async for _ in bk.Live.run("BTC", strategy_name="s", exchange_name="replay", state_dir=tmp_path):
            pass
    stop()
    # The partial close is on disk, with its event in the journal.
    saved = (tmp_path / "signal_BTC_s.json").read_bytes()
    assert b'"partials":[{"kind":"profit","percent":40.0' in saved
    pending = decode((tmp_path / "journal_BTC_s.json").read_bytes())
    assert [e.kind for e in pending.events] == ["commit"]
    again = []
    bk.listen_strategy_commit(again.append)
    closes = [r async for r in bk.Live.run("BTC", strategy_name="s", exchange_name="replay", state_dir=tmp_path)
              if r.action == "closed"]
    assert [e.event_id for e in again] == [heard[0].event_id]          # delivered again, once, same id
    (closed,) = closes
    assert len(closed.signal.partials) == 1                              # never taken twice
    assert closed.pnl.pnl_percentage == pytest.approx(position_pnl(closed.signal, closed.pnl.price_close)
                                                      .pnl_percentage)


async def test_a_runs_consumer_may_command_it_and_a_run_not_going_is_named(tmp_path):
    with pytest.raises(ValueError, match="s on BTC is not running live"):
        await bk.Live.commit_close_pending("BTC", strategy_name="s")
    prices = steps((100, 12), (94, 10), (100, 40))
    ex = PriceExchange(prices)
    bk.add_replay_exchange("replay", series={"BTC": ex.candles}, speed=0, start=minute(10), end=minute(50))
    bk.add_strategy("s", first_signal)
    results = []
    async for r in bk.Live.run("BTC", strategy_name="s", exchange_name="replay", state_dir=tmp_path):
        results.append(r)
        if r.action == "opened":
            # From the consumer of the run (no lock is held while it is handed out).
            preview = await bk.Live.preview_commit("BTC", "trailing_stop", strategy_name="s", percent=-5)
            assert preview.ok and preview.after.stop_loss == pytest.approx(95.0)
            assert await bk.Live.commit_trailing_stop("BTC", -5, strategy_name="s", source="console")
    closed = results[-1]
    assert closed.action == "closed" and closed.close_reason == "stop_loss" and closed.pnl.price_close == 95.0
    assert closed.signal.trailing_stop_loss == pytest.approx(95.0)


# --- every command, in a backtest and in a live replay, and across a kill --------------------------

# (command, keyword arguments, the VWAP it acts at, the path after the entry at 100). Flat stretches
# of at least five candles, so the backtest's candle and the live tick act at the same VWAP.
COMMANDS = {
    "partial_profit": ({"percent": 30}, 104, steps((100, 12), (104, 10), (100, 60))),
    "partial_loss": ({"percent": 30}, 96, steps((100, 12), (96, 10), (100, 60))),
    "trailing_stop": ({"percent": -5}, 104, steps((100, 12), (104, 10), (94, 12), (100, 48))),
    "trailing_take": ({"percent": -5}, 104, steps((100, 12), (104, 10), (106, 12), (100, 48))),
    "breakeven": ({}, 104, steps((100, 12), (104, 10), (94, 12), (100, 48))),
    "average_buy": ({"cost": 50}, 96, steps((100, 12), (96, 10), (103, 60))),
    "close_pending": ({}, 104, steps((100, 12), (104, 10), (100, 60))),
}


def commanding(action, kw, at, log):
    """A strategy's on_active_ping that makes ``action`` once, when the VWAP reaches ``at``."""
    async def on_active_ping(symbol, signal, price, backtest):
        if signal.commits == 0 and (price >= at if at > 100 else price <= at):
            log.append(await getattr(bk, f"commit_{action}")(symbol, *kw.values()))
    return bk.StrategyCallbacks(on_active_ping=on_active_ping)


def outcome(closed):
    s = closed.signal
    return (closed.close_reason, round(closed.pnl.price_close, 9), round(closed.pnl.pnl_percentage, 9),
            [(p.kind, p.percent, p.price, round(p.cost_basis, 9), p.entries) for p in s.partials],
            [(e.price, e.cost) for e in s.entries], s.trailing_stop_loss, s.trailing_take_profit, s.commits)


@pytest.mark.parametrize("action", list(COMMANDS))
async def test_each_command_acts_alike_in_a_backtest_and_a_live_replay(action, tmp_path):
    kw, at, prices = COMMANDS[action]
    backtest_log, live_log = [], []
    register(prices, strategy=first_signal, callbacks=commanding(action, kw, at, backtest_log), frame=(10, 75))
    (b,) = [r async for r in bk.Backtest.run("BTC", strategy_name="s", exchange_name="prices", frame_name="f")
            if r.action == "closed"]
    bk.add_strategy("m", first_signal, callbacks=commanding(action, kw, at, live_log))
    ex = PriceExchange(prices)
    bk.add_replay_exchange("replay", series={"BTC": ex.candles}, speed=0, start=minute(10), end=minute(80))
    (lv,) = [r async for r in bk.Live.run("BTC", strategy_name="m", exchange_name="replay", state_dir=tmp_path)
             if r.action == "closed"]
    assert [bool(r) for r in backtest_log] == [bool(r) for r in live_log] == [True]
    assert backtest_log[0].event.current_price == live_log[0].event.current_price == at
    assert outcome(b) == outcome(lv)
    # What each command leaves, as the rules say.
    expected = {
        "partial_profit": ("time_expired", [("profit", 30.0, 104.0)]), "partial_loss": ("time_expired", [("loss", 30.0, 96.0)]),
        "trailing_stop": ("stop_loss", []), "trailing_take": ("take_profit", []), "breakeven": ("stop_loss", []),
        "average_buy": ("time_expired", []), "close_pending": ("closed", []),
    }[action]
    assert (b.close_reason, [(p.kind, p.percent, p.price) for p in b.signal.partials]) == expected
    close_price = {"trailing_stop": 95.0, "trailing_take": 105.0, "breakeven": 100.0, "close_pending": 104.0}
    if action in close_price:
        assert b.pnl.price_close == pytest.approx(close_price[action])
    if action == "average_buy":
        assert b.pnl.price_open == pytest.approx(150 / (1 + 50 / 96)) and b.pnl.pnl_entries == 150
    assert b.pnl.pnl_percentage == pytest.approx(position_pnl(b.signal, b.pnl.price_close).pnl_percentage
                                                 if b.signal.partials else bk.to_profit_loss(b.signal, b.pnl.price_close)
                                                 .pnl_percentage)


@pytest.mark.parametrize("action", ["partial_profit", "trailing_stop", "breakeven", "average_buy", "close_pending"])
async def test_a_kill_after_any_commands_write_ends_as_an_uninterrupted_run(action, tmp_path):
    """Killed as the command's event goes out (its change already written): the restart delivers
    that event again, once, with the same id, and the run ends as one never killed."""
    kw, at, prices = COMMANDS[action]
    ex = PriceExchange(prices)
    bk.add_replay_exchange("replay", series={"BTC": ex.candles}, speed=0, start=minute(10), end=minute(80))
    bk.add_strategy("s", first_signal, callbacks=commanding(action, kw, at, []))

    async def run(state_dir):
        return [r async for r in bk.Live.run("BTC", strategy_name="s", exchange_name="replay", state_dir=state_dir)]

    heard = []
    stop = bk.listen_strategy_commit(heard.append)
    clean = [r for r in await run(tmp_path / "clean") if r.action == "closed"]
    stop()
    assert len(heard) == 1

    def kill(event):
        raise Killed(event.event_id)
    stop = bk.listen_strategy_commit(kill)
    with pytest.raises(Killed):
        await run(tmp_path / "killed")
    stop()
    again = []
    bk.listen_strategy_commit(again.append)
    after = [r for r in await run(tmp_path / "killed") if r.action == "closed"]
    assert [e.event_id for e in again] == [heard[0].event_id]
    assert [outcome(c) for c in after] == [outcome(c) for c in clean]


def limit_at_ten(symbol, when):
    """One limit long at 95 (the price stays at 100: it would wait), at minute 10, for an hour."""
    if to_ms(when) != minute(10):
        return None
    return bk.SignalDto(position="long", price_open=95, price_take_profit=110, price_stop_loss=90,
                        minute_estimated_time=60)


def ordering(action, log):
    async def on_schedule_ping(symbol, signal, price, backtest):
        log.append(await getattr(bk, f"commit_{action}")(symbol))
    return bk.StrategyCallbacks(on_schedule_ping=on_schedule_ping)


@pytest.mark.parametrize("action", ["activate_scheduled", "cancel_scheduled"])
async def test_order_commands_act_alike_in_a_backtest_and_a_live_replay(action, tmp_path):
    prices = steps((100, 90))
    backtest_log, live_log = [], []
    register(prices, strategy=limit_at_ten, callbacks=ordering(action, backtest_log), frame=(10, 75))
    b = [r async for r in bk.Backtest.run("BTC", strategy_name="s", exchange_name="prices", frame_name="f")]
    bk.add_strategy("m", limit_at_ten, callbacks=ordering(action, live_log))
    ex = PriceExchange(prices)
    bk.add_replay_exchange("replay", series={"BTC": ex.candles}, speed=0, start=minute(10), end=minute(85))
    lv = [r async for r in bk.Live.run("BTC", strategy_name="m", exchange_name="replay", state_dir=tmp_path)]
    assert [r.action for r in b] == [r.action for r in lv] == (
        ["scheduled", "opened", "closed"] if action == "activate_scheduled" else ["scheduled", "cancelled"])
    assert len(backtest_log) == len(live_log) == 1 and backtest_log[0] and live_log[0]
    if action == "activate_scheduled":
        # Filled at its own price (95) while the market is at 100: closed by time, in profit.
        assert b[1].signal.price_open == lv[1].signal.price_open == 95
        assert (b[2].close_reason, b[2].pnl.price_close) == (lv[2].close_reason, lv[2].pnl.price_close) == \
            ("time_expired", 100.0)
        assert b[2].pnl.pnl_percentage == pytest.approx(lv[2].pnl.pnl_percentage)
    else:
        assert b[1].reason == lv[1].reason == "user"


async def test_a_command_made_as_the_signal_opens_comes_after_its_opened_event_and_reaches_the_run(tmp_path):
    """on_open closes the position at once: every listener hears opened, the command, closed, in
    that order; Live.run yields the close too, and a backtest records it."""
    async def on_open(symbol, signal, price, backtest):
        assert await bk.commit_close_pending(symbol)
    prices = steps((100, 90))
    order = []
    stop_order = bk.listen_signal(lambda r: order.append(r.action) if r.action not in ("idle", "active") else None)
    bk.listen_strategy_commit(lambda e: order.append(f"commit {e.action}"))
    register(prices, strategy=first_signal, callbacks=bk.StrategyCallbacks(on_open=on_open), frame=(10, 75))
    b = [r.action async for r in bk.Backtest.run("BTC", strategy_name="s", exchange_name="prices", frame_name="f")]
    assert b == ["opened", "closed"] and order == ["opened", "commit close_pending", "closed"]
    stats = await bk.Backtest.get_data("BTC", strategy_name="s")
    assert stats.total_signals == 1
    # The lane too (a vectorised strategy whose trades open through it).
    order.clear()

    async def first_signals(symbol, frame):
        import numpy as np
        long = np.zeros(len(frame), dtype=bool)
        long[0] = True
        return bk.Signals(long=long, price_take_profit=110.0, price_stop_loss=90.0, minute_estimated_time=60)
    from engine.events import bus
    stop_order()                             # no signal listener: the lane takes its trades
    lane = []
    tap = lambda r: lane.append(r.action)    # noqa: E731  (a recorder's view: taps leave the lane on)
    bus.signal.tap(tap)
    try:
        bk.add_strategy("v", first_signal, get_signals=first_signals,
                        callbacks=bk.StrategyCallbacks(on_open=on_open))
        bk.listen_strategy_commit(lambda e: lane.append(f"commit {e.action}"))
        vb = [r.action async for r in bk.Backtest.run("BTC", strategy_name="v", exchange_name="prices",
                                                      frame_name="f")]
    finally:
        bus.signal.taps.remove(tap)
        bus.signal._taps_by_type.clear()
        bus.generation += 1
    assert vb == ["opened", "closed"]
    assert lane == ["opened", "commit close_pending", "closed"]
    live_order = []
    bk.listen_signal_live(lambda r: live_order.append(r.action) if r.action not in ("idle", "active") else None)
    bk.listen_strategy_commit(lambda e: live_order.append(f"commit {e.action}") if not e.backtest else None)
    bk.add_strategy("m", first_signal, callbacks=bk.StrategyCallbacks(on_open=on_open))
    bk.add_replay_exchange("replay", series={"BTC": PriceExchange(prices).candles}, speed=0, start=minute(10),
                           end=minute(80))
    lv = [r async for r in bk.Live.run("BTC", strategy_name="m", exchange_name="replay", state_dir=tmp_path)]
    assert [r.action for r in lv] == ["opened", "closed"] and lv[1].close_reason == "closed"
    assert live_order == ["opened", "commit close_pending", "closed"]


async def test_live_run_yields_the_close_a_command_from_outside_made(tmp_path):
    bk.add_replay_exchange("replay", series={"BTC": PriceExchange(steps((100, 90))).candles}, speed=0,
                           start=minute(10), end=minute(80))
    bk.add_strategy("s", first_signal)
    seen = []
    async for r in bk.Live.run("BTC", strategy_name="s", exchange_name="replay", state_dir=tmp_path):
        seen.append(r)
        if r.action == "opened":
            assert await bk.Live.commit_close_pending("BTC", strategy_name="s")
    assert [r.action for r in seen] == ["opened", "closed"] and seen[1].close_reason == "closed"
    assert (await bk.Live.get_data("BTC", strategy_name="s")).total_signals == 1
