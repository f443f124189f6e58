"""In-strategy functions: valid inside ``get_signal`` and callbacks while the engine runs them."""

from __future__ import annotations

from .context import current_execution, execution_context
from .exchange.client import ExchangeClient
from .indicators import IndicatorView
from .registry import get_exchange
from .types import Candles


async def get_candles(symbol: str, interval: str, limit: int) -> Candles:
    """The ``limit`` closed candles before "now" (the forming candle is never returned)."""
    ctx = execution_context.get() or current_execution("get_candles")     # (the latter raises)
    when = ctx.clock.now
    window = ctx.feed.candles_now(symbol, interval, limit, when)    # a backtest's: a view, at once
    return window if window is not None else await ctx.feed.candles(symbol, interval, limit, when)


async def get_indicators() -> IndicatorView:
    """The strategy's declared indicators now: ``ind.NAME`` is a read-only array of its values
    through the newest closed candle (``ind.NAME[-1]`` now, ``[-2]`` one candle before)."""
    ctx = current_execution("get_indicators")
    if ctx.indicators is None:
        raise RuntimeError(f"bk.get_indicators(): strategy {ctx.method.strategy_name!r} declares no indicators "
                           "(add_strategy(..., indicators={name: bk.Indicator(fn, startup=n)}))")
    return await ctx.indicators(ctx.clock.now)


async def get_average_price(symbol: str) -> float:
    """VWAP of the last ``CC_AVG_PRICE_CANDLES_COUNT`` closed 1m candles."""
    ctx = current_execution("get_average_price")
    return await ctx.feed.average_price(symbol, ctx.clock.now)


def _client(fn_name: str) -> ExchangeClient:
    return ExchangeClient(get_exchange(current_execution(fn_name).method.exchange_name))


async def format_price(symbol: str, price: float) -> str:
    return await _client("format_price").format_price(symbol, price)


async def format_quantity(symbol: str, quantity: float) -> str:
    return await _client("format_quantity").format_quantity(symbol, quantity)
