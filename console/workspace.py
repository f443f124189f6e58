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
from engine.store import DEFAULT_WARMUP_MINUTES, connect, default_store_path, exchanges_in, series_summary, summaries
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


async def stored_frame(store: Path, exchange: str, symbol: str, start: int | None = None,
                       end: int | None = None) -> str:
    """A frame over the stored 1m candles of ``symbol`` (registered on first use; its name says
    its span): from ``start`` or a day of warm-up into the data, to ``end`` or one minute before
    the last candle, whose successor closes any position still open (``time_expired``)."""
    if start is None or end is None:
        db = await connect(store)
        try:
            stored = await series_summary(db, exchange, symbol, "1m")
        finally:
            await db.close()
        if stored is None:
            raise UsageError(f"no 1m candles of {symbol} on exchange {exchange} "
                             "(see `btk data list`; give --from and --to for other exchanges)")
        start = stored.first + DEFAULT_WARMUP_MINUTES * MINUTE_MS if start is None else start
        end = stored.last - MINUTE_MS if end is None else end
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
