"""Modal dialogs: start a strategy (live or replay), and confirmations that say what will happen."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select


class ConfirmDialog(ModalScreen[bool]):
    """Yes / no, with the consequences spelled out. ``y`` confirms; ``n`` or escape keeps things as
    they are, and so does enter at first (the focus starts on Cancel)."""

    AUTO_FOCUS = "#no"
    BINDINGS = [
        Binding("y", "answer(True)", "Confirm", id="confirm.yes"),
        Binding("n,escape", "answer(False)", "Cancel", id="confirm.no"),
    ]

    def __init__(self, title: str | Text, body: str | Text, confirm: str = "Confirm", danger: bool = True) -> None:
        super().__init__()
        # Shown as text: names in them (``sma_cross[fast=5,slow=30]``) are never read as markup.
        self.title_text, self.body = Text(title) if isinstance(title, str) else title, \
            Text(body) if isinstance(body, str) else body
        self.confirm, self.danger = confirm, danger

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog danger" if self.danger else "dialog"):
            yield Label(self.title_text, id="confirm-title")
            yield Label(self.body, id="confirm-body")
            with Horizontal(classes="buttons"):
                yield Button("Cancel (n)", id="no")
                yield Button(f"{self.confirm} (y)", id="yes", variant="error" if self.danger else "primary")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


@dataclass(frozen=True)
class StartRequest:
    strategy_name: str
    symbol: str
    exchange: str          # "replay" or a registered exchange / ccxt id for live


class StartDialog(ModalScreen[StartRequest | None]):
    """Where to run a strategy: a symbol, and replay (paper trading on stored candles at the
    console's ``--speed``) or an exchange name for live candles."""

    AUTO_FOCUS = "#start"
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="start.cancel"),
        Binding("ctrl+s", "submit", "Start", id="start.submit"),
    ]

    def __init__(self, strategy_name: str, symbols: list[str]) -> None:
        super().__init__()
        self.strategy_name, self.symbols = strategy_name, symbols

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(Text(f"Start {self.strategy_name}"), id="start-title")
            yield Select([(Text(s), s) for s in self.symbols], value=self.symbols[0] if self.symbols else Select.BLANK,
                         allow_blank=not self.symbols, id="start-symbol", prompt="symbol")
            yield Input(value="replay", id="start-exchange",
                        placeholder="replay, or an exchange: bundled, binance...")
            yield Label("", id="start-error", classes="error-text")
            with Horizontal(classes="buttons"):
                yield Button("Cancel (esc)", id="cancel")
                yield Button("Start (enter)", id="start", variant="primary")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "start":
            self.action_submit()
        else:
            self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_submit()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_submit(self) -> None:
        symbol = self.query_one("#start-symbol", Select).value
        exchange = self.query_one("#start-exchange", Input).value.strip()
        error = self.query_one("#start-error", Label)
        if symbol is Select.BLANK or not isinstance(symbol, str):
            error.update("choose a symbol")
            return
        if not exchange:
            error.update("exchange: give replay, or an exchange name")
            return
        self.dismiss(StartRequest(self.strategy_name, symbol, exchange))
