"""The event bus and every ``listen_*`` function.

One bus of named channels. Each listener sees its events one at a time, in
order: a sync handler (or an async one that finishes without suspending) runs
inline when the event is emitted; once an async handler suspends, later events
for that listener wait in its own queue, drained by one task. A listener's
exception goes to ``listen_error`` and never stops the engine.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections import deque
from collections.abc import Callable
from types import CoroutineType
from typing import Any

from .log import get_logger
from .types import ErrorEvent, PerformanceEvent

Handler = Callable[[Any], Any]
Unsubscribe = Callable[[], None]


class Resume:
    """Continue a coroutine that was started by hand and suspended on ``yielded``."""

    __slots__ = ("coro", "yielded")

    def __init__(self, coro: Any, yielded: Any):
        self.coro, self.yielded = coro, yielded

    def __await__(self):
        coro, yielded = self.coro, self.yielded
        while True:
            try:
                value = yield yielded
            except BaseException as exc:  # cancellation or a failed future: pass it in
                try:
                    yielded = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    yielded = coro.send(value)
                except StopIteration as stop:
                    return stop.value


def start_coroutine(coro: Any) -> tuple[bool, Any]:
    """Run ``coro`` until it first suspends. ``(True, result)`` when it finished
    synchronously, else ``(False, awaitable)`` continuing it. Exceptions propagate."""
    try:
        yielded = coro.send(None)
    except StopIteration as stop:
        return True, stop.value
    return False, Resume(coro, yielded)


class _Listener:
    __slots__ = ("bus", "channel", "fn", "predicate", "once", "backtest", "pending", "busy", "closed")

    def __init__(self, bus: EventBus, channel: Channel, fn: Handler,
                 predicate: Callable[[Any], bool] | None, once: bool, backtest: bool | None = None):
        self.bus, self.channel, self.fn = bus, channel, fn
        self.predicate, self.once, self.backtest = predicate, once, backtest
        self.pending: deque[Any] = deque()
        self.busy = False
        self.closed = False

    def deliver(self, payload: Any) -> None:
        if self.closed:
            return
        if self.backtest is not None and payload.backtest != self.backtest:
            return
        if self.predicate is not None:
            try:
                if not self.predicate(payload):
                    return
            except Exception as exc:
                self.bus.report(exc, where=f"{self.channel.name} filter")
                return
        if self.once:
            self.unsubscribe()
        if self.busy:
            self.pending.append(payload)
            return
        try:
            result = self.fn(payload)
            if type(result) is CoroutineType:
                done, rest = start_coroutine(result)
                if not done:
                    self.busy = True
                    self.bus.spawn(self._drain(rest))
        except Exception as exc:
            self.bus.report(exc, where=f"{self.channel.name} listener", from_channel=self.channel)

    async def _drain(self, first: Any) -> None:
        try:
            await first
        except Exception as exc:
            self.bus.report(exc, where=f"{self.channel.name} listener", from_channel=self.channel)
        while self.pending:
            payload = self.pending.popleft()
            try:
                result = self.fn(payload)
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:
                self.bus.report(exc, where=f"{self.channel.name} listener", from_channel=self.channel)
        self.busy = False

    def unsubscribe(self) -> None:
        self.closed = True
        try:
            self.channel.listeners.remove(self)
        except ValueError:
            pass
        self.bus.generation += 1


class Channel:
    __slots__ = ("name", "listeners", "taps", "bus", "_kinds", "_taps_by_type")

    def __init__(self, bus: EventBus, name: str):
        self.bus, self.name = bus, name
        self.listeners: list[_Listener] = []
        # The engine's own recorders (the analytics): synchronous, called first, kept by
        # ``clear_listeners``, and not counted as someone observing idle ticks.
        self.taps: list[Handler] = []
        self._kinds: dict[Handler, tuple[type, ...] | None] = {}
        self._taps_by_type: dict[type, list[Handler]] = {}     # which taps record a payload type

    @property
    def active(self) -> bool:
        """Whether an emitted event reaches anyone (a listener or a tap)."""
        return bool(self.listeners or self.taps)

    def heard(self, backtest: bool) -> bool:
        """Whether a listener hears this channel's events of backtests (``True``) or of live runs: a
        listener subscribed for the other mode only does not (a console that shows live milestones
        leaves its backtests on their fast path)."""
        if not self.listeners:
            return False
        return any(listener.backtest is None or listener.backtest == backtest for listener in self.listeners)

    def emit(self, payload: Any) -> None:
        kind = type(payload)
        taps = self._taps_by_type.get(kind)
        if taps is None:
            taps = self._taps_by_type[kind] = [tap for tap in self.taps if self._kinds[tap] is None
                                               or issubclass(kind, self._kinds[tap])]  # type: ignore[arg-type]
        for tap in taps:     # (record's loop, inline: this runs per frame for some channels)
            try:
                tap(payload)
            except Exception as exc:
                self.bus.report(exc, where=f"{self.name} recorder")
        if self.listeners:
            for listener in tuple(self.listeners):
                listener.deliver(payload)

    def record(self, payload: Any) -> None:
        """``emit`` to the taps only (the listeners were told already, by ``notify``)."""
        kind = type(payload)
        taps = self._taps_by_type.get(kind)
        if taps is None:
            taps = self._taps_by_type[kind] = [tap for tap in self.taps if self._kinds[tap] is None
                                               or issubclass(kind, self._kinds[tap])]  # type: ignore[arg-type]
        for tap in taps:
            try:
                tap(payload)
            except Exception as exc:
                self.bus.report(exc, where=f"{self.name} recorder")

    def notify(self, payload: Any) -> None:
        """``emit`` to the listeners only: the taps record the same event another way (a batch)."""
        for listener in tuple(self.listeners):
            listener.deliver(payload)

    def tap(self, fn: Handler, kinds: tuple[type, ...] | None = None) -> None:
        """Attach an engine recorder (once); ``kinds``: the payload types it records (None: all)."""
        if fn not in self.taps:
            self.taps.append(fn)
            self._kinds[fn] = kinds
            self._taps_by_type.clear()
            self.bus.generation += 1

    def subscribe(self, fn: Handler, predicate: Callable[[Any], bool] | None = None,
                  once: bool = False, backtest: bool | None = None) -> Unsubscribe:
        """``backtest``: only events of backtests (True) or of live runs (False); None: both."""
        if not callable(fn):
            raise TypeError(f"listen: {fn!r} is not callable")
        if predicate is not None and not callable(predicate):
            raise TypeError(f"listen: filter {predicate!r} is not callable")
        listener = _Listener(self.bus, self, fn, predicate, once, backtest)
        self.listeners.append(listener)
        self.bus.generation += 1
        return listener.unsubscribe


CHANNELS = (
    "signal", "signal_live", "signal_backtest",
    "done_backtest", "done_live", "done_walker",
    "backtest_progress", "walker", "walker_progress", "walker_complete",
    "partial_profit", "partial_loss", "risk", "validation", "error", "exit", "performance",
    "strategy_commit", "breakeven", "active_ping", "schedule_ping",
)


class EventBus:
    def __init__(self) -> None:
        for name in CHANNELS:
            setattr(self, name, Channel(self, name))
        self._tasks: set[asyncio.Task[Any]] = set()
        # Changes whenever a listener or tap comes or goes: who hears what may be remembered until then.
        self.generation = 0

    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro, name="btk-listener")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def report(self, exc: BaseException, *, where: str = "", from_channel: Channel | None = None,
               **context: Any) -> ErrorEvent:
        """Send ``exc`` to ``listen_error`` (logged too if nobody listens)."""
        event = ErrorEvent(error=exc, where=where, **context)
        error: Channel = self.error  # type: ignore[attr-defined]
        if from_channel is error or not error.listeners:
            # An error listener that raises is logged, never re-reported (no loops).
            get_logger().error("btk: %s", event, exc_info=exc)
            return event
        error.emit(event)
        return event

    async def drain(self) -> None:
        """Wait until every listener has handled every event emitted so far."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


bus = EventBus()


def emit_performance(metric: str, started: float, *, symbol: str, strategy_name: str, exchange_name: str,
                     backtest: bool, when: int) -> None:
    """A ``listen_performance`` event: ``metric`` took from ``started`` (``time.perf_counter()``) until now."""
    channel: Channel = bus.performance  # type: ignore[attr-defined]
    if channel.active:
        channel.emit(PerformanceEvent(metric, (time.perf_counter() - started) * 1000.0, symbol, strategy_name,
                                      exchange_name, backtest, when))


class Timings:
    """Many timings of one metric: each an event as it happens while someone listens for
    performance events, else gathered and handed to the engine's recorders in one record (taps
    with a ``batch`` function) by ``flush``: a backtest times thousands of signals."""

    __slots__ = ("metric", "symbol", "strategy_name", "exchange_name", "backtest", "durations_ms", "_generation",
                 "_batched")

    def __init__(self, metric: str, *, symbol: str, strategy_name: str, exchange_name: str, backtest: bool):
        self.metric, self.symbol, self.strategy_name = metric, symbol, strategy_name
        self.exchange_name, self.backtest = exchange_name, backtest
        self.durations_ms: list[float] = []
        self._generation, self._batched = -1, False     # whether to gather, as of that bus generation

    def add(self, started: float, when: int) -> None:
        """The work timed took from ``started`` (``time.perf_counter()``) until now, at ``when``."""
        if bus.generation != self._generation:
            channel: Channel = bus.performance  # type: ignore[attr-defined]
            self._generation = bus.generation
            self._batched = bool(channel.taps and not channel.listeners
                                 and all(getattr(tap, "batch", None) is not None for tap in channel.taps))
        if not self._batched:
            self.flush()
            emit_performance(self.metric, started, symbol=self.symbol, strategy_name=self.strategy_name,
                             exchange_name=self.exchange_name, backtest=self.backtest, when=when)
            return
        self.durations_ms.append((time.perf_counter() - started) * 1000.0)

    def flush(self) -> None:
        if not self.durations_ms:
            return
        for tap in bus.performance.taps:  # type: ignore[attr-defined]
            tap.batch(self)
        self.durations_ms = []


def _listen(channel: str, backtest: bool | None = None, name: str | None = None) -> Callable[[Handler], Unsubscribe]:
    def listen(fn: Handler) -> Unsubscribe:
        return getattr(bus, channel).subscribe(fn, backtest=backtest)
    mode = "" if backtest is None else " of backtests" if backtest else " of live runs"
    listen.__name__ = name or f"listen_{channel}"
    listen.__doc__ = f"Call ``fn`` with every ``{channel}`` event{mode}; returns an unsubscribe function."
    return listen


def _listen_once(channel: str) -> Callable[[Callable[[Any], bool], Handler], Unsubscribe]:
    def listen_once(filter_fn: Callable[[Any], bool], fn: Handler) -> Unsubscribe:
        return getattr(bus, channel).subscribe(fn, filter_fn, once=True)
    listen_once.__name__ = f"listen_{channel}_once"
    listen_once.__doc__ = f"Call ``fn`` once, with the first ``{channel}`` event ``filter_fn`` accepts."
    return listen_once


listen_signal = _listen("signal")
listen_signal_once = _listen_once("signal")
listen_signal_live = _listen("signal_live")
listen_signal_live_once = _listen_once("signal_live")
listen_signal_backtest = _listen("signal_backtest")
listen_signal_backtest_once = _listen_once("signal_backtest")
listen_done_backtest = _listen("done_backtest")
listen_done_backtest_once = _listen_once("done_backtest")
listen_done_live = _listen("done_live")
listen_done_live_once = _listen_once("done_live")
listen_done_walker = _listen("done_walker")
listen_done_walker_once = _listen_once("done_walker")
listen_backtest_progress = _listen("backtest_progress")
listen_walker = _listen("walker")
listen_walker_once = _listen_once("walker")
listen_walker_progress = _listen("walker_progress")
listen_walker_complete = _listen("walker_complete")
listen_partial_profit = _listen("partial_profit")
listen_partial_profit_once = _listen_once("partial_profit")
listen_partial_loss = _listen("partial_loss")
listen_partial_loss_once = _listen_once("partial_loss")
# Milestones and rejections of live runs only: a listener of these leaves backtests on their fast path.
listen_partial_profit_live = _listen("partial_profit", False, "listen_partial_profit_live")
listen_partial_loss_live = _listen("partial_loss", False, "listen_partial_loss_live")
listen_risk_live = _listen("risk", False, "listen_risk_live")
listen_risk = _listen("risk")
listen_risk_once = _listen_once("risk")
listen_validation = _listen("validation")
listen_error = _listen("error")
listen_exit = _listen("exit")
listen_performance = _listen("performance")
# Position management: commands that acted (listen_strategy_commit), breakeven becoming available
# (once per signal), and a ping each minute a position is open or an order waits: the moment a
# strategy may act. A backtest walks the candles of a position one by one while these are heard.
listen_strategy_commit = _listen("strategy_commit")
listen_strategy_commit_once = _listen_once("strategy_commit")
listen_breakeven = _listen("breakeven")
listen_breakeven_once = _listen_once("breakeven")
listen_active_ping = _listen("active_ping")
listen_active_ping_once = _listen_once("active_ping")
listen_schedule_ping = _listen("schedule_ping")
listen_schedule_ping_once = _listen_once("schedule_ping")


async def drain_events() -> None:
    """Wait until every listener has handled every event emitted so far."""
    await bus.drain()


def clear_listeners() -> None:
    """Drop every subscription (tests, reloading a workspace)."""
    for name in CHANNELS:
        getattr(bus, name).listeners.clear()
    bus.generation += 1
