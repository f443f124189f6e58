"""Risk profiles (SEMANTICS.md section 7).

A profile is a list of validations run in order on a ``RiskCheckArgs``; one
rejects by raising (message = note), by returning a non-empty string, or by
returning an ``{id, note}`` object (``False`` rejects with a generic note).
A profile is shared by every strategy that names it: positions are keyed by
strategy + exchange + symbol, added when a position opens and removed when it
closes, so limits hold across strategies, symbols and concurrent runs.
"""

from __future__ import annotations

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
        self.positions: dict[str, RiskPosition] = {}
        self.restored = False   # live: positions loaded from the state dir once per process

    async def check(self, args_without_positions: dict[str, Any]) -> Rejection | None:
        args = RiskCheckArgs(risk_name=self.schema.risk_name, active_position_count=len(self.positions),
                             active_positions=list(self.positions.values()), **args_without_positions)
        for i, validation in enumerate(self.schema.validations, 1):
            if isinstance(validation, dict):
                fn, note = validation["validate"], validation.get("note", "")
            else:
                fn, note = getattr(validation, "validate", validation), getattr(validation, "note", "")
            try:
                result = fn(args)
                if inspect.isawaitable(result):
                    result = await result
            except Exception as exc:
                return Rejection(self.schema.risk_name, None, str(exc) or note or type(exc).__name__, exc)
            rejection = self._as_rejection(result, note, i)
            if rejection is not None:
                self._callback("on_rejected", args)
                return rejection
        self._callback("on_allowed", args)
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

    def _callback(self, name: str, args: RiskCheckArgs) -> None:
        fn = getattr(self.schema.callbacks, name)
        if fn is not None:
            fn(args.symbol, args)

    def add(self, signal: SignalRow, *, strategy_name: str, exchange_name: str, symbol: str, when: int) -> None:
        self.positions[_key(strategy_name, exchange_name, symbol)] = RiskPosition(
            signal, strategy_name, exchange_name, symbol, when)

    def remove(self, *, strategy_name: str, exchange_name: str, symbol: str) -> None:
        self.positions.pop(_key(strategy_name, exchange_name, symbol), None)

    def has(self, *, strategy_name: str, exchange_name: str, symbol: str) -> bool:
        return _key(strategy_name, exchange_name, symbol) in self.positions


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
