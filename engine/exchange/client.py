"""The engine's side of an exchange adapter: chunking, retries, answer checks.

``ExchangeClient.fetch(symbol, interval, since, limit)`` splits a request
into chunks of ``CC_MAX_CANDLES_PER_REQUEST`` (or the exchange's own ``candles_per_request``), retries each chunk up to
``CC_GET_CANDLES_RETRY_COUNT`` attempts ``CC_GET_CANDLES_RETRY_DELAY_MS``
apart, and checks every answer before anything uses it.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from ..config import get_config
from ..interval import interval_ms, iso, to_datetime
from ..log import describe_error, get_logger
from ..registry import ExchangeSchema
from ..types import Candles
from .checks import check_answer, check_values, values_look_fine
from .errors import CandleDataError, ExchangeError, PermanentError


class ExchangeClient:
    def __init__(self, schema: ExchangeSchema):
        self.schema = schema
        self.name = schema.exchange_name

    async def fetch(self, symbol: str, interval: str, since: int, limit: int, *,
                    attempts: int | None = None) -> Candles:
        """``attempts`` overrides ``CC_GET_CANDLES_RETRY_COUNT`` (1: no retry)."""
        step = interval_ms(interval)
        if limit < 0:
            raise ValueError(f"get_candles: limit must be >= 0, got {limit}")
        config = get_config()
        size = self.schema.candles_per_request or config.CC_MAX_CANDLES_PER_REQUEST
        if limit <= size:
            return await self._fetch_chunk(symbol, interval, step, since, limit, attempts) if limit else \
                Candles.from_candles([])
        # Many requests: each answer's shape is checked as it comes, the values of all at once
        # (one pass over the batch instead of one per answer); only if that pass finds something
        # is each answer checked on its own, and a bad one fetched again with the usual retries.
        starts = [since + offset * step for offset in range(0, limit, size)]
        parts = [await self._fetch_chunk(symbol, interval, step, start, min(size, limit - (start - since) // step),
                                         attempts, values=False) for start in starts]
        candles = Candles.concat(parts)
        if not values_look_fine(candles, config):
            for k, (start, part) in enumerate(zip(starts, parts)):
                try:
                    check_values(part, where=f"{self.name} {symbol} {interval} from {iso(start)} "
                                             f"(limit {len(part)})", config=config)
                except CandleDataError:
                    parts[k] = await self._fetch_chunk(symbol, interval, step, start, len(part), attempts)
                    continue
                await self._notify(symbol, interval, start, part)
            return Candles.concat(parts)
        for start, part in zip(starts, parts):
            await self._notify(symbol, interval, start, part)
        return candles

    async def _notify(self, symbol: str, interval: str, since: int, candles: Candles) -> None:
        """The exchange's ``on_candle_data`` callback, with a checked answer."""
        on_data = self.schema.callbacks.on_candle_data
        if on_data is not None:
            result = on_data(symbol, interval, since, len(candles), candles)
            if inspect.isawaitable(result):
                await result

    async def _fetch_chunk(self, symbol: str, interval: str, step: int, since: int, limit: int,
                           attempts: int | None, values: bool = True) -> Candles:
        config = get_config()
        attempts = max(1, int(config.CC_GET_CANDLES_RETRY_COUNT if attempts is None else attempts))
        last: BaseException | None = None
        for attempt in range(1, attempts + 1):
            try:
                answer = self.schema.get_candles(symbol, interval, to_datetime(since), limit)
                if inspect.isawaitable(answer):
                    answer = await answer
                candles = _as_candles(answer, self.name)
                check_answer(candles, symbol=symbol, interval=interval, step_ms=step, since=since,
                             limit=limit, exchange_name=self.name, config=config, values=values)
            except (asyncio.CancelledError, PermanentError):
                raise  # e.g. the store has no such candles: retrying cannot help
            except Exception as exc:
                last = exc
                if attempt < attempts:
                    get_logger().warning("btk: %s get_candles %s %s attempt %d/%d failed: %s",
                                         self.name, symbol, interval, attempt, attempts, exc)
                    if config.CC_GET_CANDLES_RETRY_DELAY_MS:
                        await asyncio.sleep(config.CC_GET_CANDLES_RETRY_DELAY_MS / 1000)
                continue
            if values:   # else the caller checks the values, then notifies
                await self._notify(symbol, interval, since, candles)
            return candles
        assert last is not None
        if isinstance(last, CandleDataError):
            raise last
        raise ExchangeError(f"{self.name}: get_candles({symbol}, {interval}, limit {limit}) failed after "
                            f"{attempts} attempt(s): {describe_error(last)}") from last

    async def format_price(self, symbol: str, price: float) -> str:
        return await self._format(self.schema.format_price, symbol, price, 8)

    async def format_quantity(self, symbol: str, quantity: float) -> str:
        return await self._format(self.schema.format_quantity, symbol, quantity, 8)

    @staticmethod
    async def _format(fn: Any, symbol: str, value: float, digits: int) -> str:
        if fn is None:
            return f"{value:.{digits}f}".rstrip("0").rstrip(".") if value == value else str(value)
        result = fn(symbol, value)
        if inspect.isawaitable(result):
            result = await result
        return str(result)


def _as_candles(answer: Any, exchange_name: str) -> Candles:
    if isinstance(answer, Candles):
        return answer
    if answer is None:
        raise CandleDataError(f"{exchange_name}: get_candles returned None (expected a list of Candle or Candles)")
    if not isinstance(answer, (list, tuple)):
        raise CandleDataError(
            f"{exchange_name}: get_candles returned {type(answer).__name__} (expected a list of Candle or Candles)")
    try:
        return Candles.from_candles(answer)
    except ValueError as e:
        raise CandleDataError(f"{exchange_name}: bad candle data: {e}") from None

