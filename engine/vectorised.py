"""Vectorised entry signals: a strategy computes its entries for a whole backtest frame at once.

``bk.add_strategy(name, get_signal, get_signals=fn)`` with ``fn(symbol, frame: SignalFrame) ->
Signals`` (sync or async). Row ``k`` of every array in the answer stands for the frame time
``frame.times[k]``: it is what ``get_signal`` would return there. The engine then walks the
frame exactly as it would call ``get_signal`` (throttle slots, one position at a time, risk,
validation, scheduled entries) but reads the rows instead of calling, so a backtest emits the
same events as the per-frame path while Python runs only where there is a signal.

Look-ahead safety: the signal at ``times[k]`` may use only candles closed before ``times[k]``.
``frame.candles(interval, lookback)`` returns the candles and, for each row, the index of the
newest candle closed by then; a trailing-window indicator read at that index is safe by
construction, and ``lookahead_problems`` checks a strategy on real data.
"""

from __future__ import annotations

import inspect
import math
from bisect import bisect_left
from collections.abc import Sequence
from typing import Any

import numpy as np

from .exchange.errors import HistoryUnavailable
from .fastpath import MilestoneThresholds, OpenOutcomes, milestone_reach_many, milestone_thresholds, resolve_open_many
from .interval import MINUTE_MS, align, interval_ms
from .pnl import pnl_percentages
from .signal import valid_market_signals, valid_signals
from .types import Candles, SignalDto


class SignalsError(ValueError):
    """A ``get_signals`` answer is malformed; the message says which array and how."""


class SignalFrame:
    """What ``get_signals`` receives: the frame's decision times and where to read candles."""

    __slots__ = ("symbol", "times", "_price", "_feed")

    def __init__(self, symbol: str, times: np.ndarray, feed: Any, price: np.ndarray | None = None):
        self.symbol = symbol
        self.times = _readonly(times)     # frame times, epoch ms (int64): one row each
        self._feed = feed
        self._price = price

    @property
    def price(self) -> np.ndarray:
        """The VWAP at each frame time: what ``get_average_price`` returns there (NaN where the
        candles cannot give one). Computed on first use, after ``candles`` loaded the warm-up."""
        if self._price is None:
            self._price = _readonly(frame_prices(self._feed.minute_series(self.symbol), self.times))
        return self._price

    def __len__(self) -> int:
        return len(self.times)

    async def candles(self, interval: str, lookback: int = 0) -> tuple[Candles, np.ndarray]:
        """``(candles, closed)``: the ``interval`` candles from ``lookback`` candles before the
        first frame time through the last one closed by the last frame time, and for each row
        the index in ``candles`` of the newest candle closed at that row's time (-1 if none)."""
        if isinstance(lookback, bool) or not isinstance(lookback, int) or lookback < 0:
            raise ValueError(f"SignalFrame.candles: lookback must be a non-negative integer, got {lookback!r}")
        step = interval_ms(interval)
        first, last = align(int(self.times[0]), step), align(int(self.times[-1]), step)
        count = max(1, (last - first) // step + lookback)
        try:
            candles = await self._feed.candles(self.symbol, interval, count, int(self.times[-1]))
        except HistoryUnavailable as exc:
            # Said of the first row's window: the rows from available_from + lookback on have theirs.
            raise HistoryUnavailable(str(exc), interval=interval, limit=lookback,
                                     available_from=exc.available_from) from exc
        base = last - count * step
        n = len(self.times)
        if int(self.times[-1]) - int(self.times[0]) == (n - 1) * step and int(self.times[0]) % step == 0:
            start = (int(self.times[0]) - base) // step - 1       # one candle per frame time
            closed = np.arange(start, start + n, dtype=np.int64)
        else:
            closed = (self.times - self.times % step - base) // step - 1
        return candles, _readonly(closed)


class Signals:
    """Entry signals for every row of a frame (``get_signals``' answer).

    ``long`` / ``short``: boolean arrays, a signal where True (never both on one row).
    ``price_take_profit``, ``price_stop_loss``: numbers, or arrays with one value per row (read
    where there is a signal) or one per signal (in row order: no array of the frame's size).
    ``minute_estimated_time``: None (the configured maximum), a number or such an array.
    ``price_open``: None (market entries) or such an array, NaN for a market entry.
    ``note``: one note, or ``(long_note, short_note)``.
    """

    __slots__ = ("long", "short", "price_take_profit", "price_stop_loss", "minute_estimated_time", "price_open",
                 "note")

    def __init__(self, *, long: Any = None, short: Any = None, price_take_profit: Any, price_stop_loss: Any,
                 minute_estimated_time: Any = None, price_open: Any = None, note: str | Sequence[str] = ""):
        self.long, self.short = long, short
        self.price_take_profit, self.price_stop_loss = price_take_profit, price_stop_loss
        self.minute_estimated_time, self.price_open, self.note = minute_estimated_time, price_open, note


class SignalTable:
    """A checked ``Signals`` for ``n`` rows: the rows with a signal, and each one's ``SignalDto``."""

    __slots__ = ("rows", "entry", "_short", "_tp", "_sl", "_minutes", "_open", "_notes")

    def __init__(self, signals: Any, n: int, where: str):
        if not isinstance(signals, Signals):
            raise SignalsError(f"{where} returned {type(signals).__name__}, expected bk.Signals")
        long = _mask(signals.long, n, "long", where)
        short = _mask(signals.short, n, "short", where)
        if long is None and short is None:
            raise SignalsError(f"{where}: Signals needs long or short (a boolean array per frame time)")
        if long is not None and short is not None:
            both = np.flatnonzero(long & short)
            if len(both):
                raise SignalsError(f"{where}: row {int(both[0])} is both long and short")
        entry = long if short is None else short if long is None else long | short
        self.entry = entry
        self.rows = np.flatnonzero(entry)
        self._short = short
        # Per-signal arrays are spread onto the rows (a dense copy only of what was given sparse).
        k = len(self.rows)
        self._tp = self._per_row(_prices(signals.price_take_profit, (n, k), "price_take_profit", where), n)
        self._sl = self._per_row(_prices(signals.price_stop_loss, (n, k), "price_stop_loss", where), n)
        self._minutes = self._per_row(_optional_numbers(signals.minute_estimated_time, (n, k),
                                                        "minute_estimated_time", where), n)
        self._open = self._per_row(_optional_numbers(signals.price_open, (n, k), "price_open", where), n)
        note = signals.note
        if isinstance(note, str):
            self._notes = (note, note)
        elif isinstance(note, (tuple, list)) and len(note) == 2 and all(isinstance(x, str) for x in note):
            self._notes = (note[0], note[1])
        else:
            raise SignalsError(f"{where}: note must be a string or (long_note, short_note), got {note!r}")

    def _per_row(self, values: Any, n: int) -> Any:
        if isinstance(values, np.ndarray) and len(values) != n:
            return _Sparse(self.rows, values)
        return values

    def column(self, values: np.ndarray | float | None, default: float) -> np.ndarray:
        """One of the table's fields on its signal rows (a number broadcast; None -> ``default``)."""
        if values is None:
            return np.full(len(self.rows), default)
        if isinstance(values, _Sparse):
            return values.values.astype(np.float64)
        if isinstance(values, np.ndarray):
            return values[self.rows].astype(np.float64)
        return np.full(len(self.rows), float(values))

    def resolve_ahead(self, series: Any, times: np.ndarray, *, end_ms: int, config: Any) -> ResolvedAhead | None:
        """Every signal row resolved as if its position opened on its row (all rows at once);
        None when the loaded candles cannot say (prices not cleared of anomalies)."""
        if not series.anomaly_free or not len(self.rows):
            return None
        if self._open is not None and not np.isnan(self.column(self._open, np.nan)).any():
            return None     # limit orders all: each resolves from its fill, not from its row
        given_minutes = self.column(self._minutes, config.CC_MAX_SIGNAL_LIFETIME_MINUTES)
        minutes = np.where(np.isinf(given_minutes), given_minutes, np.trunc(given_minutes))   # as a row stores it
        long = np.ones(len(self.rows), dtype=bool) if self._short is None else ~self._short[self.rows]
        pending_at = times[self.rows]
        tp, sl = self.column(self._tp, np.nan), self.column(self._sl, np.nan)
        try:
            outcomes = resolve_open_many(series, pending_at, long=long, take_profit=tp, stop_loss=sl,
                                         minutes=minutes, end_ms=end_ms, trigger=config.CC_PRICE_TRIGGER)
        except IndexError:
            return None
        # Market rows found valid at their price (what get_average_price gives there) in one pass:
        # those may open without signal_problems, and without the general path (the lane).
        price = frame_prices(series, pending_at)
        if self._open is None:
            valid = valid_market_signals(long=long, take_profit=tp, stop_loss=sl, price=price,
                                         minutes=given_minutes, config=config)
        else:
            valid = np.zeros(len(self.rows), dtype=bool)
        return ResolvedAhead(series, pending_at, long, price, valid, tp, sl, minutes, outcomes, self._notes)

    def checked_prices(self, series: Any, times: np.ndarray, config: Any) -> list[float | None]:
        """For each signal row, the price at which it was found valid at its frame (market rows
        and limit orders alike: what ``signal_problems`` would pass), or None: the general path
        then skips checking those one by one."""
        if not len(self.rows):
            return []
        long = np.ones(len(self.rows), dtype=bool) if self._short is None else ~self._short[self.rows]
        price = frame_prices(series, times[self.rows])
        valid = valid_signals(long=long, take_profit=self.column(self._tp, np.nan),
                              stop_loss=self.column(self._sl, np.nan), price=price,
                              minutes=self.column(self._minutes, config.CC_MAX_SIGNAL_LIFETIME_MINUTES), config=config,
                              price_open=None if self._open is None else self.column(self._open, np.nan))
        return [p if ok else None for p, ok in zip(price.tolist(), valid.tolist())]

    def at(self, row: int) -> SignalDto | None:
        """The signal on ``row``, or None."""
        return self.dto(row) if self.entry[row] else None

    def dto(self, row: int) -> SignalDto:
        short = self._short is not None and bool(self._short[row])
        minutes = self._minutes
        if minutes is not None and not isinstance(minutes, float):
            minutes = float(minutes[row])
        price_open = None
        if self._open is not None:
            value = self._open if isinstance(self._open, float) else float(self._open[row])
            price_open = None if math.isnan(value) else value
        tp, sl = self._tp, self._sl
        return SignalDto("short" if short else "long", tp if isinstance(tp, float) else float(tp[row]),
                         sl if isinstance(sl, float) else float(sl[row]), minutes, price_open, self._notes[short])


class ResolvedAhead:
    """The signal rows resolved ahead, in row order (``k``: the ``k``-th signal row), each as if
    its position opened on its row: where and why it closes, and for the market rows found
    valid at their price, everything their two events carry.

    ``get(signal)`` serves ``backtest_open`` (the general path): ``(index, reason, extremes)``
    as ``resolve_open`` / ``active_extremes`` would give, or None when the signal is not its
    row's (another entry time or other levels). ``opening(k)`` / ``closing(k)`` serve the lane
    (``ClientStrategy.open_planned`` / ``close_planned``) for valid market rows."""

    __slots__ = ("series", "_general", "_lists", "_valid_price", "_notes", "_opening", "_closing", "_levels",
                 "_thresholds")

    def __init__(self, series: Any, pending_at: np.ndarray, long: np.ndarray, price: np.ndarray, valid: np.ndarray,
                 tp: np.ndarray, sl: np.ndarray, minutes: np.ndarray, outcomes: OpenOutcomes,
                 notes: tuple[str, str]):
        self.series = series        # the indices below are this series' (growing it makes a new one)
        index = outcomes.index
        reason = np.where(outcomes.take_profit, 0, np.where(outcomes.stop_loss, 1, 2))     # in _REASONS
        active = outcomes.low <= outcomes.high
        self._general = (pending_at, tp, sl, minutes, index, reason, outcomes.low, outcomes.high, active)
        self._lists: tuple[list[Any], list[Any], list[Any]] | None = None     # get()'s, on first use
        self._valid_price = np.where(valid, price, np.nan).tolist()
        # The lane's values, one list per field (read only on the valid market rows).
        self._notes = notes
        close_vwap = series.vwap[index]
        close_price = np.where(outcomes.take_profit, tp, np.where(outcomes.stop_loss, sl, close_vwap))
        pnl = pnl_percentages(long, price, close_price)
        with np.errstate(invalid="ignore"):
            peak = np.where(active, pnl_percentages(long, price, np.where(long, outcomes.high, outcomes.low)), 0.0)
            trough = np.where(active, pnl_percentages(long, price, np.where(long, outcomes.low, outcomes.high)), 0.0)
        # Milestones over the prices while open (the closing candle reaches none).
        profit_levels, loss_levels = milestone_reach_many(long=long, price_open=price, take_profit=tp, stop_loss=sl,
                                                          low=outcomes.low, high=outcomes.high)
        first = (pending_at - series.t0) // series.step
        self._levels = (long, price, tp, sl)              # a milestone listener's (thresholds, on first use)
        self._thresholds: MilestoneThresholds | None = None
        self._opening = (long.tolist(), tp.tolist(), sl.tolist(), minutes.tolist())
        self._closing = tuple(a.tolist() for a in (index, series.ts[index], close_vwap, reason, close_price, pnl, peak,
                                                   trough, active, first, series.ts[first], profit_levels,
                                                   loss_levels))

    def get(self, s: Any, series: Any) -> tuple[int, str, tuple[float, float] | None] | None:
        if series is not self.series:
            return None
        if self._lists is None:
            pending_at, tp, sl, minutes, index, reason, low, high, active = self._general
            self._lists = (pending_at.tolist(), list(zip(tp.tolist(), sl.tolist(), minutes.tolist())),
                           list(zip(index.tolist(), reason.tolist(), low.tolist(), high.tolist(), active.tolist())))
        times, levels, closes = self._lists
        k = bisect_left(times, s.pending_at)
        if k == len(times) or times[k] != s.pending_at or \
                levels[k] != (s.price_take_profit, s.price_stop_loss, s.minute_estimated_time):
            return None
        index, reason, low, high, active = closes[k]
        return index, _REASONS[reason], (low, high) if active else None

    def valid_price(self, k: int) -> float | None:
        """The price at which the ``k``-th row is a valid market signal, or None (not one)."""
        price = self._valid_price[k]
        return None if price != price else price

    def opening(self, k: int) -> tuple[str, float, float, float | int, str]:
        """``(position, take_profit, stop_loss, minute_estimated_time, note)`` of a valid market row
        (the minutes as a signal row stores them: whole, or inf)."""
        long, tp, sl, minutes = self._opening
        m = minutes[k] if math.isinf(minutes[k]) else int(minutes[k])
        return ("long", tp[k], sl[k], m, self._notes[0]) if long[k] else ("short", tp[k], sl[k], m, self._notes[1])

    def closing(self, k: int) -> tuple[Any, ...]:
        """``(index, close_time, vwap, reason, close_price, pnl, peak, trough, active, first,
        first_time, profit_levels, loss_levels)`` of a valid market row opened on its row
        (``peak`` / ``trough`` None when never in profit / loss; ``first``: its first candle)."""
        index, ts, vwap, reason, close_price, pnl, peak, trough, active, first, first_ts, profit, loss = self._closing
        p, t = peak[k], trough[k]
        return (index[k], ts[k], vwap[k], _REASONS[reason[k]], close_price[k], pnl[k], p if p > 0 else None,
                t if t < 0 else None, active[k], first[k], first_ts[k], profit[k], loss[k])


    def thresholds(self, k: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The ``k``-th row's milestone thresholds ``(profit, loss)`` (``milestone_crossings_past``),
        or None where they could not be found exactly (then the candles are scanned)."""
        t = self._thresholds
        if t is None:
            long, price, tp, sl = self._levels
            t = self._thresholds = milestone_thresholds(long=long, price_open=price, take_profit=tp, stop_loss=sl)
        return (t.profit[k], t.loss[k]) if t.exact[k] else None


_REASONS = ("take_profit", "stop_loss", "time_expired")


def _readonly(a: np.ndarray) -> np.ndarray:
    a = a.view()
    a.flags.writeable = False
    return a


def _mask(value: Any, n: int, name: str, where: str) -> np.ndarray | None:
    if value is None:
        return None
    a = np.asarray(value)
    if a.dtype != np.bool_:
        raise SignalsError(f"{where}: {name} must be a boolean array, got dtype {a.dtype}")
    if a.shape != (n,):
        raise SignalsError(f"{where}: {name} has shape {a.shape}, expected ({n},): one row per frame time")
    return a


class _Sparse:
    """Values given per signal row: ``_Sparse[row]`` reads the value of the signal on ``row``."""

    __slots__ = ("values", "_by_row")

    def __init__(self, rows: np.ndarray, values: np.ndarray):
        self.values = values
        self._by_row = dict(zip(rows.tolist(), values.tolist()))

    def __getitem__(self, row: int) -> float:
        return self._by_row[row]


def _prices(value: Any, sizes: tuple[int, int], name: str, where: str) -> np.ndarray | float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    a = np.asarray(value)
    if a.dtype.kind not in "iuf":
        raise SignalsError(f"{where}: {name} must be a number or a numeric array, got dtype {a.dtype}")
    if a.ndim != 1 or len(a) not in sizes:
        raise SignalsError(f"{where}: {name} has shape {a.shape}, expected ({sizes[0]},) (one value per frame "
                           f"time) or ({sizes[1]},) (one per signal)")
    return a


def _optional_numbers(value: Any, sizes: tuple[int, int], name: str, where: str) -> np.ndarray | float | None:
    return None if value is None else _prices(value, sizes, name, where)


def frame_prices(series: Any, times: np.ndarray) -> np.ndarray:
    """The VWAP at each frame time (what ``get_average_price`` returns there; NaN where the
    loaded 1m candles cannot give one)."""
    n = len(times)
    first = (int(times[0]) - int(times[0]) % MINUTE_MS - series.t0) // MINUTE_MS - 1
    vwap = series.vwap
    if n and int(times[-1]) - int(times[0]) == (n - 1) * MINUTE_MS and first >= series.vwap_n - 1 \
            and first + n <= len(vwap):
        return vwap[first:first + n]         # 1m frames over loaded candles: a view
    index = (times - times % MINUTE_MS - series.t0) // MINUTE_MS - 1
    ok = (index >= series.vwap_n - 1) & (index < len(vwap))
    return np.where(ok, vwap[np.clip(index, 0, len(vwap) - 1)], np.nan)


async def compute_signals(get_signals: Any, frame: SignalFrame, where: str) -> SignalTable:
    answer = get_signals(frame.symbol, frame)
    if inspect.isawaitable(answer):
        answer = await answer
    return SignalTable(answer, len(frame), where)


async def lookahead_problems(get_signals: Any, frame: SignalFrame, cuts: Sequence[int]) -> list[str]:
    """Compare ``get_signals`` on the whole frame with itself on frames cut short at each of
    ``cuts`` (row counts): a look-ahead-safe function gives the same rows before every cut. A
    function that peeks shows it on the rows just before a cut, when the peek changes them, so
    give many cuts. Returns one line per difference found (empty: none)."""
    whole = await compute_signals(get_signals, frame, "get_signals")
    problems = []
    for cut in cuts:
        if not 0 < cut < len(frame):
            raise ValueError(f"lookahead_problems: cut {cut} is outside 1..{len(frame) - 1}")
        part = SignalFrame(frame.symbol, frame.times[:cut], frame._feed, frame.price[:cut])
        short = await compute_signals(get_signals, part, "get_signals")
        mine = whole.rows[whole.rows < cut]
        if not np.array_equal(mine, short.rows):
            diff = np.setxor1d(mine, short.rows)
            problems.append(f"cut at row {cut}: signals differ at row {int(diff[0])} (look-ahead?)")
            continue
        for row in mine.tolist():
            if whole.dto(row) != short.dto(row):
                problems.append(f"cut at row {cut}: the signal at row {row} differs (look-ahead?)")
                break
    return problems
