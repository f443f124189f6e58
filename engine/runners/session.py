"""One live run's durable state (SEMANTICS.md 11): what it restores at start, how it saves.

Saving: each state change of the run (``ClientStrategy`` calls ``save`` before it emits the
change's events) becomes one journal (``persistence/journal.py``): written atomically, then
applied (closes recorded in the history, entries written to their files). A change that cannot
be written stays pending in memory, merged with the ones that follow, and is retried every tick;
while it waits the run goes on in memory and says so once. Risk files are snapshots of a shared
profile, written after each change and reconciled with the signal files at start.

Restoring, in order: the journal the last process left is applied again and its events are
taken for redelivery; the cursor, signal, schedule and milestones are read and checked as new
values are (a value that fails is moved aside and reported like a corrupt file); a signal the
history already recorded closed is cleared, not closed again; the risk profiles the run names
drop the slots no open signal in the state dir holds (reported) and hold the run's own.
"""

from __future__ import annotations

import math
import os
import sqlite3
import time
from typing import Any

import msgspec

from ..events import bus
from ..interval import iso
from ..log import get_logger
from ..partial import PartialState, PartialTracker
from ..persistence import journal
from ..persistence.history import SignalHistory, history_for
from ..persistence.journal import Journal, JournalEvent
from ..persistence.state import (FilePersistence, PersistError, StateStore, entry_key, legacy_key, persistence_for,
                                 run_key, safe_name)
from ..risk import ClientRisk, RiskPosition
from ..pnl import position_pnl
from ..types import SignalRow, is_finite_number

RUN_DOMAINS = ("signal", "schedule", "partial", "live", "journal")   # a run's own entries (risk files are shared)
# An idle run saves its cursor after a minute of wall time or an hour of market time (a replay or a
# catch-up, but not more often than four times a second), so a restart re-ticks little.
CHECKPOINT_SECONDS = 60.0
CHECKPOINT_MARKET_MS = 60 * 60_000
CHECKPOINT_MIN_SECONDS = 0.25


class LiveCursor(msgspec.Struct):
    last_tick: int                 # the tick whose state changes began last (at the end: the last tick)
    last_slot: int | None = None   # get_signal throttle slot as that tick began
    symbol: str = ""               # whose run it is (files written before these fields have none)
    strategy_name: str = ""
    exchange_name: str = ""


class ResumeConflict(ValueError):
    """The state dir holds a saved run of this strategy and symbol that the requested span does
    not continue (a replay asked to start later than it stopped, or to end before it)."""


class UnsavedStateError(OSError):
    """A run ended with state changes its store never took: they are lost if nothing retries them."""


def row_problems(row: SignalRow, *, symbol: str, strategy_name: str, exchange_name: str, open_: bool) -> list[str]:
    """What is wrong with a restored signal row: the checks of a new signal that do not depend on
    the price now or on the config (prices finite and > 0 in the order its side needs, a whole
    positive time limit, its times), and the names of the run that restores it."""
    p: list[str] = []
    if row.position not in ("long", "short"):
        p.append(f"position must be 'long' or 'short', got {row.position!r}")
    for name in ("price_open", "price_take_profit", "price_stop_loss"):
        value = getattr(row, name)
        if not is_finite_number(value) or value <= 0:
            p.append(f"{name} must be a finite number > 0, got {value!r}")
    if not p:
        tp, entry, sl = row.price_take_profit, row.price_open, row.price_stop_loss
        if row.position == "long" and not tp > entry > sl:
            p.append(f"a long needs price_take_profit > price_open > price_stop_loss, got {tp:g}, {entry:g}, {sl:g}")
        if row.position == "short" and not sl > entry > tp:
            p.append(f"a short needs price_stop_loss > price_open > price_take_profit, got {sl:g}, {entry:g}, {tp:g}")
    met = row.minute_estimated_time
    whole = is_finite_number(met) and float(met).is_integer() and met > 0
    if not (whole or (isinstance(met, float) and math.isinf(met) and met > 0)):
        p.append(f"minute_estimated_time must be a positive whole number of minutes, got {met!r}")
    # What commands left on it: levels that are prices, entries and partial closes that add up.
    for name in ("trailing_stop_loss", "trailing_take_profit"):
        value = getattr(row, name)
        if value is not None and (not is_finite_number(value) or value <= 0):
            p.append(f"{name} must be None or a finite number > 0, got {value!r}")
    for e in row.entries:
        if not (is_finite_number(e.price) and e.price > 0 and is_finite_number(e.cost) and e.cost > 0):
            p.append(f"an entry needs a price and a cost > 0, got {e.price!r} and {e.cost!r}")
    for c in row.partials:
        if not (is_finite_number(c.percent) and 0 < c.percent <= 100 and is_finite_number(c.price) and c.price > 0
                and is_finite_number(c.cost_basis) and c.cost_basis > 0 and 1 <= c.entries <= max(1, len(row.entries))):
            p.append(f"a partial close needs a percent in (0, 100], a price and a cost basis > 0 and its entries, "
                     f"got {c!r}")
    if not p and row.partials:
        try:
            position_pnl(row, row.price_open)
        except ValueError as e:           # closes that sold more than was put in
            p.append(str(e))
    if open_ and (row.pending_at is None or row.pending_at <= 0):
        p.append(f"an open signal needs pending_at, got {row.pending_at!r}")
    for name, want in (("symbol", symbol), ("strategy_name", strategy_name), ("exchange_name", exchange_name)):
        if getattr(row, name) != want:
            p.append(f"its {name.replace('_name', '')} is {getattr(row, name)!r}, not this run's {want!r}")
    return p


class LiveSession:
    """One live run's persistence: implements ``ClientStrategy``'s ``Persistence``."""

    def __init__(self, state: Any):
        self.state = state
        self.key = run_key(state.symbol, state.strategy_name)
        self.adapter = persistence_for(state.state_dir)
        self.store = StateStore(self.adapter, self._report)
        self.history: SignalHistory | None = None
        # An adapter without a history file (a custom one) keeps closed signals in memory.
        path = getattr(self.adapter, "history_path", None)
        self.history_path = path() if path is not None else f":memory:{id(self.adapter)}"
        self.pending: Journal | None = None       # a change not yet written whole, or not yet applied
        self.pending_written = False
        self.risk_pending: dict[str, bytes] = {}  # risk profile snapshots to write (the newest of each)
        self.failing: str | None = None           # the failure being retried (reported once)
        self.redeliver: list[JournalEvent] = []   # events of the last process's last change
        self.tick_time: int | None = None
        self.tick_slot: int | None = None
        self.cursor_saved = False
        self.cursor_at = time.monotonic()
        self.cursor_tick = 0
        self._encode = msgspec.json.Encoder().encode

    def _report(self, exc: BaseException, where: str) -> None:
        bus.report(exc, where=where, symbol=self.state.symbol, strategy_name=self.state.strategy_name,
                   exchange_name=self.state.exchange_name, backtest=False)

    async def open(self) -> None:
        self.adapter.open()
        try:
            self._migrate_legacy_names()
            self.history = history_for(self.history_path)
            moved = await self.history.open()
            if moved:
                self._report(RuntimeError(moved), "history")
        except BaseException:
            self.adapter.close()
            raise

    async def close(self) -> None:
        try:
            if self.history is not None:
                await self.history.close()
        finally:
            self.adapter.close()

    def _migrate_legacy_names(self) -> None:
        """Files an older btk named by a key two runs could share (``BTC/USDT`` and ``BTC:USDT``)
        take the run's own key, when what they hold names this run."""
        if not isinstance(self.adapter, FilePersistence):
            return
        st = self.state
        old = legacy_key(st.symbol, st.strategy_name)
        if old == self.key or any(self.adapter.path(d, self.key).exists() for d in RUN_DOMAINS):
            return
        owner = None
        for domain, type_ in (("live", LiveCursor), ("signal", SignalRow | None), ("schedule", SignalRow | None)):
            try:
                value = msgspec.json.decode(self.adapter.path(domain, old).read_bytes(), type=type_)
            except (OSError, msgspec.DecodeError, msgspec.ValidationError):
                continue
            if value is not None and value.symbol:
                owner = (value.symbol, value.strategy_name)
                break
        if owner != (st.symbol, st.strategy_name):
            return
        for domain in RUN_DOMAINS:
            if self.adapter.path(domain, old).exists():
                os.replace(self.adapter.path(domain, old), self.adapter.path(domain, self.key))
        get_logger().info("btk: %s %s: state files renamed from the key %s to %s", st.strategy_name, st.symbol, old,
                          self.key)

    # --- restore ---------------------------------------------------------------------------

    def cursor(self) -> LiveCursor | None:
        """Where the saved run (if any) stopped."""
        st = self.state

        def check(c: LiveCursor) -> list[str]:
            if (c.symbol and c.symbol != st.symbol) or (c.strategy_name and c.strategy_name != st.strategy_name):
                return [f"it is the cursor of {c.strategy_name!r} on {c.symbol!r}"]
            return [] if isinstance(c.last_tick, int) and c.last_tick > 0 else [f"last_tick {c.last_tick!r}"]
        return self.store.load("live", self.key, LiveCursor, check)

    def saved_signals(self) -> tuple[SignalRow | None, SignalRow | None]:
        """The open signal and the scheduled one on disk, each checked (a bad one moved aside)."""
        st = self.state
        names = {"symbol": st.symbol, "strategy_name": st.strategy_name, "exchange_name": st.exchange_name}
        signal = self.store.load("signal", self.key, SignalRow | None,
                                 lambda row: row_problems(row, **names, open_=True))
        scheduled = self.store.load("schedule", self.key, SignalRow | None,
                                    lambda row: row_problems(row, **names, open_=False))
        return signal, scheduled

    async def refuse_unless_continued(self, cursor: LiveCursor | None, clock: Any) -> None:
        """A saved run resumes only where the clock continues it: two spans are never mixed."""
        continues = getattr(clock, "continues", None)
        if cursor is None or continues is None or continues(cursor.last_tick):
            return
        st = self.state
        signal, scheduled = self.saved_signals()
        assert self.history is not None
        closed = len(await self.history.closed(st.symbol, st.strategy_name))
        holding = ", ".join(x for x in (
            signal and f"an open {signal.position} position ({signal.id[:8]}, entry {signal.price_open:.8g})",
            scheduled and f"a scheduled {scheduled.position} order ({scheduled.id[:8]})") if x) or "nothing open"
        start, end = getattr(clock, "start", None), getattr(clock, "end", None)
        asked = f"from {iso(start)} to {iso(end)}" if start is not None and end is not None else "now"
        raise ResumeConflict(
            f"{st.state_dir} holds a saved run of {st.strategy_name} on {st.symbol} that stopped at "
            f"{iso(cursor.last_tick)} ({holding}, {closed} closed signal(s)); a replay {asked} does not continue it. "
            "Resume it with a span that does, start fresh (btk live --fresh sets the saved run aside), or use "
            "another --state-dir")

    async def recover(self) -> None:
        """Apply again the change the last process journaled (it may have died applying it) and
        keep its events to deliver again."""
        data = self.adapter.read("journal", self.key)
        if data is None:
            return
        try:
            last = journal.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            self.store.reject("journal", self.key, f"could not be read ({e})")
            return
        if last.empty():
            return
        self.pending, self.pending_written = last, True
        await self._apply()
        self.redeliver = list(last.events)

    async def restore(self, strategy: Any) -> LiveCursor | None:
        st = self.state
        signal, scheduled = self.saved_signals()
        if signal is not None and scheduled is not None and scheduled.id == signal.id:
            scheduled = None  # killed between saving the activated signal and clearing the schedule
        assert self.history is not None
        if signal is not None and await self.history.find(signal.id) is not None:
            # Recorded closed, never cleared (a state dir from before the journal): clear it now.
            get_logger().warning("btk: %s %s: signal %s is already closed in %s; its state file is cleared",
                                 st.strategy_name, st.symbol, signal.id, self.history_path)
            await self.commit(Journal([journal.entry("signal", self.key, None),
                                       journal.entry("partial", self.key, {})]))
            signal = None
        partial = self.store.load("partial", self.key, dict[str, PartialState]) or {}
        strategy.pending, strategy.scheduled = signal, scheduled
        strategy.partial = PartialTracker({k: v for k, v in partial.items() if signal is not None and k == signal.id})
        cursor = self.cursor()
        if cursor is not None:
            strategy.last_slot = cursor.last_slot
        for risk in strategy.risks:
            self._restore_risk(risk, signal, scheduled)
        st.closed = await self.history.closed(st.symbol, st.strategy_name)
        if signal is not None or scheduled is not None:
            get_logger().info("btk: %s %s resumed from %s: open %s, scheduled %s", st.strategy_name, st.symbol,
                              st.state_dir, signal.id if signal else "-", scheduled.id if scheduled else "-")
        return cursor

    def _restore_risk(self, risk: ClientRisk, signal: SignalRow | None, scheduled: SignalRow | None) -> None:
        st = self.state
        name = risk.schema.risk_name
        changed = False
        if not risk.restored:
            saved = self.store.load("risk", entry_key(name), list[RiskPosition]) or []
            if not saved and entry_key(name) != safe_name(name):
                saved = self.store.load("risk", safe_name(name), list[RiskPosition]) or []   # an older btk's name
            for p in saved:
                if self._held(p):
                    risk.confirm(p.signal, strategy_name=p.strategy_name, exchange_name=p.exchange_name,
                                 symbol=p.symbol, when=p.opened_at)
                else:
                    changed = True
                    self._report(RuntimeError(
                        f"risk profile {name}: released the slot of {p.strategy_name} on {p.symbol} ({p.exchange_name}, "
                        f"signal {p.signal.id[:8]}): no open signal in {st.state_dir} holds it"), "risk restore")
            risk.restored = True
        # The signal file is the truth for this run's own slot (a kill may have come between them).
        owner = {"strategy_name": st.strategy_name, "exchange_name": st.exchange_name, "symbol": st.symbol}
        if signal is not None and not risk.has(**owner):
            risk.confirm(signal, **owner, when=signal.pending_at or signal.scheduled_at)
            changed = True
        elif signal is None and risk.has(**owner):
            risk.release(**owner)
            changed = True
        if scheduled is not None:  # a waiting order keeps the slot it reserved before the restart
            risk.reserve(scheduled, **owner, when=scheduled.scheduled_at)
        if changed:
            self._save_risk(risk)
            self._write_risks()

    def _held(self, p: RiskPosition) -> bool:
        """Whether the owner of a saved risk slot still holds that signal open in this state dir."""
        data = self.adapter.read("signal", run_key(p.symbol, p.strategy_name))
        if data is None:
            return False
        try:
            row = msgspec.json.decode(data, type=SignalRow | None)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return False
        return row is not None and row.id == p.signal.id and row.exchange_name == p.exchange_name

    # --- save ------------------------------------------------------------------------------

    async def begin_tick(self, when: int, last_slot: int | None) -> None:
        # The slot as the tick begins: a tick re-run after a restart must ask get_signal again if
        # the first run asked it but died before saving what it answered.
        self.tick_time, self.tick_slot, self.cursor_saved = when, last_slot, False
        if self.pending is not None:
            await self._settle()
        self._write_risks()

    async def checkpoint(self) -> None:
        """After a tick that changed nothing: the cursor, now and then, so a restart re-ticks little."""
        if self.cursor_saved or self.tick_time is None:
            return
        waited = time.monotonic() - self.cursor_at
        if waited >= CHECKPOINT_SECONDS or (waited >= CHECKPOINT_MIN_SECONDS
                                            and self.tick_time - self.cursor_tick >= CHECKPOINT_MARKET_MS):
            await self.commit(Journal([self._cursor_entry()]))

    async def end(self) -> None:
        """The run ended (its span, or a stop): the cursor records its last tick (a replay that
        starts the minute after continues it), and the journal is left without events. What could
        not be saved is listed in the run's state and reported."""
        if self.tick_time is not None:
            await self.commit(Journal([self._cursor_entry()]))
        unsaved = self.unsaved()
        self.state.unsaved = unsaved
        if unsaved:
            self._report(UnsavedStateError(
                f"{self.state.strategy_name} on {self.state.symbol} ended with state not saved: {'; '.join(unsaved)}. "
                f"The files in {self.state.state_dir} hold the state before it; a restart resumes from there"),
                "live end")

    def unsaved(self) -> list[str]:
        out = []
        if self.pending is not None:
            what = sorted({w.domain for w in self.pending.writes} | ({"history"} if self.pending.closed else set()))
            out.append(f"{', '.join(what)} of {self.state.strategy_name} on {self.state.symbol} "
                       f"({self.adapter.describe('journal', self.key)})")
        out += [f"risk profile {name} ({self.adapter.describe('risk', name)})" for name in self.risk_pending]
        return out

    def _cursor_entry(self) -> journal.JournalWrite:
        assert self.tick_time is not None
        st = self.state
        self.cursor_saved, self.cursor_at, self.cursor_tick = True, time.monotonic(), self.tick_time
        return journal.entry("live", self.key, LiveCursor(self.tick_time, self.tick_slot, st.symbol, st.strategy_name,
                                                          st.exchange_name))

    async def save(self, strategy: Any, changes: tuple[tuple[str, Any], ...], events: tuple[Any, ...] = ()) -> None:
        writes = []
        if not self.cursor_saved and self.tick_time is not None:
            writes.append(self._cursor_entry())
        closed = []
        risk = False
        for kind, value in changes:
            if kind in ("signal", "schedule"):
                writes.append(journal.entry(kind, self.key, value))
            elif kind == "partial":
                writes.append(journal.entry("partial", self.key, strategy.partial.states))
            elif kind == "risk":
                risk = True
            elif kind == "closed":
                closed.append(value)
                self.state.closed.append(value)
        delivered = [journal.journal_event(e) for e in events]
        await self.commit(Journal(writes, closed, delivered))
        if risk:
            for r in strategy.risks:
                self._save_risk(r)
        self._write_risks()

    async def commit(self, change: Journal) -> bool:
        """Journal ``change`` (merged with a pending one) and apply it. False while the store fails."""
        if self.pending is not None:
            self.pending, self.pending_written = self.pending.merged(change), False
        else:
            self.pending, self.pending_written = change, False
        return await self._settle()

    async def _settle(self) -> bool:
        if self.pending is None:
            return True
        if not self.pending_written:
            try:
                self.adapter.write("journal", self.key, journal.encode(self.pending))
            except OSError as e:
                self._failed("journal", e)
                return False
            self.pending_written = True
        return await self._apply()

    async def _apply(self) -> bool:
        change = self.pending
        assert change is not None and self.history is not None
        for closed in change.closed:
            try:
                await self.history.record(closed)
            except (OSError, sqlite3.Error) as e:
                self._failed("history", e)
                return False
        for w in change.writes:
            try:
                self.adapter.write(w.domain, w.key, bytes(w.data))
            except OSError as e:
                self._failed(w.domain, e)
                return False
        self.pending = None
        self._recovered()
        return True

    def _save_risk(self, risk: ClientRisk) -> None:
        self.risk_pending[entry_key(risk.schema.risk_name)] = self._encode(list(risk.positions.values()))

    def _write_risks(self) -> None:
        for name, data in list(self.risk_pending.items()):
            try:
                self.adapter.write("risk", name, data)
            except OSError as e:
                self._failed("risk", e, name)
                return
            del self.risk_pending[name]
        self._recovered()

    def _failed(self, what: str, exc: BaseException, key: str | None = None) -> None:
        where = self.history_path if what == "history" else self.adapter.describe(what, key or self.key)
        if self.failing is not None:
            return
        self.failing = where
        reason = getattr(exc, "strerror", None) or str(exc)
        message = (f"could not save the {what} state of {self.state.strategy_name} on {self.state.symbol} to {where}: "
                   f"{reason}; the files on disk keep the state before it, btk goes on with the state in memory and "
                   "retries the write every tick")
        code = getattr(exc, "errno", None)
        self._report(PersistError(code, message) if code else PersistError(message), "persist save")

    def _recovered(self) -> None:
        if self.failing is not None and self.pending is None and not self.risk_pending:
            get_logger().warning("btk: %s %s: state saved to %s after earlier failures", self.state.strategy_name,
                                 self.state.symbol, self.state.state_dir)
            self.failing = None

    # --- redelivery ------------------------------------------------------------------------

    def take_redeliveries(self) -> list[JournalEvent]:
        events, self.redeliver = self.redeliver, []
        if events:
            get_logger().info("btk: %s %s: %d event(s) of the change before the restart delivered again "
                              "(same event ids)", self.state.strategy_name, self.state.symbol, len(events))
        return events
