"""Array resolution of open and scheduled signals (SEMANTICS.md section 5).

Pure functions over a 1m series: they find the candle where a signal closes,
is cancelled or activates, plus the peak/trough and milestone crossings on
the way, with numpy over growing windows instead of a Python loop per candle.
The strategy turns the answers into events in the documented order.

Candle ``j`` stands for the tick at ``ts[j] + 1 min``: the first moment its
VWAP window (candles j-4..j) is closed. Time limits are counted from there, so
a backtest closes where ticking every minute (live) would. Per candle ``j`` of
an open signal, in order: past the frame's end -> ``time_expired``;
``ts[j] + 60000 - pending_at >= minutes*60000`` -> ``time_expired`` at the VWAP; then TP, then SL ("touch": SL on the low first, then TP on the
high). Per candle of a scheduled signal: timeout; SL -> ``price_reject``;
price reached -> activate (SL wins over activation on the same candle).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .feed import Series

_FIRST_WINDOW = 256
LEVELS = np.arange(10, 101, 10, dtype=np.float64)


class OpenOutcome(NamedTuple):
    index: int            # candle index of the close
    reason: str           # take_profit | stop_loss | time_expired
    first: int            # first candle evaluated (active candles are first..index-1)


class ScheduledOutcome(NamedTuple):
    index: int
    outcome: str          # activate | price_reject | timeout


def _first_true(mask: np.ndarray) -> int:
    """Index of the first True, or -1."""
    i = int(mask.argmax()) if len(mask) else 0
    return i if len(mask) and mask[i] else -1


def _stop_index(series: Series, start_ms: int, minutes: float, end_ms: int) -> int:
    """First candle index past ``end_ms``, or whose tick (its close) is ``minutes`` after ``start_ms``."""
    step = series.step
    past_end = (end_ms - end_ms % step + step - series.t0) // step
    if math.isinf(minutes):
        return past_end
    deadline = start_ms + int(minutes) * 60_000 - step   # judged when the candle closes
    expiry = -((series.t0 - deadline) // step)      # ceil((deadline - t0) / step)
    return min(past_end, max(expiry, 0))


def resolve_open(series: Series, first: int, *, position: str, take_profit: float, stop_loss: float,
                 pending_at: int, minutes: float, end_ms: int, trigger: str) -> OpenOutcome:
    stop = _stop_index(series, pending_at, minutes, end_ms)
    if stop >= len(series.ts):
        raise IndexError("the loaded candles end before this position can close")
    long = position == "long"
    lo, width = first, _FIRST_WINDOW
    while lo < stop:
        hi = min(stop, lo + width)
        if trigger == "touch":
            low, high = series.low[lo:hi], series.high[lo:hi]
            sl = low <= stop_loss if long else high >= stop_loss
            tp = high >= take_profit if long else low <= take_profit
        else:
            price = series.vwap[lo:hi]
            tp = price >= take_profit if long else price <= take_profit
            sl = price <= stop_loss if long else price >= stop_loss
        hit = _first_true(tp | sl)
        if hit >= 0:
            j = lo + hit
            if trigger == "touch":
                reason = "stop_loss" if sl[hit] else "take_profit"
            else:
                reason = "take_profit" if tp[hit] else "stop_loss"
            return OpenOutcome(j, reason, first)
        lo, width = hi, width * 4
    return OpenOutcome(stop, "time_expired", first)


def resolve_scheduled(series: Series, first: int, *, position: str, price_open: float, stop_loss: float,
                      scheduled_at: int, await_minutes: int, end_ms: int, trigger: str) -> ScheduledOutcome:
    stop = _stop_index(series, scheduled_at, await_minutes, end_ms)
    if stop >= len(series.ts):
        raise IndexError("the loaded candles end before this scheduled signal can resolve")
    long = position == "long"
    lo, width = first, _FIRST_WINDOW
    while lo < stop:
        hi = min(stop, lo + width)
        if trigger == "touch":
            reach = series.low[lo:hi] if long else series.high[lo:hi]
        else:
            reach = series.vwap[lo:hi]
        if long:
            sl, act = reach <= stop_loss, reach <= price_open
        else:
            sl, act = reach >= stop_loss, reach >= price_open
        hit = _first_true(sl | act)
        if hit >= 0:
            return ScheduledOutcome(lo + hit, "price_reject" if sl[hit] else "activate")
        lo, width = hi, width * 4
    return ScheduledOutcome(stop, "timeout")


def active_extremes(series: Series, first: int, stop: int) -> tuple[float, float] | None:
    """(min, max) of the VWAP over the active candles ``first..stop-1`` (None if none)."""
    if stop <= first:
        return None
    window = series.vwap[first:stop]
    return float(window.min()), float(window.max())


def milestone_crossings(series: Series, first: int, stop: int, *, position: str, price_open: float,
                        take_profit: float, stop_loss: float,
                        close_price: float | None = None) -> list[tuple[int, str, int, float]]:
    """Every (candle index, "profit"|"loss", level, percent) where a 10 % milestone of the way
    to TP or SL is first reached over the active candles ``first..stop-1`` (and, given the
    ``close_price``, on the closing candle ``stop``), in chronological order."""
    price = series.vwap[first:stop]
    if close_price is not None:
        price = np.append(price, close_price)
    if len(price) == 0:
        return []
    move = price - price_open if position == "long" else price_open - price
    out: list[tuple[int, str, int, float]] = []
    for kind, span in (("profit", abs(take_profit - price_open)), ("loss", -abs(price_open - stop_loss))):
        progress = move * (100.0 / span)
        peak = float(progress.max())
        if peak < LEVELS[0]:
            continue          # most signals never reach the first level on one side: skip the scan
        reached = LEVELS[:min(int(peak // 10), len(LEVELS))]
        indices = np.searchsorted(np.maximum.accumulate(progress), reached, side="left")
        for level, idx in zip(reached.tolist(), indices.tolist()):
            out.append((first + idx, kind, int(level), min(float(progress[idx]), 100.0)))
    out.sort(key=lambda e: (e[0], e[2]))
    return out