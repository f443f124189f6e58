"""The default workspace: the candle store (seeded with the bundled data),
one exchange per exchange name in it, the sample strategies, user files."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import engine as bk
import strategies
from engine.exchange.bundled import StoreExchange, ensure_seeded
from engine.store import connect, default_store_path, exchanges_in, summaries


class WorkspaceError(ValueError):
    pass


async def open_workspace(store_path: Path | None = None, load: list[str] | None = None) -> Path:
    """Seed the store if needed and register its exchanges, the samples and ``load`` files."""
    path = store_path or default_store_path()
    await ensure_seeded(path)
    db = await connect(path)
    try:
        names = exchanges_in(await summaries(db))
    finally:
        await db.close()
    registered = {e.exchange_name for e in bk.list_exchanges()}
    for name in names:
        if name not in registered:
            bk.add_exchange(name, StoreExchange(name, path).get_candles, note=f"candle store {path}")
    strategies.register_all()
    for file in load or []:
        load_file(file)
    return path


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
