"""SEMANTICS.md section 7: risk profiles shared across strategies and symbols, reserve-then-confirm."""

import asyncio

import pytest

import engine as bk
from engine.risk import risk_for
from tests.helpers import Portfolio, always_long, steps


def max_positions(n):
    return {"validate": lambda a: f"{a.active_position_count} of {n} positions open"
            if a.active_position_count >= n else None, "note": f"at most {n} positions"}


async def test_a_limit_of_three_rejects_the_fourth_symbol():
    bk.add_risk("max3", validations=[max_positions(3)])
    p = Portfolio([100.0] * 30, {"s": {"risk_name": "max3"}}, ["BTC", "ETH", "SOL", "XRP"])
    actions = await p.tick(10)
    assert list(actions.values()) == ["opened", "opened", "opened", "idle"]
    (r,) = p.rejections
    assert (r.symbol, r.risk_name, r.active_position_count, r.rejection_note) == ("XRP", "max3", 3, "3 of 3 positions open")
    assert r.signal.symbol == "XRP" and r.current_price == 100.0 and r.backtest is False
    assert len(risk_for("max3").positions) == 3 and risk_for("max3").reserved == {}


async def test_allowed_signals_emit_no_risk_event_and_no_validations_allows_everything():
    bk.add_risk("open_door")
    p = Portfolio([100.0] * 30, {"s": {"risk_name": "open_door"}}, ["A", "B", "C", "D", "E"])
    assert set((await p.tick(10)).values()) == {"opened"}
    assert p.rejections == []
    assert len(risk_for("open_door").positions) == 5


async def test_closing_a_position_frees_its_slot():
    bk.add_risk("max1", validations=[max_positions(1)])
    # Price 100, 120 from minute 15 (BTC's position reaches TP 110 at minute 20), 100 again from 21.
    p = Portfolio(steps((100, 15), (120, 6), (100, 15)), {"s": {"risk_name": "max1"}}, ["BTC", "ETH"])
    assert await p.tick(10) == {("s", "BTC"): "opened", ("s", "ETH"): "idle"}
    assert await p.tick(20, ("s", "BTC")) == {("s", "BTC"): "closed"}
    assert risk_for("max1").positions == {}
    assert await p.tick(26, ("s", "ETH")) == {("s", "ETH"): "opened"}


async def test_two_strategies_sharing_a_limit_of_one_never_both_open_on_the_same_tick():
    async def slow_audit(args):
        await asyncio.sleep(0.001)   # an async check (e.g. asks a database): the other strategy runs meanwhile
        return None

    # Without the reservation, "a" passes "one", suspends in "audit", "b" passes "one" too: both would open.
    bk.add_risk("one", validations=[max_positions(1)])
    bk.add_risk("audit", validations=[slow_audit])
    # A saw-tooth: up to TP, back down, and again, so positions keep closing and slots keep freeing.
    prices = steps((100, 15), *[(120, 6), (100, 6)] * 8)
    both = {"risk_list": ["one", "audit"]}
    p = Portfolio(prices, {"a": dict(both), "b": dict(both)}, ["BTC"])
    opened_together = 0
    for i in range(10, len(prices) - 1):
        actions = await p.tick(i, together=True)
        opened_together += list(actions.values()).count("opened") > 1
        open_now = sum(c.pending is not None for c in p.clients.values())
        assert open_now <= 1 and len(risk_for("one").positions) == open_now
    assert opened_together == 0
    assert p.rejections, "the second strategy must have been rejected at least once"
    assert {r.strategy_name for r in p.rejections} <= {"a", "b"}


async def test_profiles_are_isolated_by_name():
    bk.add_risk("left", validations=[max_positions(1)])
    bk.add_risk("right", validations=[max_positions(1)])
    p = Portfolio([100.0] * 30, {"x": {"risk_name": "left"}, "y": {"risk_name": "right"}}, ["BTC"])
    assert set((await p.tick(10)).values()) == {"opened"}
    assert list(risk_for("left").positions) == ["x:prices:BTC"] and list(risk_for("right").positions) == ["y:prices:BTC"]


async def test_a_risk_list_needs_every_profile_and_the_first_rejection_stops():
    calls = []

    def record(name, verdict):
        def validate(args):
            calls.append(name)
            return verdict
        return validate

    bk.add_risk("first", validations=[record("first", None)])
    bk.add_risk("second", validations=[record("second", "closed for the weekend")])
    bk.add_risk("third", validations=[record("third", None)])
    p = Portfolio([100.0] * 30, {"s": {"risk_list": ["first", "second", "third"]}}, ["BTC"])
    assert await p.tick(10) == {("s", "BTC"): "idle"}
    assert calls == ["first", "second"]
    assert [r.risk_name for r in p.rejections] == ["second"]
    # The first profile's reservation was released with the rejection.
    assert risk_for("first").reserved == {} and risk_for("first").positions == {}


async def test_every_way_to_reject_and_the_validation_channel():
    validation_errors = []
    bk.listen_validation(validation_errors.append)

    class Weekend:
        note = "no trading at the weekend"

        def validate(self, args):
            return False

    class Verdict:
        def __init__(self):
            self.id, self.note = "exposure", "too much BTC"

    async def async_string(args):
        await asyncio.sleep(0)
        return "async says no"

    def raising(args):
        raise RuntimeError("price feed stale")

    cases = {"raise": [raising], "string": [lambda a: "plain no"], "dict": [lambda a: {"id": "d1", "note": "dict no"}],
             "object": [lambda a: Verdict()], "false": [Weekend()], "async": [async_string]}
    for name, validations in cases.items():
        bk.add_risk(name, validations=validations)
    p = Portfolio([100.0] * 30, {name: {"risk_name": name} for name in cases}, ["BTC"])
    assert set((await p.tick(10)).values()) == {"idle"}
    got = {r.risk_name: (r.rejection_id, r.rejection_note) for r in p.rejections}
    assert got == {"raise": (None, "price feed stale"), "string": (None, "plain no"), "dict": ("d1", "dict no"),
                   "object": ("exposure", "too much BTC"), "false": (None, "no trading at the weekend"),
                   "async": (None, "async says no")}
    assert [type(e).__name__ for e in validation_errors] == ["RuntimeError"]


async def test_a_scheduled_order_holds_its_slot_and_activation_rechecks_without_counting_itself():
    bk.add_risk("max1", validations=[max_positions(1)])

    def limit_entry(symbol, when):
        return bk.SignalDto(position="long", price_open=95, price_take_profit=110, price_stop_loss=90)

    # 100 until minute 15, then 95: the limit order fills at minute 20.
    p = Portfolio(steps((100, 15), (95, 20)), {"lim": {"risk_name": "max1", "get_signal": limit_entry},
                                               "mkt": {"risk_name": "max1"}}, ["BTC"])
    assert await p.tick(10) == {("lim", "BTC"): "scheduled", ("mkt", "BTC"): "idle"}
    assert p.rejections[0].strategy_name == "mkt" and p.rejections[0].active_position_count == 1
    assert list(risk_for("max1").reserved) == ["lim:prices:BTC"]
    assert (await p.tick(20, ("lim", "BTC"))) == {("lim", "BTC"): "opened"}
    assert list(risk_for("max1").positions) == ["lim:prices:BTC"] and risk_for("max1").reserved == {}


async def test_a_cancelled_scheduled_order_releases_its_slot():
    bk.add_risk("max1", validations=[max_positions(1)])
    bk.set_config(CC_SCHEDULE_AWAIT_MINUTES=5)

    def limit_entry(symbol, when):
        return bk.SignalDto(position="long", price_open=95, price_take_profit=110, price_stop_loss=90)

    p = Portfolio([100.0] * 40, {"lim": {"risk_name": "max1", "get_signal": limit_entry},
                                 "mkt": {"risk_name": "max1"}}, ["BTC"])
    await p.tick(10)
    assert await p.tick(15, ("lim", "BTC")) == {("lim", "BTC"): "cancelled"}
    assert risk_for("max1").reserved == {}
    assert await p.tick(16, ("mkt", "BTC")) == {("mkt", "BTC"): "opened"}


async def test_a_raising_risk_callback_is_reported_and_the_check_stands():
    errors = []
    bk.listen_error(errors.append)

    def on_allowed(symbol, args):
        raise ValueError("dashboard down")

    bk.add_risk("watched", callbacks=bk.RiskCallbacks(on_allowed=on_allowed))
    p = Portfolio([100.0] * 30, {"s": {"risk_name": "watched"}}, ["BTC"])
    assert await p.tick(10) == {("s", "BTC"): "opened"}
    assert "dashboard down" in str(errors[0].error) and "on_allowed" in errors[0].where


async def test_an_abandoned_backtest_frees_its_slot():
    from tests.helpers import once, register

    bk.add_risk("one", validations=[max_positions(1)])
    register(steps((100, 20), (120, 30)), strategy=once(lambda: bk.SignalDto(
        position="long", price_take_profit=110, price_stop_loss=90)), frame=(10, 45), risk_name="one")
    run = bk.Backtest.run("BTC", strategy_name="s", exchange_name="prices", frame_name="f")
    assert (await run.__anext__()).action == "opened"
    assert len(risk_for("one").positions) == 1
    await run.aclose()
    assert risk_for("one").positions == {}


async def test_an_unknown_risk_profile_fails_the_run_before_anything_is_yielded():
    from tests.helpers import register

    register([100.0] * 40, strategy=always_long, frame=(10, 30), risk_name="ghost")
    with pytest.raises(ValueError, match="ghost"):
        async for _ in bk.Backtest.run("BTC", strategy_name="s", exchange_name="prices", frame_name="f"):
            pass
