"""The Live screen's commands on a position or an order: which key does what, and the words of
their confirmations (the effect, from the engine's preview: the new stop-loss, the share closed,
what it realises)."""

from __future__ import annotations

from dataclasses import dataclass

from engine.pnl import effective_price
from engine.position import CommitPreview, held_percent
from engine.types import SignalRow

TRAIL_STEP = 0.5        # a press of the trail key moves the stop-loss this many percent of the entry closer


@dataclass(frozen=True)
class PositionKey:
    key: str
    action: str               # engine.position.ACTIONS
    label: str                # the dialog's title and button
    percent: float | None = None
    on_order: bool = False    # acts on the scheduled order under the cursor, not the open position


KEYS = (
    PositionKey("e", "close_pending", "Close now"),
    PositionKey("b", "breakeven", "Stop to breakeven"),
    PositionKey("s", "trailing_stop", "Trail the stop"),
    PositionKey("a", "partial_profit", "Close 25 %", 25.0),
    PositionKey("h", "partial_profit", "Close 50 %", 50.0),
    PositionKey("o", "activate_scheduled", "Activate order", on_order=True),
    PositionKey("d", "cancel_scheduled", "Cancel order", on_order=True),
)


def trail_shift(row: SignalRow, step: float = TRAIL_STEP) -> float:
    """The ``percent_shift`` of ``commit_trailing_stop`` that puts the stop-loss ``step`` percent of
    the entry closer than it is now (the shift counts from the original stop's distance)."""
    entry = effective_price(row)
    sign = 1.0 if row.position == "long" else -1.0
    original = abs(entry - row.price_stop_loss) / entry * 100.0
    now = sign * (entry - row.stop_loss) / entry * 100.0
    return now - original - step


def partial_kind(row: SignalRow, price: float) -> str:
    """A partial close takes profit while the price is past the entry, else a loss."""
    entry = effective_price(row)
    ahead = price > entry if row.position == "long" else price < entry
    return "partial_profit" if ahead else "partial_loss"


def effect(preview: CommitPreview, percent: float | None = None) -> str:
    """What the command will do, in the figures a trader checks before saying yes."""
    before, after, price = preview.signal, preview.after, preview.current_price
    assert before is not None
    lines = [f"At the VWAP {price:.8g} ({before.position} from {effective_price(before):.8g})."]
    action = preview.action
    if action in ("trailing_stop", "breakeven") and after is not None:
        lines.append(f"Stop-loss {before.stop_loss:.8g} -> {after.stop_loss:.8g}.")
    elif action == "trailing_take" and after is not None:
        lines.append(f"Take-profit {before.take_profit:.8g} -> {after.take_profit:.8g}.")
    elif action in ("partial_profit", "partial_loss"):
        lines.append(f"Closes {percent or 100:g} % of what is held; "
                     + (f"{held_percent(after):.4g} % of the position stays open." if after is not None
                        else "nothing stays open: the position closes."))
    elif action == "close_pending":
        lines.append("Closes the whole position now (reason: closed).")
    elif action == "activate_scheduled":
        lines.append(f"Opens now at the order's price {before.price_open:.8g}, after the risk check.")
    elif action == "cancel_scheduled":
        lines.append("The order is cancelled; the strategy goes on taking signals.")
    if preview.pnl is not None:
        pnl = preview.pnl
        cost = f" ({pnl.pnl_cost:+.2f} on {pnl.pnl_entries:g})" if pnl.pnl_cost is not None else ""
        lines.append(f"Realises {pnl.pnl_percentage:+.2f} %{cost}.")
    return "\n".join(lines)
