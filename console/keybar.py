"""The one-line key bar at the bottom of every screen: the screen's keys, then the app's, drawn
once as one line of text. (Textual's Footer recomposes a widget per key on every screen switch,
which made switching screens slow; the keys of a screen do not change while it is shown.)"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from .modebar import key_label


class KeyBar(Static):
    DEFAULT_CSS = "KeyBar { height: 1; dock: bottom; }"

    def __init__(self) -> None:
        super().__init__(classes="key-bar")

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, lambda _: self.redraw())
        self.redraw()

    def redraw(self) -> None:
        colors = getattr(self.app, "colors", {})
        key_style = f"bold {colors['accent']}" if "accent" in colors else "bold"
        text = Text(no_wrap=True, overflow="ellipsis")
        for owner in (self.screen, self.app):
            for binding in getattr(owner, "BINDINGS", []):
                if not getattr(binding, "show", True) or not getattr(binding, "description", ""):
                    continue
                text.append(f" {key_label(binding.key.split(',')[0])} ", style=key_style)
                text.append(f"{binding.description} ")
        self.update(text)
