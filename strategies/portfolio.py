"""A portfolio risk profile the samples share (registered as ``portfolio``).

Two rules across every strategy that names it, on any symbol: one position per symbol (a
second strategy's signal on a symbol already held is rejected) and at most three positions
open in all. A scheduled order holds its slot while it waits. Starting two samples on the same
symbol in the console shows its rejections in the risk pane.
"""

from __future__ import annotations

import engine as bk

NAME = "portfolio"
MAX_OPEN = 3


def one_per_symbol(args: bk.RiskCheckArgs) -> str | None:
    holders = sorted({p.strategy_name for p in args.active_positions if p.symbol == args.symbol})
    if holders:
        return f"{args.symbol} is already held by {', '.join(holders)}"
    return None


def at_most_three(args: bk.RiskCheckArgs) -> str | None:
    if args.active_position_count >= MAX_OPEN:
        return f"{args.active_position_count} positions open, the limit is {MAX_OPEN}"
    return None


def register() -> None:
    bk.add_risk(NAME, validations=[{"validate": one_per_symbol, "note": "one position per symbol"},
                                   {"validate": at_most_three, "note": f"at most {MAX_OPEN} positions"}],
                note="one position per symbol, at most three open")
