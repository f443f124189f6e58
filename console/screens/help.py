"""The Help screen: every key binding of the console, generated from the bindings themselves
(the app's, each screen's and each dialog's), with its id and description."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from ..keybar import KeyBar
from ..modebar import ModeBar, key_label
from .base import BtkScreen

if TYPE_CHECKING:
    from textual.app import App

COLUMNS = ("where", "keys", "id", "what it does")


def key_names(binding: Binding) -> str:
    return " / ".join(key_label(k) for k in binding.key.split(","))


def all_bindings(app: App) -> Iterator[tuple[str, Binding]]:
    """(where, binding) for every binding with an id, app-wide first, in declaration order."""
    dialogs = getattr(app, "DIALOGS", {})
    owners = [("everywhere", type(app))] + [(mode, screen) for mode, screen in app.MODES.items()] + \
        [(name, dialog) for name, dialog in dialogs.items()]
    for where, owner in owners:
        for item in owner.BINDINGS:
            if isinstance(item, Binding) and item.id:
                yield where, item


class HelpScreen(BtkScreen):
    BINDINGS = [Binding("escape", "back", "Back", id="help.back")]

    def compose(self) -> ComposeResult:
        yield ModeBar("help")
        yield Static("btk keys: single keys switch screens; ctrl+p opens the command palette with every action",
                     classes="status-line")
        yield DataTable(id="help-table", classes="pane", cursor_type="row", zebra_stripes=True)
        yield KeyBar()

    def on_mount(self) -> None:
        table = self.query_one("#help-table", DataTable)
        table.border_title = "help"
        table.add_columns(*COLUMNS)
        for where, binding in all_bindings(self.app):
            table.add_row(where, key_names(binding), binding.id, binding.description)

    def action_back(self) -> None:
        self.app.switch_mode("live")
