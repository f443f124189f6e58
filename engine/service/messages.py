"""What an engine host says to the consoles that watch it: the state of its runs, and batches of
events (msgspec Structs, so a batch can cross a thread or, encoded, a socket)."""

from __future__ import annotations


import msgspec

from ..report import OrderCounts
from ..runners.live import SavedRun
from ..runners.walker import WalkerEvent, WalkerProgressEvent, WalkerResults
from ..stats import BacktestStatistics
from ..types import (BreakevenEvent, Candles, CommitEvent, PartialEvent, RiskEvent, SignalRow, TickCancelled,
                     TickClosed, TickOpened, TickResult, TickScheduled)


class RunStatus(msgspec.Struct, frozen=True):
    """A live run of the host: its names and state, its clock (a replay's market time, speed,
    end), what it holds, and why it ended (``ended``: empty while it runs)."""

    symbol: str
    strategy_name: str
    exchange_name: str
    state: str                       # starting | running | paused | stopping | ended
    market_time: int | None = None   # the run's clock: a replay's market minute, live the wall minute
    speed: float | None = None       # a replay's market minutes per wall minute (None: the wall clock)
    replay_end: int | None = None
    open: bool = False
    scheduled: bool = False
    ended: str = ""
    failed: bool = False             # it ended on an error

    @property
    def key(self) -> tuple[str, str]:
        return (self.symbol, self.strategy_name)

    @property
    def replay(self) -> bool:
        return self.speed is not None


class ErrorNote(msgspec.Struct, frozen=True, tag_field="action", tag="error"):
    """An error the engine reported (``listen_error``), as text: the exception stays on its side."""

    text: str
    where: str = ""
    symbol: str = ""
    strategy_name: str = ""


class Note(msgspec.Struct, frozen=True, tag_field="action", tag="note"):
    """A line of the host's own: a run started, ended, a report saved..."""

    text: str
    kind: str = "info"               # info | error


class Milestone(msgspec.Struct, frozen=True, tag_field="action", tag="milestone"):
    kind: str                        # profit | loss
    event: PartialEvent


class Commit(msgspec.Struct, frozen=True, tag_field="action", tag="commit"):
    """A command acted on a live run's position or order (the strategy's, the console's, a script's)."""

    event: CommitEvent


class Breakeven(msgspec.Struct, frozen=True, tag_field="action", tag="breakeven"):
    """A live position's price passed its breakeven threshold."""

    event: BreakevenEvent


class BacktestProgress(msgspec.Struct, frozen=True):
    symbol: str
    strategy_name: str
    processed: int
    total: int


# What a batch's events are (each tagged on ``action``, so one decoder tells them apart on a socket).
Event = TickScheduled | TickOpened | TickClosed | TickCancelled | Milestone | RiskEvent | ErrorNote | Note | Commit | \
    Breakeven


class EventBatch(msgspec.Struct):
    """What happened since the last batch, in order. ``events``: lifecycle results (scheduled,
    opened, closed, cancelled), milestones, risk rejections, errors and notes, as they came;
    ``ticks``: the newest ``active`` / ``idle`` result of each live run after them (a replay
    ticks far faster than anyone reads); ``runs``: every run's status when any changed;
    ``backtest``, ``walker_progress``: the newest progress; ``walker_cells``: cells finished."""

    events: list[Event] = msgspec.field(default_factory=list)
    ticks: list[TickResult] = msgspec.field(default_factory=list)
    runs: list[RunStatus] | None = None
    saved: list[SavedRun] | None = None
    history: list[TickClosed] | None = None   # closes already in the state dir's history (the first batch)
    backtest: BacktestProgress | None = None
    walker_cells: list[WalkerEvent] = msgspec.field(default_factory=list)
    walker_progress: WalkerProgressEvent | None = None

    def __bool__(self) -> bool:
        return bool(self.events or self.ticks or self.runs is not None or self.saved is not None
                    or self.history is not None or self.backtest is not None or self.walker_cells
                    or self.walker_progress is not None)


class StrategyInfo(msgspec.Struct, frozen=True):
    strategy_name: str
    interval: str
    risk_names: tuple[str, ...]
    note: str


class WalkerInfo(msgspec.Struct, frozen=True):
    walker_name: str
    strategies: tuple[str, ...]
    symbols: tuple[str, ...]
    metric: str


class Workspace(msgspec.Struct, frozen=True):
    """What a console offers to choose from: the registry's strategies, walkers and frames, the
    stored 1m markets, and where live state goes."""

    strategies: list[StrategyInfo]
    walkers: list[WalkerInfo]
    frames: list[str]
    markets: list[tuple[str, str]]   # (exchange, symbol) of every stored 1m series
    state_dir: str
    speed: float


class BacktestOutcome(msgspec.Struct):
    """A finished (or stopped) backtest: its closed signals and statistics, the 1m candles of its
    frame (for the chart), frames done of all, its entries, and how long it took."""

    title: str
    symbol: str
    strategy_name: str
    stopped: bool
    closed: list[TickClosed]
    stats: BacktestStatistics
    candles: Candles
    start: int
    processed: int
    total: int
    seconds: float
    orders: OrderCounts | None = None


class WalkerOutcome(msgspec.Struct):
    walker_name: str
    results: list[WalkerResults]     # per symbol, then the overall one
    stopped: bool = False


class ServerStatus(msgspec.Struct):
    """What ``btk status`` shows: each run, its open position and scheduled order, where its clock
    is, and the newest errors."""

    state_dir: str
    runs: list[RunStatus]
    positions: list[SignalRow]
    scheduled: list[SignalRow]
    errors: list[ErrorNote]
    consoles: int = 0                # consoles attached to the server


class CommandError(ValueError):
    """A command the host refused: the message says why (shown to the user as it is)."""


__all__ = ["BacktestOutcome", "BacktestProgress", "CommandError", "ErrorNote", "Event", "EventBatch", "Milestone",
           "Note", "RiskEvent", "RunStatus", "SavedRun", "ServerStatus", "StrategyInfo", "WalkerInfo", "WalkerOutcome",
           "Workspace"]
