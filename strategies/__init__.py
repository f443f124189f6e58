"""Sample strategies users copy from: one file each, documented, registered by name."""

from __future__ import annotations

from types import ModuleType

import engine as bk

from . import channel_breakout, mean_reversion, sma_cross

SAMPLES: dict[str, ModuleType] = {m.NAME: m for m in (sma_cross, mean_reversion, channel_breakout)}


def register_all() -> list[str]:
    """Register every sample not registered yet; returns the names."""
    known = {s.strategy_name for s in bk.list_strategies()}
    for name, module in SAMPLES.items():
        if name not in known:
            module.register()
    return list(SAMPLES)
