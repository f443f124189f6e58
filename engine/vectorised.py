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
from collections.abc import Sequence
from typing import Any

import numpy as np

from .interval import MINUTE_MS, align, interval_ms
from .types import Candles, SignalDto


class SignalsError(ValueError):
    """A ``get_signals`` answer is malformed; the message says which array and how."""


class SignalFrame:
    """What ``get_signals`` receives: the frame's decision times and where to read candles."""

    __slots__ = ("symbol", "times", "price", "_feed")

    def __init__(self, symbol: str, times: np.ndarray, price: np.ndarray, feed: Any):
        self.symbol = symbol
        self.times = _readonly(times)     # frame times, epoch ms (int64): one row each
        self.price = _readonly(price)     # VWAP at each time: what get_average_price returns there
        self._feed = feed

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
        candles = await self._feed.candles(self.symbol, interval, count, int(self.times[-1]))
        base = last - count * step
        closed = (self.times - self.times % step - base) // step - 1
        return candles, _readonly(closed)


class Signals:
    """Entry signals for every row of a frame (``get_signals``' answer).

    ``long`` / ``short``: boolean arrays, a signal where True (never both on one row).
    ``price_take_profit``, ``price_stop_loss``: arrays (read where there is a signal) or numbers.
    ``minute_estimated_time``: None (the configured maximum), a number or an array.
    ``price_open``: None (market entries) or an array, NaN for a market entry on that row.
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
        self._tp = _prices(signals.price_take_profit, n, "price_take_profit", where)
        self._sl = _prices(signals.price_stop_loss, n, "price_stop_loss", where)
        self._minutes = _optional_numbers(signals.minute_estimated_time, n, "minute_estimated_time", where)
        self._open = _optional_numbers(signals.price_open, n, "price_open", where)
        note = signals.note
        if isinstance(note, str):
            self._notes = (note, note)
        elif isinstance(note, (tuple, list)) and len(note) == 2 and all(isinstance(x, str) for x in note):
            self._notes = (note[0], note[1])
        else:
            raise SignalsError(f"{where}: note must be a string or (long_note, short_note), got {note!r}")

    def at(self, row: int) -> SignalDto | None:
        """The signal on ``row``, or None."""
        return self.dto(row) if self.entry[row] else None

    def dto(self, row: int) -> SignalDto:
        short = self._short is not None and bool(self._short[row])
        minutes = self._minutes
        if isinstance(minutes, np.ndarray):
            minutes = float(minutes[row])
        price_open = None
        if self._open is not None:
            value = float(self._open) if not isinstance(self._open, np.ndarray) else float(self._open[row])
            price_open = None if math.isnan(value) else value
        tp, sl = self._tp, self._sl
        return SignalDto("short" if short else "long",
                         float(tp[row]) if isinstance(tp, np.ndarray) else tp,
                         float(sl[row]) if isinstance(sl, np.ndarray) else sl,
                         minutes, price_open, self._notes[short])


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


def _prices(value: Any, n: int, name: str, where: str) -> np.ndarray | float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    a = np.asarray(value)
    if a.dtype.kind not in "iuf":
        raise SignalsError(f"{where}: {name} must be a number or a numeric array, got dtype {a.dtype}")
    if a.shape != (n,):
        raise SignalsError(f"{where}: {name} has shape {a.shape}, expected ({n},): one row per frame time")
    return a


def _optional_numbers(value: Any, n: int, name: str, where: str) -> np.ndarray | float | None:
    return None if value is None else _prices(value, n, name, where)


def frame_prices(series: Any, times: np.ndarray) -> np.ndarray:
    """The VWAP at each frame time (what ``get_average_price`` returns there; NaN where the
    loaded 1m candles cannot give one)."""
    index = (times - times % MINUTE_MS - series.t0) // MINUTE_MS - 1
    ok = (index >= series.vwap_n - 1) & (index < len(series.vwap))
    if ok.all():
        if len(index) and index[-1] - index[0] == len(index) - 1:
            return series.vwap[int(index[0]):int(index[-1]) + 1]        # 1m frames: a view
        return series.vwap[index]
    return np.where(ok, series.vwap[np.clip(index, 0, len(series.vwap) - 1)], np.nan)


async def compute_signals(get_signals: Any, frame: SignalFrame, where: str) -> SignalTable:
    answer = get_signals(frame.symbol, frame)
    if inspect.isawaitable(answer):
        answer = await answer
    return SignalTable(answer, len(frame), where)


async def lookahead_problems(get_signals: Any, frame: SignalFrame, cuts: Sequence[int]) -> list[str]:
    """Compare ``get_signals`` on the whole frame with itself on frames cut short at each of
    ``cuts`` (row counts): a look-ahead-safe function gives the same rows before every cut.
    Returns one line per difference found (empty: none)."""
    whole = await compute_signals(get_signals, frame, "get_signals")
    problems = []
    for cut in cuts:
        if not 0 < cut < len(frame):
            raise ValueError(f"lookahead_problems: cut {cut} is outside 1..{len(frame) - 1}")
        part = SignalFrame(frame.symbol, frame.times[:cut], frame.price[:cut], frame._feed)
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
