"""What the screens may use of the console: its configuration, the bridge's models, the
workspace, colours and the engine's commands (``ConsoleApp``). Screens import this leaf, never
the app module: the app depends on the screens, not the other way round."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from engine.persistence.candles import default_home

from .glyphs import UNICODE, Glyphs

if TYPE_CHECKING:
    from engine.service.messages import Workspace

    from .bridge import EngineBridge

DEFAULT_SPEED = 600.0      # replay: market minutes per wall minute (10 per second)


@dataclass
class ConsoleConfig:
    store: Path                                           # the candle store
    state_dir: Path = field(default_factory=lambda: default_home() / "state")   # live state (resumes on restart)
    reports: Path = field(default_factory=lambda: default_home() / "reports")
    speed: float = DEFAULT_SPEED
    clock: Callable[[], float] = time.monotonic           # progress rates; tests fix it for stable pixels
    glyphs: Glyphs = UNICODE                              # ASCII on a terminal whose locale is not UTF-8
    no_color: bool = False                                # NO_COLOR: charts mark up and down by shape


class ConsoleApp(Protocol):
    config: ConsoleConfig
    bridge: EngineBridge
    workspace: Workspace

    @property
    def colors(self) -> dict[str, str]: ...

    async def command(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Run the engine host's command ``name``; None when it refused (the user was told why)."""
        ...

    def end_key_hush(self) -> None:
        """Let the engine work at its full share again (a key hushed it while its screen was drawn)."""
        ...
