"""Indicators declared once, read per frame (spec/DESIGN.md "Indicators").

A strategy declares its indicators as functions of a batch of candles that return one value per
candle (numpy, or any library that takes arrays: TA-Lib, pandas-ta...)::

    bk.add_strategy("cross", get_signal, indicators={
        "fast": bk.Indicator(lambda c: sma(c.close, 20), startup=20),
        "slow": bk.Indicator(lambda c: sma(c.close, 50), startup=50)})

and reads them in ``get_signal`` with ``ind = await bk.get_indicators()``: ``ind.fast`` is the
indicator's values up to the newest closed candle (a read-only numpy view: ``ind.fast[-1]`` now,
``ind.fast[-2]`` a candle before), so code cannot see a candle that has not closed.

In a backtest each indicator is computed once over the whole loaded series (from ``startup``
candles before the frame) and a frame reads a view: C speed per frame. Live, it is computed each
tick over the trailing ``startup`` candles. Two checks keep the two equal (``indicator_problems``,
``btk check``): recomputed on the series cut at a frame, a value must not change (no look-ahead),
and recomputed on only ``startup`` candles it must equal the full-series value (a recursive
indicator such as an EMA needs a long enough warm-up).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import msgspec
import numpy as np

from .interval import interval_ms
from .types import Candles


class Indicator(msgspec.Struct, frozen=True):
    """``fn(candles) -> values``, one per candle; ``startup``: the candles of history one value
    needs (live computes each tick over this many); ``interval``: the candles it is computed on."""

    fn: Callable[[Candles], Any]
    startup: int = 1
    interval: str = "1m"


class IndicatorError(ValueError):
    """An indicator is declared wrong, or its function returned something unusable."""


def declared(strategy_name: str, indicators: Mapping[str, Any] | None) -> dict[str, Indicator]:
    """Check a strategy's ``indicators`` (a callable stands for ``Indicator(fn)``)."""
    out: dict[str, Indicator] = {}
    for name, spec in (indicators or {}).items():
        where = f"add_strategy {strategy_name!r}: indicator {name!r}"
        if not isinstance(name, str) or not name.isidentifier() or name.startswith("_"):
            raise ValueError(f"{where}: the name must be an identifier (it is read as ind.{name})")
        ind = spec if isinstance(spec, Indicator) else Indicator(spec) if callable(spec) else None
        if ind is None or not callable(ind.fn):
            raise ValueError(f"{where}: expected an Indicator or a function of candles, got {spec!r}")
        if isinstance(ind.startup, bool) or not isinstance(ind.startup, int) or ind.startup < 1:
            raise ValueError(f"{where}: startup must be a positive number of candles, got {ind.startup!r}")
        interval_ms(ind.interval)   # an unknown interval raises here, with the known ones
        out[name] = ind
    return out


def compute(name: str, ind: Indicator, candles: Candles) -> np.ndarray:
    """The indicator over ``candles``: a read-only float64 array, one value per candle."""
    try:
        values = ind.fn(candles)
    except Exception as exc:
        raise IndicatorError(f"indicator {name!r} failed: {type(exc).__name__}: {exc}") from exc
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise IndicatorError(f"indicator {name!r} returned {type(values).__name__}, not numbers: {exc}") from None
    if array.shape != (len(candles),):
        raise IndicatorError(f"indicator {name!r} returned shape {array.shape} for {len(candles)} candles: "
                             "expected one value per candle")
    array.flags.writeable = False
    return array


class IndicatorView:
    """``ind.NAME``: the indicator's values through the newest closed candle (a read-only view)."""

    __slots__ = ("_values", "_stop")

    def __init__(self, values: dict[str, np.ndarray], stop: dict[str, int]):
        self._values, self._stop = values, stop

    def __getattr__(self, name: str) -> np.ndarray:
        try:
            return self._values[name][:self._stop[name]]
        except KeyError:
            raise AttributeError(f"no indicator {name!r} is declared (declared: "
                                 f"{', '.join(self._values) or 'none'})") from None


def indicator_problems(name: str, ind: Indicator, candles: Candles, cuts: list[int], *,
                       rel_tol: float = 1e-9) -> list[str]:
    """What is wrong with indicator ``name`` over ``candles`` (a long series): at each cut ``k``
    (an index into it), the value after candle ``k`` computed on ``candles[:k+1]`` must equal the
    full series' (else it reads later candles: look-ahead), and computed on the ``startup``
    candles ending there it must too (else ``startup`` is too short for it)."""
    full = compute(name, ind, candles)
    problems: list[str] = []
    for k in cuts:
        if k + 1 < ind.startup:
            continue
        cut = compute(name, ind, candles.span(0, k + 1))[-1]
        if not _same(cut, full[k], rel_tol):
            problems.append(f"indicator {name!r} reads ahead: after candle {k} it is {full[k]!r} on the whole "
                            f"series but {cut!r} on the series cut there")
            break
        warm = compute(name, ind, candles.span(k + 1 - ind.startup, k + 1))[-1]
        if not _same(warm, full[k], rel_tol):
            problems.append(f"indicator {name!r} needs more than startup={ind.startup} candles: after candle {k} it "
                            f"is {full[k]!r} on the whole series but {warm!r} on the {ind.startup} candles before")
            break
    return problems


def _same(a: float, b: float, rel_tol: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=rel_tol, abs_tol=1e-12)


class _Group:
    """The indicators of one interval, and the candles they need."""

    def __init__(self, interval: str, indicators: dict[str, Indicator]):
        self.interval, self.indicators = interval, indicators
        self.step = interval_ms(interval)
        self.startup = max(ind.startup for ind in indicators.values())


class _ClockView(IndicatorView):
    """A backtest's view: arrays over the whole loaded series, cut at the clock's time on access."""

    __slots__ = ("_clock", "_origin")

    def __init__(self, clock: Any):
        super().__init__({}, {})
        self._clock = clock
        self._origin: dict[str, tuple[int, int]] = {}     # name -> (first candle's time, step)

    def __getattr__(self, name: str) -> np.ndarray:
        try:
            t0, step = self._origin[name]
        except KeyError:
            raise AttributeError(f"no indicator {name!r} is declared (declared: "
                                 f"{', '.join(self._origin) or 'none'})") from None
        now = self._clock.now
        return self._values[name][:(now - now % step - t0) // step]


class SeriesIndicators:
    """A backtest's indicators: each computed once over the loaded series, grown as needed."""

    def __init__(self, indicators: dict[str, Indicator], feed: Any, symbol: str, clock: Any):
        self.groups = [_Group(interval, {n: i for n, i in indicators.items() if i.interval == interval})
                       for interval in dict.fromkeys(i.interval for i in indicators.values())]
        self.feed, self.symbol = feed, symbol
        self.computed: dict[str, Any] = {}        # interval -> the series its arrays were computed on
        self.view = _ClockView(clock)

    async def __call__(self, when: int) -> IndicatorView:
        for group in self.groups:
            series = self.feed.series.get((self.symbol, group.interval))
            if series is None or (when - when % group.step - series.t0) // group.step < group.startup:
                # Not loaded yet, or too little history before this frame: grow it (or fail as a
                # get_candles would: the frame's warm-up).
                await self.feed.candles(self.symbol, group.interval, group.startup, when)
                series = self.feed.series[(self.symbol, group.interval)]
            if self.computed.get(group.interval) is not series:
                for name, ind in group.indicators.items():
                    self.view._values[name] = compute(name, ind, series.candles)
                    self.view._origin[name] = (series.t0, group.step)
                self.computed[group.interval] = series
        return self.view


class LiveIndicators:
    """A live run's indicators: each tick, computed over the trailing ``startup`` candles."""

    def __init__(self, indicators: dict[str, Indicator], feed: Any, symbol: str):
        self.groups = [_Group(interval, {n: i for n, i in indicators.items() if i.interval == interval})
                       for interval in dict.fromkeys(i.interval for i in indicators.values())]
        self.feed, self.symbol = feed, symbol
        self.last: tuple[int, IndicatorView] | None = None

    async def __call__(self, when: int) -> IndicatorView:
        if self.last is not None and self.last[0] == when:
            return self.last[1]
        values: dict[str, np.ndarray] = {}
        for group in self.groups:
            candles = await self.feed.candles(self.symbol, group.interval, group.startup, when)
            n = len(candles)
            for name, ind in group.indicators.items():
                values[name] = compute(name, ind, candles.span(n - ind.startup, n))
        view = IndicatorView(values, {name: len(v) for name, v in values.items()})
        self.last = (when, view)
        return view
