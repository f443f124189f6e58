"""The btk console: a Textual app over the engine, used over SSH, driven by single keys.

Screens are Textual modes (1 live, 2 backtest, 3 walker, 4 strategies, ? help). The engine runs
on a thread of its own (``engine.service.thread``): the console sends it commands and reads
the batches of events it sends back, which ``EngineBridge`` records and turns into coalesced
``EngineUpdate`` messages that the screens redraw from. The console's loop never runs engine
work, so keys are answered while replays and backtests go flat out. Every binding has an id
and a description; the Help screen and the command palette are generated from them.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable
from functools import partial
from typing import Any

from rich.text import Text
from textual import events
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.screen import Screen

from engine.log import describe_error
from engine.service.host import EngineHost
from engine.service.messages import CommandError, Workspace
from engine.service.thread import EngineThread
from themes import DEFAULT_THEME, STYLESHEET, THEMES

from . import format as fmt
from .bridge import EngineBridge, EngineUpdate
from .context import ConsoleConfig
from .glyphs import ASCII_OUT
from .messages import BacktestRequested
from .modebar import ModeBar
from .screens.backtest import BacktestScreen
from .screens.dialogs import ConfirmDialog, StartDialog
from .screens.help import HelpScreen
from .screens.live import LiveScreen
from .screens.strategies import StrategiesScreen
from .screens.walker import WalkerScreen


SWITCH_HOLD_S = 0.001
GIL_SWITCH_S = 0.001
KEY_HUSH_S = 0.25
# After SIGHUP and the engine stopped with its state saved: how long the console's own last steps
# may take before the process ends anyway (its terminal is gone).
HANGUP_GRACE_S = 5.0


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

    def __init__(self, config: ConsoleConfig, engine: EngineThread | None = None) -> None:
        super().__init__()
        self.config = config
        self.bridge = EngineBridge(self.post_message, clock=config.clock)
        self.engine = engine or EngineThread(lambda deliver: EngineHost(
            store=config.store, state_dir=config.state_dir, speed=config.speed, deliver=deliver))
        self.workspace = Workspace([], [], [], [], str(config.state_dir), config.speed)
        self.crash: str | None = None       # what took the console down, for the last words and exit status
        self._palette: tuple[str, dict[str, str]] | None = None
        self._engine_stop = threading.Lock()           # on unmount and on a hang-up: stopped once
        self._engine_stopped = False
        for theme in THEMES:
            self.register_theme(theme)
        self.theme = DEFAULT_THEME

    def on_load(self) -> None:
        # The engine's thread and this one share the interpreter lock: hand it over every
        # millisecond rather than every five, so a key waits at most that long for it.
        sys.setswitchinterval(GIL_SWITCH_S)
        # Before the first screen is composed: the engine's thread, and what it offers.
        self.engine.start(self.bridge.apply)
        self.workspace = self.engine.submit("workspace").result()

    def on_mount(self) -> None:
        if self.config.glyphs.ascii:
            self.add_class("ascii")       # ASCII borders (themes/btk.tcss)
            driver = self._driver          # and nothing but ASCII reaches the terminal
            if driver is not None:
                write = driver.write
                driver.write = lambda data: write(data.translate(ASCII_OUT))  # type: ignore[method-assign]
        try:
            # An SSH drop: end as a quit does (every run stops with its state saved, never mid-write).
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._hung_up)
        except (ValueError, RuntimeError, NotImplementedError):
            pass       # not the main thread, or no SIGHUP on this system

    def _hung_up(self) -> None:
        """The terminal went away: exit 129 as a quit would. Textual's last writes then go to a
        terminal that is gone, and its writer can block forever, before or after the app unmounts
        (seen with attached consoles). So the engine is stopped here too, its runs' state saved,
        and the process ends HANGUP_GRACE_S after that whatever the terminal does."""
        def stop_then_end() -> None:
            self._stop_engine()
            time.sleep(HANGUP_GRACE_S)
            os._exit(129)
        threading.Thread(target=stop_then_end, name="btk-hangup", daemon=True).start()
        self.exit(None, 129)

    def _stop_engine(self) -> None:
        """Stop the engine once (on unmount, or on a hang-up, whichever comes first): live runs stop
        with their state saved (each resumes on the next start); exchanges close; an attached
        console detaches."""
        with self._engine_stop:
            if not self._engine_stopped:
                self.engine.stop()
                self._engine_stopped = True

    async def on_unmount(self) -> None:
        self.bridge.stop()
        self._stop_engine()

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key):
            self.engine.hush(KEY_HUSH_S)     # the screen this key asks for is drawn before the engine goes on
        await super().on_event(event)

    def end_key_hush(self) -> None:
        self.engine.hush(0.0)

    def switch_mode(self, mode: str) -> Any:
        self.bridge.hold()        # the new screen draws itself first; the engine's redraws wait their turn
        return super().switch_mode(mode)

    def delay_update(self, delay: float = 0.05) -> None:
        # Textual holds every screen switch back 50 ms to mask the first layout of a new screen;
        # a trader switching screens is kept waiting by it on every key. A millisecond is enough
        # for the switch's own messages to settle.
        super().delay_update(min(delay, SWITCH_HOLD_S))

    @property
    def markets(self) -> list[tuple[str, str]]:
        return self.workspace.markets

    @property
    def colors(self) -> dict[str, str]:
        """The running theme's colours for Rich cells and charts (see ``format.palette``)."""
        if self._palette is None or self._palette[0] != self.theme:
            self._palette = (self.theme, fmt.palette(self.theme_variables))
        return self._palette[1]

    # -- the engine -----------------------------------------------------------------------------
    async def command(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Run the engine host's command ``name``; None when it refused (the user was told why)."""
        try:
            return await self.engine.call(name, *args, **kwargs)
        except CommandError as e:
            self.notify(str(e), severity="warning", markup=False)
            self.bridge.note(str(e), "error")
            return None

    def on_engine_update(self, update: EngineUpdate) -> None:
        for screen in self.screen_stack:
            if not screen.is_mounted:
                continue          # still composing: it draws itself from the models when it mounts
            handler = getattr(screen, "on_engine", None)
            if handler is not None:
                try:
                    handler(update)
                except NoMatches:
                    pass          # a screen whose widgets are going (closing): nothing to redraw
            if update.runs:
                for bar in screen.query(ModeBar):
                    bar.redraw()     # its count of live runs

    def running_live(self) -> list[Any]:
        return self.bridge.running()

    async def on_backtest_requested(self, message: BacktestRequested) -> None:
        await self.switch_mode("backtest")
        screen = self.screen
        if isinstance(screen, BacktestScreen):
            screen.choose(message.strategy_name)

    # -- failures -------------------------------------------------------------------------------
    def _handle_exception(self, error: Exception) -> None:
        """A widget or handler failed: the console ends (Textual's rule), but never silently and
        never taking live runs down mid-write: ``on_unmount`` stops them with their state saved,
        ``main`` says what happened and exits non-zero."""
        self.crash = describe_error(error)
        super()._handle_exception(error)

    # -- app actions ----------------------------------------------------------------------------
    def action_toggle_theme(self) -> None:
        names = [t.name for t in THEMES]
        self.theme = names[(names.index(self.theme) + 1) % len(names)] if self.theme in names else names[0]

    @property
    def attached(self) -> bool:
        """Whether the engine is a server's (its runs go on when the console ends)."""
        return bool(getattr(self.engine, "remote", False))

    def action_quit_console(self) -> None:
        running = self.running_live()
        if not running or self.attached:
            self.exit()
            return
        listed = ", ".join(f"{r.strategy_name} on {r.symbol}" for r in running)
        self.push_screen(ConfirmDialog(
            Text(f"Quit with {len(running)} live run(s)?"),
            Text(f"{listed} stop now. Their state is saved in {self.config.state_dir}; starting them again "
                 "(same symbol and exchange) resumes open positions and scheduled orders."), confirm="Quit"),
            lambda yes: self.exit() if yes else None)

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


def exit_words(app: BtkApp) -> tuple[str, int]:
    """What ``btk`` says as it ends, and its exit status (non-zero after a crash or an SSH drop)."""
    if app.attached:
        where = getattr(app.engine, "socket_path", "")
        gone = getattr(app.engine, "gone", None)
        if app.crash is not None:
            return (f"btk: the console stopped on an error: {app.crash}; the engine server ({where}) and its runs "
                    "go on: `btk attach` to watch them again", 1)
        if gone and gone != "detached":
            return f"btk: the engine server at {where} went away ({gone})", 1
        code = app.return_code or 0
        return (f"btk: detached from the engine server at {where}; its runs go on (`btk attach` to watch them "
                "again)", code)
    if app.crash is not None:
        return (f"btk: the console stopped on an error: {app.crash}; live runs were stopped with their state "
                f"saved in {app.config.state_dir} (starting them again resumes them)", 1)
    code = app.return_code or 0
    if code == 129:
        return (f"btk: the terminal closed (SIGHUP); live runs were stopped with their state saved in "
                f"{app.config.state_dir}", 129)
    return "", code

