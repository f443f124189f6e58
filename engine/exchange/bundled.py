"""Exchanges backed by the SQLite candle store; ``bundled`` is seeded from data in the package.

The package ships real 1m candles (``engine/data``, provenance in its README);
the first use imports them into the store, so a fresh install works offline.
Any exchange name imported with ``btk data import`` is served the same way.

Reading: stored candles of the requested interval if there are any, else
aggregated from stored 1m candles. A missing minute inside the stored range
(Bittrex writes no candle for a minute without trades) is served as a flat
candle at the previous close with volume 0, as Binance itself does. A request
reaching outside the stored range fails with a message that says so.
"""

from __future__ import annotations

import os
from datetime import datetime
from importlib import resources
from pathlib import Path

import numpy as np

import engine.registry as registry

from ..interval import MINUTE_MS, interval_ms, iso, to_ms
from ..persistence.candles import connect, get_meta, import_candles, last_before, read_candle_file, read_range, series_summary, set_meta
from ..types import Candles
from .errors import CandlesUnavailable

BUNDLED = "bundled"
# A store exchange answers a whole backtest in one request: its candles are local, and one read of
# a few column blocks is far cheaper than a thousand-candle chunk each (each its own query).
STORE_CANDLES_PER_REQUEST = 1 << 30
# symbol -> file in engine/data (bump SEED_VERSION when the files change)
BUNDLED_FILES = {"BTCUSDT": "binanceus_BTCUSDT_1m.csv.gz", "ETHBTC": "bittrex_ETHBTC_1m.csv.gz",
                 "LTCBTC": "bittrex_LTCBTC_1m.csv.gz"}
SEED_VERSION = "2"


async def ensure_seeded(store_path: str | os.PathLike[str]) -> bool:
    """Import the bundled candles once per store. Returns True when it imported now."""
    db = await connect(store_path)
    try:
        if await get_meta(db, "bundled_seed") == SEED_VERSION:
            return False
        data = resources.files("engine") / "data"
        for symbol, name in BUNDLED_FILES.items():
            with resources.as_file(data / name) as path:
                await import_candles(db, BUNDLED, symbol, "1m", read_candle_file(Path(path)))
        await set_meta(db, "bundled_seed", SEED_VERSION)
        return True
    finally:
        await db.close()


def add_store_exchange(name: str, store_path: str | os.PathLike[str], note: str = "") -> StoreExchange:
    """Register store exchange ``name`` (its candles in the store at ``store_path``)."""
    exchange = StoreExchange(name, store_path)
    registry.add_exchange(name, exchange.get_candles, note=note or f"candle store {store_path}",
                          candles_per_request=STORE_CANDLES_PER_REQUEST)
    return exchange


class StoreExchange:
    """``get_candles`` for ``bk.add_exchange``, reading exchange ``name`` from the store."""

    def __init__(self, name: str, store_path: str | os.PathLike[str]):
        self.name = name
        self.store_path = str(store_path)

    async def get_candles(self, symbol: str, interval: str, since: datetime, limit: int) -> Candles:
        step = interval_ms(interval)
        since_ms = to_ms(since)
        until = since_ms + limit * step
        db = await connect(self.store_path)
        try:
            native = await series_summary(db, self.name, symbol, interval)
            if native is not None:
                return await self._read(db, symbol, interval, step, since_ms, until, native)
            if interval != "1m":
                minutes = await series_summary(db, self.name, symbol, "1m")
                if minutes is not None:
                    one = await self._read(db, symbol, "1m", MINUTE_MS, since_ms, until, minutes)
                    return aggregate(one, step // MINUTE_MS)
            raise CandlesUnavailable(f"{self.name} has no {symbol} candles (import some with `btk data import`)")
        finally:
            await db.close()

    async def _read(self, db, symbol: str, interval: str, step: int, since: int, until: int, summary) -> Candles:
        if since < summary.first or until - step > summary.last:
            raise CandlesUnavailable(
                f"{self.name} {symbol} {interval}: stored candles cover {iso(summary.first)} to {iso(summary.last)}, "
                f"the request needs {iso(since)} to {iso(until - step)}", first=summary.first, last=summary.last)
        got = await read_range(db, self.name, symbol, interval, since, until)
        expected = (until - since) // step
        if len(got) == expected:
            return got
        previous = await last_before(db, self.name, symbol, interval, since)
        return _fill_gaps(got, since, step, expected, previous)


def _fill_gaps(got: Candles, since: int, step: int, count: int, previous_close: float | None) -> Candles:
    ts = since + np.arange(count, dtype=np.int64) * step
    idx = (got.timestamp - since) // step
    have = np.zeros(count, dtype=bool)
    have[idx] = True
    # Index of the last stored candle at or before each slot (-1: none yet).
    last = np.where(have, np.arange(count), -1)
    last = np.maximum.accumulate(last)
    close_full = np.full(count, np.nan)
    close_full[idx] = got.close
    carry = np.where(last >= 0, close_full[np.maximum(last, 0)], np.nan)
    if previous_close is not None:
        carry = np.where(last >= 0, carry, previous_close)
    cols = {}
    for name in ("open", "high", "low", "close"):
        col = carry.copy()
        col[idx] = getattr(got, name)
        cols[name] = col
    volume = np.zeros(count)
    volume[idx] = got.volume
    return Candles.from_arrays(ts, cols["open"], cols["high"], cols["low"], cols["close"], volume)


def aggregate(one: Candles, ratio: int) -> Candles:
    """Contiguous 1m candles -> candles of ``ratio`` minutes (first open, max high, min low, last close, sum volume)."""
    n = len(one) // ratio * ratio
    ts, o, h, l, c, v = (col[:n] for col in one.columns())
    return Candles.from_arrays(ts[::ratio], o[::ratio], h.reshape(-1, ratio).max(1), l.reshape(-1, ratio).min(1),
                               c[ratio - 1::ratio], v.reshape(-1, ratio).sum(1))
