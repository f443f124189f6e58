"""Profit and loss of a signal (SEMANTICS.md section 6).

With s = slippage/100 and f = fee percent per side:
long ``o = P_open*(1+s)``, ``c = P_close*(1-s)``, ``raw = (c-o)/o*100``;
short ``o = P_open*(1-s)``, ``c = P_close*(1+s)``, ``raw = (o-c)/o*100``;
``fees = f*(1 + c/o)``; ``pnl_percentage = raw - fees``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .config import get_config
from .types import PnL


def pnl_percentage(position: str, price_open: float, price_close: float,
                   fee: float | None = None, slippage: float | None = None) -> float:
    config = get_config()
    f = config.CC_PERCENT_FEE if fee is None else fee
    s = (config.CC_PERCENT_SLIPPAGE if slippage is None else slippage) / 100.0
    if position == "long":
        o, c = price_open * (1 + s), price_close * (1 - s)
        raw = (c - o) / o * 100.0
    elif position == "short":
        o, c = price_open * (1 - s), price_close * (1 + s)
        raw = (o - c) / o * 100.0
    else:
        raise ValueError(f"position must be 'long' or 'short', got {position!r}")
    return raw - f * (1 + c / o)


def pnl_percentages(long: np.ndarray, price_open: np.ndarray, price_close: np.ndarray) -> np.ndarray:
    """``pnl_percentage`` for many signals at once (``long``: True for long, False for short),
    bit for bit: the same operations on the same doubles, in the same order."""
    config = get_config()
    f, s = config.CC_PERCENT_FEE, config.CC_PERCENT_SLIPPAGE / 100.0
    o = np.where(long, price_open * (1 + s), price_open * (1 - s))
    c = np.where(long, price_close * (1 - s), price_close * (1 + s))
    raw = np.where(long, c - o, o - c) / o * 100.0
    return raw - f * (1 + c / o)


def to_profit_loss(signal_row: Any, price_close: float) -> PnL:
    """PnL of closing ``signal_row`` (anything with ``position`` and ``price_open``) at ``price_close``."""
    return PnL(pnl_percentage(signal_row.position, signal_row.price_open, price_close),
               float(signal_row.price_open), float(price_close))


def progress(position: str, price_open: float, take_profit: float, stop_loss: float,
             current: Any) -> tuple[Any, Any]:
    """(percent_tp, percent_sl): how far ``current`` went toward TP / SL, each in [0, 100], as
    SEMANTICS.md section 6 writes it. ``current`` is a price (the tick) or an array of prices (the
    fast path): the same operations on the same doubles, so both reach a level on the same price."""
    if position == "long":
        tp = (current - price_open) / (take_profit - price_open) * 100.0
        sl = (price_open - current) / (price_open - stop_loss) * 100.0
    else:
        tp = (price_open - current) / (price_open - take_profit) * 100.0
        sl = (current - price_open) / (stop_loss - price_open) * 100.0
    if isinstance(tp, np.ndarray):
        return np.clip(tp, 0.0, 100.0), np.clip(sl, 0.0, 100.0)
    return min(max(tp, 0.0), 100.0), min(max(sl, 0.0), 100.0)
