import pytest

import engine as bk
from engine.events import clear_listeners
from engine.risk import reset_risks
from engine.runners.backtest import reset_backtests
from engine.runners.live import reset_live
from engine.runners.walker import reset_walkers


@pytest.fixture(autouse=True)
def clean_engine(tmp_path, monkeypatch):
    """Every test starts from an empty registry, default config (no retry pauses) and no listeners."""
    monkeypatch.setenv("BTK_HOME", str(tmp_path / "btk_home"))
    bk.clear_registry()
    bk.reset_config()
    bk.set_config(CC_GET_CANDLES_RETRY_DELAY_MS=0)
    clear_listeners()
    reset_risks()
    reset_backtests()
    reset_live()
    reset_walkers()
    bk.reset_analytics()
    bk.set_persistence(None)
    yield
    clear_listeners()
    bk.clear_registry()
    bk.reset_config()


@pytest.fixture(scope="session")
def seeded_store(tmp_path_factory):
    """A candle store seeded with the bundled data once per session (the console tests read it)."""
    import asyncio

    from engine.exchange.bundled import ensure_seeded
    path = tmp_path_factory.mktemp("store") / "btk.sqlite3"
    asyncio.run(ensure_seeded(path))
    return path
