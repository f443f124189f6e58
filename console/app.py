"""The btk console: a Textual app over the engine, used over SSH, driven by single keys.

Screens are Textual modes (1 live, 2 backtest, 3 walker, 4 strategies, ? help). The engine
runs in workers on the app's own event loop; ``EngineBridge`` subscribes to its events and
posts coalesced ``EngineUpdate`` messages, whose handler redraws the screens. Every binding
has an id and a description; the Help screen and the command palette are generated from them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

import engine as bk
from engine.exchange.bundled import BUNDLED
from engine.store import default_home
from themes import DEFAULT_THEME, STYLESHEET, THEMES

from . import format as fmt
from .bridge import EngineBridge, EngineUpdate
from .modebar import ModeBar
from engine.exchange.markets import registered_or_ccxt
from .screens.backtest import BacktestScreen
from .screens.dialogs import ConfirmDialog, StartDialog, StartRequest
from .screens.help import HelpScreen
from .screens.live import LiveScreen
from .screens.strategies import StrategiesScreen
from .screens.walker import WalkerScreen

DEFAULT_SPEED = 600.0      # replay: market minutes per wall minute (10 per second)


@dataclass
class ConsoleConfig:
    store: Path                                           # the candle store
    state_dir: Path = field(default_factory=lambda: default_home() / "state")   # live state (resumes on restart)
    reports: Path = field(default_factory=lambda: default_home() / "reports")
    speed: float = DEFAULT_SPEED
    clock: Callable[[], float] = time.monotonic           # progress rates; tests fix it for stable pixels


def replay_name(source: str) -> str:
    return "replay" if source == BUNDLED else f"replay-{source}"


class BtkApp(App):
    TITLE = "btk"
    CSS_PATH = str(STYLESHEET)
    MODES = {"live": LiveScreen, "backtest": BacktestScreen, "walker": WalkerScreen,
             "strategies": StrategiesScreen, "help": HelpScreen}
    DEFAULT_MODE = "live"
    DIALOGS = {"confirm dialog": ConfirmDialog, "start dialog": StartDialog}
    BINDINGS = [
        # The screens: shown on the mode bar at the top rather than in the footer.
        Binding("1", "switch_mode('live')", "Live", show=False, id="screen.live"),
        Binding("2", "switch_mode('backtest')", "Backtest", show=False, id="screen.backtest"),
        Binding("3", "switch_mode('walker')", "Walker", show=False, id="screen.walker"),
        Binding("4", "switch_mode('strategies')", "Strategies", show=False, id="screen.strategies"),
        Binding("question_mark,f1", "switch_mode('help')", "Help", show=False, id="screen.help"),
        Binding("t", "toggle_theme", "Theme", id="app.theme"),
        Binding("ctrl+p", "command_palette", "Commands", id="app.commands"),
        Binding("q", "quit_console", "Quit", id="app.quit"),
    ]

    def __init__(self, config: ConsoleConfig, markets: list[tuple[str, str]]) -> None:
        super().__init__()
        self.config = config
        self.markets = markets              # (exchange, symbol) of the stored 1m series
        self.bridge = EngineBridge(self.post_message, clock=config.clock)
        self._palette: tuple[str, dict[str, str]] | None = None
        for theme in THEMES:
            self.register_theme(theme)
        self.theme = DEFAULT_THEME

    def on_mount(self) -> None:
        self.bridge.start()

    async def on_unmount(self) -> None:
        self.bridge.stop()
        for exchange in bk.list_exchanges():
            if exchange.close is not None:
                try:
                    await exchange.close()
                except Exception:
                    pass  # closing on the way out: nothing left to tell

    @property
    def colors(self) -> dict[str, str]:
        """The running theme's colours for Rich cells and charts (see ``format.palette``)."""
        if self._palette is None or self._palette[0] != self.theme:
            self._palette = (self.theme, fmt.palette(self.theme_variables))
        return self._palette[1]

    # -- the bridge's updates -----------------------------------------------------------------
    def on_engine_update(self, update: EngineUpdate) -> None:
        for screen in self.screen_stack:
            handler = getattr(screen, "on_engine", None)
            if handler is not None:
                handler(update)
            if update.board_version:
                for bar in screen.query(ModeBar):
                    bar.redraw()     # its count of live runs

    # -- live runs ------------------------------------------------------------------------------
    def live_exchange(self, given: str, symbol: str) -> str:
        """The exchange name for a live run: ``replay`` (of the market's store exchange), a registered
        exchange, or a ccxt id (registered on first use). Raises ValueError with the reason."""
        if given == "replay":
            sources = [exchange for exchange, s in self.markets if s == symbol]
            if not sources:
                raise ValueError(f"replay: no stored 1m candles of {symbol}")
            source = BUNDLED if BUNDLED in sources else sources[0]
            name = replay_name(source)
            if name not in {e.exchange_name for e in bk.list_exchanges()}:
                bk.add_replay_exchange(name, source=source, store_path=self.config.store, speed=self.config.speed)
            return name
        return registered_or_ccxt(given)

    def start_live(self, request: StartRequest) -> bool:
        try:
            exchange = self.live_exchange(request.exchange, request.symbol)
        except ValueError as e:
            self.notify(str(e), severity="error")
            self.bridge.note(f"not started: {e}", "error")
            return False
        running = {(r["symbol"], r["strategy_name"]) for r in bk.Live.list() if r["status"] == "running"}
        if (request.symbol, request.strategy_name) in running:
            self.notify(f"{request.strategy_name} already runs on {request.symbol}", severity="warning")
            return False
        self.run_worker(self._live(request.strategy_name, request.symbol, exchange), group="live",
                        name=f"live {request.symbol} {request.strategy_name}", exit_on_error=False)
        return True

    async def _live(self, strategy: str, symbol: str, exchange: str) -> None:
        """The worker of one live run; its errors reach the log pane through ``listen_error``."""
        self.bridge.note(f"started {strategy} on {symbol} ({exchange})")
        ended = "ended"
        try:
            async for _ in bk.Live.run(symbol, strategy_name=strategy, exchange_name=exchange,
                                       state_dir=self.config.state_dir):
                pass
        except Exception:
            ended = "stopped by an error (see above)"
        self.bridge.board.forget(symbol, strategy)
        self.bridge.note(f"{strategy} on {symbol} {ended}")

    def stop_live(self, symbol: str, strategy: str) -> None:
        bk.Live.stop(symbol, strategy_name=strategy)
        self.bridge.note(f"stopping {strategy} on {symbol}: no new signals; an open position is watched until it closes")

    def running_live(self) -> list[dict]:
        return [r for r in bk.Live.list() if r["status"] == "running"]

    # -- app actions ----------------------------------------------------------------------------
    def action_toggle_theme(self) -> None:
        names = [t.name for t in THEMES]
        self.theme = names[(names.index(self.theme) + 1) % len(names)] if self.theme in names else names[0]

    def action_quit_console(self) -> None:
        running = self.running_live()
        if not running:
            self.exit()
            return
        listed = ", ".join(f"{r['strategy_name']} on {r['symbol']}" for r in running)
        self.push_screen(ConfirmDialog(
            f"Quit with {len(running)} live run(s)?",
            f"{listed} stop now. Their state is saved in {self.config.state_dir}; starting them again "
            "(same symbol and exchange) resumes open positions and scheduled orders.", confirm="Quit"),
            lambda yes: self.run_worker(self._quit_after_live_runs()) if yes else None)

    async def _quit_after_live_runs(self) -> None:
        """Cancel the live runs and let each close its files and database before the loop ends
        (their state was saved before every event; cancelling loses nothing)."""
        runs = [w for w in self.workers if w.group == "live"]
        for worker in runs:
            worker.cancel()
        for worker in runs:
            try:
                await worker.wait()
            except Exception:
                pass  # cancelled or failed: either way it is over
        self.exit()

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """The command palette: every binding's action, by description, plus Textual's own."""
        from .screens.help import all_bindings, key_names
        for where, binding in all_bindings(self):
            if where in self.DIALOGS or binding.action == "command_palette":
                continue
            title = binding.description if where == "everywhere" else f"{where.title()}: {binding.description}"
            yield SystemCommand(title, f"key {key_names(binding)} · {binding.id}",
                                partial(self._palette_action, where, binding.action))
        yield from super().get_system_commands(screen)

    async def _palette_action(self, where: str, action: str) -> None:
        if where == "everywhere":
            await self.run_action(action)
            return
        await self.switch_mode(where)
        await self.run_action(action, self.screen)
