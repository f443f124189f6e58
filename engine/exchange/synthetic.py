"""A deterministic synthetic exchange: a geometric random walk of 1m candles.

For scale tests, benchmarks and demos without data: ``open[i] = close[i-1]``,
high/low a small random excursion around open/close, seed fixed. Other
intervals are aggregated from the 1m walk, so every interval agrees.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np

from ..interval import MINUTE_MS, interval_ms, to_ms
from ..types import Candles
from .bundled import aggregate


def random_walk(n: int, *, start_ms: int, seed: int = 42, sigma: float = 0.0008,
                price: float = 20_000.0) -> Candles:
    rng = np.random.default_rng(seed)
    close = price * np.exp(np.cumsum(rng.normal(0.0, sigma, n)))
    open_ = np.empty(n)
    open_[0] = price
    open_[1:] = close[:-1]
    top = np.maximum(open_, close)
    bottom = np.minimum(open_, close)
    high = top * (1 + np.abs(rng.normal(0.0, sigma / 2, n)))
    low = bottom * (1 - np.abs(rng.normal(0.0, sigma / 2, n)))
    volume = rng.gamma(2.0, 5.0, n)
    ts = start_ms + np.arange(n, dtype=np.int64) * MINUTE_MS
    return Candles.from_arrays(ts, open_, high, low, close, volume)


class SyntheticExchange:
    """``get_candles`` for ``bk.add_exchange`` over a fixed random walk (any symbol)."""

    def __init__(self, n: int, *, start: datetime | int, seed: int = 42, sigma: float = 0.0008,
                 price: float = 20_000.0):
        self.candles = random_walk(n, start_ms=to_ms(start), seed=seed, sigma=sigma, price=price)
        self.t0 = int(self.candles.timestamp[0])

    def get_candles(self, symbol: str, interval: str, since: datetime, limit: int) -> Candles:
        step = interval_ms(interval)
        ratio = step // MINUTE_MS
        first = (to_ms(since) - self.t0) // MINUTE_MS
        a = max(first, 0)
        b = min(first + limit * ratio, len(self.candles))
        if b <= a:
            return self.candles[0:0]
        if ratio == 1:
            return self.candles[a:b]
        return aggregate(self.candles[a:b], ratio)
