"""Array resolution of open and scheduled signals (SEMANTICS.md section 5).

Pure functions over a 1m series: they find the candle where a signal closes,
is cancelled or activates, plus the peak/trough and milestone crossings on
the way, with numpy over growing windows instead of a Python loop per candle.
The strategy turns the answers into events in the documented order.

Candle ``j``'s price is the VWAP of candles j-4..j. Per candle ``j`` of an open
signal, in order: past the frame's end -> ``time_expired``;
``ts[j] - pending_at >= minutes*60000`` -> ``time_expired`` at the VWAP (the
seed's rule, word for word: a backtest's time exit comes one candle after the
live tick's, which judges the same candles one minute later); then TP, then SL
("touch": SL on the low first, then TP on the high). Per candle of a scheduled
signal: timeout (``ts[j] - scheduled_at >= await*60000``); SL -> ``price_reject``;
price reached -> activate (SL wins over activation on the same candle).

Milestones are reached on the candles a signal stays open, never on the one that
closes it, with progress computed exactly as ``pnl.progress`` (and the tick) does.
"""

from __future__ import annotations

from bisect import bisect_right

import math
from operator import itemgetter
from typing import NamedTuple

import numpy as np

from .feed import Series
from .pnl import progress

_FIRST_WINDOW = 256
LEVELS = np.arange(10, 101, 10, dtype=np.float64)
_minimum, _maximum = np.minimum.reduce, np.maximum.reduce


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
    """First candle index past ``end_ms``, or whose open time is ``minutes`` or more after ``start_ms``."""
    step = series.step
    past_end = (end_ms - end_ms % step + step - series.t0) // step
    if math.isinf(minutes):
        return past_end
    deadline = start_ms + int(minutes) * 60_000
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


class OpenOutcomes(NamedTuple):
    """``resolve_open`` for many signals at once (arrays, one entry per signal)."""
    index: np.ndarray      # candle index of the close
    take_profit: np.ndarray  # bool: closed on TP (else SL, or time where index == stop)
    stop_loss: np.ndarray    # bool: closed on SL
    low: np.ndarray        # min / max of the VWAP over the active candles (+inf / -inf if none)
    high: np.ndarray


_MANY_ROWS = 8192          # signals per block: bounds the memory of the gathered windows


def resolve_open_many(series: Series, pending_at: np.ndarray, *, long: np.ndarray, take_profit: np.ndarray,
                      stop_loss: np.ndarray, minutes: np.ndarray, end_ms: int, trigger: str) -> OpenOutcomes:
    """Where each of many open signals (``pending_at`` ascending) closes and its VWAP extremes
    before that, exactly as ``resolve_open`` and ``active_extremes`` say one by one: windows of
    growing width are searched for all unresolved signals at once."""
    k = len(pending_at)
    step = series.step
    first = (pending_at - series.t0) // step
    past_end = (end_ms - end_ms % step + step - series.t0) // step
    finite = np.isfinite(minutes)
    deadline = pending_at + np.where(finite, minutes, 0).astype(np.int64) * 60_000
    stop = np.where(finite, np.minimum(past_end, np.maximum(-((series.t0 - deadline) // step), 0)), past_end)
    if k and int(stop.max()) >= len(series.ts):
        raise IndexError("the loaded candles end before this position can close")
    index = stop.copy()
    hit_tp, hit_sl = np.zeros(k, dtype=bool), np.zeros(k, dtype=bool)
    vwap = series.vwap
    n = len(vwap)
    if trigger == "touch":
        up = (series.high, series.low)      # long: TP on the high, SL on the low; short: the reverse
    else:
        up = (vwap, vwap)
    todo, lo = np.arange(k), first.copy()
    width = int(min(_FIRST_WINDOW, max(1, int((stop - first).max()) if k else 1)))
    while len(todo):
        w = min(width, n)
        start = np.minimum(lo[todo], n - w)            # windows past the data are shifted back, then
        shift = lo[todo] - start                       # their leading columns ignored
        for block in range(0, len(todo), _MANY_ROWS):
            rows = todo[block:block + _MANY_ROWS]
            s0, sh = start[block:block + _MANY_ROWS], shift[block:block + _MANY_ROWS]
            is_long = long[rows, None]
            reach_tp = np.lib.stride_tricks.sliding_window_view(up[0], w)[s0]
            reach_sl = reach_tp if up[1] is up[0] else np.lib.stride_tricks.sliding_window_view(up[1], w)[s0]
            tp_level, sl_level = take_profit[rows, None], stop_loss[rows, None]
            if is_long.all():
                tp, sl = reach_tp >= tp_level, reach_sl <= sl_level
            else:
                reach_tp, reach_sl = np.where(is_long, reach_tp, reach_sl), np.where(is_long, reach_sl, reach_tp)
                tp = np.where(is_long, reach_tp >= tp_level, reach_tp <= tp_level)
                sl = np.where(is_long, reach_sl <= sl_level, reach_sl >= sl_level)
            if sh.any():
                ahead = np.arange(w) < sh[:, None]
                tp &= ~ahead
                sl &= ~ahead
            hit = tp | sl
            col = hit.argmax(axis=1)
            found = hit[np.arange(len(rows)), col] & (s0 + col < stop[rows])
            done, c = rows[found], col[found]
            index[done] = s0[found] + c
            hit_tp[done] = tp[found, c]
            hit_sl[done] = sl[found, c]
            lo[rows] = s0 + w
            stop[rows[found]] = index[done]           # resolved: nothing further to search
        todo = todo[lo[todo] < stop[todo]]
        width *= 4
    if trigger == "touch":
        hit_tp &= ~hit_sl       # "touch": SL first on the same candle
    else:
        hit_sl &= ~hit_tp       # the VWAP: TP first
    low, high = np.full(k, np.inf), np.full(k, -np.inf)
    active = index > first
    if active.any():
        bounds = np.empty(2 * int(active.sum()), dtype=np.int64)
        bounds[0::2], bounds[1::2] = first[active], index[active]
        bounds = np.minimum(bounds, n - 1)
        low[active] = np.minimum.reduceat(vwap, bounds)[0::2]
        high[active] = np.maximum.reduceat(vwap, bounds)[0::2]
    return OpenOutcomes(index, hit_tp, hit_sl, low, high)


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
    return float(_minimum(window)), float(_maximum(window))     # the ufuncs ndarray.min/max end in


LEVEL_LIST = [int(level) for level in LEVELS]


def levels_reached(percent: float) -> int:
    """How many milestone levels (10, 20, ... 100) a progress of ``percent`` reached."""
    return bisect_right(LEVEL_LIST, percent)


def milestone_crossings(prices: np.ndarray, *, position: str, price_open: float, take_profit: float,
                        stop_loss: float) -> list[tuple[int, str, int, float]]:
    """Every (offset, "profit"|"loss", level, percent) where a 10 % milestone of the way to TP or
    SL is first reached over the prices of the candles a signal stayed open, in chronological
    order (the levels one candle reaches in ascending order)."""
    if len(prices) == 0:
        return []
    out: list[tuple[int, str, int, float]] = []
    for kind, percent in zip(("profit", "loss"), progress(position, price_open, take_profit, stop_loss, prices)):
        reached = levels_reached(float(percent.max()))
        if not reached:
            continue          # most signals never reach the first level on one side: skip the scan
        indices = np.searchsorted(np.maximum.accumulate(percent), LEVELS[:reached], side="left")
        for level, idx in zip(LEVELS[:reached].tolist(), indices.tolist()):
            out.append((idx, kind, int(level), float(percent[idx])))
    out.sort(key=lambda e: (e[0], e[2]))
    return out


def milestone_crossings_known(prices: np.ndarray, *, position: str, price_open: float, take_profit: float,
                              stop_loss: float, profit_levels: int, loss_levels: int) -> list[tuple[int, str, int, float]]:
    """``milestone_crossings`` when how many levels each side reached is known ahead (the lane's
    resolved values): only those sides are computed, with ``progress``'s own expression, so the
    same candles and percents come out (an active candle's progress never passes 100)."""
    out: list[tuple[int, str, int, float]] = []
    long = position == "long"
    for kind, count in (("profit", profit_levels), ("loss", loss_levels)):
        if not count:
            continue
        if kind == "profit":
            percent = (prices - price_open) / (take_profit - price_open) * 100.0 if long else \
                (price_open - prices) / (price_open - take_profit) * 100.0
        else:
            percent = (price_open - prices) / (price_open - stop_loss) * 100.0 if long else \
                (prices - price_open) / (stop_loss - price_open) * 100.0
        indices = np.searchsorted(np.maximum.accumulate(percent), LEVELS[:count], side="left")
        values = np.minimum(percent[indices], 100.0).tolist()
        out += zip(indices.tolist(), (kind,) * count, LEVEL_LIST[:count], values)     # tuples made in C
    if profit_levels and loss_levels:
        out.sort(key=lambda e: (e[0], e[2]))
    return out


class MilestoneThresholds(NamedTuple):
    """Per signal (row) and level (10..100 %): the price where its progress toward TP (``profit``)
    or SL (``loss``) first reaches the level, as ``progress``'s expression rounds. A side whose
    progress grows with the price (a long's profit, a short's loss) reaches the level at prices at
    or above its threshold; the other side at or below. ``exact``: the rows where every threshold
    was found (others keep the scan)."""

    profit: np.ndarray
    loss: np.ndarray
    exact: np.ndarray


_LEVEL_COLUMN = LEVELS[None, :]


def _level_thresholds(rising: np.ndarray, base: np.ndarray, span: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each row and level: the least price whose progress reaches the level (rising sides), or
    the greatest (falling sides). From the algebraic inverse, stepped a representable double at a
    time until it is exact; ``(thresholds, exact rows)``. Progress is ``progress``'s
    ``(price - base) / span * 100`` or ``(base - price) / span * 100``, computed here as
    ``(price - base) / (-span) * 100``: the same doubles (IEEE negation and division are exact in sign)."""
    good = (span > 0) & np.isfinite(base) & np.isfinite(span)
    base, signed = base[:, None], np.where(rising, span, -span)[:, None]
    toward = np.where(rising, np.inf, -np.inf)[:, None]            # the way progress grows
    with np.errstate(all="ignore"):
        price = base + _LEVEL_COLUMN * signed / 100.0
        for _ in range(64):                                        # short of the level: one step on
            short = (price - base) / signed * 100.0 < _LEVEL_COLUMN
            if not short.any():
                break
            price = np.where(short, np.nextafter(price, toward), price)
        for _ in range(64):                                        # one step back still reaches it: step back
            back = np.nextafter(price, -toward)
            over = (back - base) / signed * 100.0 >= _LEVEL_COLUMN
            if not over.any():
                break
            price = np.where(over, back, price)
    exact = good & ~short.any(axis=1) & ~over.any(axis=1) & np.isfinite(price).all(axis=1)
    return price, exact


def milestone_thresholds(*, long: np.ndarray, price_open: np.ndarray, take_profit: np.ndarray,
                         stop_loss: np.ndarray) -> MilestoneThresholds:
    """``MilestoneThresholds`` of many signals (their rows' arrays)."""
    with np.errstate(all="ignore"):
        profit, profit_exact = _level_thresholds(long, price_open,
                                                 np.where(long, take_profit - price_open, price_open - take_profit))
        loss, loss_exact = _level_thresholds(~long, price_open,
                                             np.where(long, price_open - stop_loss, stop_loss - price_open))
    return MilestoneThresholds(profit, loss, profit_exact & loss_exact)


def milestone_crossings_past(prices: np.ndarray, *, position: str, price_open: float, take_profit: float,
                             stop_loss: float, profit_levels: int, loss_levels: int, profit_thresholds: np.ndarray,
                             loss_thresholds: np.ndarray) -> list[tuple[int, str, int, float, float]]:
    """``milestone_crossings_known`` from the signal's level thresholds, each with the price of its
    candle: ``(offset, kind, level, percent, price)``. A level is first reached where the running
    high (or low) of the prices first passes its threshold: one accumulate and one search a side,
    and the percent of that one candle (the same doubles as the scan's)."""
    long = position == "long"
    out: list[tuple[int, str, int, float, float]] = []
    n = len(prices)
    for kind, count, thresholds in (("profit", profit_levels, profit_thresholds),
                                    ("loss", loss_levels, loss_thresholds)):
        if not count:
            continue
        rising = long == (kind == "profit")
        if rising:
            at = np.maximum.accumulate(prices).searchsorted(thresholds[:count], "left")
        else:
            at = n - np.minimum.accumulate(prices)[::-1].searchsorted(thresholds[:count], "right")
        seen = prices[at].tolist()
        if kind == "profit":
            span = take_profit - price_open if long else price_open - take_profit
        else:
            span = price_open - stop_loss if long else stop_loss - price_open
        for level, (offset, price) in enumerate(zip(at.tolist(), seen), 1):
            percent = ((price - price_open) if rising else (price_open - price)) / span * 100.0
            out.append((offset, kind, level * 10, 100.0 if percent > 100.0 else percent, price))   # np.minimum's
    if profit_levels and loss_levels:
        out.sort(key=_CANDLE_THEN_LEVEL)
    return out


_CANDLE_THEN_LEVEL = itemgetter(0, 2)


def milestone_reach(*, position: str, price_open: float, take_profit: float, stop_loss: float, low: float,
                    high: float) -> tuple[int, int]:
    """How many 10 % milestones toward TP and toward SL a signal reached whose prices while
    open ranged over ``[low, high]``: the counts ``milestone_crossings`` would list, from the
    extremes alone (the progress is monotonic in the price)."""
    best, worst = (high, low) if position == "long" else (low, high)
    # progress on Python floats: the same IEEE operations as on an array, without numpy's overhead
    percent_tp, _ = progress(position, price_open, take_profit, stop_loss, float(best))
    _, percent_sl = progress(position, price_open, take_profit, stop_loss, float(worst))
    return levels_reached(percent_tp), levels_reached(percent_sl)


def milestone_reach_many(*, long: np.ndarray, price_open: np.ndarray, take_profit: np.ndarray,
                         stop_loss: np.ndarray, low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``milestone_reach`` for many signals at once (the same doubles, bit for bit); a signal
    never open (``low > high``) reached none."""
    best, worst = np.where(long, high, low), np.where(long, low, high)
    with np.errstate(invalid="ignore", divide="ignore"):
        percent_tp = np.where(long, (best - price_open) / (take_profit - price_open),
                              (price_open - best) / (price_open - take_profit)) * 100.0
        percent_sl = np.where(long, (price_open - worst) / (price_open - stop_loss),
                              (worst - price_open) / (stop_loss - price_open)) * 100.0
        out = []
        for percent in (percent_tp, percent_sl):
            reached = np.searchsorted(LEVELS, np.clip(percent, 0.0, 100.0), side="right")
            out.append(np.where((low <= high) & ~np.isnan(percent), reached, 0).astype(np.int64))
    return out[0], out[1]
