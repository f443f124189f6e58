"""SEMANTICS.md section 5: the backtest runner and its fast path."""

import asyncio
from datetime import datetime

import msgspec
import pytest

import engine as bk
from engine.context import Clock
from engine.exchange.client import ExchangeClient
from engine.exchange.synthetic import SyntheticExchange
from engine.feed import ExchangeFeed
from engine.interval import to_ms
from engine.registry import get_exchange, get_frame, get_strategy
from engine.runners.backtest import frame_times
from engine.strategy import ClientStrategy
from tests.helpers import UTC, PriceExchange, collect, minute, once, register, steps


def test_frame_times_align_start_and_include_end():
    t = frame_times(minute(0) + 30_000, minute(10), "5m")
    assert t.tolist() == [minute(0), minute(5), minute(10)]


async def test_unknown_names_raise_before_anything_is_yielded():
    bk.add_strategy("s", lambda s, w: None, risk_name="nope")
    with pytest.raises(ValueError) as err:
        await collect(exchange="missing", frame="missing")
    text = str(err.value)
    assert "unknown exchange 'missing'" in text and "unknown frame 'missing'" in text and "risk profile 'nope'" in text
    with pytest.raises(ValueError, match="risk profile 'nope'"):
        bk.validate()


async def test_market_signal_resolves_on_forward_candles_and_frames_after_the_close_are_skipped():
    calls = []
    prices = steps((100, 20), (120, 30))

    def get_signal(symbol, when):
        calls.append(to_ms(when))
        if len(calls) == 1:
            return bk.SignalDto(position="long", price_take_profit=110, price_stop_loss=90)

    register(prices, strategy=get_signal, frame=(10, 45))
    results = await collect()
    assert [r.action for r in results] == ["opened", "closed"]
    closed = results[1]
    # Fast path: candle j's VWAP covers j-4..j; minute 22 is the first with mean(100,100,120,120,120) >= 110.
    assert closed.close_reason == "take_profit" and closed.close_timestamp == minute(22)
    assert closed.pnl.price_close == 110
    assert calls[0] == minute(10) and calls[1] == minute(23)   # every frame <= the close is skipped


async def test_position_open_at_the_frame_end_closes_time_expired_on_the_first_candle_after_it():
    register([100.0] * 40, strategy=once(lambda: bk.SignalDto(position="long", price_take_profit=110,
                                                             price_stop_loss=90)), frame=(10, 20))
    results = await collect()
    assert [r.action for r in results] == ["opened", "closed"]
    assert results[1].close_reason == "time_expired" and results[1].close_timestamp == minute(21)
    assert results[1].pnl.price_close == 100.0


async def test_time_limit_closes_at_the_vwap_in_the_fast_path():
    register(steps((100, 27), (101, 33)), strategy=once(lambda: bk.SignalDto(
        position="long", price_take_profit=110, price_stop_loss=90, minute_estimated_time=20)), frame=(10, 50))
    r = (await collect())[1]
    # Opened at minute 10 with 20 minutes: the first candle with ts - pending_at >= 20 min is candle 30
    # (the seed's rule; a live tick would expire it at minute 30 on candles 25..29, one candle earlier).
    assert r.close_reason == "time_expired" and r.close_timestamp == minute(30)
    assert r.pnl.price_close == pytest.approx(100.8)  # VWAP of candles 26..30


async def test_scheduled_activation_opens_on_the_next_candle_and_resolves():
    prices = steps((100, 20), (95, 10), (120, 20))
    register(prices, strategy=once(lambda: bk.SignalDto(position="long", price_open=95, price_take_profit=110,
                                                        price_stop_loss=90)), frame=(10, 45))
    results = await collect()
    assert [r.action for r in results] == ["scheduled", "opened", "closed"]
    opened = results[1]
    assert opened.signal.price_open == 95 and opened.signal.pending_at == minute(24) + 60_000
    assert results[2].close_reason == "take_profit"


async def test_scheduled_activation_candle_that_also_reaches_sl_is_cancelled_never_opened():
    bk.set_config(CC_PRICE_TRIGGER="touch")
    n = 40
    low = [100.0] * n
    low[15] = 89.0
    ex = PriceExchange([100.0] * n, low=low)
    register(ex, strategy=once(lambda: bk.SignalDto(position="long", price_open=95, price_take_profit=110,
                                                    price_stop_loss=90)), frame=(10, 30))
    results = await collect()
    assert [r.action for r in results] == ["scheduled", "cancelled"]
    assert results[1].reason == "price_reject" and results[1].close_timestamp == minute(15)


async def test_scheduled_signal_times_out_in_the_fast_path():
    bk.set_config(CC_SCHEDULE_AWAIT_MINUTES=15)
    register([100.0] * 60, strategy=once(lambda: bk.SignalDto(position="long", price_open=95, price_take_profit=110,
                                                              price_stop_loss=90)), frame=(10, 50))
    results = await collect()
    assert [r.action for r in results] == ["scheduled", "cancelled"]
    # Scheduled at minute 10: candle 25 is the first with ts - scheduled_at >= 15 minutes.
    assert results[1].reason == "timeout" and results[1].close_timestamp == minute(25)


@pytest.mark.parametrize("trigger", ["vwap", "touch"])
async def test_fast_path_matches_ticking_every_minute(trigger):
    """The array resolution gives the same closes as the tick state machine run candle by candle,
    but for the one known difference of SEMANTICS.md 5: the backtest's time limits (a position's
    and a scheduled order's) expire one candle after the tick's. The reference states it by
    ticking with one more minute on both."""
    bk.set_config(CC_PRICE_TRIGGER=trigger, CC_SCHEDULE_AWAIT_MINUTES=120)
    ex = SyntheticExchange(3000, start=datetime(2024, 1, 1, tzinfo=UTC), sigma=0.002)
    bk.add_exchange("syn", ex.get_candles)
    t0 = to_ms(datetime(2024, 1, 1, tzinfo=UTC))
    bk.add_frame("f", start=t0 + 60 * 60_000, end=t0 + 2900 * 60_000)

    async def get_signal(symbol, when):
        minute_no = (to_ms(when) - t0) // 60_000
        if minute_no % 7:
            return None
        price = await bk.get_average_price(symbol)
        if minute_no % 3 == 0:   # a limit entry that may wait
            return bk.SignalDto(position="short", price_open=price * 1.002, price_take_profit=price * 0.99,
                                price_stop_loss=price * 1.01, minute_estimated_time=90)
        return bk.SignalDto(position="long", price_take_profit=price * 1.006, price_stop_loss=price * 0.995,
                            minute_estimated_time=3 if minute_no % 2 else 60)

    bk.add_strategy("s", get_signal)
    fast = [r for r in await collect(exchange="syn") if r.action in ("closed", "cancelled")]

    # Reference: the tick state machine, one tick per minute. Fast-path candle j is the tick at
    # minute j+1 (its VWAP then covers j-4..j); the backtest's next frame is that same minute, so
    # after a close the reference ticks that minute again (as the live loop does).
    async def one_minute_more(symbol, when):
        dto = await get_signal(symbol, when)
        return dto if dto is None else msgspec.structs.replace(dto, minute_estimated_time=dto.minute_estimated_time + 1)

    bk.set_config(CC_SCHEDULE_AWAIT_MINUTES=121)
    clock = Clock()
    ticker = ClientStrategy(msgspec.structs.replace(get_strategy("s"), get_signal=one_minute_more), symbol="BTC",
                            exchange_name="syn", frame_name="f",
                            feed=ExchangeFeed(ExchangeClient(get_exchange("syn"))), clock=clock, backtest=True)
    slow = []
    now, end = t0 + 60 * 60_000, t0 + 2900 * 60_000
    while now <= end:
        clock.now = now
        r = await ticker.tick()
        if r.action in ("closed", "cancelled"):
            slow.append(r)
            continue
        now += 60_000
    horizon = end - 300 * 60_000
    fast = [r for r in fast if r.close_timestamp < horizon]
    slow = [r for r in slow if r.close_timestamp - 60_000 < horizon]
    assert len(fast) > 20 and any(r.action == "cancelled" for r in fast)
    assert any(getattr(r, "close_reason", None) == "time_expired" for r in fast)
    assert any(getattr(r, "reason", None) == "timeout" for r in fast)
    key = lambda r: (r.action, getattr(r, "close_reason", getattr(r, "reason", None)), r.signal.id,
                     r.signal.pending_at, r.signal.price_open, r.signal.peak_pnl, r.signal.trough_pnl)
    assert [key(r) for r in fast] == [key(r) for r in slow]
    assert [r.signal.minute_estimated_time + 1 for r in fast] == [r.signal.minute_estimated_time for r in slow]
    for f, s in zip(fast, slow):
        assert f.close_timestamp + 60_000 == s.close_timestamp   # candle open time vs. tick time
        if f.action == "closed":
            assert f.pnl == s.pnl


async def test_run_yields_only_lifecycle_results_and_events_arrive_in_order():
    progress, done, signals = [], [], []
    bk.listen_backtest_progress(progress.append)
    bk.listen_done_backtest(done.append)
    bk.listen_signal_backtest(signals.append)
    register(steps((100, 20), (120, 30)), strategy=once(lambda: bk.SignalDto(
        position="long", price_take_profit=110, price_stop_loss=90)), frame=(10, 45))
    results = await collect()
    assert {r.action for r in results} <= {"scheduled", "opened", "closed", "cancelled"}
    assert [s.action for s in signals if s.action != "idle"] == ["opened", "closed"]
    assert signals[0].action == "opened" and signals[-1].action == "idle"
    assert progress[0].progress == 0.0 and progress[-1].progress == 1.0
    assert all(a.progress <= b.progress for a, b in zip(progress, progress[1:]))
    assert progress[-1].processed_frames == progress[-1].total_frames == 36
    assert len(done) == 1 and done[0].backtest and done[0].strategy_name == "s"


async def test_milestones_in_the_fast_path():
    profit = []
    bk.listen_partial_profit(profit.append)
    prices = steps((100, 20), (104, 10), (106, 10), (120, 10))
    register(prices, strategy=once(lambda: bk.SignalDto(position="long", price_take_profit=110,
                                                        price_stop_loss=95)), frame=(10, 45))
    results = await collect()
    # The 5-candle VWAP climbs 104 -> 106 -> 108.8 (level 80), then 111.6 reaches TP 110: the candle
    # that closes the signal reaches no milestone, so 90 and 100 never fire.
    assert [p.level for p in profit] == [10, 20, 30, 40, 50, 60, 70, 80]
    assert all(a.timestamp <= b.timestamp for a, b in zip(profit, profit[1:]))
    closed = results[-1]
    assert profit[-1].current_price == pytest.approx(108.8) and profit[-1].timestamp < closed.close_timestamp
    assert closed.signal.peak_pnl == pytest.approx(bk.to_profit_loss(closed.signal, 108.8).pnl_percentage)


async def test_an_exchange_that_raises_ends_the_run_with_error_and_exit_and_no_done():
    errors, exits, done = [], [], []
    bk.listen_error(errors.append)
    bk.listen_exit(exits.append)
    bk.listen_done_backtest(done.append)

    def down(*a):
        raise ConnectionError("exchange unreachable")

    bk.add_exchange("down", down)
    bk.add_frame("f", start=minute(10), end=minute(20))
    bk.add_strategy("s", lambda s, w: None)
    with pytest.raises(bk.ExchangeError, match="exchange unreachable"):
        await asyncio.wait_for(collect(exchange="down"), 10)
    assert len(errors) == 1 and len(exits) == 1 and done == []
    assert exits[0].symbol == "BTC" and exits[0].frame_name == "f"


async def test_a_listener_that_raises_is_reported_and_the_run_goes_on():
    errors, seen = [], []
    bk.listen_error(errors.append)

    def bad_listener(event):
        raise RuntimeError("listener bug")

    bk.listen_signal_backtest(bad_listener)

    async def async_listener(event):
        await asyncio.sleep(0)
        seen.append(event.action)

    bk.listen_signal_backtest(async_listener)
    register(steps((100, 20), (120, 30)), strategy=once(lambda: bk.SignalDto(
        position="long", price_take_profit=110, price_stop_loss=90)), frame=(10, 45))
    results = await collect()
    await bk.drain_events()
    assert [r.action for r in results] == ["opened", "closed"]
    assert errors and all("listener bug" in str(e.error) for e in errors)
    assert [a for a in seen if a != "idle"] == ["opened", "closed"]


async def test_once_listeners_fire_on_the_first_match_only():
    got = []
    bk.listen_signal_once(lambda e: e.action == "closed", got.append)
    register(steps((100, 20), (120, 10), (100, 10), (130, 20)),
             strategy=lambda s, w: bk.SignalDto(position="long", price_take_profit=110, price_stop_loss=90),
             frame=(10, 55))
    results = await collect()
    assert sum(r.action == "closed" for r in results) >= 2 and len(got) == 1


async def test_get_data_report_dump_and_list(tmp_path):
    register(steps((100, 20), (120, 30)), strategy=once(lambda: bk.SignalDto(
        position="long", price_take_profit=110, price_stop_loss=90, note="a|b")), frame=(10, 45))
    await collect()
    stats = await bk.Backtest.get_data("BTC", strategy_name="s")
    assert stats.total_signals == 1 and stats.sharpe_ratio is None   # one trade: no honest Sharpe
    report = await bk.Backtest.get_report("BTC", strategy_name="s")
    assert "# Backtest report: s" in report and "take_profit" in report and "N/A" in report
    path = await bk.Backtest.dump("BTC", strategy_name="s", path=str(tmp_path / "out"))
    assert open(path).read() == report
    assert bk.Backtest.list() == [{"symbol": "BTC", "strategy_name": "s", "exchange_name": "prices",
                                   "frame_name": "f", "status": "done"}]


async def test_background_reports_through_events_and_stop_ends_with_done():
    done, exits = asyncio.Event(), []
    bk.listen_done_backtest(lambda e: done.set())
    bk.listen_exit(exits.append)
    register([100.0] * 5000, strategy=lambda s, w: None, frame=(10, 4900))
    cancel = bk.Backtest.background("BTC", strategy_name="s", exchange_name="prices", frame_name="f")
    await asyncio.sleep(0)
    cancel()
    await asyncio.wait_for(done.wait(), 10)
    assert bk.Backtest.list()[0]["status"] == "stopped" and exits == []
    # A failing background run never raises: it reports on listen_exit.
    bk.Backtest.background("BTC", strategy_name="nope", exchange_name="prices", frame_name="f")
    for _ in range(20):
        await asyncio.sleep(0)
    assert len(exits) == 1 and "unknown strategy" in str(exits[0].error)


async def test_a_paused_consumer_keeps_its_position_and_risk_slot():
    bk.add_risk("one", validations=[lambda a: "full" if a.active_position_count >= 1 else None])
    register(steps((100, 20), (120, 30)), strategy=once(lambda: bk.SignalDto(
        position="long", price_take_profit=110, price_stop_loss=90)), frame=(10, 45), risk_name="one")
    from engine.risk import risk_for
    run = bk.Backtest.run("BTC", strategy_name="s", exchange_name="prices", frame_name="f")
    first = await run.__anext__()
    assert first.action == "opened" and len(risk_for("one").positions) == 1
    second = await run.__anext__()
    assert second.action == "closed" and risk_for("one").positions == {}
    await run.aclose()


async def test_history_missing_before_the_data_fails_fast_after_the_first_try():
    bk.set_config(CC_GET_CANDLES_RETRY_COUNT=3)
    errors = []
    bk.listen_error(errors.append)

    async def get_signal(symbol, when):
        await bk.get_candles(symbol, "1m", 30)   # the frame starts 10 minutes into the data

    ex = register([100.0] * 60, strategy=get_signal, frame=(10, 40))
    await collect()
    early = [e for e in errors if "candle" in str(e.error)]
    assert len(early) == 20                                   # minutes 10..29 reach before the data
    # The first miss pays its 3 attempts; each later frame asks once (no retries, no pauses).
    assert sum(1 for c in ex.calls if c[2] < minute(0)) == 3 + 19


def _rising_then_falling(n: int) -> list[float]:
    return [100 + (i % 240) * 0.05 if (i // 240) % 2 == 0 else 112 - (i % 240) * 0.05 for i in range(n)]


def _lookback_strategy(reads: list[int]):
    async def get_signal(symbol, when):
        close = (await bk.get_candles(symbol, "1m", 60)).close
        reads.append(len(close))
        if close[-1] > close.mean() * 1.004:
            price = await bk.get_average_price(symbol)
            return bk.SignalDto(position="long", price_take_profit=price * 1.01, price_stop_loss=price * 0.99,
                                minute_estimated_time=30)
        return None
    return get_signal


@pytest.mark.parametrize("frame_start", [1600, 100])     # a day of history before the frame, or less
async def test_a_source_answering_in_one_request_gives_the_look_back_with_the_first_read(frame_start):
    n = 3000
    whole = PriceExchange(_rising_then_falling(n))
    chunked = PriceExchange(_rising_then_falling(n))
    bk.add_exchange("whole", whole.get_candles, candles_per_request=10 * n)
    bk.add_exchange("chunked", chunked.get_candles)
    bk.add_frame("f", start=minute(frame_start), end=minute(n - 2))
    reads: list[int] = []
    bk.add_strategy("s", _lookback_strategy(reads))
    def trades(results):
        return [(r.signal.id, r.signal.price_open, r.close_timestamp, r.close_reason, r.pnl.pnl_percentage)
                for r in results if r.action == "closed"]
    got = trades(await collect(exchange="whole"))
    want = trades(await collect(exchange="chunked"))
    assert len(got) > 5 and got == want and set(reads) == {60}
    first_needed = minute(frame_start) - 5 * 60_000
    day_before = first_needed - 24 * 60 * 60_000
    if frame_start == 1600:
        # One read: the frame, its VWAP window and a day before it (the 60 candles the strategy reads).
        assert [to_ms(c[2]) for c in whole.calls] == [day_before]
    else:
        # Less than a day there (this source answers short: the day is not asked again): the span
        # itself, then the look-back that reaches before it, as from any source.
        since = [to_ms(c[2]) for c in whole.calls]
        assert since[:2] == [day_before, first_needed] and len(since) == 3 and since[2] < first_needed


async def test_the_store_gives_the_look_back_with_the_frame_and_the_frames_candles_to_a_chart(seeded_store):
    from engine.exchange.bundled import add_store_exchange
    from engine.exchange.markets import stored_frame
    add_store_exchange("bundled", seeded_store)
    frame = await stored_frame(seeded_store, "bundled", "BTCUSDT")   # a day after the first stored candle
    reads: list[int] = []
    bk.add_strategy("s", _lookback_strategy(reads))
    closed = [r for r in await collect(symbol="BTCUSDT", exchange="bundled", frame=frame) if r.action == "closed"]
    assert closed and set(reads) == {60}
    f = get_frame(frame)
    start, end = f.start - f.start % 60_000, f.end - f.end % 60_000
    shown = bk.Backtest.frame_candles("BTCUSDT", strategy_name="s")
    fetched = await ExchangeClient(get_exchange("bundled")).fetch("BTCUSDT", "1m", start, (end - start) // 60_000 + 1)
    assert shown is not None and shown == fetched
    assert bk.Backtest.frame_candles("BTCUSDT", strategy_name="unknown") is None
