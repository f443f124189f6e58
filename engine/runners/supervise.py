"""What every runner does around its loop: one run per (symbol, strategy), errors and exits
reported on the bus, background tasks that never raise, the report of its closed signals."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from typing import Any

from ..analytics.base import dump_report
from ..events import bus
from ..report import backtest_report
from ..stats import backtest_statistics
from ..types import ErrorEvent

_background_tasks: set[asyncio.Task[Any]] = set()


async def supervised(where: str, state: Any, runs: dict, key: tuple[str, str], ctx: dict[str, Any],
                     check: Callable[[], None], loop: Callable[[], AsyncIterator[Any]]) -> AsyncIterator[Any]:
    """Run ``loop()`` as run ``key``: ``check()`` first; any error -> ``listen_error`` (unless
    cancelled) and ``listen_exit``, status ``error``; a consumer that stops early -> ``stopped``."""
    try:
        if not isinstance(ctx["symbol"], str) or not ctx["symbol"]:
            raise ValueError(f"{where}: symbol must be a non-empty string, got {ctx['symbol']!r}")
        check()
        previous = runs.get(key)
        if previous is not None and previous.status == "running":
            raise RuntimeError(f"{where}: {ctx['strategy_name']} on {ctx['symbol']} is already running")
        runs[key] = state
        async with aclosing(loop()) as results:  # a consumer that stops early closes the loop now
            async for result in results:
                yield result
    except (Exception, asyncio.CancelledError) as exc:
        state.status = "error"
        name = where.split(".")[0].lower()
        if not isinstance(exc, asyncio.CancelledError):
            bus.report(exc, where=name, **ctx)
        bus.exit.emit(ErrorEvent(error=exc, where=name, **ctx))  # type: ignore[attr-defined]
        raise
    finally:
        if state.status == "running":
            state.status = "stopped"


def start_background(results: AsyncIterator[Any], name: str) -> None:
    """Consume ``results`` in a task that never raises (the run reports through the bus)."""

    async def consume() -> None:
        try:
            async for _ in results:
                pass
        except (Exception, asyncio.CancelledError):
            pass  # already reported on listen_error / listen_exit

    task = asyncio.get_running_loop().create_task(consume(), name=name)
    _background_tasks.add(task)
    task.add_done_callback(_background_tasks.discard)


def run_report(state: Any, symbol: str, strategy_name: str, *, frame_name: str) -> str:
    """The markdown report of a run's closed signals (an empty one when there is no such run)."""
    return backtest_report(backtest_statistics(state.closed if state else []), symbol=symbol,
                           strategy_name=strategy_name, exchange_name=state.exchange_name if state else "",
                           frame_name=frame_name, orders=getattr(state, "orders", None))


def write_report(report: str, path: str, symbol: str, strategy_name: str) -> str:
    """``{path}/{symbol}_{strategy_name}.md``, written atomically; returns the file."""
    return dump_report(report, path, symbol, strategy_name)
