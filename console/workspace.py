"""The default workspace: the candle store (seeded with the bundled data),
one exchange per exchange name in it, the sample strategies, user files."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import engine as bk
import strategies
from engine.exchange.bundled import BUNDLED, StoreExchange, ensure_seeded
from engine.exchange.replay import REPLAY
from engine.interval import MINUTE_MS, iso
from engine.log import get_logger
from engine.config import get_config
from engine.store import (DEFAULT_WARMUP_MINUTES, SeriesSummary, connect, default_store_path, exchanges_in,
                          series_summary, summaries)
from strategies import sma_cross

from .usage import UsageError


class WorkspaceError(ValueError):
    pass


async def open_workspace(store_path: Path | None = None, load: list[str] | None = None) -> Path:
    """Seed the store if needed and register its exchanges, the samples and ``load`` files."""
    path = store_path or default_store_path()
    await ensure_seeded(path)
    db = await connect(path)
    try:
        stored = await summaries(db)
    finally:
        await db.close()
    registered = {e.exchange_name for e in bk.list_exchanges()}
    for name in exchanges_in(stored):
        if name == REPLAY:
            get_logger().warning("btk: stored candles under the exchange name %r are not served: the name is the "
                                 "replay's (`btk data delete --exchange %s`, then import them under another)",
                                 name, name)
        elif name not in registered:
            bk.add_exchange(name, StoreExchange(name, path).get_candles, note=f"candle store {path}")
    strategies.register_all()
    register_sample_walkers(stored)
    for file in load or []:
        load_file(file)
    return path


# The sample walker and sweep run on the bundled candles: BTCUSDT (March 2023) and the
# ETHBTC / LTCBTC pair (January 2018, the same ten days).
SWEEP_GRID = {"fast": [5, 10, 15, 20], "slow": [30, 60, 90]}


def register_sample_walkers(stored) -> None:
    """Frames over the bundled data, the walker ``samples`` (the sample strategies on BTCUSDT) and
    the sweep walker ``sma_sweep`` (12 SMA parameter sets on ETHBTC and LTCBTC): a fresh install can
    walk and sweep at once. Skipped when the names are taken or the data is missing."""
    spans = {(s.exchange, s.symbol): s for s in stored if s.interval == "1m"}
    frames = {f.frame_name for f in bk.list_frames()}
    walkers = {w.walker_name for w in bk.list_walkers()}
    btc = spans.get((BUNDLED, "BTCUSDT"))
    if btc is not None and "samples" not in walkers:
        if "bundled-btcusdt" not in frames:
            bk.add_frame("bundled-btcusdt", start=btc.first + DEFAULT_WARMUP_MINUTES * MINUTE_MS,
                         end=btc.last - MINUTE_MS, note="bundled BTCUSDT after a day of warm-up")
        bk.add_walker("samples", exchange_name=BUNDLED, frame_name="bundled-btcusdt",
                      strategies=[name for name in strategies.SAMPLES], symbols=["BTCUSDT"],
                      note="the sample strategies on bundled BTCUSDT, by Sharpe ratio")
    pair = [spans.get((BUNDLED, sym)) for sym in ("ETHBTC", "LTCBTC")]
    if all(pair) and "sma_sweep" not in walkers:
        if "bundled-2018" not in frames:
            start = max(s.first for s in pair) + 120 * MINUTE_MS     # two hours for the slowest average
            bk.add_frame("bundled-2018", start=start, end=min(s.last for s in pair) - MINUTE_MS,
                         note="bundled ETHBTC and LTCBTC, January 2018")
        names = bk.add_sweep("sma_cross", sma_cross.make_signal, SWEEP_GRID, where=lambda p: p["fast"] < p["slow"])
        bk.add_walker("sma_sweep", exchange_name=BUNDLED, frame_name="bundled-2018", strategies=names,
                      symbols=["ETHBTC", "LTCBTC"], note="SMA crossover parameter sweep, ranked by Sharpe ratio")


async def stored_series(store: Path, exchange: str, symbol: str) -> SeriesSummary:
    """The stored 1m candles of ``symbol`` on ``exchange``; a ``UsageError`` that says where they
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
            raise UsageError(f"no 1m candles of {symbol} on exchange {exchange}; {symbol} is stored on "
                             f"{', '.join(elsewhere)}: give --exchange {elsewhere[0]}")
        raise UsageError(f"no 1m candles of {symbol} on exchange {exchange} (see `btk data list`; import some "
                         "with `btk data import`)")
    return stored


def is_store_exchange(exchange: str) -> bool:
    """Whether ``exchange`` reads the candle store (its span is known without asking it)."""
    schema = next((e for e in bk.list_exchanges() if e.exchange_name == exchange), None)
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
    the stored candles cannot serve is a ``UsageError`` naming the span they can."""
    if is_store_exchange(exchange) or start is None or end is None:
        stored = await stored_series(store, exchange, symbol)
        earliest, latest = frame_bounds(stored)
        start = stored.first + DEFAULT_WARMUP_MINUTES * MINUTE_MS if start is None else start
        end = latest if end is None else end
        if start <= end and (start < earliest or end > latest):
            raise UsageError(f"{symbol} on {exchange}: the stored 1m candles cover {iso(stored.first)} to "
                             f"{iso(stored.last)}, so a backtest can run from {iso(earliest)} (its first price needs "
                             f"{get_config().CC_AVG_PRICE_CANDLES_COUNT} closed candles) to {iso(latest)} (a candle "
                             "after the frame closes what is still open): give --from/--to within that")
    if start > end:
        raise UsageError(f"the frame is empty: start {iso(start)} is after end {iso(end)}")
    name = f"{symbol}:{iso(start)}..{iso(end)}"
    if name not in {f.frame_name for f in bk.list_frames()}:
        bk.add_frame(name, start=start, end=end, note=f"stored {exchange} {symbol}")
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
    from engine.exchange.ccxt_exchange import ccxt_exchange_ids
    if name in ccxt_exchange_ids():
        return f"{name} is a ccxt exchange id: `--exchange {name}` must reach that exchange, not stored files"
    return None


def registered_or_ccxt(exchange: str) -> str:
    """A live run's exchange: a registered one, or a ccxt id (registered on first use, public
    candles, no keys). Raises ValueError naming what is known."""
    known = {e.exchange_name for e in bk.list_exchanges()}
    if exchange in known:
        return exchange
    from engine.exchange.ccxt_exchange import add_ccxt_exchange, ccxt_exchange_ids
    if exchange in ccxt_exchange_ids():
        add_ccxt_exchange(exchange)
        return exchange
    raise ValueError(f"unknown exchange {exchange!r}: not registered ({', '.join(sorted(known))}) "
                     "and not a ccxt exchange id")


async def market_problem(exchange: str, symbol: str) -> str | None:
    """Why ``symbol`` cannot trade on ccxt exchange ``exchange`` (None: it can, or the exchange is
    not a ccxt one, or its markets cannot be read now: the live loop then reports and retries)."""
    schema = next((e for e in bk.list_exchanges() if e.exchange_name == exchange), None)
    adapter = getattr(getattr(schema, "get_candles", None), "__self__", None)
    from engine.exchange.ccxt_exchange import CcxtExchange, ExchangeRejected
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


def load_file(file: str) -> None:
    """Run a user's Python file that registers strategies, frames, risks... with ``engine``."""
    path = Path(file)
    if not path.is_file():
        raise WorkspaceError(f"--load {file}: no such file")
    spec = importlib.util.spec_from_file_location(f"btk_user_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise WorkspaceError(f"--load {file}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        raise WorkspaceError(f"--load {file}: {type(e).__name__}: {e}") from e
