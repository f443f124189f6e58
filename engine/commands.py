"""Commands that act on a position, and what they read (backtest-kit 19.5's ``commit*``).

From strategy code (a callback, ``get_signal``) they act on the strategy running it, at the
current VWAP: ``await bk.commit_trailing_stop(symbol, -2)``. From outside a strategy (a
listener, the console, a script) they name the run: ``await bk.Live.commit_close_pending(symbol,
strategy_name=...)``, the same on ``bk.Backtest``. Each returns a ``CommitResult``: truthy when
it took effect, else falsy with its ``reason``; bad arguments raise ``ValueError``. The rules are
in ``engine/position.py``.
"""

from __future__ import annotations

from typing import Any

from .config import get_config
from .context import current_execution, execution_context
from .pnl import effective_price
from .position import CommitPreview, CommitResult, held_percent
from .types import Entry, PartialClose, SignalRow


def _owner(fn_name: str, symbol: str) -> Any:
    ctx = current_execution(fn_name)
    if symbol != ctx.symbol:
        raise ValueError(f"bk.{fn_name}({symbol!r}): this strategy runs on {ctx.symbol!r}; its commands act on "
                         f"its own symbol")
    return ctx.owner


async def _commit(fn_name: str, symbol: str, action: str, **kw: Any) -> CommitResult:
    return await _owner(fn_name, symbol).commit(action, source="strategy", **kw)


async def commit_cancel_scheduled(symbol: str) -> CommitResult:
    """Cancel the scheduled order (reason ``user``); the strategy goes on taking signals."""
    return await _commit("commit_cancel_scheduled", symbol, "cancel_scheduled")


async def commit_activate_scheduled(symbol: str) -> CommitResult:
    """Open the scheduled order now, at its own price (its fill), after the risk check."""
    return await _commit("commit_activate_scheduled", symbol, "activate_scheduled")


async def commit_close_pending(symbol: str) -> CommitResult:
    """Close the open position now at the VWAP (close reason ``closed``)."""
    return await _commit("commit_close_pending", symbol, "close_pending")


async def commit_partial_profit(symbol: str, percent_to_close: float) -> CommitResult:
    """Close ``percent_to_close`` of what is held, in profit (the price past the entry, short of TP)."""
    return await _commit("commit_partial_profit", symbol, "partial_profit", percent=percent_to_close)


async def commit_partial_loss(symbol: str, percent_to_close: float) -> CommitResult:
    """Close ``percent_to_close`` of what is held, in loss (the price short of the entry, before SL)."""
    return await _commit("commit_partial_loss", symbol, "partial_loss", percent=percent_to_close)


async def commit_trailing_stop(symbol: str, percent_shift: float) -> CommitResult:
    """Set the stop-loss at the original distance from the entry plus ``percent_shift`` percent
    (negative: tighter). Only tightens, unless ``CC_ENABLE_TRAILING_EVERYWHERE``."""
    return await _commit("commit_trailing_stop", symbol, "trailing_stop", percent=percent_shift)


async def commit_trailing_take(symbol: str, percent_shift: float) -> CommitResult:
    """Set the take-profit at the original distance plus ``percent_shift`` percent. Only comes
    closer to the entry, unless ``CC_ENABLE_TRAILING_EVERYWHERE``."""
    return await _commit("commit_trailing_take", symbol, "trailing_take", percent=percent_shift)


async def commit_breakeven(symbol: str) -> CommitResult:
    """Move the stop-loss to the effective entry, once the price passed
    ``(slippage + fee) * 2 + CC_BREAKEVEN_THRESHOLD`` percent beyond it."""
    return await _commit("commit_breakeven", symbol, "breakeven")


async def commit_average_buy(symbol: str, cost: float | None = None) -> CommitResult:
    """Add an entry at the VWAP for ``cost`` (default ``CC_POSITION_ENTRY_COST``): a long only
    below its lowest entry, a short only above its highest (unless ``CC_ENABLE_DCA_EVERYWHERE``)."""
    return await _commit("commit_average_buy", symbol, "average_buy", cost=cost)


# --- what the commands act on (strategy code) -------------------------------------------------

def get_pending_signal(symbol: str) -> SignalRow | None:
    """The open position of the strategy running this code (None: there is none)."""
    return _owner("get_pending_signal", symbol).pending


def get_scheduled_signal(symbol: str) -> SignalRow | None:
    """The order waiting for its price (None: there is none)."""
    return _owner("get_scheduled_signal", symbol).scheduled


def _position(fn_name: str, symbol: str) -> SignalRow | None:
    return _owner(fn_name, symbol).pending


def get_position_percent_held(symbol: str) -> float | None:
    """The share of the money put in that is still held, in percent (None without a position)."""
    row = _position("get_position_percent_held", symbol)
    return None if row is None else held_percent(row)


def get_position_effective_price(symbol: str) -> float | None:
    """The entry price the position is judged at: its entries averaged by money (harmonic)."""
    row = _position("get_position_effective_price", symbol)
    return None if row is None else effective_price(row)


def get_position_entries(symbol: str) -> tuple[Entry, ...] | None:
    """The entries (price, money): one unless ``commit_average_buy`` added more."""
    row = _position("get_position_entries", symbol)
    if row is None:
        return None
    return row.entries or (Entry(row.price_open, get_config().CC_POSITION_ENTRY_COST),)


def get_position_partials(symbol: str) -> tuple[PartialClose, ...] | None:
    """The partial closes so far, oldest first."""
    row = _position("get_position_partials", symbol)
    return None if row is None else row.partials


# --- from outside a strategy: Live.commit_* and Backtest.commit_* ------------------------------

class PositionCommands:
    """``commit_*`` on a run named by symbol and strategy, from outside its strategy code. Mixed
    into ``Live`` (which holds the run's lock, so a command never lands inside a minute's work)
    and ``Backtest`` (which acts at once, at the run's clock)."""

    @classmethod
    def _running_strategy(cls, symbol: str, strategy_name: str) -> Any:
        raise NotImplementedError

    @classmethod
    async def _command(cls, symbol: str, strategy_name: str, action: str, source: str, **kw: Any) -> CommitResult:
        strategy = cls._running_strategy(symbol, strategy_name)
        ctx = execution_context.get()
        if ctx is not None and ctx.owner is strategy:     # from its own code, inside its minute's work
            return await strategy.commit(action, source=source, **kw)
        async with strategy.acting:
            return await strategy.commit(action, source=source, **kw)

    @classmethod
    async def preview_commit(cls, symbol: str, action: str, *, strategy_name: str, percent: float | None = None,
                             cost: float | None = None) -> CommitPreview:
        """What ``commit_{action}`` would do now (the new stop-loss, the share and PnL a close
        realises), without doing it."""
        strategy = cls._running_strategy(symbol, strategy_name)
        return await strategy.preview(action, percent=percent, cost=cost)

    @classmethod
    async def commit(cls, symbol: str, action: str, *, strategy_name: str, percent: float | None = None,
                     cost: float | None = None, source: str = "api") -> CommitResult:
        """``commit_{action}`` by name (``engine.position.ACTIONS``)."""
        return await cls._command(symbol, strategy_name, action, source, percent=percent, cost=cost)

    @classmethod
    async def commit_cancel_scheduled(cls, symbol: str, *, strategy_name: str, source: str = "api") -> CommitResult:
        return await cls._command(symbol, strategy_name, "cancel_scheduled", source)

    @classmethod
    async def commit_activate_scheduled(cls, symbol: str, *, strategy_name: str, source: str = "api") -> CommitResult:
        return await cls._command(symbol, strategy_name, "activate_scheduled", source)

    @classmethod
    async def commit_close_pending(cls, symbol: str, *, strategy_name: str, source: str = "api") -> CommitResult:
        return await cls._command(symbol, strategy_name, "close_pending", source)

    @classmethod
    async def commit_partial_profit(cls, symbol: str, percent_to_close: float, *, strategy_name: str,
                                    source: str = "api") -> CommitResult:
        return await cls._command(symbol, strategy_name, "partial_profit", source, percent=percent_to_close)

    @classmethod
    async def commit_partial_loss(cls, symbol: str, percent_to_close: float, *, strategy_name: str,
                                  source: str = "api") -> CommitResult:
        return await cls._command(symbol, strategy_name, "partial_loss", source, percent=percent_to_close)

    @classmethod
    async def commit_trailing_stop(cls, symbol: str, percent_shift: float, *, strategy_name: str,
                                   source: str = "api") -> CommitResult:
        return await cls._command(symbol, strategy_name, "trailing_stop", source, percent=percent_shift)

    @classmethod
    async def commit_trailing_take(cls, symbol: str, percent_shift: float, *, strategy_name: str,
                                   source: str = "api") -> CommitResult:
        return await cls._command(symbol, strategy_name, "trailing_take", source, percent=percent_shift)

    @classmethod
    async def commit_breakeven(cls, symbol: str, *, strategy_name: str, source: str = "api") -> CommitResult:
        return await cls._command(symbol, strategy_name, "breakeven", source)

    @classmethod
    async def commit_average_buy(cls, symbol: str, cost: float | None = None, *, strategy_name: str,
                                 source: str = "api") -> CommitResult:
        return await cls._command(symbol, strategy_name, "average_buy", source, cost=cost)

    @classmethod
    def get_pending_signal(cls, symbol: str, *, strategy_name: str) -> SignalRow | None:
        return cls._running_strategy(symbol, strategy_name).pending

    @classmethod
    def get_scheduled_signal(cls, symbol: str, *, strategy_name: str) -> SignalRow | None:
        return cls._running_strategy(symbol, strategy_name).scheduled
