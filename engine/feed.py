"""Where strategy code and the engine get candles and the current price.

``get_candles(symbol, interval, limit)`` at time ``when`` returns exactly the
``limit`` candles covering ``[aligned - limit*step, aligned)`` with
``aligned = floor(when/step)*step``: the candle opening at ``aligned`` is still
forming and is never returned.

``ExchangeFeed`` asks the adapter every time (live). ``SeriesFeed`` (backtest)
serves requests from series loaded once through the same checked client, so a
frame's candles are fetched and checked once, then sliced as views; anything
outside them falls back to the adapter.
"""

from __future__ import annotations

import numpy as np

from .config import get_config
from .exchange.checks import check_anomaly, no_window_can_be_anomalous
from .exchange.client import ExchangeClient
from .exchange.errors import CandleDataError, CandlesUnavailable, HistoryUnavailable
from .exchange.vwap import rolling_vwap, vwap
from .interval import MINUTE_MS, align, interval_ms, iso
from .types import Candles


class ExchangeFeed:
    """Every request goes to the exchange adapter (through its checks)."""

    def __init__(self, client: ExchangeClient):
        self.client = client

    async def candles(self, symbol: str, interval: str, limit: int, when: int) -> Candles:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0:
            raise ValueError(f"get_candles: limit must be a positive integer, got {limit!r}")
        step = interval_ms(interval)
        since = align(when, step) - limit * step
        return await self.client.fetch(symbol, interval, since, limit)

    def candles_now(self, symbol: str, interval: str, limit: int, when: int) -> Candles | None:
        """``candles(...)`` without awaiting, when the feed has them at hand (else None): a backtest
        frame's window, read per frame by strategies."""
        return None

    def price_now(self, symbol: str, when: int) -> float | None:
        """The current price without awaiting, when the feed has it at hand (else None)."""
        return None

    async def average_price(self, symbol: str, when: int) -> float:
        c = await self.candles(symbol, "1m", get_config().CC_AVG_PRICE_CANDLES_COUNT, when)
        return vwap(c.high, c.low, c.close, c.volume)

    async def last_candle(self, symbol: str, when: int) -> tuple[float, float]:
        """(high, low) of the newest closed 1m candle ("touch" trigger)."""
        c = await self.candles(symbol, "1m", 1, when)
        return float(c.high[0]), float(c.low[0])


class Series:
    """Contiguous, checked candles of one symbol and interval, as read-only columns."""

    __slots__ = ("symbol", "interval", "step", "t0", "rows", "candles", "ts", "high", "low", "close", "volume",
                 "anomaly_free", "_vwap", "vwap_n")

    def __init__(self, symbol: str, interval: str, candles: Candles):
        self.symbol, self.interval = symbol, interval
        self.step = interval_ms(interval)
        self.candles = candles
        # The engine's own reads work on plain arrays (a Column is for strategy code).
        self.ts, _, self.high, self.low, self.close, self.volume = (np.asarray(c) for c in candles.columns())
        self.t0 = int(self.ts[0])
        self.rows = len(self.ts)
        config = get_config()
        lo = min(float(candles.open.min()), float(self.low.min()))
        hi = max(float(candles.open.max()), float(self.high.max()))
        self.anomaly_free = no_window_can_be_anomalous(lo, hi, config)
        self.vwap_n = config.CC_AVG_PRICE_CANDLES_COUNT
        self._vwap: np.ndarray | None = None

    @property
    def vwap(self) -> np.ndarray:
        """The VWAP after each 1m candle (``vwap[i]``: candles ``i-n+1..i``), computed on first use:
        a series grown before anyone asks for a price computes it once."""
        if self._vwap is None:
            if self.interval != "1m":
                raise ValueError(f"the VWAP is taken on 1m candles, not {self.interval}")
            self._vwap = rolling_vwap(self.high, self.low, self.close, self.volume, self.vwap_n)
        return self._vwap

    def __len__(self) -> int:
        return self.rows

    @property
    def end(self) -> int:
        """Open time one step past the last candle."""
        return self.t0 + len(self.ts) * self.step

    def index(self, ts: int) -> int:
        return (ts - self.t0) // self.step


class SeriesFeed(ExchangeFeed):
    """Backtest feed: checked series loaded once; requests they cover are views."""

    def __init__(self, client: ExchangeClient, horizon_end: int):
        super().__init__(client)
        self.series: dict[tuple[str, str], Series] = {}
        self.failed_from: dict[tuple[str, str], int] = {}
        # Where the stored candles begin, once a request for history before them was refused.
        self.stored_from: dict[tuple[str, str], int] = {}
        # Later-interval series are loaded up to here (the frame's end + one candle).
        self.horizon_end = horizon_end

    async def load(self, symbol: str, interval: str, since: int, until: int, *, history: int = 0) -> Series:
        """Fetch ``[since, until)`` once, checked, and keep it. ``history``: as many candles before
        ``since`` to load with it where the source has them (as many as it has, else): a
        strategy's look-back is then read at once, not by growing the series, which copies it."""
        step = interval_ms(interval)
        if history > 0:
            earliest = since - history * step
            try:
                return self._keep(symbol, interval, await self.client.fetch(
                    symbol, interval, earliest, (until - earliest) // step, attempts=1))
            except Exception as exc:          # (whatever the source says of the extra day: asked once)
                first = exc.first if isinstance(exc, CandlesUnavailable) else None
                if first is not None and earliest < first <= since:
                    self.stored_from[(symbol, interval)] = first      # what a look-back may reach
                    earliest = first + (-first) % step
                    if earliest < since:
                        return self._keep(symbol, interval, await self.client.fetch(
                            symbol, interval, earliest, (until - earliest) // step))
                # else: the span itself is asked for below, and its own failure is the one reported
        return self._keep(symbol, interval, await self.client.fetch(symbol, interval, since, (until - since) // step))

    def _keep(self, symbol: str, interval: str, candles: Candles) -> Series:
        series = Series(symbol, interval, candles)
        self.series[(symbol, interval)] = series
        return series

    def candles_now(self, symbol: str, interval: str, limit: int, when: int) -> Candles | None:
        series = self.series.get((symbol, interval))
        if series is not None and type(limit) is int and limit > 0:
            step = series.step
            i = (when - when % step - series.t0) // step
            if limit <= i <= series.rows:
                window = series.candles.span(i - limit, i)
                if not series.anomaly_free:
                    self._check_anomaly(window, series, limit)
                return window
        return None

    async def candles(self, symbol: str, interval: str, limit: int, when: int) -> Candles:
        window = self.candles_now(symbol, interval, limit, when)
        if window is not None:
            return window
        return await self._miss(symbol, interval, limit, when, self.series.get((symbol, interval)))

    async def _miss(self, symbol: str, interval: str, limit: int, when: int, series: Series | None) -> Candles:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0:
            raise ValueError(f"get_candles: limit must be a positive integer, got {limit!r}")
        step = interval_ms(interval)
        since = align(when, step) - limit * step
        until = align(when, step)
        if series is not None:
            # Grow the series to cover the request (one fetch), keeping what is loaded.
            lo, hi = min(since, series.t0), max(until, series.end)
            parts = []
            if lo < series.t0:
                stored_from = self.stored_from.get((symbol, interval))
                if stored_from is not None and lo < stored_from:
                    raise self._history_unavailable(symbol, interval, limit, until, stored_from)
                failed = self.failed_from.get((symbol, interval))
                if failed is not None and lo <= failed:
                    # This history was asked for and is not there: fail fast rather than pay the
                    # retries and their pauses again on every frame of the warm-up.
                    raise CandleDataError(f"{self.client.name} has no {symbol} {interval} candles from {iso(lo)} "
                                          f"(a request from {iso(failed)} already failed in this run)")
                try:
                    parts.append(await self.client.fetch(symbol, interval, lo, (series.t0 - lo) // step,
                                                         attempts=1 if failed is not None else None))
                except CandlesUnavailable as exc:
                    if exc.first is None or exc.first <= lo:
                        raise
                    self.stored_from[(symbol, interval)] = exc.first
                    raise self._history_unavailable(symbol, interval, limit, until, exc.first) from exc
                except Exception:
                    self.failed_from[(symbol, interval)] = lo
                    raise
            parts.append(series.candles)
            if hi > series.end:
                parts.append(await self.client.fetch(symbol, interval, series.end, (hi - series.end) // step))
            grown = Series(symbol, interval, Candles.concat(parts))
            self.series[(symbol, interval)] = grown
            return await self.candles(symbol, interval, limit, when)
        # First request at this interval: load it through the horizon in one go; if the
        # exchange cannot serve that much, answer this request alone.
        until_horizon = max(until, align(self.horizon_end, step))
        try:
            await self.load(symbol, interval, since, until_horizon)
        except Exception:
            try:
                return await super().candles(symbol, interval, limit, when)
            except CandlesUnavailable as exc:
                if exc.first is None or exc.first <= since:
                    raise
                raise self._history_unavailable(symbol, interval, limit, until, exc.first) from exc
        return await self.candles(symbol, interval, limit, when)

    def _history_unavailable(self, symbol: str, interval: str, limit: int, until: int,
                             stored_from: int) -> HistoryUnavailable:
        return HistoryUnavailable(
            f"{self.client.name} {symbol} {interval}: {limit} candles before {iso(until)} reach back before the "
            f"stored candles, which begin at {iso(stored_from)}", interval=interval, limit=limit,
            available_from=stored_from)

    @staticmethod
    def _check_anomaly(window: Candles, series: Series, limit: int) -> None:
        ohlc = np.stack((window.open, window.high, window.low, window.close))
        check_anomaly(ohlc, window.timestamp, config=get_config(),
                      where=f"{series.symbol} {series.interval} from {iso(int(window.timestamp[0]))} (limit {limit})")

    def minute_series(self, symbol: str) -> Series | None:
        return self.series.get((symbol, "1m"))

    def price_now(self, symbol: str, when: int) -> float | None:
        series = self.series.get((symbol, "1m"))
        if series is None:
            return None
        i = (when - when % MINUTE_MS - series.t0) // MINUTE_MS
        if i - series.vwap_n < 0 or i > len(series.ts):
            return None
        if not series.anomaly_free:
            return None
        return float(series.vwap[i - 1])

    async def average_price(self, symbol: str, when: int) -> float:
        price = self.price_now(symbol, when)
        if price is not None:
            return price
        return await super().average_price(symbol, when)
