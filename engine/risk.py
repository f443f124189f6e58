"""Risk profiles (SEMANTICS.md section 7).

A profile is a list of validations run in order on a ``RiskCheckArgs``; one
rejects by raising (message = note), by returning a non-empty string, or by
returning an ``{id, note}`` object (``False`` rejects with a generic note).
A profile is shared by every strategy that names it: positions are keyed by
strategy + exchange + symbol, so limits hold across strategies, symbols and
concurrent runs.

Reserve, then confirm: a check that passes reserves the slot at once (under
the profile's lock, so async validations cannot interleave), the open confirms
it, and a close, a cancel or a later profile's rejection releases it. Two
strategies can therefore never both take the last slot. A scheduled signal
holds its reservation while it waits; its activation re-checks the profile with
its own slot left out of the count.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import msgspec

from .registry import RiskSchema, get_risk
from .types import SignalRow


class RiskPosition(msgspec.Struct, frozen=True):
    signal: SignalRow
    strategy_name: str
    exchange_name: str
    symbol: str
    opened_at: int
    reserved: bool = False   # checked, not open yet (a scheduled order waiting for its price)


class RiskCheckArgs(msgspec.Struct, frozen=True):
    symbol: str
    signal: SignalRow
    strategy_name: str
    exchange_name: str
    risk_name: str
    current_price: float
    timestamp: int
    active_position_count: int
    active_positions: list[RiskPosition]


class Rejection(msgspec.Struct, frozen=True):
    risk_name: str
    id: str | None
    note: str
    error: BaseException | None = None


def _key(strategy_name: str, exchange_name: str, symbol: str) -> str:
    return f"{strategy_name}:{exchange_name}:{symbol}"


class ClientRisk:
    def __init__(self, schema: RiskSchema):
        self.schema = schema
        self.positions: dict[str, RiskPosition] = {}   # open positions (persisted in live mode)
        self.reserved: dict[str, RiskPosition] = {}    # passed a check, not open yet
        self.restored = False   # live: positions loaded from the state dir once per process
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None

    def _others(self, key: str) -> list[RiskPosition]:
        return [p for k, p in (*self.positions.items(), *self.reserved.items()) if k != key]

    def active_count(self) -> int:
        return len(self.positions.keys() | self.reserved.keys())

    def lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        return self._lock

    async def check(self, args_without_positions: dict[str, Any]) -> Rejection | None:
        """Run the validations; on a pass, reserve the slot of the signal's owner (atomically)."""
        key = _key(args_without_positions["strategy_name"], args_without_positions["exchange_name"],
                   args_without_positions["symbol"])
        async with self.lock():
            args = self._args(key, args_without_positions)
            rejection = await self._validate(args)
            self._reserve_if_passed(key, args, rejection)
        await self._callback("on_rejected" if rejection is not None else "on_allowed", args)
        return rejection

    @property
    def synchronous(self) -> bool:
        """Whether every validation and callback is a plain function: ``check_now`` may then run
        the check without awaiting (no other task can interleave, so no lock is needed)."""
        functions = [v.get("validate") if isinstance(v, dict) else getattr(v, "validate", v)
                     for v in self.schema.validations]
        functions += [getattr(self.schema.callbacks, name) for name in ("on_rejected", "on_allowed")]
        return not any(inspect.iscoroutinefunction(fn) for fn in functions if fn is not None)

    def check_now(self, args_without_positions: dict[str, Any]) -> Rejection | None:
        """``check`` for a ``synchronous`` profile, without awaiting (a backtest's lane). A
        validation that returns an awaitable all the same rejects with a message that says so."""
        key = _key(args_without_positions["strategy_name"], args_without_positions["exchange_name"],
                   args_without_positions["symbol"])
        args = self._args(key, args_without_positions)
        rejection = None
        for i, validation in enumerate(self.schema.validations, 1):
            fn, note = _validation(validation)
            try:
                result = fn(args)
            except Exception as exc:
                rejection = Rejection(self.schema.risk_name, None, str(exc) or note or type(exc).__name__, exc)
                break
            if inspect.isawaitable(result):
                if inspect.iscoroutine(result):
                    result.close()
                error = TypeError(f"risk {self.schema.risk_name}: validation #{i} returned an awaitable; make it "
                                  "an async def so the engine awaits it")
                rejection = Rejection(self.schema.risk_name, None, str(error), error)
                break
            rejection = self._as_rejection(result, note, i)
            if rejection is not None:
                break
        self._reserve_if_passed(key, args, rejection)
        name = "on_rejected" if rejection is not None else "on_allowed"
        fn = getattr(self.schema.callbacks, name)
        if fn is not None:
            try:
                fn(args.symbol, args)
            except Exception as exc:
                self._report_callback(exc, name, args)
        return rejection

    def _args(self, key: str, args_without_positions: dict[str, Any]) -> RiskCheckArgs:
        others = self._others(key)
        return RiskCheckArgs(risk_name=self.schema.risk_name, active_position_count=len(others),
                             active_positions=others, **args_without_positions)

    def _reserve_if_passed(self, key: str, args: RiskCheckArgs, rejection: Rejection | None) -> None:
        if rejection is None and key not in self.positions:
            self.reserved[key] = RiskPosition(args.signal, args.strategy_name, args.exchange_name, args.symbol,
                                              args.timestamp, reserved=True)

    async def _validate(self, args: RiskCheckArgs) -> Rejection | None:
        for i, validation in enumerate(self.schema.validations, 1):
            fn, note = _validation(validation)
            try:
                result = fn(args)
                if inspect.isawaitable(result):
                    result = await result
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                return Rejection(self.schema.risk_name, None, str(exc) or note or type(exc).__name__, exc)
            rejection = self._as_rejection(result, note, i)
            if rejection is not None:
                return rejection
        return None

    def _as_rejection(self, result: Any, note: str, index: int) -> Rejection | None:
        name = self.schema.risk_name
        if result is None or result is True or result == "":
            return None
        if result is False:
            return Rejection(name, None, note or f"rejected by validation #{index}")
        if isinstance(result, str):
            return Rejection(name, None, result)
        if isinstance(result, dict):
            return Rejection(name, _opt_str(result.get("id")), str(result.get("note") or note or f"validation #{index}"))
        if hasattr(result, "note") or hasattr(result, "id"):
            return Rejection(name, _opt_str(getattr(result, "id", None)),
                             str(getattr(result, "note", "") or note or f"validation #{index}"))
        return None

    async def _callback(self, name: str, args: RiskCheckArgs) -> None:
        fn = getattr(self.schema.callbacks, name)
        if fn is None:
            return
        try:
            result = fn(args.symbol, args)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:  # a callback bug is reported, never a rejection nor a crash
            self._report_callback(exc, name, args)

    def _report_callback(self, exc: BaseException, name: str, args: RiskCheckArgs) -> None:
        from .events import bus
        bus.report(exc, where=f"risk {self.schema.risk_name} callback {name}", symbol=args.symbol,
                   strategy_name=args.strategy_name, exchange_name=args.exchange_name)

    def confirm(self, signal: SignalRow, *, strategy_name: str, exchange_name: str, symbol: str, when: int) -> None:
        """The reserved slot is now an open position (also how restored positions come back)."""
        key = _key(strategy_name, exchange_name, symbol)
        self.reserved.pop(key, None)
        self.positions[key] = RiskPosition(signal, strategy_name, exchange_name, symbol, when)

    def reserve(self, signal: SignalRow, *, strategy_name: str, exchange_name: str, symbol: str, when: int) -> None:
        """Hold a slot without a check (a restored scheduled signal passed its check before the restart)."""
        key = _key(strategy_name, exchange_name, symbol)
        if key not in self.positions:
            self.reserved[key] = RiskPosition(signal, strategy_name, exchange_name, symbol, when, reserved=True)

    def release(self, *, strategy_name: str, exchange_name: str, symbol: str) -> bool:
        """Free the owner's slot, open or reserved; True if an open position was removed."""
        key = _key(strategy_name, exchange_name, symbol)
        self.reserved.pop(key, None)
        return self.positions.pop(key, None) is not None

    def has(self, *, strategy_name: str, exchange_name: str, symbol: str) -> bool:
        return _key(strategy_name, exchange_name, symbol) in self.positions


def _validation(validation: Any) -> tuple[Any, str]:
    """(function, note) of a validation: a callable, an object with ``validate``, or a dict."""
    if isinstance(validation, dict):
        return validation["validate"], validation.get("note", "")
    return getattr(validation, "validate", validation), getattr(validation, "note", "")


def _opt_str(v: Any) -> str | None:
    return None if v is None else str(v)


_instances: dict[str, ClientRisk] = {}


def risk_for(risk_name: str) -> ClientRisk:
    """The process-wide profile instance (recreated if the profile was re-registered)."""
    schema = get_risk(risk_name)
    instance = _instances.get(risk_name)
    if instance is None or instance.schema is not schema:
        instance = _instances[risk_name] = ClientRisk(schema)
    return instance


def reset_risks() -> None:
    """Forget every profile's positions (tests, reloading a workspace)."""
    _instances.clear()
