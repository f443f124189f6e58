"""SEMANTICS.md section 2: candles, time, look-ahead, adapter checks, chunking, retries, VWAP."""

import math
from datetime import datetime

import numpy as np
import pytest

import engine as bk
from engine.exchange.client import ExchangeClient
from engine.exchange.synthetic import SyntheticExchange
from engine.exchange.vwap import rolling_vwap, vwap
from engine.interval import iso, to_ms
from engine.registry import get_exchange
from tests.helpers import UTC, PriceExchange, collect, minute


async def test_get_candles_windows_follow_the_spec_example():
    """when = 2024-01-01T10:24Z, limit 5: last 1m 10:23; 15m 09:00..10:00; 1h 05:00..09:00; 4h 2023-12-31T12:00..04:00."""
    ex = SyntheticExchange(3 * 1440, start=datetime(2023, 12, 30, tzinfo=UTC))
    bk.add_exchange("syn", ex.get_candles)
    when = datetime(2024, 1, 1, 10, 24, tzinfo=UTC)
    bk.add_frame("f", start=when, end=when)
    seen = {}

    async def get_signal(symbol, now):
        assert now == when and bk.get_date() == when and bk.get_mode() == "backtest"
        for interval in ("1m", "15m", "1h", "4h"):
            c = await bk.get_candles(symbol, interval, 5)
            seen[interval] = (iso(int(c.timestamp[0])), iso(int(c.timestamp[-1])), len(c))
        return None

    bk.add_strategy("s", get_signal)
    await collect(exchange="syn")
    assert seen["1m"] == ("2024-01-01T10:19Z", "2024-01-01T10:23Z", 5)
    assert seen["15m"] == ("2024-01-01T09:00Z", "2024-01-01T10:00Z", 5)
    assert seen["1h"] == ("2024-01-01T05:00Z", "2024-01-01T09:00Z", 5)
    assert seen["4h"] == ("2023-12-31T12:00Z", "2024-01-01T04:00Z", 5)


async def test_columns_are_read_only_views_and_iteration_builds_candles():
    ex = SyntheticExchange(200, start=datetime(2024, 1, 1, tzinfo=UTC))
    bk.add_exchange("syn", ex.get_candles)
    bk.add_frame("f", start=datetime(2024, 1, 1, 2, tzinfo=UTC), end=datetime(2024, 1, 1, 2, tzinfo=UTC))
    checked = []

    async def get_signal(symbol, when):
        c = await bk.get_candles(symbol, "1m", 10)
        assert not c.close.flags.writeable
        assert c.close.base is not None          # a view into the loaded frame, not a copy
        assert list(c)[-1] == c[-1] and isinstance(c[0], bk.Candle)
        assert c[2:4].timestamp.tolist() == c.timestamp[2:4].tolist()
        checked.append(True)

    bk.add_strategy("s", get_signal)
    await collect(exchange="syn")
    assert checked == [True]


def test_in_strategy_functions_fail_clearly_outside_a_run():
    with pytest.raises(RuntimeError, match="only valid inside"):
        bk.get_date()
    with pytest.raises(RuntimeError, match="only valid inside"):
        bk.get_mode()


def test_vwap_formula_and_zero_volume():
    h, l, c, v = (np.array(x, float) for x in ([11, 12], [9, 10], [10, 11], [1, 3]))
    expected = ((11 + 9 + 10) / 3 * 1 + (12 + 10 + 11) / 3 * 3) / 4
    assert vwap(h, l, c, v) == pytest.approx(expected, rel=1e-15)
    assert vwap(h, l, c, np.zeros(2)) == 10.5  # mean of the closes
    rv = rolling_vwap(h, l, c, v, 2)
    assert math.isnan(rv[0]) and rv[1] == pytest.approx(expected, rel=1e-15)


def _client(get_candles, name="x"):
    bk.add_exchange(name, get_candles)
    return ExchangeClient(get_exchange(name))


def _rows(since_ms, n, **override):
    rows = []
    for i in range(n):
        row = dict(timestamp=since_ms + i * 60_000, open=100.0, high=101.0, low=99.0, close=100.0, volume=1.0)
        row.update({k: v for k, v in override.items() if k != "at"} if override.get("at", 0) == i else {})
        rows.append(bk.Candle(**row))
    return rows


@pytest.mark.parametrize("mutate, message", [
    (lambda rows: rows[:-1], "candle count mismatch"),
    (lambda rows: [bk.Candle(r.timestamp + 60_000, r.open, r.high, r.low, r.close, r.volume) for r in rows],
     "first candle timestamp mismatch"),
    (lambda rows: rows[:2] + [rows[1]] + rows[3:], "duplicate candle"),
    (lambda rows: rows[:2] + [bk.Candle(rows[2].timestamp + 30_000, 1, 1, 1, 1, 1)] + rows[3:], "step mismatch"),
    (lambda rows: rows[:1] + [bk.Candle(rows[1].timestamp, math.nan, 101, 99, 100, 1)] + rows[2:], "non-finite"),
    (lambda rows: rows[:1] + [bk.Candle(rows[1].timestamp, 0.0, 101, 99, 100, 1)] + rows[2:], "non-positive"),
    (lambda rows: rows[:1] + [bk.Candle(rows[1].timestamp, 100, 101, 99, 100, -1)] + rows[2:], "negative volume"),
    (lambda rows: rows[:1] + [bk.Candle(rows[1].timestamp, 100, 98, 99, 100, 1)] + rows[2:], "high below low"),
    (lambda rows: rows[:1] + [bk.Candle(rows[1].timestamp, 100, 101, 0.05, 100, 1)] + rows[2:], "price anomaly"),
    (lambda rows: None, "returned None"),
    (lambda rows: "garbage", "returned str"),
])
async def test_bad_adapter_answers_are_rejected(mutate, message):
    since = to_ms(datetime(2024, 1, 1, tzinfo=UTC))
    client = _client(lambda s, i, since_dt, limit: mutate(_rows(to_ms(since_dt), limit)))
    with pytest.raises(Exception, match=message):
        await client.fetch("BTC", "1m", since, 10)


async def test_anomaly_reference_is_the_mean_below_the_median_threshold():
    bk.set_config(CC_GET_CANDLES_MIN_CANDLES_FOR_MEDIAN=5)
    since = to_ms(datetime(2024, 1, 1, tzinfo=UTC))
    # 4 candles: reference = mean of positive OHLC, so one huge value lifts it and flags the 1.0 prices.
    rows = [bk.Candle(since + i * 60_000, 1.0, 1.0, 1.0, 1.0, 1.0) for i in range(3)]
    rows.append(bk.Candle(since + 180_000, 1.0, 20_000.0, 1.0, 1.0, 1.0))
    client = _client(lambda *a: rows)
    with pytest.raises(Exception, match="price anomaly"):
        await client.fetch("BTC", "1m", since, 4)


async def test_bad_answer_reaches_listen_error_and_the_run_ends_with_exit():
    errors, exits, done = [], [], []
    bk.listen_error(errors.append)
    bk.listen_exit(exits.append)
    bk.listen_done_backtest(done.append)
    bk.add_exchange("short", lambda s, i, since, limit: _rows(to_ms(since), limit)[:-3])
    bk.add_frame("f", start=datetime(2024, 1, 1, 1, tzinfo=UTC), end=datetime(2024, 1, 1, 2, tzinfo=UTC))
    bk.add_strategy("s", lambda s, w: None)
    with pytest.raises(Exception, match="candle count mismatch"):
        await collect(exchange="short")
    assert len(errors) == 1 and "candle count mismatch" in str(errors[0].error)
    assert len(exits) == 1 and not done


async def test_requests_are_chunked():
    bk.set_config(CC_MAX_CANDLES_PER_REQUEST=1000)
    calls = []

    def get_candles(symbol, interval, since, limit):
        calls.append((to_ms(since), limit))
        return _rows(to_ms(since), limit)

    since = to_ms(datetime(2024, 1, 1, tzinfo=UTC))
    candles = await _client(get_candles).fetch("BTC", "1m", since, 2500)
    assert calls == [(since, 1000), (since + 1000 * 60_000, 1000), (since + 2000 * 60_000, 500)]
    assert len(candles) == 2500 and np.all(np.diff(candles.timestamp) == 60_000)


async def test_an_exchange_may_take_more_candles_per_request_than_the_default():
    calls = []

    def get_candles(symbol, interval, since, limit):
        calls.append((to_ms(since), limit))
        return _rows(to_ms(since), limit)

    bk.add_exchange("local", get_candles, candles_per_request=2000)
    since = to_ms(datetime(2024, 1, 1, tzinfo=UTC))
    candles = await ExchangeClient(get_exchange("local")).fetch("BTC", "1m", since, 2500)
    assert calls == [(since, 2000), (since + 2000 * 60_000, 500)] and len(candles) == 2500
    for bad in (0, -5, 1.5, True, "1000"):
        with pytest.raises(ValueError, match="candles_per_request must be a positive integer or None"):
            bk.add_exchange("bad", get_candles, candles_per_request=bad)


async def test_each_chunk_is_retried_then_fails_with_the_reason():
    bk.set_config(CC_GET_CANDLES_RETRY_COUNT=3, CC_GET_CANDLES_RETRY_DELAY_MS=0)
    attempts = []

    def flaky(symbol, interval, since, limit):
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionError("socket closed")
        return _rows(to_ms(since), limit)

    since = to_ms(datetime(2024, 1, 1, tzinfo=UTC))
    assert len(await _client(flaky).fetch("BTC", "1m", since, 5)) == 5
    assert len(attempts) == 3

    def broken(*a):
        attempts.append(1)
        raise ConnectionError("exchange down")

    attempts.clear()
    with pytest.raises(bk.ExchangeError, match="after 3 attempt.*exchange down"):
        await _client(broken, "y").fetch("BTC", "1m", since, 5)
    assert len(attempts) == 3


async def test_async_adapters_and_candles_batches_are_accepted():
    ex = PriceExchange([100.0] * 20)

    async def get_candles(symbol, interval, since, limit):
        return ex.get_candles(symbol, interval, since, limit)

    got = await _client(get_candles).fetch("BTC", "1m", minute(0), 10)
    assert isinstance(got, bk.Candles) and len(got) == 10


def test_candles_from_arrays_rejects_bad_columns():
    with pytest.raises(ValueError, match="length"):
        bk.Candles.from_arrays([0, 60000], [1], [1, 1], [1, 1], [1, 1], [1, 1])
    with pytest.raises(ValueError, match="whole milliseconds"):
        bk.Candles.from_arrays([0.5], [1], [1], [1], [1], [1])


@pytest.mark.parametrize("bad, message", [
    (dict(open=math.nan), "non-finite"), (dict(low=101.5), "high below low"), (dict(volume=-1.0), "negative volume"),
    (dict(low=0.05), "price anomaly"),
])
async def test_many_chunks_are_checked_in_one_pass_and_a_bad_one_is_fetched_again(bad, message):
    """Answers of a multi-chunk request are checked together; a bad one is found, fetched again
    with its retries, and the error names that chunk."""
    bk.set_config(CC_MAX_CANDLES_PER_REQUEST=100, CC_GET_CANDLES_RETRY_COUNT=2)
    since = to_ms(datetime(2024, 1, 1, tzinfo=UTC))
    third = since + 200 * 60_000
    calls = []

    def get_candles(symbol, interval, since_dt, limit):
        calls.append(to_ms(since_dt))
        rows = _rows(to_ms(since_dt), limit)
        if to_ms(since_dt) == third:
            r = rows[7]
            rows[7] = bk.Candle(**{**{f: getattr(r, f) for f in r.__struct_fields__}, **bad})
        return rows

    with pytest.raises(bk.CandleDataError, match=f"{message}.*from {iso(third)}"):
        await _client(get_candles).fetch("BTC", "1m", since, 450)
    assert calls.count(third) == 1 + 2          # the batch's answer, then the chunk's own attempts
    bk.clear_registry()
    good = await _client(lambda s, i, since_dt, limit: _rows(to_ms(since_dt), limit)).fetch("BTC", "1m", since, 450)
    assert len(good) == 450


def test_adjacent_slices_of_one_batch_concatenate_without_a_copy():
    c = SyntheticExchange(3000, start=datetime(2024, 1, 1, tzinfo=UTC)).candles
    joined = bk.Candles.concat([c[0:1000], c[1000:2000], c[2000:2500]])
    assert np.shares_memory(joined.close, c.close) and joined.close.tolist() == c.close[:2500].tolist()
    copied = bk.Candles.concat([c[0:1000], c[1500:2000]])        # not adjacent: a real copy
    assert not np.shares_memory(copied.close, c.close)
    assert copied.timestamp.tolist() == c.timestamp[:1000].tolist() + c.timestamp[1500:2000].tolist()


def test_rolling_vwap_equals_vwap_of_each_window_bit_for_bit():
    c = SyntheticExchange(140_000, start=datetime(2024, 1, 1, tzinfo=UTC)).candles
    volume = c.volume.copy()
    volume[70_000:70_010] = 0.0                  # windows without volume take the mean close
    out = rolling_vwap(c.high, c.low, c.close, volume, 5)
    assert np.isnan(out[:4]).all()
    for i in [4, 5, 65_535, 65_536, 65_540, 69_999, 70_004, 70_005, 70_012, 139_999, *range(4, 140_000, 977)]:
        w = slice(i - 4, i + 1)
        assert out[i] == vwap(c.high[w], c.low[w], c.close[w], volume[w]), i
