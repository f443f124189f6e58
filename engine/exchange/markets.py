"""Markets: the candle series in the store, and the exchanges that serve a run.

Where a backtest or a live run finds its candles: the stored 1m series of a symbol on a store
exchange (with the frame they can serve), a registered exchange, or a ccxt exchange id. A
request that cannot be served raises ``MarketError`` naming what can (the CLI's exit 2).
"""

from __future__ import annotations

from pathlib import Path

from .. import registry
from ..config import get_config
from ..interval import MINUTE_MS, iso
from ..persistence.candles import DEFAULT_WARMUP_MINUTES, SeriesSummary, connect, series_summary, summaries
from .bundled import StoreExchange
from .replay import REPLAY


class MarketError(ValueError):
    """A market, exchange or span that cannot be used; the message says what can."""


async def stored_series(store: Path, exchange: str, symbol: str) -> SeriesSummary:
    """The stored 1m candles of ``symbol`` on ``exchange``; a ``MarketError`` that says where they
    are instead (another exchange) or how to get some."""
    db = await connect(store)
    try:
        stored = await series_summary(db, exchange, symbol, "1m")
        elsewhere = [] if stored is not None else \
            [s.exchange for s in await summaries(db) if s.symbol == symbol and s.interval == "1m"]
    finally:
        await db.close()
    if stored is None:
        if elsewhere:
            raise MarketError(f"no 1m candles of {symbol} on exchange {exchange}; {symbol} is stored on "
                             f"{', '.join(elsewhere)}: give --exchange {elsewhere[0]}")
        raise MarketError(f"no 1m candles of {symbol} on exchange {exchange} (see `btk data list`; import some "
                         "with `btk data import`)")
    return stored



def is_store_exchange(exchange: str) -> bool:
    """Whether ``exchange`` reads the candle store (its span is known without asking it)."""
    schema = next((e for e in registry.list_exchanges() if e.exchange_name == exchange), None)
    return schema is not None and isinstance(getattr(schema.get_candles, "__self__", None), StoreExchange)



def frame_bounds(stored: SeriesSummary) -> tuple[int, int]:
    """The widest backtest frame on ``stored``: its first price needs the VWAP window of closed
    candles before it, and a candle after its end closes what is still open."""
    return stored.first + get_config().CC_AVG_PRICE_CANDLES_COUNT * MINUTE_MS, stored.last - MINUTE_MS



async def stored_frame(store: Path, exchange: str, symbol: str, start: int | None = None,
                       end: int | None = None) -> str:
    """A frame over the stored 1m candles of ``symbol`` (registered on first use; its name says
    its span): from ``start`` or a day of warm-up into the data, to ``end`` or one minute before
    the last candle, whose successor closes any position still open (``time_expired``). A span
    the stored candles cannot serve is a ``MarketError`` naming the span they can."""
    if is_store_exchange(exchange) or start is None or end is None:
        stored = await stored_series(store, exchange, symbol)
        earliest, latest = frame_bounds(stored)
        start = stored.first + DEFAULT_WARMUP_MINUTES * MINUTE_MS if start is None else start
        end = latest if end is None else end
        if start <= end and (start < earliest or end > latest):
            raise MarketError(f"{symbol} on {exchange}: the stored 1m candles cover {iso(stored.first)} to "
                             f"{iso(stored.last)}, so a backtest can run from {iso(earliest)} (its first price needs "
                             f"{get_config().CC_AVG_PRICE_CANDLES_COUNT} closed candles) to {iso(latest)} (a candle "
                             "after the frame closes what is still open): give --from/--to within that")
    if start > end:
        raise MarketError(f"the frame is empty: start {iso(start)} is after end {iso(end)}")
    name = f"{symbol}:{iso(start)}..{iso(end)}"
    if name not in {f.frame_name for f in registry.list_frames()}:
        registry.add_frame(name, start=start, end=end, note=f"stored {exchange} {symbol}")
    return name



async def stored_markets(store: Path) -> list[tuple[str, str]]:
    """(exchange, symbol) of every stored 1m series, in store order."""
    db = await connect(store)
    try:
        return [(s.exchange, s.symbol) for s in await summaries(db) if s.interval == "1m"]
    finally:
        await db.close()



def reserved_exchange_name(name: str) -> str | None:
    """Why stored candles may not be kept under the exchange ``name`` (None: they may): ``replay``
    names the replay of stored candles, and a ccxt id would make ``--exchange ID`` read the store
    instead of the exchange."""
    if name == REPLAY:
        return "the name is the replay exchange's (paper trading on stored candles)"
    from .ccxt_exchange import ccxt_exchange_ids
    if name in ccxt_exchange_ids():
        return f"{name} is a ccxt exchange id: `--exchange {name}` must reach that exchange, not stored files"
    return None



def registered_or_ccxt(exchange: str) -> str:
    """A live run's exchange: a registered one, or a ccxt id (registered on first use, public
    candles, no keys). Raises ``MarketError`` naming what is known."""
    known = {e.exchange_name for e in registry.list_exchanges()}
    if exchange in known:
        return exchange
    from .ccxt_exchange import add_ccxt_exchange, ccxt_exchange_ids
    if exchange in ccxt_exchange_ids():
        add_ccxt_exchange(exchange)
        return exchange
    raise MarketError(f"unknown exchange {exchange!r}: not registered ({', '.join(sorted(known))}) "
                     "and not a ccxt exchange id")



async def market_problem(exchange: str, symbol: str) -> str | None:
    """Why ``symbol`` cannot trade on ccxt exchange ``exchange`` (None: it can, or the exchange is
    not a ccxt one, or its markets cannot be read now: the live loop then reports and retries)."""
    schema = next((e for e in registry.list_exchanges() if e.exchange_name == exchange), None)
    adapter = getattr(getattr(schema, "get_candles", None), "__self__", None)
    from .ccxt_exchange import CcxtExchange, ExchangeRejected
    if not isinstance(adapter, CcxtExchange):
        return None
    try:
        await adapter.load_markets()
    except Exception:
        return None
    try:
        adapter.market_symbol(symbol)
    except ExchangeRejected as e:
        return f"{e} (symbols look like BTCUSDT or BTC/USDT)"
    return None
