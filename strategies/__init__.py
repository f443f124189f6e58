"""Sample strategies users copy from: one file each, documented, registered by name; and the
portfolio risk profile they share in the default workspace (``portfolio``)."""

from __future__ import annotations

from types import ModuleType

import engine as bk

from . import channel_breakout, mean_reversion, portfolio, sma_cross, sma_trail

SAMPLES: dict[str, ModuleType] = {m.NAME: m for m in (sma_cross, mean_reversion, channel_breakout, sma_trail)}


def register_all(*, shared_risk: bool = False) -> list[str]:
    """Register every sample not registered yet; returns the names. ``shared_risk``: they name
    the ``portfolio`` profile (registered with them), as the default workspace has them."""
    known = {s.strategy_name for s in bk.list_strategies()}
    risk_list: tuple[str, ...] = ()
    if shared_risk:
        if portfolio.NAME not in {r.risk_name for r in bk.list_risks()}:
            portfolio.register()
        risk_list = (portfolio.NAME,)
    for name, module in SAMPLES.items():
        if name not in known:
            module.register(risk_list=risk_list)
    return list(SAMPLES)
