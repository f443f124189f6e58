"""Schemas, ``add_*`` / ``list_*``, and cross-reference checks.

Registration validates each schema on its own, eagerly (duplicate name, a
missing or ill-typed field, an unknown interval). References between names (a
strategy's risk profiles, a walker's strategies) are checked by ``validate()``
and when a run starts, so registration order is free.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import msgspec

from .interval import INTERVAL_MINUTES, INTERVALS, iso, to_ms

WALKER_METRICS = (
    "sharpe_ratio", "annualized_sharpe_ratio", "win_rate", "total_pnl",
    "certainty_ratio", "avg_pnl", "expected_yearly_returns",
)
SIZING_METHODS = ("fixed-percentage", "kelly-criterion", "atr-based")


# --- callbacks: objects with optional methods -------------------------------------------

class StrategyCallbacks(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Optional strategy hooks. Signatures (all may be sync or async):
    ``on_open(symbol, signal, current_price, backtest)``, ``on_close(symbol, signal, price_close, backtest)``,
    ``on_active(symbol, signal, current_price, backtest)``, ``on_idle(symbol, current_price, backtest)``,
    ``on_tick(symbol, result, backtest)``, ``on_schedule(symbol, signal, current_price, backtest)``,
    ``on_cancel(symbol, signal, current_price, backtest)``, ``on_write(symbol, signal_or_none, backtest)``,
    ``on_partial_profit(symbol, signal, current_price, percent, backtest)``,
    ``on_partial_loss(symbol, signal, current_price, percent, backtest)``,
    ``on_breakeven(symbol, signal, current_price, backtest)`` (once per signal, when moving the
    stop-loss to the entry becomes possible), ``on_active_ping(symbol, signal, current_price, backtest)``
    and ``on_schedule_ping(symbol, signal, current_price, backtest)`` (each minute a position is open
    or an order waits). Any of them may act on the position with ``bk.commit_*``."""

    on_open: Callable | None = None
    on_close: Callable | None = None
    on_active: Callable | None = None
    on_idle: Callable | None = None
    on_tick: Callable | None = None
    on_schedule: Callable | None = None
    on_cancel: Callable | None = None
    on_write: Callable | None = None
    on_partial_profit: Callable | None = None
    on_partial_loss: Callable | None = None
    on_breakeven: Callable | None = None
    on_active_ping: Callable | None = None
    on_schedule_ping: Callable | None = None


class ExchangeCallbacks(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``on_candle_data(symbol, interval, since_ms, limit, candles)`` after every checked answer."""

    on_candle_data: Callable | None = None


class FrameCallbacks(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``on_timeframe(timestamps_ms, start_ms, end_ms, interval)`` when a frame's times are built."""

    on_timeframe: Callable | None = None


class RiskCallbacks(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``on_rejected(symbol, check_args)`` / ``on_allowed(symbol, check_args)``."""

    on_rejected: Callable | None = None
    on_allowed: Callable | None = None


class SizingCallbacks(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``on_calculate(quantity, params)`` after every position-size calculation."""

    on_calculate: Callable | None = None


class WalkerCallbacks(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``on_strategy_start(strategy_name, symbol)``, ``on_strategy_complete(strategy_name, symbol, stats, metric_value)``,
    ``on_strategy_error(strategy_name, symbol, error)``, ``on_complete(results)`` (once per symbol, and once
    more for the overall ranking of a several-symbol run)."""

    on_strategy_start: Callable | None = None
    on_strategy_complete: Callable | None = None
    on_strategy_error: Callable | None = None
    on_complete: Callable | None = None


# --- schemas ----------------------------------------------------------------------------

class ExchangeSchema(msgspec.Struct, frozen=True):
    exchange_name: str
    get_candles: Callable
    format_price: Callable | None = None
    format_quantity: Callable | None = None
    note: str = ""
    callbacks: ExchangeCallbacks = ExchangeCallbacks()
    # live_clock(symbol) -> a clock with async first(resume_at) / next(); None: the wall clock.
    live_clock: Callable | None = None
    close: Callable | None = None   # async, called once when the process shuts the exchange down
    # Candles per get_candles call; None: CC_MAX_CANDLES_PER_REQUEST (an in-memory source has no limit).
    candles_per_request: int | None = None


class FrameSchema(msgspec.Struct, frozen=True):
    frame_name: str
    start: int
    end: int
    interval: str = "1m"
    note: str = ""
    callbacks: FrameCallbacks = FrameCallbacks()


class StrategySchema(msgspec.Struct, frozen=True):
    strategy_name: str
    get_signal: Callable
    interval: str = "1m"
    risk_name: str | None = None
    risk_list: tuple[str, ...] = ()
    callbacks: StrategyCallbacks = StrategyCallbacks()
    note: str = ""
    # Set by add_sweep: get_signal is factory(**params), which is how a worker process rebuilds it.
    factory: Callable | None = None
    params: dict[str, Any] | None = None
    # Optional: entry signals for a whole backtest frame at once (engine/vectorised.py); a sweep's
    # is signals_factory(**params).
    get_signals: Callable | None = None
    signals_factory: Callable | None = None
    # Declared indicators (engine/indicators.py), read in get_signal with bk.get_indicators().
    indicators: dict[str, Any] = msgspec.field(default_factory=dict)

    @property
    def risk_names(self) -> tuple[str, ...]:
        names = ((self.risk_name,) if self.risk_name else ()) + self.risk_list
        return tuple(dict.fromkeys(names))


class RiskSchema(msgspec.Struct, frozen=True):
    risk_name: str
    validations: tuple[Any, ...] = ()
    callbacks: RiskCallbacks = RiskCallbacks()
    note: str = ""


class SizingSchema(msgspec.Struct, frozen=True):
    sizing_name: str
    method: str
    risk_percentage: float | None = None
    kelly_multiplier: float = 0.25
    atr_multiplier: float = 2.0
    max_position_percentage: float | None = None
    min_position_size: float | None = None
    max_position_size: float | None = None
    callbacks: SizingCallbacks = SizingCallbacks()
    note: str = ""


class WalkerSchema(msgspec.Struct, frozen=True):
    walker_name: str
    exchange_name: str
    frame_name: str
    strategies: tuple[str, ...]
    metric: str = "sharpe_ratio"
    callbacks: WalkerCallbacks = WalkerCallbacks()
    note: str = ""
    symbols: tuple[str, ...] = ()     # the symbols `btk walker` uses when none is given


_exchanges: dict[str, ExchangeSchema] = {}
_frames: dict[str, FrameSchema] = {}
_strategies: dict[str, StrategySchema] = {}
_risks: dict[str, RiskSchema] = {}
_sizings: dict[str, SizingSchema] = {}
_walkers: dict[str, WalkerSchema] = {}


# --- helpers ----------------------------------------------------------------------------

def _name(kind: str, value: Any, table: dict[str, Any], field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"add_{kind}: {field} must be a non-empty string, got {value!r}")
    if value in table:
        raise ValueError(f"add_{kind}: {kind} {value!r} is already registered")
    return value


def _callable(kind: str, name: str, field: str, value: Any, *, required: bool) -> Callable | None:
    if value is None:
        if required:
            raise ValueError(f"add_{kind} {name!r}: {field} is required")
        return None
    if not callable(value):
        raise ValueError(f"add_{kind} {name!r}: {field} must be callable, got {type(value).__name__}")
    return value


def _interval(kind: str, name: str, value: Any) -> str:
    if value not in INTERVAL_MINUTES:
        raise ValueError(f"add_{kind} {name!r}: unknown interval {value!r}: expected one of {', '.join(INTERVALS)}")
    return value


def _callbacks(kind: str, name: str, value: Any, cls: type) -> Any:
    """Accept the Callbacks struct, a dict, or any object with ``on_*`` attributes."""
    if value is None:
        return cls()
    if isinstance(value, cls):
        items = msgspec.structs.asdict(value)
    elif isinstance(value, dict):
        items = dict(value)
    else:
        items = {f: getattr(value, f) for f in cls.__struct_fields__ if getattr(value, f, None) is not None}
    unknown = sorted(set(items) - set(cls.__struct_fields__))
    if unknown:
        raise ValueError(f"add_{kind} {name!r}: unknown callback(s) {', '.join(unknown)}; "
                         f"valid: {', '.join(cls.__struct_fields__)}")
    for field, fn in items.items():
        if fn is not None and not callable(fn):
            raise ValueError(f"add_{kind} {name!r}: callback {field} must be callable")
    return cls(**items)


def _note(kind: str, name: str, note: Any) -> str:
    if not isinstance(note, str):
        raise ValueError(f"add_{kind} {name!r}: note must be a string")
    return note


# --- add_* ------------------------------------------------------------------------------

def add_exchange(exchange_name: str, get_candles: Callable, *, format_price: Callable | None = None,
                 format_quantity: Callable | None = None, note: str = "", callbacks: Any = None,
                 live_clock: Callable | None = None, close: Callable | None = None,
                 candles_per_request: int | None = None) -> None:
    """Register a candle source: ``get_candles(symbol, interval, since: datetime, limit)``.

    ``live_clock(symbol)`` gives live runs on this exchange their clock (the replay
    exchange's accelerated one); ``close()`` releases connections at shutdown.
    ``candles_per_request``: the most candles one call may ask for (None: the configured
    ``CC_MAX_CANDLES_PER_REQUEST``, an exchange API's usual page); an in-memory source can
    take a whole backtest's candles in one call."""
    name = _name("exchange", exchange_name, _exchanges, "exchange_name")
    if candles_per_request is not None and (isinstance(candles_per_request, bool)
                                            or not isinstance(candles_per_request, int) or candles_per_request < 1):
        raise ValueError(f"add_exchange {name!r}: candles_per_request must be a positive integer or None, "
                         f"got {candles_per_request!r}")
    _exchanges[name] = ExchangeSchema(
        exchange_name=name,
        get_candles=_callable("exchange", name, "get_candles", get_candles, required=True),  # type: ignore[arg-type]
        format_price=_callable("exchange", name, "format_price", format_price, required=False),
        format_quantity=_callable("exchange", name, "format_quantity", format_quantity, required=False),
        note=_note("exchange", name, note),
        callbacks=_callbacks("exchange", name, callbacks, ExchangeCallbacks),
        live_clock=_callable("exchange", name, "live_clock", live_clock, required=False),
        close=_callable("exchange", name, "close", close, required=False),
        candles_per_request=candles_per_request,
    )


def add_frame(frame_name: str, *, start: datetime | int, end: datetime | int, interval: str = "1m",
              note: str = "", callbacks: Any = None) -> None:
    """Register a backtest period ``[start, end]`` stepped by ``interval``."""
    name = _name("frame", frame_name, _frames, "frame_name")
    try:
        start_ms, end_ms = to_ms(start), to_ms(end)
    except TypeError as e:
        raise ValueError(f"add_frame {name!r}: start and end must be datetimes: {e}") from None
    if start_ms > end_ms:
        raise ValueError(f"add_frame {name!r}: start {iso(start_ms)} is after end {iso(end_ms)}")
    _frames[name] = FrameSchema(
        frame_name=name, start=start_ms, end=end_ms, interval=_interval("frame", name, interval),
        note=_note("frame", name, note), callbacks=_callbacks("frame", name, callbacks, FrameCallbacks),
    )


def add_strategy(strategy_name: str, get_signal: Callable, *, interval: str = "1m", risk_name: str | None = None,
                 risk_list: Sequence[str] = (), callbacks: Any = None, note: str = "",
                 factory: Callable | None = None, params: dict[str, Any] | None = None,
                 get_signals: Callable | None = None, signals_factory: Callable | None = None,
                 indicators: Mapping[str, Any] | None = None) -> None:
    """Register a strategy: ``get_signal(symbol, when: datetime) -> SignalDto | None`` (sync or async).
    ``get_signals(symbol, frame: SignalFrame) -> Signals``, if given, computes the same entries for
    a whole backtest frame at once (see engine/vectorised.py); backtests then use it.
    ``factory`` / ``params`` record that ``get_signal = factory(**params)`` (see ``add_sweep``), and
    ``signals_factory`` that ``get_signals = signals_factory(**params)``. ``indicators``: name ->
    ``Indicator(fn, startup=n)`` (or a function of candles), read with ``bk.get_indicators()``."""
    from .indicators import declared

    name = _name("strategy", strategy_name, _strategies, "strategy_name")
    if risk_name is not None and (not isinstance(risk_name, str) or not risk_name):
        raise ValueError(f"add_strategy {name!r}: risk_name must be a non-empty string or None")
    if isinstance(risk_list, str) or not all(isinstance(r, str) and r for r in risk_list):
        raise ValueError(f"add_strategy {name!r}: risk_list must be a sequence of risk names")
    _strategies[name] = StrategySchema(
        strategy_name=name,
        get_signal=_callable("strategy", name, "get_signal", get_signal, required=True),  # type: ignore[arg-type]
        interval=_interval("strategy", name, interval), risk_name=risk_name, risk_list=tuple(risk_list),
        callbacks=_callbacks("strategy", name, callbacks, StrategyCallbacks), note=_note("strategy", name, note),
        factory=factory, params=dict(params) if params is not None else None,
        get_signals=_callable("strategy", name, "get_signals", get_signals, required=False),
        signals_factory=signals_factory, indicators=declared(name, indicators),
    )


def add_risk(risk_name: str, *, validations: Sequence[Any] = (), callbacks: Any = None, note: str = "") -> None:
    """Register a risk profile: validations run in order; any may reject (raise, return a
    non-empty string, or return ``{"id", "note"}``). Each is a callable or ``{"validate", "note"}``."""
    name = _name("risk", risk_name, _risks, "risk_name")
    checked = []
    for i, v in enumerate(validations, 1):
        fn = v.get("validate") if isinstance(v, dict) else getattr(v, "validate", v)
        if not callable(fn):
            raise ValueError(f"add_risk {name!r}: validation #{i} is not callable (nor has a callable 'validate')")
        checked.append(v)
    _risks[name] = RiskSchema(risk_name=name, validations=tuple(checked),
                              callbacks=_callbacks("risk", name, callbacks, RiskCallbacks), note=_note("risk", name, note))


def add_sizing(sizing_name: str, *, method: str, risk_percentage: float | None = None,
               kelly_multiplier: float = 0.25, atr_multiplier: float = 2.0,
               max_position_percentage: float | None = None, min_position_size: float | None = None,
               max_position_size: float | None = None, callbacks: Any = None, note: str = "") -> None:
    """Register a position-sizing method: ``fixed-percentage``, ``kelly-criterion`` or ``atr-based``."""
    name = _name("sizing", sizing_name, _sizings, "sizing_name")
    if method not in SIZING_METHODS:
        raise ValueError(f"add_sizing {name!r}: unknown method {method!r}: expected one of {', '.join(SIZING_METHODS)}")
    problems = []
    if method in ("fixed-percentage", "atr-based") and risk_percentage is None:
        problems.append(f"risk_percentage is required for method {method}")

    def positive(field: str, value: Any, optional: bool) -> None:
        if value is None and optional:
            return
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
            problems.append(f"{field} must be a finite number > 0, got {value!r}")

    positive("risk_percentage", risk_percentage, True)
    positive("kelly_multiplier", kelly_multiplier, False)
    positive("atr_multiplier", atr_multiplier, False)
    positive("max_position_percentage", max_position_percentage, True)
    positive("min_position_size", min_position_size, True)
    positive("max_position_size", max_position_size, True)
    if min_position_size and max_position_size and min_position_size > max_position_size:
        problems.append("min_position_size must be <= max_position_size")
    if problems:
        raise ValueError(f"add_sizing {name!r}: " + "; ".join(problems))
    _sizings[name] = SizingSchema(
        sizing_name=name, method=method, risk_percentage=risk_percentage, kelly_multiplier=kelly_multiplier,
        atr_multiplier=atr_multiplier, max_position_percentage=max_position_percentage,
        min_position_size=min_position_size, max_position_size=max_position_size,
        callbacks=_callbacks("sizing", name, callbacks, SizingCallbacks), note=_note("sizing", name, note),
    )


def add_walker(walker_name: str, *, exchange_name: str, frame_name: str, strategies: Sequence[str],
               metric: str = "sharpe_ratio", callbacks: Any = None, note: str = "",
               symbols: Sequence[str] = ()) -> None:
    """Register a walker: ranks ``strategies`` on one symbol (or each of several, and overall),
    exchange and frame by ``metric``. ``symbols``: the default symbols of ``btk walker``."""
    name = _name("walker", walker_name, _walkers, "walker_name")
    for field, value in (("exchange_name", exchange_name), ("frame_name", frame_name)):
        if not isinstance(value, str) or not value:
            raise ValueError(f"add_walker {name!r}: {field} is required")
    if isinstance(strategies, str) or not strategies or not all(isinstance(s, str) and s for s in strategies):
        raise ValueError(f"add_walker {name!r}: strategies must be a non-empty list of strategy names")
    if len(set(strategies)) != len(strategies):
        raise ValueError(f"add_walker {name!r}: strategies lists a name twice")
    if metric not in WALKER_METRICS:
        raise ValueError(f"add_walker {name!r}: unknown metric {metric!r}: expected one of {', '.join(WALKER_METRICS)}")
    if isinstance(symbols, str) or not all(isinstance(s, str) and s for s in symbols):
        raise ValueError(f"add_walker {name!r}: symbols must be a list of symbol names")
    _walkers[name] = WalkerSchema(walker_name=name, exchange_name=exchange_name, frame_name=frame_name,
                                  strategies=tuple(strategies), metric=metric,
                                  callbacks=_callbacks("walker", name, callbacks, WalkerCallbacks),
                                  note=_note("walker", name, note), symbols=tuple(dict.fromkeys(symbols)))


# --- list_* / get_* ---------------------------------------------------------------------

def list_exchanges() -> list[ExchangeSchema]:
    return list(_exchanges.values())


def list_frames() -> list[FrameSchema]:
    return list(_frames.values())


def list_strategies() -> list[StrategySchema]:
    return list(_strategies.values())


def list_risks() -> list[RiskSchema]:
    return list(_risks.values())


def list_sizings() -> list[SizingSchema]:
    return list(_sizings.values())


def list_walkers() -> list[WalkerSchema]:
    return list(_walkers.values())


def _get(kind: str, table: dict[str, Any], name: str) -> Any:
    try:
        return table[name]
    except KeyError:
        known = ", ".join(sorted(table)) or "none registered"
        raise ValueError(f"unknown {kind} {name!r} (known: {known})") from None


def get_exchange(name: str) -> ExchangeSchema:
    return _get("exchange", _exchanges, name)


def get_frame(name: str) -> FrameSchema:
    return _get("frame", _frames, name)


def get_strategy(name: str) -> StrategySchema:
    return _get("strategy", _strategies, name)


def get_risk(name: str) -> RiskSchema:
    return _get("risk", _risks, name)


def get_sizing(name: str) -> SizingSchema:
    return _get("sizing", _sizings, name)


def get_walker(name: str) -> WalkerSchema:
    return _get("walker", _walkers, name)


def has_exchange(name: str) -> bool:
    return name in _exchanges


def clear_registry() -> None:
    """Forget every registration (tests, reloading a workspace)."""
    for table in (_exchanges, _frames, _strategies, _risks, _sizings, _walkers):
        table.clear()


# --- cross-references -------------------------------------------------------------------

def _strategy_refs(s: StrategySchema) -> list[str]:
    return [f"strategy {s.strategy_name!r} names unknown risk profile {r!r}"
            for r in s.risk_names if r not in _risks]


def reference_problems(*, strategy: str | None = None, exchange: str | None = None,
                       frame: str | None = None, walker: str | None = None) -> list[str]:
    """Problems with the names one run uses (all of them when called with no names)."""
    p: list[str] = []
    everything = strategy is None and exchange is None and frame is None and walker is None
    if everything:
        for s in _strategies.values():
            p += _strategy_refs(s)
        walkers = list(_walkers.values())
    else:
        if strategy is not None:
            if strategy in _strategies:
                p += _strategy_refs(_strategies[strategy])
            else:
                p.append(f"unknown strategy {strategy!r} (known: {', '.join(sorted(_strategies)) or 'none'})")
        if exchange is not None and exchange not in _exchanges:
            p.append(f"unknown exchange {exchange!r} (known: {', '.join(sorted(_exchanges)) or 'none'})")
        if frame is not None and frame not in _frames:
            p.append(f"unknown frame {frame!r} (known: {', '.join(sorted(_frames)) or 'none'})")
        walkers = []
        if walker is not None:
            if walker in _walkers:
                walkers = [_walkers[walker]]
            else:
                p.append(f"unknown walker {walker!r} (known: {', '.join(sorted(_walkers)) or 'none'})")
    for w in walkers:
        if w.exchange_name not in _exchanges:
            p.append(f"walker {w.walker_name!r} names unknown exchange {w.exchange_name!r}")
        if w.frame_name not in _frames:
            p.append(f"walker {w.walker_name!r} names unknown frame {w.frame_name!r}")
        for s in w.strategies:
            if s not in _strategies:
                p.append(f"walker {w.walker_name!r} names unknown strategy {s!r}")
            elif not everything:
                p += _strategy_refs(_strategies[s])
    return p


def raise_problems(problems: list[str], what: str) -> None:
    if problems:
        listed = "\n".join(f"  {i}. {m}" for i, m in enumerate(problems, 1))
        raise ValueError(f"{what}: {len(problems)} problem(s):\n{listed}")


def validate() -> None:
    """Check every cross-reference now; ``ValueError`` listing each problem."""
    raise_problems(reference_problems(), "validate")
