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
    """PnL of closing ``signal_row`` (anything with ``position`` and ``price_open``) at ``price_close``.
    A row with entries (DCA) or partial closes is priced as a whole: see ``position_pnl``."""
    if getattr(signal_row, "partials", ()):
        return position_pnl(signal_row, price_close)
    price_open = effective_price(signal_row)
    pnl = pnl_percentage(signal_row.position, price_open, price_close)
    money = invested(signal_row)
    return PnL(pnl, float(price_open), float(price_close), pnl / 100.0 * money, money)


# --- positions with several entries and partial closes --------------------------------------------
#
# Every entry puts in money (``cost``) at a price; a position's effective entry price is the money
# over the coins it bought (the cost-weighted harmonic mean). A partial close sells ``percent`` of
# the money held then (``cost_basis``); what stays keeps the effective price it had, and entries
# after it blend in. The PnL of the whole is each part's PnL weighted by its share of the money
# put in, less the fees: the open fee once, each close's in proportion to its share.

OVERCLOSE_TOLERANCE = 1e-8      # relative: money closed may exceed money put in by rounding only


def _coins(entries: Any) -> float:
    return sum(e.cost / e.price for e in entries)


def effective_price(row: Any) -> float:
    """The entry price a position is judged at: ``price_open`` with one entry; with several, the
    money put in over the coins bought, carried through the partial closes."""
    entries = getattr(row, "entries", ())
    if not entries:
        return row.price_open
    partials = getattr(row, "partials", ())
    if not partials:
        coins = _coins(entries)
        return sum(e.cost for e in entries) / coins if coins else 0.0
    return _price_after(entries, partials, len(partials), row.price_open)


def _price_at(entries: Any, partials: Any, k: int, fallback: float) -> float:
    """The effective price as partial close ``k`` was made."""
    coins = _coins(entries[:partials[0].entries])
    price = partials[0].cost_basis / coins if coins else fallback
    for j in range(1, k + 1):
        price = _blend(price, partials[j - 1], entries[partials[j - 1].entries:partials[j].entries])
    return price


def _price_after(entries: Any, partials: Any, count: int, fallback: float) -> float:
    """The effective price after the last partial close and the entries made since."""
    price = _price_at(entries, partials, count - 1, fallback)
    return _blend(price, partials[-1], entries[partials[-1].entries:])


def _blend(price: float, close: Any, new_entries: Any) -> float:
    """What ``close`` left at ``price``, with ``new_entries`` bought after it."""
    left = close.cost_basis * (1 - close.percent / 100.0)
    coins = (left / price if price else 0.0) + _coins(new_entries)
    return (left + sum(e.cost for e in new_entries)) / coins if coins else price


def invested(row: Any) -> float:
    """The money put in: every entry's cost (one entry: ``CC_POSITION_ENTRY_COST``)."""
    entries = getattr(row, "entries", ())
    return sum(e.cost for e in entries) if entries else get_config().CC_POSITION_ENTRY_COST


def total_closed(row: Any) -> tuple[float, float]:
    """(percent of the money put in that partial closes sold, money still held)."""
    entries, partials = getattr(row, "entries", ()), getattr(row, "partials", ())
    total = invested(row)
    if not partials:
        return 0.0, total
    closed = sum(p.percent / 100.0 * p.cost_basis for p in partials)
    held = partials[-1].cost_basis * (1 - partials[-1].percent / 100.0) + \
        sum(e.cost for e in entries[partials[-1].entries:])
    return (closed / total * 100.0 if total > 0 else 0.0), held


def position_pnl(row: Any, price_close: float) -> PnL:
    """PnL of a position with partial closes (and maybe several entries), closed at ``price_close``."""
    config = get_config()
    f, s = config.CC_PERCENT_FEE, config.CC_PERCENT_SLIPPAGE / 100.0
    long = row.position == "long"
    if not long and row.position != "short":
        raise ValueError(f"position must be 'long' or 'short', got {row.position!r}")
    entries, partials = getattr(row, "entries", ()), row.partials
    total = invested(row)

    def part(open_price: float, close_price: float, weight: float) -> tuple[float, float]:
        o = open_price * (1 + s) if long else open_price * (1 - s)
        c = close_price * (1 - s) if long else close_price * (1 + s)
        raw = ((c - o) if long else (o - c)) / o * 100.0
        return weight * raw, f * weight * (c / o)

    weighted, fees, closed = 0.0, f, 0.0
    for k, p in enumerate(partials):
        money = p.percent / 100.0 * p.cost_basis
        closed += money
        pnl, fee = part(_price_at(entries, partials, k, row.price_open), p.price, money / total)
        weighted, fees = weighted + pnl, fees + fee
    if closed > total + max(0.001, total * OVERCLOSE_TOLERANCE):
        raise ValueError(f"partial closes of signal {getattr(row, 'id', '?')} sold {closed:.4f}, more than the "
                         f"{total:g} put in")
    price_open = effective_price(row)
    remaining = (total - closed) / total
    if remaining > 0:
        pnl, fee = part(price_open, price_close, remaining)
        weighted, fees = weighted + pnl, fees + fee
    result = weighted - fees
    return PnL(result, float(price_open), float(price_close), result / 100.0 * total, total)


def progress(position: str, price_open: float, take_profit: float, stop_loss: float,
             current: Any) -> tuple[Any, Any]:
    """(percent_tp, percent_sl): how far ``current`` went toward TP / SL, each in [0, 100], as
    SEMANTICS.md section 6 writes it. ``current`` is a price (the tick) or an array of prices (the
    fast path): the same operations on the same doubles, so both reach a level on the same price."""
    # A level at or behind the entry (a stop-loss moved to breakeven or trailed into profit) has no
    # way to go on its side: it reads 0 (the price past it closes the position instead).
    if position == "long":
        to_tp, to_sl = take_profit - price_open, price_open - stop_loss
        tp = (current - price_open) / to_tp * 100.0 if to_tp > 0 else current * 0.0
        sl = (price_open - current) / to_sl * 100.0 if to_sl > 0 else current * 0.0
    else:
        to_tp, to_sl = price_open - take_profit, stop_loss - price_open
        tp = (price_open - current) / to_tp * 100.0 if to_tp > 0 else current * 0.0
        sl = (current - price_open) / to_sl * 100.0 if to_sl > 0 else current * 0.0
    if isinstance(tp, np.ndarray):
        return np.clip(tp, 0.0, 100.0), np.clip(sl, 0.0, 100.0)
    return min(max(tp, 0.0), 100.0), min(max(sl, 0.0), 100.0)
