"""The default workspace: the candle store (seeded with the bundled data),
one exchange per exchange name in it, the sample strategies, user files."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import engine as bk
import strategies
from engine.exchange.bundled import BUNDLED, add_store_exchange, ensure_seeded
from engine.exchange.replay import REPLAY
from engine.interval import MINUTE_MS
from engine.log import get_logger
from engine.persistence.candles import DEFAULT_WARMUP_MINUTES, connect, default_store_path, exchanges_in, summaries
from strategies import sma_cross



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
            add_store_exchange(name, path)
    strategies.register_all(shared_risk=True)
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
        names = bk.add_sweep("sma_cross", sma_cross.make_signal, SWEEP_GRID, where=lambda p: p["fast"] < p["slow"],
                             signals_factory=sma_cross.make_signals)
        bk.add_walker("sma_sweep", exchange_name=BUNDLED, frame_name="bundled-2018", strategies=names,
                      symbols=["ETHBTC", "LTCBTC"], note="SMA crossover parameter sweep, ranked by Sharpe ratio")


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
