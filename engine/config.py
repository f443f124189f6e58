"""Global configuration (SEMANTICS.md section 1): ``set_config`` / ``get_config``.

``set_config`` validates the merged result and, on any failure, keeps the
previous config and raises one ``ValueError`` listing every problem, numbered.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec

from .log import get_logger


class GlobalConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    CC_SCHEDULE_AWAIT_MINUTES: int = 4320
    CC_AVG_PRICE_CANDLES_COUNT: int = 5
    CC_PERCENT_FEE: float = 0.1
    CC_PERCENT_SLIPPAGE: float = 0.1
    CC_MIN_TAKEPROFIT_DISTANCE_PERCENT: float = 0.2
    CC_MIN_STOPLOSS_DISTANCE_PERCENT: float = 0.1
    CC_MAX_STOPLOSS_DISTANCE_PERCENT: float = 10.0
    CC_MAX_SIGNAL_LIFETIME_MINUTES: float = 43200
    CC_MAX_SIGNAL_GENERATION_SECONDS: float = 180
    CC_GET_CANDLES_RETRY_COUNT: int = 3
    CC_GET_CANDLES_RETRY_DELAY_MS: int = 5000
    CC_MAX_CANDLES_PER_REQUEST: int = 1000
    CC_GET_CANDLES_PRICE_ANOMALY_THRESHOLD_FACTOR: float = 1000
    CC_GET_CANDLES_MIN_CANDLES_FOR_MEDIAN: int = 5
    CC_PRICE_TRIGGER: str = "vwap"
    CC_POSITION_ENTRY_COST: float = 100.0
    # Position management (backtest-kit's names): breakeven needs the price past the entry by
    # (slippage + fee) * 2 + this percent; the *_EVERYWHERE switches lift the guards on trailing
    # (only tighten), DCA (only below the lowest entry for a long) and partial closes (only on
    # the side they are named for).
    CC_BREAKEVEN_THRESHOLD: float = 0.2
    CC_ENABLE_TRAILING_EVERYWHERE: bool = False
    CC_ENABLE_DCA_EVERYWHERE: bool = False
    CC_ENABLE_PPPL_EVERYWHERE: bool = False


KEYS = tuple(GlobalConfig.__struct_fields__)
PRICE_TRIGGERS = ("vwap", "touch")

_config = GlobalConfig()


def get_config() -> GlobalConfig:
    return _config


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_int(v: Any) -> bool:
    return (isinstance(v, int) and not isinstance(v, bool)) or (
        isinstance(v, float) and math.isfinite(v) and v.is_integer()
    )


def config_problems(c: GlobalConfig) -> list[str]:
    """Every rule the config breaks, in a stable order (empty when valid)."""
    p: list[str] = []

    def number(key: str, *, minimum: float = 0.0, positive: bool = False) -> bool:
        v = getattr(c, key)
        if not _is_number(v) or not math.isfinite(v):
            p.append(f"{key} must be a finite number, got {v!r}")
            return False
        if positive and v <= 0:
            p.append(f"{key} must be > 0, got {v!r}")
            return False
        if v < minimum:
            p.append(f"{key} must be >= {minimum:g}, got {v!r}")
            return False
        return True

    def integer(key: str, *, positive: bool, allow_inf: bool = False) -> bool:
        v = getattr(c, key)
        if allow_inf and _is_number(v) and v == math.inf:
            return True
        if not _is_int(v):
            p.append(f"{key} must be an integer, got {v!r}")
            return False
        if positive and v <= 0:
            p.append(f"{key} must be a positive integer, got {v!r}")
            return False
        if not positive and v < 0:
            p.append(f"{key} must be an integer >= 0, got {v!r}")
            return False
        return True

    number("CC_PERCENT_FEE")
    number("CC_PERCENT_SLIPPAGE")
    number("CC_MIN_TAKEPROFIT_DISTANCE_PERCENT")
    min_sl = number("CC_MIN_STOPLOSS_DISTANCE_PERCENT")
    max_sl = number("CC_MAX_STOPLOSS_DISTANCE_PERCENT")
    if (min_sl and max_sl and c.CC_MIN_STOPLOSS_DISTANCE_PERCENT > 0
            and c.CC_MAX_STOPLOSS_DISTANCE_PERCENT > 0
            and c.CC_MIN_STOPLOSS_DISTANCE_PERCENT >= c.CC_MAX_STOPLOSS_DISTANCE_PERCENT):
        p.append(
            "CC_MIN_STOPLOSS_DISTANCE_PERCENT "
            f"({c.CC_MIN_STOPLOSS_DISTANCE_PERCENT:g}) must be < CC_MAX_STOPLOSS_DISTANCE_PERCENT "
            f"({c.CC_MAX_STOPLOSS_DISTANCE_PERCENT:g})"
        )
    integer("CC_SCHEDULE_AWAIT_MINUTES", positive=True)
    integer("CC_AVG_PRICE_CANDLES_COUNT", positive=True)
    integer("CC_MAX_SIGNAL_LIFETIME_MINUTES", positive=True, allow_inf=True)
    number("CC_MAX_SIGNAL_GENERATION_SECONDS", positive=True)
    integer("CC_GET_CANDLES_RETRY_COUNT", positive=False)
    integer("CC_GET_CANDLES_RETRY_DELAY_MS", positive=False)
    integer("CC_MAX_CANDLES_PER_REQUEST", positive=True)
    number("CC_GET_CANDLES_PRICE_ANOMALY_THRESHOLD_FACTOR", positive=True)
    integer("CC_GET_CANDLES_MIN_CANDLES_FOR_MEDIAN", positive=True)
    number("CC_POSITION_ENTRY_COST", positive=True)
    number("CC_BREAKEVEN_THRESHOLD")
    for key in ("CC_ENABLE_TRAILING_EVERYWHERE", "CC_ENABLE_DCA_EVERYWHERE", "CC_ENABLE_PPPL_EVERYWHERE"):
        if not isinstance(getattr(c, key), bool):
            p.append(f"{key} must be True or False, got {getattr(c, key)!r}")
    if c.CC_PRICE_TRIGGER not in PRICE_TRIGGERS:
        p.append(f"CC_PRICE_TRIGGER must be one of {', '.join(PRICE_TRIGGERS)}, got {c.CC_PRICE_TRIGGER!r}")
    return p


def set_config(*, unsafe: bool = False, **keys: Any) -> GlobalConfig:
    """Merge ``keys`` into the config; validate unless ``unsafe``. Returns the new config."""
    global _config
    unknown = [k for k in keys if k not in KEYS]
    if unknown:
        raise ValueError(
            f"set_config: unknown key(s) {', '.join(sorted(unknown))}; valid keys: {', '.join(KEYS)}"
        )
    candidate = msgspec.structs.replace(_config, **keys)
    if not unsafe:
        problems = config_problems(candidate)
        if problems:
            listed = "\n".join(f"  {i}. {msg}" for i, msg in enumerate(problems, 1))
            raise ValueError(f"set_config: {len(problems)} problem(s), config unchanged:\n{listed}")
        round_trip = 2 * candidate.CC_PERCENT_FEE + 2 * candidate.CC_PERCENT_SLIPPAGE
        # Warn when this call sets one of the three (the defaults alone are below the round trip).
        if _COST_KEYS & keys.keys() and 0 < candidate.CC_MIN_TAKEPROFIT_DISTANCE_PERCENT < round_trip:
            get_logger().warning(
                "CC_MIN_TAKEPROFIT_DISTANCE_PERCENT=%g is below the round-trip cost %g%% "
                "(2*fee + 2*slippage): signals may close at take-profit with a loss",
                candidate.CC_MIN_TAKEPROFIT_DISTANCE_PERCENT, round_trip,
            )
    # Integral floats (e.g. 4320.0) are stored as ints so minute arithmetic stays exact.
    fixes = {k: int(v) for k, v in msgspec.structs.asdict(candidate).items()
             if isinstance(v, float) and v.is_integer() and k in _INT_KEYS}
    _config = msgspec.structs.replace(candidate, **fixes) if fixes else candidate
    return _config


_COST_KEYS = {"CC_PERCENT_FEE", "CC_PERCENT_SLIPPAGE", "CC_MIN_TAKEPROFIT_DISTANCE_PERCENT"}
_INT_KEYS = {
    "CC_SCHEDULE_AWAIT_MINUTES", "CC_AVG_PRICE_CANDLES_COUNT", "CC_MAX_SIGNAL_LIFETIME_MINUTES",
    "CC_GET_CANDLES_RETRY_COUNT", "CC_GET_CANDLES_RETRY_DELAY_MS", "CC_MAX_CANDLES_PER_REQUEST",
    "CC_GET_CANDLES_MIN_CANDLES_FOR_MEDIAN",
}


def reset_config() -> GlobalConfig:
    """Back to the defaults (tests, reloading a workspace)."""
    global _config
    _config = GlobalConfig()
    return _config
