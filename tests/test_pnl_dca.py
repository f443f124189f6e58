"""PnL of positions with several entries (DCA) and partial closes: the 60 reference cases of
backtest-kit's own tests (tests/data/pnl_dca_vectors.json) to 1e-6."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import engine as bk
from engine.pnl import effective_price, to_profit_loss, total_closed

VECTORS = json.loads((Path(__file__).parent / "data" / "pnl_dca_vectors.json").read_text())
TOLERANCE = 1e-6


def row(args: dict) -> bk.SignalRow:
    """The vectors' signal (backtest-kit's field names) as a btk signal row."""
    entries = tuple(bk.Entry(e["price"], e["cost"]) for e in args.get("_entry", ()))
    partials = tuple(bk.PartialClose(p.get("type", "profit"), p["percent"], p["currentPrice"], p["costBasisAtClose"],
                                     p["entryCountAtClose"]) for p in args.get("_partial", ()))
    return bk.SignalRow(id=args.get("id", "v"), position=args.get("position", "long"), price_open=args["priceOpen"],
                        price_take_profit=math.inf, price_stop_loss=0.0, entries=entries, partials=partials)


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=TOLERANCE, abs_tol=TOLERANCE)


@pytest.fixture(autouse=True)
def vector_config():
    bk.set_config(**VECTORS["config"])


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda c: c["test"][:80])
def test_pnl_with_entries_and_partial_closes_matches_the_reference(case):
    signal, *rest = case["args"]
    expected = case["result"]
    if case["fn"] == "getEffectivePriceOpen":
        assert close(effective_price(row(signal)), expected)
    elif case["fn"] == "getTotalClosed":
        percent, held = total_closed(row(signal))
        assert close(percent, expected["totalClosedPercent"]) and close(held, expected["remainingCostBasis"])
    else:
        if isinstance(expected, dict) and "throws" in expected:
            with pytest.raises(ValueError, match="more than the"):
                to_profit_loss(row(signal), rest[0])
            return
        pnl = to_profit_loss(row(signal), rest[0])
        assert close(pnl.pnl_percentage, expected["pnlPercentage"])
        assert close(pnl.price_open, expected["priceOpen"]) and close(pnl.price_close, expected["priceClose"])
        for ours, theirs in (("pnl_cost", "pnlCost"), ("pnl_entries", "pnlEntries")):
            if theirs in expected:
                assert close(getattr(pnl, ours), expected[theirs]), (ours, getattr(pnl, ours), expected[theirs])


def test_the_vectors_cover_every_function_and_the_overclose():
    functions = {c["fn"] for c in VECTORS["cases"]}
    assert functions == {"getEffectivePriceOpen", "getTotalClosed", "toProfitLossDto"}
    assert len(VECTORS["cases"]) >= 57 and any("throws" in str(c["result"]) for c in VECTORS["cases"])
