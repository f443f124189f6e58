"""Messages the screens post up to the app (the app switches screens and hands work on)."""

from __future__ import annotations

from textual.message import Message


class BacktestRequested(Message):
    """Show the Backtest screen with ``strategy_name`` chosen (``b`` on the Strategies screen)."""

    def __init__(self, strategy_name: str) -> None:
        super().__init__()
        self.strategy_name = strategy_name
