"""The one-line bar on top of every screen: the screens and their keys (from the app's
bindings), the current one highlighted, and how many live runs are going."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.widgets import Static

if TYPE_CHECKING:
    from .context import ConsoleApp

KEY_NAMES = {"question_mark": "?", "escape": "esc", "enter": "enter", "plus": "+", "minus": "-",
             "equals_sign": "=", "R": "shift+r"}


def key_label(key: str) -> str:
    key = key.strip()
    return KEY_NAMES.get(key, key)


class ModeBar(Static):
    DEFAULT_CSS = "ModeBar { height: 1; }"
    app: ConsoleApp

    def __init__(self, mode: str) -> None:
        super().__init__(classes="mode-bar")
        self.mode = mode
        self._shown: Text | None = None

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, lambda _: self.redraw())
        self.redraw()

    def redraw(self) -> None:
        colors = self.app.colors
        text = Text(" btk ", style=f"bold {colors['primary']}")
        for binding in self.app.BINDINGS:  # type: ignore[attr-defined]
            if not binding.id or not binding.id.startswith("screen."):
                continue
            mode = binding.id.removeprefix("screen.")
            label = f" {key_label(binding.key.split(',')[0])} {binding.description} "
            if mode == self.mode:
                text.append(label, style=f"bold {colors['foreground']} on {colors['primary-darken-2']}")
            else:
                text.append(label, style=colors["muted"])
        running = len(self.app.bridge.running())
        if running:
            text.append(f"  {running} live", style=colors["success"])
        if text != self._shown:      # most engine updates change nothing here: no repaint then
            self._shown = text
            self.update(text, layout=False)      # one line, as wide as the screen whatever it says
