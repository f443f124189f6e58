"""What the Live screen shows, kept from the engine's events: open signals, scheduled
orders, the milestone / risk / log feeds and the P&L summary.

The engine calls ``apply_*`` synchronously from its emits, so each is a few dict
operations; the widgets are redrawn from here at most ``REFRESH_HZ`` times a second
(see ``console.bridge``). Times are the engine's (market time on a replay), never the
wall clock, so what the panes show is reproducible.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import msgspec

import engine as bk
from engine.interval import MINUTE_MS
from engine.pnl import effective_price
from engine.position import held_percent

FEED_LINES = 200
SEEN_EVENTS = 20_000          # event ids remembered to drop repeats


@dataclass
class OpenSignal:
    """The newest tick of an open position."""
    tick: Any                     # TickOpened or TickActive
    percent_tp: float = 0.0
    percent_sl: float = 0.0

    @property
    def signal(self) -> bk.SignalRow:
        return self.tick.signal

    @property
    def pnl(self) -> float:
        return bk.to_profit_loss(self.signal, self.tick.current_price).pnl_percentage

    @property
    def age_minutes(self) -> int:
        return max(0, (self.tick.created_at - (self.signal.pending_at or self.tick.created_at)) // MINUTE_MS)

    @property
    def entry(self) -> float:
        """The effective entry (its entries averaged by money)."""
        return effective_price(self.signal)

    @property
    def held(self) -> float:
        """Percent of the money put in still held (100 until a partial close)."""
        return held_percent(self.signal)


@dataclass
class ScheduledOrder:
    tick: Any                     # TickScheduled or TickActive of a waiting signal
    await_minutes: int

    @property
    def signal(self) -> bk.SignalRow:
        return self.tick.signal

    @property
    def distance(self) -> float:
        """Percent the price must still move to reach the entry (signed: + means up)."""
        price = self.tick.current_price
        return (self.signal.price_open - price) / price * 100.0 if price else 0.0

    @property
    def minutes_left(self) -> int:
        return max(0, (self.signal.scheduled_at + self.await_minutes * MINUTE_MS - self.tick.created_at) // MINUTE_MS)


@dataclass
class FeedLine:
    timestamp: int                # engine time (the newest seen, for the console's own lines)
    text: str
    kind: str = "info"            # profit, loss, risk, error, info
    seq: int = 0                  # position in the board's stream of lines: views append what is new


@dataclass
class Summary:
    closed: int = 0
    wins: int = 0
    losses: int = 0
    realised: float = 0.0         # sum of closed PnL percentages
    errors: int = 0
    rejections: int = 0


@dataclass
class LiveBoard:
    open: dict[tuple[str, str], OpenSignal] = field(default_factory=dict)
    scheduled: dict[tuple[str, str], ScheduledOrder] = field(default_factory=dict)
    milestones: deque[FeedLine] = field(default_factory=lambda: deque(maxlen=FEED_LINES))
    risk: deque[FeedLine] = field(default_factory=lambda: deque(maxlen=FEED_LINES))
    log: deque[FeedLine] = field(default_factory=lambda: deque(maxlen=FEED_LINES))
    summary: Summary = field(default_factory=Summary)
    closed: dict[tuple[str, str], list[Any]] = field(default_factory=dict)   # each run's closed trades, oldest first
    levels: dict[str, list[tuple[str, int, int, float]]] = field(default_factory=dict)  # signal id -> milestones
    last_price: dict[str, float] = field(default_factory=dict)
    last_time: int = 0
    version: int = 0              # bumped on every change; the view redraws what changed
    lines: int = 0                # feed lines ever added (FeedLine.seq)
    # Event ids applied: a run restarted after a crash delivers the events of its last change
    # again (at least once), and a repeat must not count a close or log a line twice.
    seen: dict[str, None] = field(default_factory=dict)

    def _first(self, event_id: str) -> bool:
        """Whether this is the first time the event comes (remembers the newest SEEN_EVENTS)."""
        if event_id in self.seen:
            return False
        self.seen[event_id] = None
        if len(self.seen) > SEEN_EVENTS:
            del self.seen[next(iter(self.seen))]
        return True

    @property
    def unrealised(self) -> float:
        return sum(s.pnl for s in self.open.values())

    def _add(self, feed: deque[FeedLine], timestamp: int, text: str, kind: str = "info") -> None:
        self.lines += 1
        feed.append(FeedLine(timestamp, text, kind, self.lines))

    def _touch(self, when: int) -> None:
        self.version += 1
        if when > self.last_time:
            self.last_time = when

    def apply_tick(self, tick: Any) -> None:
        """A live tick (every action; ``idle`` only updates the price)."""
        key = (tick.symbol, tick.strategy_name)
        self.last_price[tick.symbol] = tick.current_price
        action = tick.action
        if action == "idle":
            self._touch(tick.created_at)
            return
        if action in ("scheduled", "opened", "closed", "cancelled") and not self._first(tick.event_id):
            return
        if action == "scheduled" or (action == "active" and tick.signal.pending_at is None):
            await_minutes = bk.get_config().CC_SCHEDULE_AWAIT_MINUTES
            self.scheduled[key] = ScheduledOrder(tick, await_minutes)
        elif action in ("opened", "active"):
            self.scheduled.pop(key, None)
            self.open[key] = OpenSignal(tick, getattr(tick, "percent_tp", 0.0), getattr(tick, "percent_sl", 0.0))
        elif action == "closed":
            self.open.pop(key, None)
            self.scheduled.pop(key, None)
            self.closed.setdefault(key, []).append(tick)
            pnl = tick.pnl.pnl_percentage
            s = self.summary
            s.closed += 1
            s.realised += pnl
            if pnl > 0:
                s.wins += 1
            else:
                s.losses += 1
            # The figure first: a narrow feed cuts the end of a line, never its PnL.
            self._add(self.log, tick.close_timestamp, f"{pnl:+.2f}% closed {tick.symbol} {tick.strategy_name} "
                      f"{tick.signal.position} {tick.close_reason}", "profit" if pnl > 0 else "loss")
        elif action == "cancelled":
            self.scheduled.pop(key, None)
            self._add(self.log, tick.close_timestamp, f"cancelled {tick.symbol} {tick.strategy_name} "
                      f"{tick.signal.position} scheduled order: {tick.reason}")
        if action in ("scheduled", "opened"):
            s = tick.signal
            self._add(self.log, tick.created_at, f"{action} {tick.symbol} {tick.strategy_name} {s.position} "
                      f"@ {s.price_open:.6g}")
        self._touch(tick.created_at)

    def apply_history(self, closed: list[Any]) -> None:
        """Closes made before this console started (the state dir's history): the closed-trades
        table and the per-run figures count them; the P&L line and the log are this session's."""
        for tick in closed:
            if self._first(tick.event_id):
                self.closed.setdefault((tick.symbol, tick.strategy_name), []).append(tick)
        for trades in self.closed.values():
            trades.sort(key=lambda t: t.close_timestamp)
        self._touch(0)

    def run_figures(self, key: tuple[str, str]) -> tuple[int, float | None, float | None, float | None]:
        """(trades, win rate %, total PnL %, max drawdown %) of a run's closed trades."""
        trades = self.closed.get(key, [])
        if not trades:
            return 0, None, None, None
        stats = bk.backtest_statistics(trades)
        return stats.total_signals, stats.win_rate, stats.total_pnl, stats.max_drawdown

    def apply_milestone(self, kind: str, event: bk.PartialEvent) -> None:
        """One short line (the feed does not wrap), the level first: ``40% TP BTCUSDT sma_cross``;
        the level also goes on the position's chart."""
        if not self._first(f"{event.signal.id}:{kind}:{event.level}"):   # its event_id, kind given here
            return
        target = "TP" if kind == "profit" else "SL"
        self._add(self.milestones, event.timestamp, f"{event.level}% {target} {event.symbol} {event.strategy_name}",
                  kind)
        self.levels.setdefault(event.signal.id, []).append((kind, event.level, event.timestamp, event.current_price))
        self._touch(event.timestamp)

    def apply_commit(self, event: bk.CommitEvent) -> None:
        """A command acted: the position's row shows the row it left (its trailed levels, entry,
        share held) at once, and the log says what it did, the figure first."""
        if not self._first(event.event_id):
            return
        key = (event.symbol, event.strategy_name)
        held = self.open.get(key)
        if held is not None and held.signal.id == event.signal.id and event.action != "close_pending":
            self.open[key] = OpenSignal(msgspec.structs.replace(held.tick, signal=event.signal), held.percent_tp,
                                        held.percent_sl)
        kind = "info"
        if event.pnl is not None and event.action != "close_pending":
            kind = "profit" if event.pnl.pnl_percentage > 0 else "loss"
        self._add(self.log, event.timestamp, commit_line(event), kind)
        self._touch(event.timestamp)

    def apply_breakeven(self, event: bk.BreakevenEvent) -> None:
        if not self._first(event.event_id):
            return
        self._add(self.milestones, event.timestamp, f"BE {event.symbol} {event.strategy_name}", "profit")
        self._touch(event.timestamp)

    def apply_risk(self, event: bk.RiskEvent) -> None:
        self.summary.rejections += 1
        note = " ".join(event.rejection_note.split()) or "rejected"
        self._add(self.risk, event.timestamp, f"[{event.risk_name}] {event.strategy_name} {event.signal.position}: "
                  f"{note}", "risk")
        self._touch(event.timestamp)

    def apply_error(self, event: Any) -> None:
        """An engine error (the host's ``ErrorNote``: its text, where, symbol and strategy)."""
        self.summary.errors += 1
        where = " ".join(x for x in (event.where, event.symbol, event.strategy_name) if x)
        self._add(self.log, self.last_time, f"error {where}: {event.text}", "error")
        self._touch(0)

    def note(self, text: str, kind: str = "info") -> None:
        """A line of the console's own (started, stopped, finished...)."""
        self._add(self.log, self.last_time, text, kind)
        self._touch(0)

    def forget(self, symbol: str, strategy_name: str) -> None:
        """A run ended: its rows leave the tables (a closed position already left)."""
        self.open.pop((symbol, strategy_name), None)
        self.scheduled.pop((symbol, strategy_name), None)
        self._touch(0)



def commit_line(event: bk.CommitEvent) -> str:
    """A command in one log line: what it did first, then where, then its figures."""
    s, who = event.signal, f"{event.symbol} {event.strategy_name}"
    by = "" if event.source == "strategy" else f" ({event.source})"
    action = event.action
    if action in ("partial_profit", "partial_loss"):
        pnl = event.pnl
        figure = f"{pnl.pnl_percentage:+.2f}% " if pnl is not None else ""
        return f"{figure}closed {event.percent:g}% {who} @ {event.current_price:.6g}, {held_percent(s):.4g}% held{by}"
    if action in ("trailing_stop", "breakeven"):
        return f"SL {s.stop_loss:.6g} {who} ({action.replace('_', ' ')}){by}"
    if action == "trailing_take":
        return f"TP {s.take_profit:.6g} {who} (trailing take){by}"
    if action == "average_buy":
        return f"bought {event.cost:g} more {who} @ {event.current_price:.6g}, entry {effective_price(s):.6g}{by}"
    if action == "close_pending":
        return f"close {who} @ {event.current_price:.6g}{by}"
    if action == "activate_scheduled":
        return f"activated {who} order @ {s.price_open:.6g}{by}"
    return f"cancelled {who} order{by}"
