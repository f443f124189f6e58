"""The ccxt adapter against the local exchange simulator (the real ccxt client over HTTP on 127.0.0.1)."""

from __future__ import annotations

import logging
import os

import pytest

import engine as bk
from engine.exchange.bundled import StoreExchange
from engine.exchange.ccxt_exchange import CredentialsError, ExchangeRejected, add_ccxt_exchange, load_credentials
from engine.exchange.client import ExchangeClient
from engine.exchange.replay import ReplayClock
from engine.exchange.simulator import ExchangeSimulator
from engine.interval import MINUTE_MS
from engine.registry import get_exchange

T = 1677715200000   # 2023-03-02T00:00Z, inside the bundled BTCUSDT data


@pytest.fixture
async def sim(tmp_path):
    simulator = ExchangeSimulator(tmp_path / "store.sqlite3", timeout_seconds=1.0)
    await simulator.start()
    yield simulator
    await simulator.stop()


@pytest.fixture
async def binance(sim):
    adapter = add_ccxt_exchange("binance", api_url=sim.url)
    adapter.client.timeout = 300   # ms: the simulator's "timeout" fault stalls for a second
    await adapter.format_price("BTCUSDT", 1.0)   # markets loaded: injected faults hit the klines
    yield adapter
    await adapter.close()


def klines_requests(sim):
    return [q for name, q in sim.requests if name == "klines"]


async def test_candles_through_ccxt_match_the_store_across_pages(sim, binance):
    client = ExchangeClient(get_exchange("binance"))
    got = await client.fetch("BTCUSDT", "1m", T, 2500)
    stored = await StoreExchange("bundled", sim.store_path).get_candles("BTCUSDT", "1m", T, 2500)
    assert len(got) == 2500 and got.timestamp.tolist() == stored.timestamp.tolist()
    for column in ("open", "high", "low", "close", "volume"):
        assert getattr(got, column).tolist() == getattr(stored, column).tolist()
    assert len(klines_requests(sim)) >= 3                 # 1000 + 1000 + 500: paged
    five = await client.fetch("BTC/USDT", "5m", T, 12)    # ccxt's unified symbol works too
    assert five.timestamp.tolist() == [T + i * 5 * MINUTE_MS for i in range(12)]
    assert five.high[0] == stored.high[:5].max() and five.close[0] == stored.close[4]


async def test_prices_and_quantities_use_the_market_precision(binance):
    assert await binance.format_price("BTCUSDT", 23456.123456) == "23456.12"     # tickSize 0.01
    assert await binance.format_quantity("BTCUSDT", 0.123456789) == "0.12345"    # stepSize 0.00001


@pytest.mark.parametrize("fault", ["429", "500", "503", "timeout"])
async def test_transient_failures_are_retried_then_succeed(sim, binance, fault):
    bk.set_config(CC_GET_CANDLES_RETRY_COUNT=3)
    sim.inject(fault, count=2)
    got = await ExchangeClient(get_exchange("binance")).fetch("BTCUSDT", "1m", T, 5)
    assert len(got) == 5 and len(klines_requests(sim)) == 3


@pytest.mark.parametrize("fault", ["429", "500"])
async def test_transient_failures_that_last_are_reported_after_the_retries(sim, binance, fault):
    bk.set_config(CC_GET_CANDLES_RETRY_COUNT=3)
    sim.inject(fault, count=3)
    with pytest.raises(bk.ExchangeError, match="failed after 3 attempt"):
        await ExchangeClient(get_exchange("binance")).fetch("BTCUSDT", "1m", T, 5)
    assert len(klines_requests(sim)) == 3


async def test_a_refused_request_is_not_retried(sim, binance):
    bk.set_config(CC_GET_CANDLES_RETRY_COUNT=3)
    sim.inject("400")
    with pytest.raises(ExchangeRejected, match="Illegal characters"):
        await ExchangeClient(get_exchange("binance")).fetch("BTCUSDT", "1m", T, 5)
    assert len(klines_requests(sim)) == 1
    with pytest.raises(ExchangeRejected, match="no market 'NOPEUSDT'"):
        await ExchangeClient(get_exchange("binance")).fetch("NOPEUSDT", "1m", T, 5)
    assert len(klines_requests(sim)) == 1


@pytest.mark.parametrize("fault, message", [("malformed", r"malformed answer .*\(not JSON\)"),
                                            ("bad_rows", "malformed candle at 2023-03-02T00:02Z"),
                                            ("gap", "candle #2 opens at 2023-03-02T00:03Z, expected .*00:02Z")])
async def test_a_malformed_answer_is_rejected_with_a_clear_error(sim, binance, fault, message):
    bk.set_config(CC_GET_CANDLES_RETRY_COUNT=1)
    sim.inject(fault)
    with pytest.raises(bk.CandleDataError, match=message):
        await ExchangeClient(get_exchange("binance")).fetch("BTCUSDT", "1m", T, 5)


async def test_candles_still_forming_are_never_returned(sim, binance):
    binance.now = lambda: T + 3 * MINUTE_MS + 30_000     # 00:03:30: the 00:03 candle is still open
    got = await binance.get_candles("BTCUSDT", "1m", T, 10)
    assert got.timestamp.tolist() == [T, T + MINUTE_MS, T + 2 * MINUTE_MS]


async def test_the_live_loop_ticks_on_through_exchange_failures(sim, tmp_path):
    bk.set_config(CC_GET_CANDLES_RETRY_COUNT=2)
    adapter = add_ccxt_exchange("binance", api_url=sim.url,
                                live_clock=lambda symbol: ReplayClock(T + 60 * MINUTE_MS, T + 90 * MINUTE_MS, 0))
    ticks, errors, done = [], [], []
    bk.add_strategy("s", lambda symbol, when: None)
    bk.listen_signal_live(ticks.append)
    bk.listen_error(errors.append)
    bk.listen_done_live(done.append)

    def fail_midway(r):
        if len(ticks) == 10:
            sim.inject("503", count=2)    # both attempts of the next tick's read fail

    bk.listen_signal_live(fail_midway)
    try:
        async for _ in bk.Live.run("BTCUSDT", strategy_name="s", exchange_name="binance", state_dir=tmp_path / "s"):
            pass
    finally:
        await adapter.close()
    assert len(errors) == 1 and "failed after 2 attempt" in str(errors[0].error)
    assert "retried next minute" in errors[0].where
    assert len(ticks) == 30 and len(done) == 1            # 31 minutes, one lost to the outage


def test_keys_come_from_the_environment_or_a_private_file_and_never_reach_a_log(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("BTK_KRAKEN_API_KEY", "key-123456")
    monkeypatch.setenv("BTK_KRAKEN_SECRET", "secret-abcdef")
    assert load_credentials("kraken") == {"apiKey": "key-123456", "secret": "secret-abcdef"}
    with caplog.at_level(logging.DEBUG, logger="ccxt"):
        logging.getLogger("ccxt.base.exchange").debug("signing with key-123456 and secret-abcdef")
    assert "key-123456" not in caplog.text and "secret-abcdef" not in caplog.text and "***" in caplog.text

    keys = tmp_path / "okx.json"
    keys.write_text('{"apiKey": "k", "secret": "s"}')
    os.chmod(keys, 0o644)
    with pytest.raises(CredentialsError, match=r"readable by others \(mode 0644\); run .chmod 600"):
        load_credentials("okx", keys)
    os.chmod(keys, 0o600)
    assert load_credentials("okx", keys) == {"apiKey": "k", "secret": "s"}
    assert load_credentials("bitstamp") == {}


async def test_keys_in_the_environment_never_reach_the_public_candle_reads(sim, monkeypatch):
    """With BTK_BINANCE_API_KEY set, ccxt would sign its market and currency requests and call
    private endpoints (the simulator, like any exchange, refuses them without a valid key): candles
    and markets are public, so the client that reads them never holds the keys."""
    monkeypatch.setenv("BTK_BINANCE_API_KEY", "k-123-not-a-real-key")
    monkeypatch.setenv("BTK_BINANCE_SECRET", "s-456-not-a-real-secret")
    adapter = add_ccxt_exchange("binance", api_url=sim.url)
    try:
        got = await ExchangeClient(get_exchange("binance")).fetch("BTCUSDT", "1m", T, 10)
        assert len(got) == 10
        assert await adapter.format_price("BTCUSDT", 23456.123456) == "23456.12"
        assert not adapter.client.apiKey and not adapter.client.secret
        assert all(name in ("ping", "time", "exchangeInfo", "klines") for name, _ in sim.requests)
    finally:
        await adapter.close()
