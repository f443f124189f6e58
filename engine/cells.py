"""Cells: one backtest of one strategy on one symbol over one frame, the unit a walker or a sweep
hands to an executor.

A cell carries names, parameters and module paths only, never functions or candles: a worker
process (``process`` pool or a Dask worker) imports the strategy by module path, rebuilds a sweep
strategy as ``factory(**params)``, and reads candles from the store itself. Its content hash
(strategy code and parameters, symbol, exchange, frame, config) keys the result cache.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import importlib.util
import inspect
import sys
import time
from pathlib import Path
from typing import Any

import msgspec

from .config import get_config, reset_config, set_config
from .events import bus
from .log import describe_error
from .exchange.bundled import StoreExchange, add_store_exchange
from .registry import StrategySchema, get_exchange, get_frame, get_risk, get_strategy
from .stats import BacktestStatistics, backtest_statistics

# Bump when a change to the engine changes backtest results: every cached cell is then recomputed.
CELL_FORMAT = "btk-cell-1"


class Ref(msgspec.Struct, frozen=True):
    """Where a worker finds a function: the module ``module`` (imported by name where that name
    finds ``file``, else loaded from ``file``: a user's ``--load`` file), then ``name``."""

    module: str
    name: str
    file: str | None = None


class RiskSpec(msgspec.Struct, frozen=True):
    risk_name: str
    validations: tuple[tuple[Ref, str], ...]


class StrategySpec(msgspec.Struct, frozen=True):
    strategy_name: str
    interval: str
    code: str                                 # hash of the source files the strategy comes from
    get_signal: Ref | None = None             # a module-level function...
    factory: Ref | None = None                # ...or factory(**params) (a sweep)
    params: dict[str, Any] | None = None
    risks: tuple[RiskSpec, ...] = ()
    get_signals: Ref | None = None            # the vectorised twin, likewise (None: per frame)
    signals_factory: Ref | None = None
    callbacks: tuple[tuple[str, Ref], ...] = ()   # (on_active_ping, its function), ...: they may command


class ExchangeSpec(msgspec.Struct, frozen=True):
    exchange_name: str
    store_path: str | None = None             # a candle-store exchange (StoreExchange)...
    get_candles: Ref | None = None            # ...or an importable get_candles function


class Cell(msgspec.Struct, frozen=True):
    strategy: StrategySpec
    symbol: str
    exchange: ExchangeSpec
    frame_name: str
    start: int
    end: int
    frame_interval: str
    config: dict[str, Any]

    @property
    def key(self) -> str:
        """Content hash: the same strategy code and parameters, symbol, exchange, frame and config
        give the same key, so a finished cell is never computed twice."""
        s = self.strategy
        identity = [CELL_FORMAT, s.strategy_name, s.interval, s.code, s.params, [r.risk_name for r in s.risks],
                    self.symbol, self.exchange.exchange_name, self.start, self.end, self.frame_interval, self.config]
        return hashlib.sha256(msgspec.json.encode(identity, order="sorted")).hexdigest()


class CellResult(msgspec.Struct, frozen=True):
    strategy_name: str
    symbol: str
    key: str
    stats: BacktestStatistics | None = None   # None when the cell failed
    error: str | None = None
    seconds: float = 0.0
    cached: bool = False
    vectorised: bool = False                  # the cell ran on the strategy's get_signals


class NotPortable(ValueError):
    """A cell cannot be shipped to another process (its strategy is not importable)."""


# --- building cells in the main process ---------------------------------------------------------

def _module_file(module_name: str) -> str | None:
    module = sys.modules.get(module_name)
    file = getattr(module, "__file__", None)
    return str(Path(file).resolve()) if file else None


def _fingerprint(*functions: Any) -> str:
    """Hash of the source files the functions are defined in (their whole modules: a helper the
    strategy calls counts too); a function without a file hashes its own source."""
    h = hashlib.sha256()
    for fn in functions:
        file = _module_file(getattr(fn, "__module__", "") or "")
        if file and Path(file).is_file():
            h.update(Path(file).read_bytes())
        else:
            try:
                h.update(inspect.getsource(fn).encode())
            except (OSError, TypeError):
                h.update(repr(fn).encode())
    return h.hexdigest()


def ref_of(fn: Any) -> Ref | None:
    """How a worker imports ``fn``: by its module and a module-level name bound to it; None if
    ``fn`` is not reachable that way (a lambda, a closure, a bound method)."""
    module_name = getattr(fn, "__module__", None)
    module = sys.modules.get(module_name or "")
    if module is None:
        return None
    qualname = getattr(fn, "__qualname__", "")
    name = qualname if qualname and "<" not in qualname and getattr(module, qualname, None) is fn else None
    if name is None:  # e.g. `get_signal = make_signal()` at module level
        name = next((k for k, v in vars(module).items() if v is fn), None)
    if name is None:
        return None
    return Ref(module_name, name, _module_file(module_name))  # type: ignore[arg-type]


def strategy_spec(schema: StrategySchema, *, portable: bool) -> StrategySpec:
    """The spec of a registered strategy; ``portable`` demands that a worker can rebuild it."""
    name = schema.strategy_name
    source = schema.factory if schema.factory is not None else schema.get_signal
    risks = []
    for risk_name in schema.risk_names:
        validations = []
        for v in get_risk(risk_name).validations:
            fn = v.get("validate") if isinstance(v, dict) else v
            note = v.get("note", "") if isinstance(v, dict) else getattr(v, "note", "")
            ref = ref_of(fn)
            if ref is None and portable:
                raise NotPortable(f"strategy {name!r}: risk profile {risk_name!r} has a validation ({fn!r}) that a "
                                  "worker process cannot import; define it at module level, or use executor inline")
            validations.append((ref or Ref("", repr(fn)), note))
        risks.append(RiskSpec(risk_name, tuple(validations)))
    ref = ref_of(source)
    if ref is None and portable:
        what = "factory" if schema.factory is not None else "get_signal"
        raise NotPortable(f"strategy {name!r}: its {what} ({source!r}) cannot be imported by a worker process "
                          "(a lambda, a closure or a method); define it at module level or register it with "
                          "add_sweep, or use executor inline")
    # Callbacks travel too: they may act on the position (position commands), so a cell without
    # them would trade otherwise.
    callbacks = []
    hooks = [(hook, fn) for hook in schema.callbacks.__struct_fields__
             if (fn := getattr(schema.callbacks, hook)) is not None]
    for hook, fn in hooks:
        hook_ref = ref_of(fn)
        if hook_ref is None:
            if portable:
                raise NotPortable(f"strategy {name!r}: its callback {hook} ({fn!r}) cannot be imported by a worker "
                                  "process; define it at module level, or use executor inline")
            hook_ref = Ref("", repr(fn))
        callbacks.append((hook, hook_ref))
    # The vectorised twin travels too when a worker can import it (else the worker runs per frame:
    # the same results, slower).
    twin = schema.signals_factory if schema.signals_factory is not None else schema.get_signals
    twin_ref = ref_of(twin) if twin is not None else None
    return StrategySpec(
        strategy_name=name, interval=schema.interval,
        code=_fingerprint(source, *([twin] if twin else []), *(fn for _, fn in hooks)),
        callbacks=tuple(callbacks),
        get_signal=ref if schema.factory is None else None, factory=ref if schema.factory is not None else None,
        params=schema.params, risks=tuple(risks),
        get_signals=twin_ref if schema.signals_factory is None else None,
        signals_factory=twin_ref if schema.signals_factory is not None else None)


def exchange_spec(exchange_name: str, *, portable: bool) -> ExchangeSpec:
    fn = get_exchange(exchange_name).get_candles
    owner = getattr(fn, "__self__", None)
    if isinstance(owner, StoreExchange):
        return ExchangeSpec(exchange_name, store_path=owner.store_path)
    ref = ref_of(fn)
    if ref is None and portable:
        raise NotPortable(f"exchange {exchange_name!r}: a worker process can only use candle-store exchanges or an "
                          "importable module-level get_candles; use executor inline")
    return ExchangeSpec(exchange_name, get_candles=ref)


def make_cell(strategy_name: str, symbol: str, exchange_name: str, frame_name: str, *, portable: bool) -> Cell:
    frame = get_frame(frame_name)
    return Cell(strategy=strategy_spec(get_strategy(strategy_name), portable=portable), symbol=symbol,
                exchange=exchange_spec(exchange_name, portable=portable), frame_name=frame_name, start=frame.start,
                end=frame.end, frame_interval=frame.interval, config=msgspec.structs.asdict(get_config()))


# --- running a cell ----------------------------------------------------------------------------

async def run_cell_async(cell: Cell) -> CellResult:
    """Backtest the cell with what is registered in this process; never raises (``error`` instead)."""
    from .runners.backtest import RunState, _run

    started = time.perf_counter()
    state = RunState(cell.symbol, cell.strategy.strategy_name, cell.exchange.exchange_name, cell.frame_name,
                     status="running")
    try:
        async for _ in _run(state):
            pass
    except Exception as exc:
        bus.report(exc, where="walker cell", symbol=cell.symbol, strategy_name=cell.strategy.strategy_name,
                   exchange_name=cell.exchange.exchange_name, frame_name=cell.frame_name, backtest=True)
        return CellResult(cell.strategy.strategy_name, cell.symbol, cell.key, error=describe_error(exc),
                          seconds=time.perf_counter() - started)
    return CellResult(cell.strategy.strategy_name, cell.symbol, cell.key, stats=backtest_statistics(state.closed),
                      seconds=time.perf_counter() - started, vectorised=bool(state.vectorised))


def run_cell(cell: Cell) -> CellResult:
    """Worker entry point (a ``process`` pool or a Dask worker): register what the cell names in
    this process's own registry, then run it on a fresh event loop."""
    try:
        _prepare_worker(cell)
    except Exception as exc:
        return CellResult(cell.strategy.strategy_name, cell.symbol, cell.key,
                          error=f"worker could not load the cell: {describe_error(exc)}")
    return _run_in_new_loop(run_cell_async(cell))


def _run_in_new_loop(work: Any) -> Any:
    """``asyncio.run(work)``, its result passed outside the main task. (CPython 3.11's
    ``asyncio.run`` ends with ``signal.getsignal``, which formats the repr of its main task, result
    included: 80 ms for a cell's statistics of 5,818 trades, paid in every worker.)"""
    out: list[Any] = []

    async def main() -> None:
        out.append(await work)
    asyncio.run(main())
    return out[0]


def run_cells(cells: list[Cell]) -> list[CellResult]:
    """Worker entry point for a batch of cells (Dask: one task for several, far less scheduling)."""
    return [run_cell(cell) for cell in cells]


_loaded_files: dict[str, Any] = {}


def _importable_as(module_name: str, file: str | None) -> bool:
    """Whether importing ``module_name`` here finds ``file`` (or, without a file, anything).
    A user's file loaded by path (``btk --load grid.py``) is found by no name in a worker."""
    if module_name == "__main__":
        return False
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        return False
    if spec is None:
        return False
    return file is None or (spec.origin is not None and Path(spec.origin).resolve() == Path(file).resolve())


def resolve(ref: Ref) -> Any:
    if ref.file is not None and not _importable_as(ref.module, ref.file):
        module = _loaded_files.get(ref.file)
        if module is None:
            if not Path(ref.file).is_file():
                raise ImportError(f"{ref.file} (where {ref.module}.{ref.name} was defined) is not on this machine")
            spec = importlib.util.spec_from_file_location(ref.module, ref.file)
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot load {ref.file}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[ref.module] = module
            spec.loader.exec_module(module)
            _loaded_files[ref.file] = module
    else:
        module = importlib.import_module(ref.module)
    return getattr(module, ref.name)


def _prepare_worker(cell: Cell) -> None:
    from . import registry
    from .risk import reset_risks

    s, ex = cell.strategy, cell.exchange
    # Import first: a user file may register things as it loads; the clean registry comes after.
    get_candles = None if ex.store_path is not None else resolve(ex.get_candles)  # type: ignore[arg-type]
    validations = {risk.risk_name: [{"validate": resolve(ref), "note": note} for ref, note in risk.validations]
                   for risk in s.risks}
    factory = resolve(s.factory) if s.factory is not None else None
    get_signal = factory(**(s.params or {})) if factory is not None else resolve(s.get_signal)  # type: ignore[arg-type]
    signals_factory = resolve(s.signals_factory) if s.signals_factory is not None else None
    get_signals = signals_factory(**(s.params or {})) if signals_factory is not None else \
        resolve(s.get_signals) if s.get_signals is not None else None
    callbacks = registry.StrategyCallbacks(**{hook: resolve(ref) for hook, ref in s.callbacks})
    # Each cell in a worker is a backtest on its own: a clean registry with just what it names.
    registry.clear_registry()
    reset_risks()
    reset_config()
    set_config(unsafe=True, **cell.config)
    if ex.store_path is not None:
        add_store_exchange(ex.exchange_name, ex.store_path)
    else:
        registry.add_exchange(ex.exchange_name, get_candles)
    registry.add_frame(cell.frame_name, start=cell.start, end=cell.end, interval=cell.frame_interval)
    for risk_name, checks in validations.items():
        registry.add_risk(risk_name, validations=checks)
    registry.add_strategy(s.strategy_name, get_signal, interval=s.interval, risk_list=list(validations),
                          factory=factory, params=s.params, get_signals=get_signals, signals_factory=signals_factory,
                          callbacks=callbacks)
