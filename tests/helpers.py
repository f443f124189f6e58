"""Test exchanges built from explicit prices, so every VWAP is known exactly."""

from __future__ import annotations

import asyncio

from datetime import datetime, timezone

import numpy as np

import engine as bk
from engine.context import Clock
from engine.exchange.client import ExchangeClient
from engine.feed import ExchangeFeed
from engine.interval import MINUTE_MS, interval_ms, to_ms
from engine.registry import get_exchange, get_strategy
from engine.strategy import ClientStrategy

UTC = timezone.utc
T0 = datetime(2024, 1, 1, tzinfo=UTC)
T0_MS = to_ms(T0)


def minute(i: int) -> int:
    """Epoch ms of minute ``i`` after T0."""
    return T0_MS + i * MINUTE_MS


class PriceExchange:
    """1m candles from explicit arrays (flat candles at ``close`` unless high/low given).

    With flat candles and equal volume the VWAP of the last 5 candles is the mean
    of their closes, so a run of 5 equal prices makes the current price exact.
    """

    def __init__(self, close, *, high=None, low=None, volume=None, start_ms: int = T0_MS):
        close = np.asarray(close, dtype=float)
        n = len(close)
        self.candles = bk.Candles.from_arrays(
            start_ms + np.arange(n, dtype=np.int64) * MINUTE_MS, close,
            close if high is None else np.asarray(high, float), close if low is None else np.asarray(low, float),
            close, np.ones(n) if volume is None else np.asarray(volume, float))
        self.t0 = start_ms
        self.calls: list[tuple[str, str, int, int]] = []

    def get_candles(self, symbol, interval, since, limit):
        self.calls.append((symbol, interval, to_ms(since), limit))
        step = interval_ms(interval)
        assert step == MINUTE_MS, "PriceExchange serves 1m only"
        a = (to_ms(since) - self.t0) // MINUTE_MS
        a = max(a, 0)
        return self.candles[a:a + limit]


def steps(*segments: tuple[float, int]) -> list[float]:
    """``steps((100, 10), (101, 5))`` -> 10 candles at 100 then 5 at 101."""
    out: list[float] = []
    for price, count in segments:
        out += [price] * count
    return out


def register(prices, *, strategy=None, interval="1m", frame=(5, None), exchange="prices", symbol_ok=True,
             **strategy_kwargs) -> PriceExchange:
    """Register exchange ``prices``, frame ``f`` (minute ``frame[0]`` to ``frame[1]``) and strategy ``s``."""
    ex = prices if isinstance(prices, PriceExchange) else PriceExchange(prices)
    bk.add_exchange(exchange, ex.get_candles)
    start, end = frame
    n = len(ex.candles)
    bk.add_frame("f", start=minute(start), end=minute(end if end is not None else n - 2))
    if strategy is not None:
        bk.add_strategy("s", strategy, interval=interval, **strategy_kwargs)
    return ex


def once(dto_factory, at_minute: int | None = None):
    """A get_signal that returns one signal (at ``at_minute``, or on its first call), then None."""
    state = {"done": False}

    async def get_signal(symbol, when):
        if state["done"]:
            return None
        if at_minute is not None and to_ms(when) != minute(at_minute):
            return None
        state["done"] = True
        return dto_factory()
    return get_signal


async def collect(symbol="BTC", strategy="s", exchange="prices", frame="f"):
    return [r async for r in bk.Backtest.run(symbol, strategy_name=strategy, exchange_name=exchange, frame_name=frame)]


class Harness:
    """One live-mode ClientStrategy over exact prices; ``await h.at(i)`` ticks at minute i.
    The current price at minute i is the mean of the closes of minutes i-5..i-1."""

    def __init__(self, prices, get_signal, *, high=None, low=None, **strategy_kwargs):
        self.exchange = PriceExchange(prices, high=high, low=low)
        bk.add_exchange("prices", self.exchange.get_candles)
        bk.add_strategy("s", get_signal, **strategy_kwargs)
        self.clock = Clock()
        feed = ExchangeFeed(ExchangeClient(get_exchange("prices")))
        self.strategy = ClientStrategy(get_strategy("s"), symbol="BTC", exchange_name="prices", frame_name="",
                                       feed=feed, clock=self.clock, backtest=False)
        self.events = []
        bk.listen_signal(self.events.append)

    async def at(self, i):
        self.clock.now = minute(i)
        return await self.strategy.tick()


def fixed(**dto):
    calls = []

    def get_signal(symbol, when):
        calls.append(when)
        return bk.SignalDto(**dto) if len(calls) == 1 else None
    get_signal.calls = calls
    return get_signal


def always_long(symbol, when):
    return bk.SignalDto(position="long", price_take_profit=110, price_stop_loss=90)


class Portfolio:
    """Live-mode ClientStrategies for several strategies x symbols on one clock; ``prices`` is one
    price path for every symbol, or a dict of paths by symbol."""

    def __init__(self, prices, strategies, symbols):
        paths = prices if isinstance(prices, dict) else dict.fromkeys(symbols, prices)
        exchanges = {sym: PriceExchange(path) for sym, path in paths.items()}
        bk.add_exchange("prices", lambda symbol, *args: exchanges[symbol].get_candles(symbol, *args))
        for name, kwargs in strategies.items():
            bk.add_strategy(name, kwargs.pop("get_signal", always_long), **kwargs)
        self.clock = Clock()
        feed = ExchangeFeed(ExchangeClient(get_exchange("prices")))
        self.clients = {(name, sym): ClientStrategy(get_strategy(name), symbol=sym, exchange_name="prices",
                                                    frame_name="", feed=feed, clock=self.clock, backtest=False)
                        for name in strategies for sym in symbols}
        self.rejections = []
        bk.listen_risk(self.rejections.append)

    async def tick(self, i, *keys, together=False):
        """Tick the given (strategy, symbol) clients (all by default) at minute i; results by key."""
        self.clock.now = minute(i)
        keys = keys or tuple(self.clients)
        if together:
            results = await asyncio.gather(*(self.clients[k].tick() for k in keys))
        else:
            results = [await self.clients[k].tick() for k in keys]
        return dict(zip(keys, (r.action for r in results)))
