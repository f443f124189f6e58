"""The workload every system runs, and the trade list they are compared on.

Candles: ``engine.exchange.synthetic.random_walk`` (seed 42), N one-minute candles from
2020-01-01. Rules (btk's ``strategies/sma_cross.py``): when the 20-candle SMA of the close
crosses above the 50-candle one, go long at the current price, take-profit +2 %, stop-loss
-1 %, close after 120 minutes; fee 0.1 % and slippage 0.1 % on each side; one position at a
time. Decisions start one hour in (the warm-up) and the last two candles are left for closing.

The current price is btk's: the VWAP of the last 5 closed candles. A decision taken when
candle ``r`` has just closed enters at ``vwap[r]``; the position is then judged on
``vwap[r+1], vwap[r+2], ...`` (TP and SL close at their own price, time at the VWAP). The bar
peers get bars whose path is that price: ``open[r] = vwap[r-1]``, ``close[r] = vwap[r]``,
``high``/``low`` the larger/smaller of the two, so their fills land on the same prices.

A trade is ``(entry_row, exit_row, pnl_percent)``: the candle that had just closed when it
was entered, the candle whose price closed it, and its profit net of costs in percent.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

START_MS = 1_577_836_800_000          # 2020-01-01T00:00Z
FAST, SLOW = 20, 50
TAKE_PROFIT, STOP_LOSS, MINUTES = 0.02, 0.01, 120
FEE, SLIPPAGE = 0.001, 0.001           # fractions, each side
VWAP_CANDLES = 5
FIRST_ROW = 59                         # the frame starts one hour in: the first decision sees candles 0..59
# A position entered on row r opens at the minute after candle r opened (pending_at), so the candle
# that opens MINUTES after that, row r + MINUTES + 1, closes it on time (SEMANTICS.md 5).
TIME_EXIT_ROWS = MINUTES + 1


def last_row(n: int) -> int:
    """The last decision row (btk's frame ends two candles before the data does)."""
    return n - 3


class Candles(NamedTuple):
    timestamp: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray


def candles(n: int) -> Candles:
    from engine.exchange.synthetic import random_walk
    c = random_walk(n, start_ms=START_MS)
    return Candles(c.timestamp, c.open, c.high, c.low, c.close, c.volume)


def vwap(c: Candles) -> np.ndarray:
    """VWAP of candles ``r-4..r`` for each row (NaN before the first full window); written
    here in plain numpy so the peers do not borrow btk's code for it."""
    typical_volume = (c.high + c.low + c.close) / 3.0 * c.volume
    n = len(c.close)
    out = np.full(n, np.nan)
    k = VWAP_CANDLES
    pv = sum(typical_volume[j:n - k + 1 + j] for j in range(k))
    vol = sum(c.volume[j:n - k + 1 + j] for j in range(k))
    out[k - 1:] = pv / vol
    return out


def price_bars(price: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(open, high, low, close) bars whose path is the price series."""
    open_ = np.empty_like(price)
    open_[0] = price[0]
    open_[1:] = price[:-1]
    return open_, np.maximum(open_, price), np.minimum(open_, price), price


def net_pnl_percent(entry_price: np.ndarray, exit_price: np.ndarray) -> np.ndarray:
    """Long PnL in percent with slippage on both fills and the fee on both legs."""
    o = entry_price * (1 + SLIPPAGE)
    c = exit_price * (1 - SLIPPAGE)
    return ((c - o) / o - FEE * (1 + c / o)) * 100


class Trades(NamedTuple):
    entry_row: np.ndarray
    exit_row: np.ndarray
    pnl: np.ndarray

    @staticmethod
    def of(entry_row, exit_row, pnl) -> Trades:
        return Trades(np.asarray(entry_row, dtype=np.int64), np.asarray(exit_row, dtype=np.int64),
                      np.asarray(pnl, dtype=np.float64))


# Trade lists agree when they have the same trades (same entry and exit rows) and each pair's
# PnL is within this many percentage points.
PNL_TOLERANCE = 1e-6


class Agreement(NamedTuple):
    ours: int
    theirs: int
    matched: int              # same entry row and exit row
    pnl_within: int           # of those, PnL within PNL_TOLERANCE
    max_pnl_gap: float
    first_difference: str     # "" when the lists agree

    @property
    def agrees(self) -> bool:
        return self.ours == self.theirs == self.matched == self.pnl_within


def compare(ours: Trades, theirs: Trades, describe=str) -> Agreement:
    key_ours = {(int(a), int(b)): p for a, b, p in zip(ours.entry_row, ours.exit_row, ours.pnl)}
    matched = pnl_within = 0
    gap = 0.0
    first = ""
    for a, b, p in zip(theirs.entry_row.tolist(), theirs.exit_row.tolist(), theirs.pnl.tolist()):
        mine = key_ours.get((a, b))
        if mine is None:
            if not first:
                first = describe(a, b)
            continue
        matched += 1
        gap = max(gap, abs(mine - p))
        pnl_within += abs(mine - p) <= PNL_TOLERANCE
    if not first and len(ours.entry_row) != matched:
        missing = sorted(set(key_ours) - set(zip(theirs.entry_row.tolist(), theirs.exit_row.tolist())))
        first = describe(*missing[0]) + " (only btk)"
    return Agreement(len(ours.entry_row), len(theirs.entry_row), matched, pnl_within, gap, first)
