"""btk engine: strategies, signals, backtests, events, statistics (``import engine as bk``).

The public names of spec/API.md, and nothing of the console: this package never
imports a UI module (a test proves it).
"""

from .analytics import (Heat, HeatRow, HeatStatistics, MetricStatistics, MilestoneEvent, Partial, PartialStatistics,
                        Performance, PerformanceStatistics, Risk, RiskStatistics, Schedule, ScheduleEvent,
                        ScheduleStatistics, heat_statistics, reset_analytics)
from .commands import (commit_activate_scheduled, commit_average_buy, commit_breakeven, commit_cancel_scheduled,
                       commit_close_pending, commit_partial_loss, commit_partial_profit, commit_trailing_stop,
                       commit_trailing_take, get_pending_signal, get_position_effective_price, get_position_entries,
                       get_position_partials, get_position_percent_held, get_scheduled_signal)
from .config import GlobalConfig, get_config, reset_config, set_config
from .context import get_date, get_mode
from .events import (
    drain_events, listen_backtest_progress, listen_done_backtest, listen_done_backtest_once, listen_done_live,
    listen_done_live_once, listen_done_walker, listen_done_walker_once, listen_error, listen_exit,
    listen_partial_loss, listen_partial_loss_live, listen_partial_loss_once, listen_partial_profit,
    listen_partial_profit_live, listen_partial_profit_once,
    listen_performance, listen_risk, listen_risk_live, listen_risk_once, listen_signal, listen_signal_backtest,
    listen_signal_backtest_once, listen_signal_live, listen_signal_live_once, listen_signal_once,
    listen_validation, listen_walker, listen_walker_complete, listen_walker_once, listen_walker_progress,
    listen_active_ping, listen_active_ping_once, listen_breakeven, listen_breakeven_once, listen_schedule_ping,
    listen_schedule_ping_once, listen_strategy_commit, listen_strategy_commit_once,
)
from .column import Column
from .exchange.errors import CandleDataError, CandlesUnavailable, ExchangeError, HistoryUnavailable
from .exchange.replay import ReplayExchange, add_replay_exchange
from .functions import format_price, format_quantity, get_average_price, get_candles, get_indicators
from .indicators import Indicator, IndicatorError, indicator_problems
from .log import set_logger
from .persistence.state import (CorruptStateError, FilePersistence, MemoryPersistence, PersistenceAdapter, PersistError,
                      StateDirBusy, set_persistence)
from .pnl import effective_price, to_profit_loss
from .position import ACTIONS as COMMIT_ACTIONS, CommitPreview, CommitResult
from .report import OrderCounts
from .registry import (
    ExchangeCallbacks, FrameCallbacks, RiskCallbacks, SizingCallbacks, StrategyCallbacks, WalkerCallbacks,
    add_exchange, add_frame, add_risk, add_sizing, add_strategy, add_walker, clear_registry, list_exchanges,
    list_frames, list_risks, list_sizings, list_strategies, list_walkers, validate,
)
from .risk import RiskCheckArgs, RiskPosition
from .runners.backtest import Backtest
from .runners.live import Live, ResumeConflict, SavedRun, UnsavedStateError
from .runners.walker import (Walker, WalkerCompleteEvent, WalkerDoneEvent, WalkerEvent, WalkerProgressEvent,
                             WalkerResults, WalkerRow)
from .signal import SignalValidationError
from .sizing import PositionSize
from .sweep import add_sweep, expand_grid, sweep_name
from .stats import BacktestStatistics, backtest_statistics
from .vectorised import SignalFrame, Signals, SignalsError, lookahead_problems
from .types import (
    BacktestProgressEvent, BreakevenEvent, Candle, Candles, CommitEvent, DoneEvent, PingEvent, Entry, ErrorEvent, PartialClose, PartialEvent, PerformanceEvent,
    PnL,
    RiskEvent, SignalDto, SignalRow, TickActive, TickCancelled, TickClosed, TickIdle, TickOpened, TickResult,
    TickScheduled,
)

__all__ = [name for name in dir() if not name.startswith("_") and name not in {
    "config", "context", "events", "exchange", "functions", "log", "pnl", "registry", "risk", "runners",
    "signal", "sizing", "stats", "types", "feed", "interval", "fastpath", "partial", "persistence", "report",
    "strategy", "analytics", "commands", "position", "cells", "cellcache", "executors", "sweep", "vectorised", "windows"}]
