"""Domain values and event payloads (msgspec Structs; frozen where they are facts).

Every timestamp here is an int of milliseconds since the Unix epoch, UTC.
Tick results are a tagged union on ``action`` (``r.action`` reads the tag).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar, Literal, Union, overload

import msgspec
import numpy as np

from .column import column

Position = Literal["long", "short"]
CloseReason = Literal["take_profit", "stop_loss", "time_expired", "closed"]   # closed: by a command
CancelReason = Literal["timeout", "price_reject", "risk", "user"]


class Candle(msgspec.Struct, frozen=True):
    """One OHLCV candle; ``timestamp`` is its open time."""

    timestamp: int
    open: float
    high: float
    low: float
    close: float
    volume: float


_COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")


def _readonly(a: np.ndarray) -> np.ndarray:
    if a.flags.writeable:
        a = a.view()
        a.flags.writeable = False
    return a


def _columns(cols: Sequence[np.ndarray]) -> tuple[np.ndarray, ...]:
    """Read-only timestamps, then the five price and volume columns as :class:`Column`."""
    return (_readonly(cols[0]), *(column(c) for c in cols[1:]))


class Candles(Sequence[Candle]):
    """A batch of candles stored as columns.

    A sequence of :class:`Candle` (len, index, iterate) whose columns are
    read-only numpy arrays: ``.timestamp .open .high .low .close .volume``
    (the five floats as :class:`engine.column.Column`, cheap to reduce).
    Slicing a batch gives views, never copies; no per-candle object is built
    unless you index or iterate.
    """

    __slots__ = ("_ts", "_o", "_h", "_l", "_c", "_v", "_a", "_b")

    def __init__(self, ts: np.ndarray, o: np.ndarray, h: np.ndarray, l: np.ndarray,
                 c: np.ndarray, v: np.ndarray, start: int = 0, stop: int | None = None):
        # Internal constructor: columns must be equal-length and read-only, int64 timestamps and
        # float64 Columns (``_columns``).
        self._ts, self._o, self._h, self._l, self._c, self._v = ts, o, h, l, c, v
        self._a = start
        self._b = len(ts) if stop is None else stop

    @classmethod
    def from_arrays(cls, timestamp: Any, open: Any, high: Any, low: Any, close: Any, volume: Any) -> Candles:
        """Columns (array-likes of equal length) -> Candles. Timestamps are epoch ms."""
        ts = np.asarray(timestamp)
        if ts.dtype.kind == "f":
            if not np.all(np.isfinite(ts)) or np.any(ts != np.floor(ts)):
                raise ValueError("Candles.from_arrays: timestamps must be whole milliseconds")
        elif ts.dtype.kind not in "iu" and len(ts):
            raise ValueError(f"Candles.from_arrays: timestamps must be integers, got dtype {ts.dtype}")
        cols = [np.ascontiguousarray(ts, dtype=np.int64)]
        for name, col in zip(_COLUMNS[1:], (open, high, low, close, volume)):
            arr = np.asarray(col)
            if arr.dtype.kind not in "iuf" and len(arr):
                raise ValueError(f"Candles.from_arrays: column {name} must be numeric, got dtype {arr.dtype}")
            cols.append(np.ascontiguousarray(arr, dtype=np.float64))
        n = len(cols[0])
        bad = [name for name, col in zip(_COLUMNS, cols) if col.ndim != 1 or len(col) != n]
        if bad:
            raise ValueError(f"Candles.from_arrays: column(s) {', '.join(bad)} are not 1-D of length {n}")
        return cls(*_columns(cols))

    @classmethod
    def from_candles(cls, candles: Sequence[Any]) -> Candles:
        """A list of Candle (or ``[ts, o, h, l, c, v]`` rows, or dicts) -> Candles."""
        if isinstance(candles, Candles):
            return candles
        rows = []
        for i, c in enumerate(candles):
            if isinstance(c, Candle):
                rows.append((c.timestamp, c.open, c.high, c.low, c.close, c.volume))
            elif isinstance(c, dict):
                try:
                    rows.append(tuple(c[k] for k in _COLUMNS))
                except KeyError as e:
                    raise ValueError(f"candle #{i} has no field {e.args[0]!r}") from None
            elif isinstance(c, (list, tuple)) and len(c) >= 6:
                rows.append(tuple(c[:6]))
            else:
                raise ValueError(f"candle #{i} is not a Candle, a dict or a 6-item row: {c!r}")
        if not rows:
            return EMPTY_CANDLES
        try:
            cols = list(zip(*rows))
            ts = np.array(cols[0], dtype=np.float64)
            return cls.from_arrays(ts, *cols[1:])
        except (TypeError, ValueError) as e:
            raise ValueError(f"candles are not numeric: {e}") from None

    def __len__(self) -> int:
        return self._b - self._a

    @overload
    def __getitem__(self, i: int) -> Candle: ...
    @overload
    def __getitem__(self, i: slice) -> Candles: ...
    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            start, stop, step = i.indices(len(self))
            if step != 1:
                raise ValueError("Candles slices must be contiguous (step 1)")
            return Candles(self._ts, self._o, self._h, self._l, self._c, self._v,
                           self._a + start, self._a + max(start, stop))
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("candle index out of range")
        j = self._a + i
        return Candle(int(self._ts[j]), float(self._o[j]), float(self._h[j]),
                      float(self._l[j]), float(self._c[j]), float(self._v[j]))

    def span(self, start: int, stop: int) -> Candles:
        """Rows ``start:stop`` (0 <= start <= stop <= len, not checked) as a view: the per-frame window."""
        return Candles(self._ts, self._o, self._h, self._l, self._c, self._v, self._a + start, self._a + stop)

    def __iter__(self) -> Iterator[Candle]:
        a, b = self._a, self._b
        for row in zip(self._ts[a:b].tolist(), self._o[a:b].tolist(), self._h[a:b].tolist(),
                       self._l[a:b].tolist(), self._c[a:b].tolist(), self._v[a:b].tolist()):
            yield Candle(*row)

    def __repr__(self) -> str:
        if not len(self):
            return "Candles([])"
        return f"Candles(n={len(self)}, first={int(self.timestamp[0])}, last={int(self.timestamp[-1])})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Candles) or len(other) != len(self):
            return NotImplemented if not isinstance(other, Candles) else False
        return all(np.array_equal(getattr(self, n), getattr(other, n)) for n in _COLUMNS)

    __hash__ = None  # type: ignore[assignment]

    @property
    def timestamp(self) -> np.ndarray:
        return self._ts[self._a:self._b]

    @property
    def open(self) -> np.ndarray:
        return self._o[self._a:self._b]

    @property
    def high(self) -> np.ndarray:
        return self._h[self._a:self._b]

    @property
    def low(self) -> np.ndarray:
        return self._l[self._a:self._b]

    @property
    def close(self) -> np.ndarray:
        return self._c[self._a:self._b]

    @property
    def volume(self) -> np.ndarray:
        return self._v[self._a:self._b]

    def columns(self) -> tuple[np.ndarray, ...]:
        """The six columns (views), in ``timestamp, open, high, low, close, volume`` order."""
        a, b = self._a, self._b
        return (self._ts[a:b], self._o[a:b], self._h[a:b], self._l[a:b], self._c[a:b], self._v[a:b])

    @staticmethod
    def concat(parts: Sequence[Candles]) -> Candles:
        if len(parts) == 1:
            return parts[0]
        first = parts[0]
        if all(p._ts is first._ts and p._c is first._c and p._o is first._o and p._h is first._h
               and p._l is first._l and p._v is first._v for p in parts) and \
                all(a._b == b._a for a, b in zip(parts, parts[1:])):
            # Adjacent slices of one batch (an array source answering in chunks): a view, no copy.
            return Candles(first._ts, first._o, first._h, first._l, first._c, first._v, first._a, parts[-1]._b)
        cols = [np.concatenate([p.columns()[k] for p in parts]) for k in range(6)]
        return Candles(*_columns(cols))


EMPTY_CANDLES = Candles(*_columns([np.empty(0, dtype=np.int64 if k == 0 else np.float64) for k in range(6)]))


class SignalDto(msgspec.Struct, frozen=True):
    """What a strategy's ``get_signal`` returns. Omit ``price_open`` for a market entry."""

    position: Position
    price_take_profit: float
    price_stop_loss: float
    minute_estimated_time: float | None = None
    price_open: float | None = None
    note: str = ""
    id: str | None = None


class Entry(msgspec.Struct, frozen=True, gc=False):
    """One entry of a position: its price and the money put in (the first, and each DCA buy)."""

    price: float
    cost: float


class PartialClose(msgspec.Struct, frozen=True, gc=False):
    """Part of a position closed early: ``percent`` of what was held then, at ``price``;
    ``cost_basis`` the money held just before it, ``entries`` how many entries it had by then."""

    kind: str                  # "profit" | "loss"
    percent: float
    price: float
    cost_basis: float
    entries: int
    timestamp: int = 0


class SignalRow(msgspec.Struct, frozen=True, gc=False):
    """A signal made concrete by the engine.

    (``gc=False`` here, on ``PnL`` and on the tick results: frozen values of plain fields cannot
    form a reference cycle, so the garbage collector need not track the thousands a backtest makes.)

    ``pending_at`` is ``None`` while a scheduled signal waits for its price;
    ``peak_pnl`` / ``trough_pnl`` are the best / worst unrealised PnL percent
    seen while open (``None`` if never in profit / loss).
    """

    id: str
    position: Position
    price_open: float
    price_take_profit: float
    price_stop_loss: float
    minute_estimated_time: int | float = 43200   # whole minutes, or inf (no time limit)
    symbol: str = ""
    strategy_name: str = ""
    exchange_name: str = ""
    frame_name: str = ""
    scheduled_at: int = 0
    pending_at: int | None = None
    note: str = ""
    peak_pnl: float | None = None
    trough_pnl: float | None = None
    # Position management: the entries (empty: one, at price_open, of CC_POSITION_ENTRY_COST) and
    # the partial closes so far, oldest first.
    entries: tuple[Entry, ...] = ()
    partials: tuple[PartialClose, ...] = ()
    # Commands on the position: the stop-loss / take-profit they moved to (None: the original
    # holds), whether breakeven became available (its event went out), how many commits were made.
    trailing_stop_loss: float | None = None
    trailing_take_profit: float | None = None
    breakeven_seen: bool = False
    commits: int = 0

    @property
    def stop_loss(self) -> float:
        """The stop-loss in force: the trailed one, else the original."""
        return self.price_stop_loss if self.trailing_stop_loss is None else self.trailing_stop_loss

    @property
    def take_profit(self) -> float:
        """The take-profit in force: the trailed one, else the original."""
        return self.price_take_profit if self.trailing_take_profit is None else self.trailing_take_profit


class PnL(msgspec.Struct, frozen=True, gc=False):
    pnl_percentage: float
    price_open: float              # the effective entry price (entries averaged by their cost)
    price_close: float
    pnl_cost: float | None = None          # the PnL in money (None: recorded before btk had it)
    pnl_entries: float | None = None       # the money put in (one entry: CC_POSITION_ENTRY_COST)


class _Tick(msgspec.Struct, frozen=True, tag_field="action", gc=False):
    symbol: str
    strategy_name: str
    exchange_name: str
    frame_name: str
    current_price: float
    backtest: bool
    created_at: int

    @property
    def event_id(self) -> str:
        """Stable across redeliveries (SEMANTICS.md 11): ``{signal id}:{action}`` for the events
        of a state change (scheduled, opened, closed, cancelled); ticks name their minute."""
        signal = getattr(self, "signal", None)
        if signal is None:
            return f"{self.strategy_name}:{self.symbol}:{self.action}:{self.created_at}"  # type: ignore[attr-defined]
        if self.action == "active":  # type: ignore[attr-defined]
            return f"{signal.id}:active:{self.created_at}"
        return f"{signal.id}:{self.action}"  # type: ignore[attr-defined]


class TickIdle(_Tick, frozen=True, tag="idle"):
    action: ClassVar[str] = "idle"


class TickScheduled(_Tick, frozen=True, tag="scheduled"):
    signal: SignalRow
    action: ClassVar[str] = "scheduled"


class TickOpened(_Tick, frozen=True, tag="opened"):
    signal: SignalRow
    action: ClassVar[str] = "opened"


class TickActive(_Tick, frozen=True, tag="active"):
    signal: SignalRow
    percent_tp: float
    percent_sl: float
    action: ClassVar[str] = "active"


class TickClosed(_Tick, frozen=True, tag="closed"):
    signal: SignalRow
    close_reason: CloseReason
    close_timestamp: int
    pnl: PnL
    action: ClassVar[str] = "closed"


class TickCancelled(_Tick, frozen=True, tag="cancelled"):
    signal: SignalRow
    reason: CancelReason
    close_timestamp: int
    action: ClassVar[str] = "cancelled"


TickResult = Union[TickIdle, TickScheduled, TickOpened, TickActive, TickClosed, TickCancelled]


# --- event payloads (past-tense facts) -------------------------------------------------

class DoneEvent(msgspec.Struct, frozen=True):
    symbol: str
    strategy_name: str
    exchange_name: str
    frame_name: str
    backtest: bool


class BacktestProgressEvent(msgspec.Struct, frozen=True):
    symbol: str
    strategy_name: str
    exchange_name: str
    frame_name: str
    processed_frames: int
    total_frames: int
    progress: float


class PartialEvent(msgspec.Struct, frozen=True):
    """A profit or loss milestone (10, 20, ... 100 % of the way to TP or SL) was reached."""

    symbol: str
    strategy_name: str
    signal: SignalRow
    level: int
    percent: float
    current_price: float
    backtest: bool
    timestamp: int
    exchange_name: str = ""
    frame_name: str = ""
    kind: str = ""                 # "profit" or "loss"

    @property
    def event_id(self) -> str:
        """Stable across redeliveries: ``{signal id}:{kind}:{level}``."""
        return f"{self.signal.id}:{self.kind}:{self.level}"


CommitAction = Literal["cancel_scheduled", "activate_scheduled", "close_pending", "partial_profit", "partial_loss",
                       "trailing_stop", "trailing_take", "breakeven", "average_buy"]


class _PositionEvent(msgspec.Struct, frozen=True):
    """What every event about one position or order carries: its run, its row, the price and time."""

    symbol: str
    strategy_name: str
    exchange_name: str
    frame_name: str
    signal: SignalRow
    current_price: float
    backtest: bool
    timestamp: int


class CommitEvent(_PositionEvent, frozen=True):
    """A command acted on a position or a scheduled order (``listen_strategy_commit``).

    ``signal`` is the row as the command left it; ``percent`` the share closed (partial closes)
    or the shift (trailing); ``cost`` the money a DCA entry put in; ``pnl`` what a partial close
    realised (its share, at ``current_price``); ``source`` who asked (``strategy``, ``console``,
    ``cli``, ``api``)."""

    action: str
    percent: float | None = None
    cost: float | None = None
    pnl: PnL | None = None
    source: str = "strategy"

    @property
    def event_id(self) -> str:
        """Stable across redeliveries: ``{signal id}:commit:{n}`` (the signal's n-th commit)."""
        return f"{self.signal.id}:commit:{self.signal.commits}"


class BreakevenEvent(_PositionEvent, frozen=True):
    """An open position's price passed its breakeven threshold (once per signal): moving the
    stop-loss to the entry is now possible (``listen_breakeven``)."""

    @property
    def event_id(self) -> str:
        return f"{self.signal.id}:breakeven"


class PingEvent(_PositionEvent, frozen=True):
    """Each minute an open position (``kind`` active) or a scheduled order (``kind`` schedule) is
    watched (``listen_active_ping`` / ``listen_schedule_ping``): the moment to act on it."""

    kind: str


class RiskEvent(msgspec.Struct, frozen=True, tag_field="action", tag="risk"):
    """A signal was rejected by a risk profile."""

    symbol: str
    strategy_name: str
    risk_name: str
    signal: SignalRow
    current_price: float
    active_position_count: int
    rejection_id: str | None
    rejection_note: str
    backtest: bool
    timestamp: int
    exchange_name: str = ""


class ErrorEvent(msgspec.Struct, frozen=True):
    """An error was reported; the engine went on (``listen_error``) or the run ended (``listen_exit``)."""

    error: Any
    symbol: str = ""
    strategy_name: str = ""
    exchange_name: str = ""
    frame_name: str = ""
    backtest: bool | None = None
    where: str = ""

    def __str__(self) -> str:  # what a log line or a status bar shows
        ctx = " ".join(x for x in (self.symbol, self.strategy_name) if x)
        return f"{self.where + ': ' if self.where else ''}{ctx + ': ' if ctx else ''}{self.error}"


class PerformanceEvent(msgspec.Struct, frozen=True):
    """How long one piece of engine work took (``listen_performance``)."""

    metric: str
    duration_ms: float
    symbol: str
    strategy_name: str
    exchange_name: str
    backtest: bool
    timestamp: int


def is_finite_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
