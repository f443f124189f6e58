"""The tick state machine: one ``ClientStrategy`` per symbol x strategy (SEMANTICS.md 3-5).

``tick()`` runs one step at the clock's time: a scheduled signal waits for its
price (timeout, SL cancel, activation), an open one is watched (time, TP, SL),
an idle one asks ``get_signal`` (throttled, with a timeout), validates it and
checks risk. In a backtest, ``backtest_open`` / ``backtest_scheduled`` resolve
the signal at once over the loaded candles (``fastpath``) and emit the same
events, in the same order, that ticking candle by candle would.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import inspect
import math
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from types import CoroutineType
from typing import Any, NamedTuple, Protocol

import msgspec

from .config import get_config
from .context import Clock, ExecutionContext, MethodContext, execution_context, running
from .events import Resume, bus, emit_performance
from .exchange.errors import HistoryUnavailable
from .fastpath import (active_extremes, milestone_crossings, milestone_crossings_known, milestone_crossings_past,
                       milestone_reach, resolve_open, resolve_scheduled)
from .feed import ExchangeFeed, Series, SeriesFeed
from .indicators import LiveIndicators, SeriesIndicators
from .interval import MINUTE_MS, interval_ms
from .partial import MilestoneBatch, MilestoneDigest, PartialTracker
from .pnl import effective_price, pnl_percentage, progress, to_profit_loss
from .position import SCHEDULE_ACTIONS, CommitPreview, CommitResult, Refusal, breakeven_reached, \
    breakeven_threshold, check_arguments, fully_closed, plan
from .registry import StrategySchema
from .risk import ClientRisk, Rejection, risk_for
from .signal import SignalValidationError, row_minutes, signal_problems
from .types import (BreakevenEvent, CommitEvent, PingEvent, PnL, PartialEvent, RiskEvent, SignalDto, SignalRow,
                    TickActive, TickCancelled, TickClosed, TickIdle, TickOpened, TickResult, TickScheduled)

replace = msgspec.structs.replace


class GetSignalTimeout(TimeoutError):
    pass


class Persistence(Protocol):
    async def save(self, strategy: ClientStrategy, changes: tuple[tuple[str, Any], ...],
                   events: tuple[Any, ...] = ()) -> None:
        """Make ``changes`` durable with the ``events`` they cause, before those are emitted."""
        ...


class LaneMode(NamedTuple):
    """How the lane hands out milestones (``ClientStrategy.plain``)."""

    batches: tuple[Any, ...] | None    # the milestone recorders' batch functions; None: they take events
    listeners: bool                    # a listener hears milestones: each is built and delivered


# Callbacks that see every candle of an open position or every frame: the lane skips those candles.
PER_CANDLE_CALLBACKS = ("on_active", "on_partial_profit", "on_partial_loss", "on_tick", "on_idle", "on_active_ping",
                        "on_breakeven", "on_schedule_ping")

# Returned for idle ticks nobody observes: building a TickIdle per frame costs time for nothing.
UNOBSERVED_IDLE = TickIdle("", "", "", "", math.nan, True, 0)


class ClientStrategy:
    def __init__(self, schema: StrategySchema, *, symbol: str, exchange_name: str, frame_name: str,
                 feed: ExchangeFeed, clock: Clock, backtest: bool,
                 persistence: Persistence | None = None, partial: PartialTracker | None = None):
        self.schema = schema
        self.callbacks = schema.callbacks
        self.symbol, self.exchange_name, self.frame_name = symbol, exchange_name, frame_name
        self.strategy_name = schema.strategy_name
        self.backtest = backtest
        self.feed, self.clock = feed, clock
        indicators = None
        if schema.indicators:
            indicators = SeriesIndicators(schema.indicators, feed, symbol, clock) if isinstance(feed, SeriesFeed) \
                else LiveIndicators(schema.indicators, feed, symbol)
        self.execution = ExecutionContext(symbol, backtest, clock, feed,
                                          MethodContext(schema.strategy_name, exchange_name, frame_name), indicators,
                                          self)
        self.interval_ms = interval_ms(schema.interval)
        self.risks: list[ClientRisk] = [risk_for(name) for name in schema.risk_names]
        self.partial = partial or PartialTracker()
        self.pending: SignalRow | None = None
        self.scheduled: SignalRow | None = None
        self.last_slot: int | None = None
        self.stopped = False
        # get_signal calls made and how many failed (raised or timed out): a run where every one
        # failed has failed. A backtest's calls that reached before the stored candles are its
        # warm-up instead: (first stored candle, first time with the history asked for).
        self.signal_calls = 0
        self.failed_signal_calls = 0
        self.warmup: tuple[int, int] | None = None
        # Live state is written through this before the event of each change is emitted.
        self.persistence = persistence
        # A vectorised backtest answers get_signal from its precomputed rows (engine/vectorised.py),
        # and may know ahead where each of their positions closes.
        self.signal_lookup: Callable[[int], Any] | None = None
        self.resolved_ahead: Any = None
        # The row opened through the lane (open_planned), until close_planned closes it.
        self.planned: int | None = None
        self._entry_cost = get_config().CC_POSITION_ENTRY_COST     # the money of a single-entry position
        self._per_candle_callbacks = any(getattr(self.callbacks, name) is not None for name in PER_CANDLE_CALLBACKS)
        self._plain: tuple[int, LaneMode | None] = (-1, None)          # (bus generation, plain())
        self._milestone_entries: tuple[Any, ...] | None = None             # for flush_planned
        self._signal_channel = bus.signal_backtest if backtest else bus.signal_live  # type: ignore[attr-defined]
        # Held by a live loop through each minute's work and by a command from outside the
        # strategy (the console, Live.commit_*), so neither sees the other's change half made.
        self.acting = asyncio.Lock()
        # The close or cancel a command made (a backtest's resolution returns it).
        self.last_result: TickResult | None = None
        self._held: list[Any] | None = None      # events of commands waiting for their signal's (_hold)
        # Live: the signal events commands made (a close, a cancel, an open), for the run's consumer.
        self.made: list[TickResult] = []
        # (time, VWAP) of the candle a backtest replays: a command there acts at the price its
        # callbacks and events were given (a backtest's candle T is judged on T-4..T).
        self.candle_price: tuple[int, float] | None = None

    # --- plumbing --------------------------------------------------------------------------

    def _observed_idle(self) -> bool:
        return bool(self.callbacks.on_tick or self.callbacks.on_idle or bus.signal.listeners  # type: ignore[attr-defined]
                    or self._signal_channel.listeners)

    def _base(self, price: float, when: int) -> tuple[Any, ...]:
        return (self.symbol, self.strategy_name, self.exchange_name, self.frame_name, price, self.backtest, when)

    async def _callback(self, name: str, *args: Any) -> None:
        fn = getattr(self.callbacks, name)
        if fn is None:
            return
        with running(self.execution):
            try:
                result = fn(*args)
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:
                self._report(exc, where=f"callback {name}")

    def _report(self, exc: BaseException, where: str) -> None:
        bus.report(exc, where=where, symbol=self.symbol, strategy_name=self.strategy_name,
                   exchange_name=self.exchange_name, frame_name=self.frame_name, backtest=self.backtest)

    async def _emit(self, result: TickResult) -> TickResult:
        if self._held is not None:          # a command's, while its signal's own event waits (_hold)
            self._held.append(result)
            return result
        if self.callbacks.on_tick is not None:
            await self._callback("on_tick", self.symbol, result, self.backtest)
        bus.signal.emit(result)  # type: ignore[attr-defined]
        self._signal_channel.emit(result)
        return result

    async def _save(self, *changes: tuple[str, Any], events: tuple[Any, ...] = ()) -> None:
        """Persist state changes as one (live only): ``("signal", row)``, ``("schedule", row)``,
        ``("risk", None)``, ``("partial", None)``, ``("closed", TickClosed)``, with the events they
        cause (saved with them, emitted after: a restart delivers them again if need be)."""
        if self.persistence is not None:
            await self.persistence.save(self, changes, events)

    async def _write(self, row: SignalRow | None) -> None:
        if self.callbacks.on_write is not None:
            await self._callback("on_write", self.symbol, row, self.backtest)

    async def _idle(self, when: int, price: float) -> TickResult:
        if not self._observed_idle():
            return UNOBSERVED_IDLE
        if self.callbacks.on_idle is not None:
            await self._callback("on_idle", self.symbol, price, self.backtest)
        return await self._emit(TickIdle(*self._base(price, when)))

    def stop(self) -> None:
        """No new signals from now on; an open position is still watched until it closes."""
        self.stopped = True

    # --- commands on the position (the rules: engine/position.py) -------------------------------

    async def current_price(self) -> float:
        """The VWAP at the clock's minute: the price a command acts at."""
        when = self.clock.now
        if self.candle_price is not None and self.candle_price[0] == when:
            return self.candle_price[1]
        price = self.feed.price_now(self.symbol, when)
        return price if price is not None else await self.feed.average_price(self.symbol, when)

    def _target(self, action: str) -> SignalRow | None:
        return self.scheduled if action in SCHEDULE_ACTIONS else self.pending

    def _nothing(self, action: str) -> str:
        what = "no scheduled order" if action in SCHEDULE_ACTIONS else "no open position"
        return f"{what} of {self.strategy_name} on {self.symbol}"

    async def _plan(self, action: str, percent: float | None, cost: float | None
                    ) -> tuple[SignalRow | None, float, tuple[SignalRow, PnL | None] | Refusal]:
        """``(row, price, what plan() says)`` for a command now; bad arguments raise ValueError,
        with or without a position."""
        check_arguments(action, percent, cost)
        row = self._target(action)
        if row is None:
            return None, math.nan, Refusal(self._nothing(action))
        price = await self.current_price()
        if action == "activate_scheduled" and self.stopped:
            return row, price, Refusal(f"{self.strategy_name} on {self.symbol} is stopped: it opens no new position")
        return row, price, plan(action, row, price, self.clock.now, get_config(), percent=percent, cost=cost)

    async def preview(self, action: str, *, percent: float | None = None, cost: float | None = None) -> CommitPreview:
        """What ``commit`` would do now, without doing it."""
        row, price, planned = await self._plan(action, percent, cost)
        if isinstance(planned, Refusal):
            return CommitPreview(action, False, price, planned.reason, row)
        after, pnl = planned
        gone = action in ("close_pending", "cancel_scheduled") or fully_closed(after)
        return CommitPreview(action, True, price, "", row, None if gone else after,
                             to_profit_loss(after, price) if gone and action != "cancel_scheduled" else pnl)

    async def commit(self, action: str, *, percent: float | None = None, cost: float | None = None,
                     source: str = "strategy") -> CommitResult:
        """Act on the open position or the scheduled order at the current price (``action``: one of
        ``engine.position.ACTIONS``). The changed row and the ``CommitEvent`` are saved as one
        change (live), then the event is emitted; a close or cancel follows as its own event in
        the same change. Bad arguments raise ValueError; a command that cannot act now returns a
        falsy result with the reason."""
        _, price, planned = await self._plan(action, percent, cost)
        if isinstance(planned, Refusal):
            return CommitResult(False, planned.reason)
        after, pnl = planned
        when = self.clock.now
        if action == "average_buy" and cost is None:
            cost = get_config().CC_POSITION_ENTRY_COST
        event = CommitEvent(*self._names(), after, price, self.backtest, when, action, percent=percent, cost=cost,
                            pnl=pnl, source=source)
        if action == "cancel_scheduled":
            self._made(await self._cancel(after, "user", when, price, before=(event,)))
        elif action == "activate_scheduled":
            # The order filled at its own price: the entry stays price_open (backtest-kit 19.5).
            result = await self._activate(after, when, price, pending_at=when + MINUTE_MS if self.backtest else when,
                                          before=(event,))
            self._made(result)
            if result.action == "cancelled":
                return CommitResult(False, "a risk profile rejected the activation: the order is cancelled")
        elif action == "close_pending" or fully_closed(after):
            self._made(await self._close(after, "closed", price, when, price, before=(event,)))
        else:
            self.pending = after
            await self._save(("signal", after), events=(event,))
            self._emit_commits((event,))
            await self._write(after)
        return CommitResult(True, "", event)

    def _made(self, result: TickResult) -> None:
        if not self.backtest:        # a backtest's resolution returns them itself
            self.made.append(result)

    def take_made(self) -> list[TickResult]:
        """The signal events commands made since the last call (live), oldest first."""
        made, self.made = self.made, []
        return made

    def _emit_commits(self, events: tuple[Any, ...]) -> None:
        channel = bus.strategy_commit  # type: ignore[attr-defined]
        for event in events:
            if isinstance(event, CommitEvent):
                if self._held is not None:
                    self._held.append(event)
                else:
                    channel.emit(event)

    # --- the tick ---------------------------------------------------------------------------

    async def tick(self) -> TickResult:
        when = self.clock.now
        price = self.feed.price_now(self.symbol, when)
        if price is None:
            price = await self.feed.average_price(self.symbol, when)
        if self.scheduled is not None:
            return await self._tick_scheduled(when, price)
        if self.pending is not None:
            return await self._tick_pending(when, price)
        if self.stopped:
            return await self._idle(when, price)
        slot = when // self.interval_ms
        if slot == self.last_slot:
            return await self._idle(when, price)
        previous_slot, self.last_slot = self.last_slot, slot
        # Live calls are timed (listen_performance); a backtest calls it up to every frame, where
        # timing each call would cost more than it tells.
        if self.backtest:
            dto = await self._get_signal(when)
        else:
            failed = self.failed_signal_calls
            dto = await self._get_signal_timed(when)
            if self.failed_signal_calls > failed:
                # Live, a call that failed (an exchange fault in its candle read) leaves its slot open:
                # the next minute asks again rather than waiting for the next slot.
                self.last_slot = previous_slot
        if dto is None or self.stopped:
            return await self._idle(when, price)
        return await self._accept(dto, when, price, previous_slot)

    async def _get_signal_timed(self, when: int) -> Any:
        started = time.perf_counter()
        try:
            return await self._get_signal(when)
        finally:
            emit_performance("get_signal", started, symbol=self.symbol, strategy_name=self.strategy_name,
                             exchange_name=self.exchange_name, backtest=False, when=when)

    async def _get_signal(self, when: int) -> Any:
        done, result = self._start_signal(when)
        return result if done else await self._finish_signal(result)

    def _start_signal(self, when: int) -> tuple[bool, Any]:
        """Call ``get_signal`` at ``when``: ``(True, result)`` when it finished without suspending
        (a backtest's usual case, so no awaiting per frame), else ``(False, awaitable)`` for
        ``_finish_signal``. A strategy's exception is reported and reads as no signal."""
        if self.signal_lookup is not None:
            return True, self.signal_lookup(when)
        self.signal_calls += 1
        # ``running(self.execution)`` and ``to_datetime`` written out: this runs on every idle frame.
        token = execution_context.set(self.execution)
        try:
            result = self.schema.get_signal(self.symbol, datetime.fromtimestamp(when / 1000, UTC))
            if type(result) is CoroutineType:
                try:
                    yielded = result.send(None)
                except StopIteration as stop:
                    return True, stop.value
                return False, Resume(result, yielded)
            if inspect.isawaitable(result):
                return False, result
            return True, result
        except Exception as exc:
            self._signal_failed(exc)
            return True, None
        finally:
            execution_context.reset(token)

    async def _finish_signal(self, pending: Any) -> Any:
        """Await a ``get_signal`` that suspended, inside the contexts and its time limit."""
        limit = get_config().CC_MAX_SIGNAL_GENERATION_SECONDS
        with running(self.execution):
            try:
                async with asyncio.timeout(limit):
                    return await pending
            except TimeoutError:
                self._signal_failed(GetSignalTimeout(f"get_signal of {self.strategy_name} on {self.symbol} timed "
                                                     f"out after {limit:g} s"))
                return None
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._signal_failed(exc)
                return None

    def _signal_failed(self, exc: BaseException) -> None:
        """``get_signal`` raised: reported, and it reads as no signal. In a backtest, a request for
        history before the stored candles is the frame's warm-up instead (not an error)."""
        if self.backtest and isinstance(exc, HistoryUnavailable):
            self.note_warmup(exc.available_from, exc.available_from + exc.limit * interval_ms(exc.interval))
            return
        self.failed_signal_calls += 1
        self._report(exc, where="get_signal")

    def note_warmup(self, available_from: int, ready_at: int) -> None:
        """Frames before ``ready_at`` lacked the history the strategy asks for (the stored candles
        begin at ``available_from``): they give no signal."""
        previous = self.warmup[1] if self.warmup is not None else ready_at
        self.warmup = (available_from, max(previous, ready_at))

    # --- backtest entry points (the runner drives these between frames) ------------------------

    def quiet_idle(self) -> bool:
        """Idle, taking signals, and nobody observes idle ticks: the runner may then call
        ``get_signal`` itself on each throttle slot and skip everything else per frame."""
        return self.pending is None and self.scheduled is None and not self.stopped and not self._observed_idle()

    # --- the lane: planned market trades of a plain backtest --------------------------------

    def plain(self) -> LaneMode | None:
        """Whether this backtest's market trades may take the lane: open and close through plain
        calls from values computed ahead, with the same results, events and callbacks as the
        general path. They may unless something must see each candle of an open position (a
        per-candle callback: on_active, on_partial_*, on_tick, on_idle) or each frame (a signal
        listener gets idle ticks), a risk profile awaits (an async validation), or state is
        persisted (live). How milestones go: one by one when a listener hears them (or a recorder
        takes no batches), else as batches to the recorders. Remembered until a listener or
        recorder comes or goes."""
        generation, answer = self._plain
        if generation == bus.generation:
            return answer
        answer = self._who_hears()
        self._plain = (bus.generation, answer)
        return answer

    def _who_hears(self) -> LaneMode | None:
        if self.persistence is not None or not self.backtest or self._per_candle_callbacks:
            return None
        if bus.signal.listeners or self._signal_channel.listeners:  # type: ignore[attr-defined]
            return None
        if any(getattr(bus, name).heard(True) for name in ("breakeven", "active_ping", "schedule_ping")):
            return None     # they hear a position's candles one by one
        if not all(risk.synchronous for risk in self.risks):
            return None
        profit, loss = bus.partial_profit, bus.partial_loss  # type: ignore[attr-defined]
        listeners = profit.heard(True) or loss.heard(True)
        if not profit.taps and not loss.taps:
            return LaneMode((), listeners)
        return LaneMode(_digest_recorders(profit.taps, loss.taps, kind="batch"), listeners)

    async def open_planned(self, ahead: Any, k: int, when: int, price: float,
                           previous_slot: int | None) -> TickOpened | None:
        """``accept_signal`` for the ``k``-th signal row of ``ahead`` (a valid market row at
        ``price``) when ``plain()``: the same signal row, risk check, state, callbacks and
        ``opened`` event. None when a risk profile rejects it (its slot is not spent)."""
        position, take_profit, stop_loss, minutes, note = ahead.opening(k)
        row = SignalRow(signal_id(self.strategy_name, self.symbol, when), position, price, take_profit, stop_loss,
                        minutes, self.symbol, self.strategy_name, self.exchange_name, self.frame_name,
                        when, when, note)
        if self.risks:
            args = {"symbol": self.symbol, "signal": row, "strategy_name": self.strategy_name,
                    "exchange_name": self.exchange_name, "current_price": price, "timestamp": when}
            for risk in self.risks:     # all must pass; the first rejection stops (and frees what was reserved)
                rejection = risk.check_now(args)
                if rejection is not None:
                    self.release_risk()
                    self._emit_rejection(rejection, risk, row, price, when)
                    self.last_slot = previous_slot
                    return None
            for risk in self.risks:
                risk.confirm(row, **self._owner(), when=when)
        self.pending = row
        self.planned = k
        result = TickOpened(self.symbol, self.strategy_name, self.exchange_name, self.frame_name, price, True, when,
                            row)
        if self.callbacks.on_write is None and self.callbacks.on_open is None:
            self._emit_recorded(result)
            return result
        held = self._hold()
        try:
            if self.callbacks.on_write is not None:
                await self._write(row)
            if self.callbacks.on_open is not None:
                await self._callback("on_open", self.symbol, row, price, True)
        finally:
            self._held = None
        self._emit_recorded(result)
        return await self._release(held, result)  # type: ignore[return-value]

    async def close_planned(self, series: Series, mode: LaneMode, end_ms: int) -> TickClosed:
        """``backtest_open`` for the position ``open_planned`` opened, from its values computed
        ahead (``mode``: what ``plain()`` gave): its milestones (one by one, or waiting for
        ``flush_planned`` in a batch), then the close. A command (from ``on_open`` or a milestone
        listener) leaves the lane: the position is resolved again as the command left it."""
        s, k = self.pending, self.planned
        if s is None or s.commits:
            self.planned = None
            return self.last_result if s is None else await self.backtest_open(series, end_ms)  # type: ignore[return-value]
        assert k is not None
        opened = s
        index, when, price, reason, close_price, pnl, peak, trough, active, first, first_time, profit_levels, \
            loss_levels = self.resolved_ahead.closing(k)
        if active:
            s = replace(s, peak_pnl=peak, trough_pnl=trough)
        batches = mode.batches
        if (mode.listeners or batches is None) and (profit_levels or loss_levels):
            if batches is None:
                self.flush_planned()           # the recorders take these events: after what they wait for
            told: list[tuple[Any, PartialEvent]] = []
            prices = series.vwap[first:index]
            thresholds = self.resolved_ahead.thresholds(k)
            if thresholds is not None:
                crossings = milestone_crossings_past(prices, position=s.position, price_open=s.price_open,
                                                     take_profit=s.price_take_profit, stop_loss=s.price_stop_loss,
                                                     profit_levels=profit_levels, loss_levels=loss_levels,
                                                     profit_thresholds=thresholds[0], loss_thresholds=thresholds[1])
            else:
                scanned = milestone_crossings_known(prices, position=s.position, price_open=s.price_open,
                                                    take_profit=s.price_take_profit, stop_loss=s.price_stop_loss,
                                                    profit_levels=profit_levels, loss_levels=loss_levels)
                crossings = [(*c, p) for c, p in zip(scanned, prices[[c[0] for c in scanned]].tolist())]
            profit, loss = bus.partial_profit, bus.partial_loss  # type: ignore[attr-defined]
            step, clock = series.step, self.clock
            symbol, strategy_name, exchange_name, frame_name = self._names()
            for offset, kind, level, percent, price_at in crossings:
                when_at = first_time + offset * step
                event = PartialEvent(symbol, strategy_name, s, level, percent, price_at, True, when_at, exchange_name,
                                     frame_name, kind)
                # A listener's command acts at this candle's time and price.
                clock.now, self.candle_price = when_at, (when_at, price_at)
                channel = profit if kind == "profit" else loss
                if batches is None:
                    channel.emit(event)
                else:
                    channel.notify(event)      # the recorders take the same in their batch, below
                    told.append((channel, event))
                if self.pending is not opened:
                    return await self._left_lane(series, opened, told, first, first + offset, end_ms)
        if batches and (profit_levels or loss_levels):
            self._batch_milestones(series, batches, s, first, index, first_time, profit_levels, loss_levels)
        self.clock.now = when
        result = TickClosed(self.symbol, self.strategy_name, self.exchange_name, self.frame_name, price, True, when,
                            s, reason, when, PnL(pnl, s.price_open, close_price, pnl / 100.0 * self._entry_cost,
                                                 self._entry_cost))
        self.partial.clear(s.id)
        if self.risks:
            self.release_risk()
        self.pending = self.planned = None
        if self.callbacks.on_write is not None:
            await self._write(None)
        if self.callbacks.on_close is not None:
            await self._callback("on_close", self.symbol, s, close_price, True)
        self._emit_recorded(result)
        return result

    async def _left_lane(self, series: Series, opened: SignalRow, told: list[tuple[Any, PartialEvent]],
                         first: int, j: int, end_ms: int) -> TickClosed:
        """A milestone listener's command changed the lane's position on candle ``j``: the recorders
        take the milestones told so far one by one (not in a batch), the levels reached stay
        reached, and the position is resolved from candle ``j + 1`` as the command left it."""
        self.planned = None
        for channel, event in told:
            channel.record(event)
        if self.pending is None:                        # the command closed it
            return self.last_result  # type: ignore[return-value]
        for offset, kind, level, percent in milestone_crossings(
                series.vwap[first:j + 1], position=opened.position, price_open=opened.price_open,
                take_profit=opened.price_take_profit, stop_loss=opened.price_stop_loss):
            self.partial.reach(opened.id, kind, percent)
        s = self.pending
        seen = active_extremes(series, first, j + 1)
        if seen is not None:
            s = self.pending = _with_extremes(s, seen)
        return await self._resolve_open(series, s, j + 1, end_ms)

    def _batch_milestones(self, series: Series, batches: tuple[Any, ...], *entry: Any) -> None:
        """A signal's milestones, ``(signal, first, stop, first_time, profit_levels, loss_levels)``,
        for the recorders' next batch (``flush_planned``)."""
        entries = self._milestone_entries
        if entries is None or entries[0] is not series:
            self.flush_planned()
            entries = self._milestone_entries = (series, batches, [], [], [], [], [], [])
        # One list per field: a tuple per signal would be one more object for the collector to track.
        for column, value in zip(entries[2:], entry):
            column.append(value)

    def flush_planned(self) -> None:
        """Hand the milestone recorders what the lane closed since the last flush, as one batch
        (before any other milestone is recorded, so they keep their order)."""
        entries, self._milestone_entries = self._milestone_entries, None
        if entries is None:
            return
        series, recorders, *columns = entries
        batch = MilestoneBatch(self.symbol, self.strategy_name, self.exchange_name, self.frame_name, True,
                               series.vwap, *columns)
        for record in recorders:
            record(batch)

    def _emit_recorded(self, result: TickResult) -> None:
        """``_emit`` when only recorders hear it (no awaiting)."""
        bus.signal.emit(result)  # type: ignore[attr-defined]
        if self._signal_channel.taps:
            self._signal_channel.emit(result)

    async def accept_signal(self, dto: Any, when: int, previous_slot: int | None,
                            valid_at: float | None = None) -> TickResult:
        """What ``tick`` does with a signal ``get_signal`` gave at ``when`` (the throttle slot is
        already taken): validate, check risk, then ``opened`` or ``scheduled`` (else ``idle``).
        ``valid_at``: the price at which this market signal was already found valid."""
        price = self.feed.price_now(self.symbol, when)
        if price is None:
            price = await self.feed.average_price(self.symbol, when)
        if self.stopped:
            return await self._idle(when, price)
        return await self._accept(dto, when, price, previous_slot, checked=valid_at == price)

    async def _accept(self, dto: Any, when: int, price: float, previous_slot: int | None,
                      checked: bool = False) -> TickResult:
        config = get_config()
        scheduled = isinstance(dto, SignalDto) and dto.price_open is not None and not _reached(
            dto.position, price, dto.price_open)
        problems = None if checked else signal_problems(dto, current_price=price, scheduled=scheduled, config=config)
        if problems:
            self._report(SignalValidationError(self.strategy_name, self.symbol, problems), where="signal validation")
            return await self._idle(when, price)
        row = SignalRow(
            id=dto.id or signal_id(self.strategy_name, self.symbol, when), position=dto.position,
            price_open=float(dto.price_open if dto.price_open is not None else price),
            price_take_profit=float(dto.price_take_profit), price_stop_loss=float(dto.price_stop_loss),
            minute_estimated_time=row_minutes(dto.minute_estimated_time, config),
            symbol=self.symbol, strategy_name=self.strategy_name, exchange_name=self.exchange_name,
            frame_name=self.frame_name, scheduled_at=when, pending_at=None if scheduled else when, note=dto.note,
        )
        if self.risks and await self._risk_rejects(row, price, when):
            self.last_slot = previous_slot  # a rejected signal does not consume its slot
            return await self._idle(when, price)
        if scheduled:
            result = TickScheduled(*self._base(price, when), signal=row)
            self.scheduled = row
            if self.persistence is not None:
                await self._save(("schedule", row), events=(result,))
            if self.callbacks.on_write is None and self.callbacks.on_schedule is None:
                return await self._emit(result)      # (a backtest schedules thousands: no idle awaits)
            held = self._hold()
            try:
                await self._write(row)
                await self._callback("on_schedule", self.symbol, row, price, self.backtest)
            finally:
                self._held = None
            await self._emit(result)
            return await self._release(held, result)
        return await self._open(row, when, price)

    async def _open(self, row: SignalRow, when: int, price: float, activated: bool = False,
                    before: tuple[Any, ...] = ()) -> TickOpened:
        for risk in self.risks:
            risk.confirm(row, **self._owner(), when=when)
        self.pending = row
        result = TickOpened(*self._base(price, when), signal=row)
        if activated:  # the open signal and the cleared schedule are one change: never neither
            self.scheduled = None
            if self.persistence is not None:
                await self._save(("signal", row), ("schedule", None), ("risk", None), events=(*before, result))
        elif self.persistence is not None:
            await self._save(("signal", row), ("risk", None), events=(result,))
        self._emit_commits(before)
        self.last_result = result
        # (each await below is skipped when it would do nothing: a backtest opens thousands)
        if self.callbacks.on_write is None and self.callbacks.on_open is None:
            return await self._emit(result)  # type: ignore[return-value]
        held = self._hold()
        try:
            if self.callbacks.on_write is not None:
                await self._write(row)
            if self.callbacks.on_open is not None:
                await self._callback("on_open", self.symbol, row, price, self.backtest)
        finally:
            self._held = None
        await self._emit(result)
        return await self._release(held, result)  # type: ignore[return-value]

    def _hold(self) -> list[Any]:
        """From now until ``_release``, what commands emit waits: a command made by ``on_open`` or
        ``on_schedule`` comes after the event that opened or scheduled the signal."""
        held: list[Any] = []
        self._held = held
        return held

    async def _release(self, held: list[Any], result: TickResult) -> TickResult:
        """Emit what was held, in order; returns ``result`` (a close or cancel the command made is
        in ``made``, and its signal's resolution finds it as ``last_result``)."""
        for event in held:
            if isinstance(event, CommitEvent):
                bus.strategy_commit.emit(event)  # type: ignore[attr-defined]
            else:
                await self._emit(event)
        return result

    async def _risk_rejects(self, row: SignalRow, price: float, when: int) -> bool:
        if not self.risks:
            return False
        args = {"symbol": self.symbol, "signal": row, "strategy_name": self.strategy_name,
                "exchange_name": self.exchange_name, "current_price": price, "timestamp": when}
        try:
            for risk in self.risks:  # all must pass; the first rejection stops (and frees what was reserved)
                rejection = await risk.check(args)
                if rejection is not None:
                    self.release_risk()
                    self._emit_rejection(rejection, risk, row, price, when)
                    return True
        except BaseException:
            self.release_risk()
            raise
        return False

    def _owner(self) -> dict[str, str]:
        return {"strategy_name": self.strategy_name, "exchange_name": self.exchange_name, "symbol": self.symbol}

    def release_risk(self) -> None:
        """Free this strategy's slot in each of its profiles (open or reserved)."""
        for risk in self.risks:
            risk.release(**self._owner())

    def _emit_rejection(self, rejection: Rejection, risk: ClientRisk, row: SignalRow, price: float, when: int) -> None:
        if rejection.error is not None:
            bus.validation.emit(rejection.error)  # type: ignore[attr-defined]
        bus.risk.emit(RiskEvent(  # type: ignore[attr-defined]
            symbol=self.symbol, strategy_name=self.strategy_name, risk_name=rejection.risk_name, signal=row,
            current_price=price, active_position_count=risk.active_count(), rejection_id=rejection.id,
            rejection_note=rejection.note, backtest=self.backtest, timestamp=when, exchange_name=self.exchange_name))

    # --- scheduled ---------------------------------------------------------------------------

    async def _tick_scheduled(self, when: int, price: float) -> TickResult:
        s = self.scheduled
        assert s is not None
        config = get_config()
        if self.stopped:
            return await self._cancel(s, "user", when, price)
        if when - s.scheduled_at >= config.CC_SCHEDULE_AWAIT_MINUTES * MINUTE_MS:
            return await self._cancel(s, "timeout", when, price)
        reach = price
        if config.CC_PRICE_TRIGGER == "touch":
            high, low = await self.feed.last_candle(self.symbol, when)
            reach = low if s.position == "long" else high
        if _beyond_stop(s.position, reach, s.price_stop_loss):
            return await self._cancel(s, "price_reject", when, price)
        if _reached(s.position, reach, s.price_open):
            return await self._activate(s, when, price)
        await self._schedule_ping(s, price, when)
        if self.scheduled is not s:           # a command cancelled or activated it
            return self.last_result  # type: ignore[return-value]
        return await self._emit(TickActive(*self._base(price, when), signal=s, percent_tp=0.0, percent_sl=0.0))

    async def _schedule_ping(self, s: SignalRow, price: float, when: int) -> None:
        ping: Any = bus.schedule_ping  # type: ignore[attr-defined]
        if self.callbacks.on_schedule_ping is None and not ping.heard(self.backtest):
            return
        if ping.active:
            ping.emit(PingEvent(*self._names(), s, price, self.backtest, when, "schedule"))
        await self._callback("on_schedule_ping", self.symbol, s, price, self.backtest)

    async def _activate(self, s: SignalRow, when: int, price: float, pending_at: int | None = None,
                        before: tuple[Any, ...] = ()) -> TickResult:
        if await self._risk_rejects(s, price, when):
            return await self._cancel(s, "risk", when, price)
        return await self._open(replace(s, pending_at=when if pending_at is None else pending_at), when, price,
                                activated=True, before=before)

    async def _cancel(self, s: SignalRow, reason: str, when: int, price: float,
                      before: tuple[Any, ...] = ()) -> TickCancelled:
        """``before``: a command's event, saved with the cancel and emitted first."""
        result = TickCancelled(*self._base(price, when), signal=s, reason=reason, close_timestamp=when)
        self.scheduled = None
        self.release_risk()
        await self._save(("schedule", None), events=(*before, result))
        self._emit_commits(before)
        await self._write(None)
        await self._callback("on_cancel", self.symbol, s, price, self.backtest)
        self.last_result = result
        return await self._emit(result)  # type: ignore[return-value]

    # --- open ------------------------------------------------------------------------------

    async def _tick_pending(self, when: int, price: float) -> TickResult:
        s = self.pending
        assert s is not None
        config = get_config()
        assert s.pending_at is not None
        if when <= s.pending_at:
            # The opening tick again (a restarted live loop re-runs its last tick): nothing new to judge.
            return await self._emit(TickActive(*self._base(price, when), signal=s, percent_tp=0.0, percent_sl=0.0))
        if when - s.pending_at >= s.minute_estimated_time * MINUTE_MS:
            return await self._close(s, "time_expired", price, when, price)
        long = s.position == "long"
        take_profit, stop_loss = s.take_profit, s.stop_loss
        if config.CC_PRICE_TRIGGER == "touch":
            high, low = await self.feed.last_candle(self.symbol, when)
            stop_hit = low <= stop_loss if long else high >= stop_loss
            take_hit = high >= take_profit if long else low <= take_profit
            if stop_hit:  # "touch": SL first on the same candle
                return await self._close(s, "stop_loss", stop_loss, when, price)
            if take_hit:
                return await self._close(s, "take_profit", take_profit, when, price)
        else:
            if (price >= take_profit) if long else (price <= take_profit):
                return await self._close(s, "take_profit", take_profit, when, price)
            if _beyond_stop(s.position, price, stop_loss):
                return await self._close(s, "stop_loss", stop_loss, when, price)
        # Still open: peak/trough, then what watches it (pings, breakeven, milestones, callbacks),
        # never on the closing tick. Any of those may act on the position with a command.
        pnl = pnl_percentage(s.position, effective_price(s), price)
        if pnl > 0 and (s.peak_pnl is None or pnl > s.peak_pnl):
            s = replace(s, peak_pnl=pnl)
        elif pnl < 0 and (s.trough_pnl is None or pnl < s.trough_pnl):
            s = replace(s, trough_pnl=pnl)
        if s is not self.pending:
            self.pending = s
            await self._save(("signal", s))  # a restart keeps the peak / trough seen so far
        await self._watch(s, price, when)
        if self.pending is None:                       # a command closed it
            return self.last_result  # type: ignore[return-value]
        s = self.pending
        percent_tp, percent_sl = self._progress(s, price)
        return await self._emit(TickActive(*self._base(price, when), signal=s,
                                           percent_tp=percent_tp, percent_sl=percent_sl))

    @staticmethod
    def _progress(s: SignalRow, price: Any) -> tuple[Any, Any]:
        """How far ``price`` went toward the take-profit and the stop-loss in force, from the entry."""
        return progress(s.position, effective_price(s), s.take_profit, s.stop_loss, price)

    async def _watch(self, s: SignalRow, price: float, when: int) -> None:
        """One minute of an open position that did not close: its ping, breakeven becoming
        available, its milestones, ``on_active``. Stops early when a command changed the row."""
        cb = self.callbacks
        ping: Any = bus.active_ping  # type: ignore[attr-defined]
        if cb.on_active_ping is not None or ping.heard(self.backtest):
            if ping.active:
                ping.emit(PingEvent(*self._names(), s, price, self.backtest, when, "active"))
            await self._callback("on_active_ping", self.symbol, s, price, self.backtest)
            if self.pending is not s:
                return
        if not s.breakeven_seen and breakeven_reached(s, price, get_config()):
            s = await self._breakeven_available(s, price, when)
            if self.pending is not s:
                return
        percent_tp, percent_sl = self._progress(s, price)
        await self._milestones(s, percent_tp, percent_sl, price, when)
        if self.pending is not s:
            return
        await self._callback("on_active", self.symbol, s, price, self.backtest)

    def _names(self) -> tuple[str, str, str, str]:
        return self.symbol, self.strategy_name, self.exchange_name, self.frame_name

    async def _breakeven_available(self, s: SignalRow, price: float, when: int) -> SignalRow:
        """The breakeven event of ``s`` (once per signal), saved with the row that remembers it."""
        s = self.pending = replace(s, breakeven_seen=True)
        event = BreakevenEvent(*self._names(), s, price, self.backtest, when)
        await self._save(("signal", s), events=(event,))
        bus.breakeven.emit(event)  # type: ignore[attr-defined]
        await self._callback("on_breakeven", self.symbol, s, price, self.backtest)
        return s

    async def _milestones(self, s: SignalRow, percent_tp: float, percent_sl: float, price: float, when: int) -> None:
        kind, percent = ("profit", percent_tp) if percent_tp > 0 else ("loss", percent_sl) if percent_sl > 0 else \
            (None, 0.0)
        if kind is None:
            return
        levels = self.partial.reach(s.id, kind, percent)
        if levels:
            events = tuple(self._partial_event(kind, s, level, percent, price, when) for level in levels)
            await self._save(("partial", None), events=events)
            channel = bus.partial_profit if kind == "profit" else bus.partial_loss  # type: ignore[attr-defined]
            for event in events:
                channel.emit(event)
        await self._callback(f"on_partial_{kind}", self.symbol, s, price, percent, self.backtest)

    def _partial_event(self, kind: str, s: SignalRow, level: int, percent: float, price: float,
                       when: int) -> PartialEvent:
        return PartialEvent(symbol=self.symbol, strategy_name=self.strategy_name, signal=s, level=level,
                            percent=percent, current_price=price, backtest=self.backtest, timestamp=when,
                            exchange_name=self.exchange_name, frame_name=self.frame_name, kind=kind)

    def _emit_partial(self, kind: str, s: SignalRow, level: int, percent: float, price: float, when: int) -> None:
        channel = bus.partial_profit if kind == "profit" else bus.partial_loss  # type: ignore[attr-defined]
        if channel.active:
            channel.emit(self._partial_event(kind, s, level, percent, price, when))

    async def redeliver(self, event: Any) -> TickResult | None:
        """Deliver again an event saved with its change (a ``JournalEvent``) that a killed process
        may never have delivered: to the callbacks it went to, and on the bus. Returns a signal
        event (for the run's consumer), None for a milestone."""
        if event.partial is not None:
            channel = bus.partial_profit if event.kind == "profit" else bus.partial_loss  # type: ignore[attr-defined]
            channel.emit(event.partial)
            return None
        if event.commit is not None:
            self._emit_commits((event.commit,))
            return None
        if event.breakeven is not None:
            b = event.breakeven
            bus.breakeven.emit(b)  # type: ignore[attr-defined]
            await self._callback("on_breakeven", self.symbol, b.signal, b.current_price, self.backtest)
            return None
        r = event.tick
        if r.action == "closed":
            await self._callback("on_close", self.symbol, r.signal, r.pnl.price_close, self.backtest)
        else:
            name = {"scheduled": "on_schedule", "opened": "on_open", "cancelled": "on_cancel"}[r.action]
            await self._callback(name, self.symbol, r.signal, r.current_price, self.backtest)
        return await self._emit(r)

    async def _close(self, s: SignalRow, reason: str, price_close: float, when: int, price: float,
                     before: tuple[Any, ...] = ()) -> TickClosed:
        """``before``: a command's event, saved with the close and emitted first."""
        result = TickClosed(*self._base(price, when), signal=s, close_reason=reason, close_timestamp=when,
                            pnl=to_profit_loss(s, price_close))
        cleared = self.partial.clear(s.id)
        if self.risks:
            self.release_risk()
        self.pending = None
        # The close is recorded before the open signal is cleared (see engine/persistence/history.py).
        if self.persistence is not None:
            await self._save(("closed", result), ("signal", None), ("risk", None),
                             *([("partial", None)] if cleared else []), events=(*before, result))
        if before:
            self._emit_commits(before)
        self.last_result = result
        if self.callbacks.on_write is not None:
            await self._write(None)
        if self.callbacks.on_close is not None:
            await self._callback("on_close", self.symbol, s, price_close, self.backtest)
        return await self._emit(result)  # type: ignore[return-value]

    # --- backtest fast path -----------------------------------------------------------------

    async def backtest_open(self, series: Series, end_ms: int) -> TickClosed:
        """Resolve the open signal over the loaded candles; emits milestones, then ``closed``."""
        s = self.pending
        self.planned = None     # opened through the lane, closed here: a listener came meanwhile
        if s is None:           # a command closed it as it opened (from on_open)
            return self.last_result  # type: ignore[return-value]
        assert s.pending_at is not None
        # Values computed ahead hold for the row as it opened, not one a command changed.
        ahead = self.resolved_ahead.get(s, series) if self.resolved_ahead is not None and not s.commits else None
        return await self._resolve_open(series, s, series.index(s.pending_at), end_ms, ahead)

    async def _resolve_open(self, series: Series, s: SignalRow, first: int, end_ms: int,
                            ahead: Any = None) -> TickClosed:
        """Resolve ``s`` from candle ``first`` on: where it closes is found at once; its candles are
        replayed to whoever hears them. A command made meanwhile (by a callback or a listener, on
        candle ``c``) changes the row: it is resolved again from candle ``c + 1``, as it now stands."""
        config = get_config()
        while True:
            if ahead is not None:
                j, reason, extremes = ahead
                ahead = None
            else:
                outcome = resolve_open(series, first, position=s.position, take_profit=s.take_profit,
                                       stop_loss=s.stop_loss, pending_at=s.pending_at,  # type: ignore[arg-type]
                                       minutes=s.minute_estimated_time, end_ms=end_ms,
                                       trigger=config.CC_PRICE_TRIGGER)
                j, reason = outcome.index, outcome.reason
                extremes = active_extremes(series, first, j)
            before = s
            if extremes is not None:
                s = self.pending = _with_extremes(s, extremes)
            changed = await self._replay_active(series, s, first, j, extremes)
            if changed is None:
                break
            if self.pending is None:                    # a command closed it
                return self.last_result  # type: ignore[return-value]
            # The peak / trough of the candles it was really open on, with the command's row.
            seen = active_extremes(series, first, changed + 1)
            kept = self.pending
            s = self.pending = replace(kept, peak_pnl=before.peak_pnl, trough_pnl=before.trough_pnl)
            if seen is not None:
                s = self.pending = _with_extremes(s, seen)
            first = changed + 1
        when = int(series.ts[j])
        price = float(series.vwap[j])
        close_price = s.take_profit if reason == "take_profit" else s.stop_loss if reason == "stop_loss" else price
        self.clock.now = when
        return await self._close(s, reason, close_price, when, price)

    async def _replay_active(self, series: Series, s: SignalRow, first: int, stop: int,
                             extremes: tuple[float, float] | None) -> int | None:
        """Milestone events (and per-candle callbacks, pings and breakeven, if anyone hears them)
        for the active candles ``first..stop-1``; the closing candle ``stop`` reaches none (SEMANTICS.md
        section 5). Returns the candle where a command changed the position (None: none did)."""
        cb = self.callbacks
        per_candle = cb.on_active or cb.on_partial_profit or cb.on_partial_loss or cb.on_active_ping
        profit_channel, loss_channel = bus.partial_profit, bus.partial_loss  # type: ignore[attr-defined]
        pings = cb.on_active_ping is not None or bus.active_ping.heard(self.backtest)  # type: ignore[attr-defined]
        breakeven_heard = (cb.on_breakeven is not None or bus.breakeven.heard(self.backtest)  # type: ignore[attr-defined]
                           ) and not s.breakeven_seen
        if not per_candle and not profit_channel.heard(self.backtest) and not loss_channel.heard(self.backtest) \
                and not breakeven_heard:
            if not profit_channel.taps and not loss_channel.taps:
                return None
            batches = _digest_recorders(profit_channel.taps, loss_channel.taps, kind="batch")
            digests = _digest_recorders(profit_channel.taps, loss_channel.taps) if batches is None else None
            if batches is not None or digests is not None:
                # Only the engine's recorders hear milestones: one record for the whole signal (in
                # the recorders' next batch, when they take batches).
                if extremes is None:
                    return None
                profit_levels, loss_levels = milestone_reach(
                    position=s.position, price_open=s.price_open, take_profit=s.price_take_profit,
                    stop_loss=s.price_stop_loss, low=extremes[0], high=extremes[1])
                if batches is not None and (profit_levels or loss_levels):
                    self._batch_milestones(series, batches, s, first, stop, int(series.ts[first]), profit_levels,
                                           loss_levels)
                elif profit_levels or loss_levels:
                    self.flush_planned()
                    digest = MilestoneDigest(self.symbol, self.strategy_name, self.exchange_name, self.frame_name,
                                             self.backtest, s, int(series.ts[first]), series.vwap[first:stop].copy(),
                                             profit_levels, loss_levels)
                    for record in digests:
                        record(digest)
                return None
        self.flush_planned()        # what the recorders wait for comes before these events
        crossings = milestone_crossings(series.vwap[first:stop], position=s.position, price_open=effective_price(s),
                                        take_profit=s.take_profit, stop_loss=s.stop_loss)
        reached = self.partial.states.get(s.id)
        if reached is not None:    # resolved again after a command: levels reached before stay reached
            crossings = [c for c in crossings if c[2] not in (reached.profit_levels if c[1] == "profit"
                                                              else reached.loss_levels)]
        breakeven_at = _first_at_or_past(series.vwap[first:stop], breakeven_threshold(s, get_config()),
                                         s.position == "long") if breakeven_heard else -1
        by_candle: dict[int, list[tuple[str, int, float]]] = {}
        for offset, kind, level, percent in crossings:
            by_candle.setdefault(first + offset, []).append((kind, level, percent))
        if breakeven_at >= 0:
            by_candle.setdefault(first + breakeven_at, [])
        candles = range(first, stop) if per_candle else sorted(by_candle)
        position, entry, take_profit, stop_loss = s.position, effective_price(s), s.take_profit, s.stop_loss
        for j in candles:
            when, price = int(series.ts[j]), float(series.vwap[j])
            self.clock.now = when
            self.candle_price = (when, price)
            if pings:
                ping: Any = bus.active_ping  # type: ignore[attr-defined]
                if ping.active:
                    ping.emit(PingEvent(*self._names(), s, price, self.backtest, when, "active"))
                await self._callback("on_active_ping", self.symbol, s, price, self.backtest)
                if self.pending is not s:
                    return j
            if j - first == breakeven_at:
                s = await self._breakeven_available(s, price, when)
                if self.pending is not s:
                    return j
            for kind, level, percent in by_candle.get(j, ()):
                self.partial.reach(s.id, kind, percent)
                self._emit_partial(kind, s, level, percent, price, when)
                if self.pending is not s:
                    return j
            if not per_candle:
                continue
            percent_tp, percent_sl = progress(position, entry, take_profit, stop_loss, price)
            if percent_tp > 0:
                await self._callback("on_partial_profit", self.symbol, s, price, percent_tp, self.backtest)
            elif percent_sl > 0:
                await self._callback("on_partial_loss", self.symbol, s, price, percent_sl, self.backtest)
            if self.pending is not s:
                return j
            await self._callback("on_active", self.symbol, s, price, self.backtest)
            if self.pending is not s:
                return j
        return None

    async def backtest_scheduled(self, series: Series, end_ms: int) -> TickResult:
        """Resolve the scheduled signal: ``cancelled``, or ``opened`` (then call ``backtest_open``).
        While its pings are heard, each candle it waits on pings first; a command there (cancel,
        activate) decides instead."""
        s = self.scheduled
        if s is None:           # a command cancelled or activated it as it was scheduled
            return self.last_result  # type: ignore[return-value]
        config = get_config()
        start = series.index(s.scheduled_at)
        outcome = resolve_scheduled(series, start, position=s.position,
                                    price_open=s.price_open, stop_loss=s.price_stop_loss,
                                    scheduled_at=s.scheduled_at, await_minutes=config.CC_SCHEDULE_AWAIT_MINUTES,
                                    end_ms=end_ms, trigger=config.CC_PRICE_TRIGGER)
        if self.callbacks.on_schedule_ping is not None or bus.schedule_ping.heard(self.backtest):  # type: ignore[attr-defined]
            for j in range(start + 1, outcome.index):
                when, price = int(series.ts[j]), float(series.vwap[j])
                self.clock.now = when
                self.candle_price = (when, price)
                await self._schedule_ping(s, price, when)
                if self.scheduled is not s:
                    return self.last_result  # type: ignore[return-value]
        when = int(series.ts[outcome.index])
        self.clock.now = when
        price = float(series.vwap[outcome.index])
        if outcome.outcome != "activate":
            return await self._cancel(s, outcome.outcome, when, price)
        # [port] the position opens on the next candle.
        return await self._activate(s, when, price, pending_at=when + MINUTE_MS)


def _with_extremes(s: SignalRow, extremes: tuple[float, float]) -> SignalRow:
    """``s`` with the best and worst PnL of a stretch of candles (lowest, highest) folded in."""
    lo, hi = extremes
    best, worst = (hi, lo) if s.position == "long" else (lo, hi)
    entry = effective_price(s)
    peak, trough = pnl_percentage(s.position, entry, best), pnl_percentage(s.position, entry, worst)
    if s.peak_pnl is not None:
        peak = max(peak, s.peak_pnl)
    if s.trough_pnl is not None:
        trough = min(trough, s.trough_pnl)
    return replace(s, peak_pnl=peak if peak > 0 else None, trough_pnl=trough if trough < 0 else None)


def _first_at_or_past(prices: Any, threshold: float, long: bool) -> int:
    """The first index where ``prices`` reach ``threshold`` (up for a long, down for a short), or -1."""
    if not len(prices):
        return -1
    mask = prices >= threshold if long else prices <= threshold
    i = int(mask.argmax())
    return i if mask[i] else -1


_recorders_seen: dict[str, tuple[tuple[Any, ...], tuple[Any, ...] | None]] = {}


def _digest_recorders(*tap_lists: list[Any], kind: str = "digest") -> tuple[Any, ...] | None:
    """The ``kind`` functions (``digest``: one signal's milestones, ``batch``: many signals')
    of every milestone tap, or None if one has none (remembered while the taps stay the same)."""
    taps = tuple(tap for taps in tap_lists for tap in taps)
    seen, recorders = _recorders_seen.get(kind, ((), None))
    if taps != seen or not taps:
        found = tuple(dict.fromkeys(getattr(tap, kind, None) for tap in taps))
        recorders = None if None in found else found
        _recorders_seen[kind] = (taps, recorders)
    return recorders


_ID_NAMESPACE = uuid.UUID("5b1d3c4e-7a52-4c1e-9a0e-3f1f4b6d2c10").bytes


@functools.lru_cache(maxsize=1024)
def _id_prefix(strategy_name: str, symbol: str) -> Any:
    return hashlib.sha1(_ID_NAMESPACE + f"{strategy_name}\x1f{symbol}\x1f".encode())


def signal_id(strategy_name: str, symbol: str, when: int) -> str:
    """A signal's default id: the same strategy taking a signal on the same symbol at the same
    minute gets the same id in a backtest, a replay and a live loop restarted after a crash.
    It is ``uuid5(namespace, name).hex``, built here without the UUID object (a backtest makes
    one per signal)."""
    sha = _id_prefix(strategy_name, symbol).copy()
    sha.update(str(when).encode())
    digest = bytearray(sha.digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    return digest.hex()


def _reached(position: str, price: float, price_open: float) -> bool:
    return price <= price_open if position == "long" else price >= price_open


def _beyond_stop(position: str, price: float, stop_loss: float) -> bool:
    return price <= stop_loss if position == "long" else price >= stop_loss
