"""SEMANTICS.md sections 6 (PnL), 8 (sizing) and 9 (statistics, tests/data/stats_vectors.json)."""

import json
import re
from pathlib import Path

import pytest

import engine as bk

VECTORS = json.loads((Path(__file__).parent / "data" / "stats_vectors.json").read_text())


def row(position, price_open, **kw):
    return bk.SignalRow(id="x", position=position, price_open=price_open, price_take_profit=kw.pop("tp", 1e9),
                        price_stop_loss=kw.pop("sl", 1e-9), **kw)


@pytest.mark.parametrize("position, open_, close, expected", [
    ("long", 100, 110, 9.570439560), ("short", 100, 90, 9.629639640), ("long", 42000, 43000, 1.974218639),
    ("long", 42000, 41000, -2.773419438), ("short", 42000, 43000, -2.788505172), ("long", 100, 100, -0.399600400),
])
def test_pnl_checks(position, open_, close, expected):
    pnl = bk.to_profit_loss(row(position, open_), close)
    assert pnl.pnl_percentage == pytest.approx(expected, abs=5e-10)
    assert (pnl.price_open, pnl.price_close) == (open_, close)


def _closed(trades):
    out = []
    for i, t in enumerate(trades):
        s = bk.SignalRow(id=str(i), position="long", price_open=100, price_take_profit=110, price_stop_loss=90,
                         symbol=t["symbol"], scheduled_at=t["pendingAt"], pending_at=t["pendingAt"],
                         peak_pnl=t["peakProfitPnl"], trough_pnl=t["maxDrawdownPnl"])
        out.append(bk.TickClosed(symbol=t["symbol"], strategy_name="s", exchange_name="e", frame_name="f",
                                 current_price=t["closePrice"], backtest=True, created_at=t["closeTimestamp"],
                                 signal=s, close_reason="take_profit", close_timestamp=t["closeTimestamp"],
                                 pnl=bk.PnL(t["pnlPercentage"], 100, 100)))
    return out


def _snake(name):
    return {"total_trades": "total_signals"}.get(re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower(),
                                                re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower())


def _assert_matches(stats, expected):
    for key, want in expected.items():
        got = getattr(stats, _snake(key))
        tol = 1e-6 if key.startswith("trend") else 1e-9
        if isinstance(want, str) or want is None:
            assert got == want, key
        else:
            assert got == pytest.approx(want, rel=tol, abs=1e-12), key


def test_statistics_reproduce_the_12_trade_vector_in_any_input_order():
    case = VECTORS["backtest_12_trades"]
    closed = _closed(case["trades"])
    _assert_matches(bk.backtest_statistics(list(reversed(closed))), case["expected"])


@pytest.mark.parametrize("symbol", ["BTCUSDT", "ETHUSDT"])
def test_statistics_reproduce_the_per_symbol_heat_vectors(symbol):
    case = VECTORS["heat_two_symbols"]
    closed = [c for c in _closed(case["trades"]) if c.symbol == symbol]
    _assert_matches(bk.backtest_statistics(closed), case["expected_per_symbol"][symbol])


def test_ratios_are_none_below_ten_trades_and_annualisation_needs_14_days():
    closed = _closed(VECTORS["backtest_12_trades"]["trades"])
    nine = bk.backtest_statistics(closed[:9])
    assert nine.total_signals == 9 and nine.avg_pnl is not None and nine.win_rate is not None
    for field in ("sharpe_ratio", "annualized_sharpe_ratio", "sortino_ratio", "certainty_ratio", "calmar_ratio",
                  "recovery_factor", "expected_yearly_returns", "profit_factor"):
        assert getattr(nine, field) is None, field
    # 10 trades over ~18 days: ratios yes; compress the calendar to under 14 days: no annualised figures.
    ten = bk.backtest_statistics(closed[:10])
    assert ten.sharpe_ratio is not None and ten.annualized_sharpe_ratio is not None
    hourly = [{**t, "pendingAt": 1704067200000 + i * 3_600_000,
               "closeTimestamp": 1704067200000 + i * 3_600_000 + 1_800_000}
              for i, t in enumerate(VECTORS["backtest_12_trades"]["trades"])]
    compressed = bk.backtest_statistics(_closed(hourly))
    assert compressed.sharpe_ratio is not None
    assert compressed.annualized_sharpe_ratio is None and compressed.expected_yearly_returns is None


def test_no_trades_gives_counts_zero_and_every_metric_none():
    s = bk.backtest_statistics([])
    assert (s.total_signals, s.win_count, s.loss_count, s.signal_list) == (0, 0, 0, [])
    assert s.win_rate is None and s.avg_pnl is None and s.sharpe_ratio is None and s.trend is None


def test_sizing_checks():
    bk.add_sizing("fixed", method="fixed-percentage", risk_percentage=2)
    bk.add_sizing("kelly", method="kelly-criterion", kelly_multiplier=0.25)
    bk.add_sizing("atr", method="atr-based", risk_percentage=2, atr_multiplier=2)
    # The SEMANTICS.md examples, to the digit (exact floats, not approximately).
    assert bk.PositionSize.fixed_percentage(10000, 50000, 49000, sizing_name="fixed") == 0.2
    assert bk.PositionSize.kelly_criterion(10000, 50000, 0.55, 1.5, sizing_name="kelly") == 0.0125
    assert bk.PositionSize.atr_based(10000, 50000, 500, sizing_name="atr") == 0.2
    # Short side: the distance is |open - SL|.
    assert bk.PositionSize.fixed_percentage(10000, 50000, 51000, sizing_name="fixed") == 0.2
    # A losing edge sizes to zero, never negative.
    assert bk.PositionSize.kelly_criterion(10000, 50000, 0.3, 1.0, sizing_name="kelly") == 0.0


def test_each_sizing_cap_on_its_own():
    bk.add_sizing("floor", method="fixed-percentage", risk_percentage=2, min_position_size=0.5)
    assert bk.PositionSize.fixed_percentage(10000, 50000, 49000, sizing_name="floor") == 0.5      # 0.2 -> 0.5
    bk.add_sizing("pct", method="fixed-percentage", risk_percentage=2, max_position_percentage=50)
    assert bk.PositionSize.fixed_percentage(10000, 50000, 49000, sizing_name="pct") == 0.1        # 5000/50000
    bk.add_sizing("size", method="atr-based", risk_percentage=2, max_position_size=0.15)
    assert bk.PositionSize.atr_based(10000, 50000, 500, sizing_name="size") == 0.15
    bk.add_sizing("kelly_floor", method="kelly-criterion", min_position_size=0.001)
    assert bk.PositionSize.kelly_criterion(10000, 50000, 0.3, 1.0, sizing_name="kelly_floor") == 0.001
    # Caps that do not bind leave the size alone.
    bk.add_sizing("loose", method="fixed-percentage", risk_percentage=2, min_position_size=0.01,
                  max_position_percentage=100, max_position_size=1)
    assert bk.PositionSize.fixed_percentage(10000, 50000, 49000, sizing_name="loose") == 0.2
    seen = []
    bk.add_sizing("observed", method="atr-based", risk_percentage=2,
                  callbacks=bk.SizingCallbacks(on_calculate=lambda qty, params: seen.append((qty, params["atr"]))))
    bk.PositionSize.atr_based(10000, 50000, 500, sizing_name="observed")
    assert seen == [(0.2, 500.0)]


def test_sizing_errors_are_specific():
    bk.add_sizing("fixed", method="fixed-percentage", risk_percentage=2)
    bk.add_sizing("kelly", method="kelly-criterion")
    bk.add_sizing("atr", method="atr-based", risk_percentage=2)
    cases = [
        (lambda: bk.PositionSize.fixed_percentage(10000, 50000, 50000, sizing_name="fixed"), "must differ from price_open"),
        (lambda: bk.PositionSize.fixed_percentage(10000, 0, 49000, sizing_name="fixed"), "price_open must be > 0"),
        (lambda: bk.PositionSize.fixed_percentage(0, 50000, 49000, sizing_name="fixed"), "balance must be > 0"),
        (lambda: bk.PositionSize.fixed_percentage(10000, float("nan"), 49000, sizing_name="fixed"), "finite number"),
        (lambda: bk.PositionSize.atr_based(10000, 50000, 0, sizing_name="atr"), "atr must be > 0"),
        (lambda: bk.PositionSize.kelly_criterion(10000, 50000, 1.5, 1.5, sizing_name="kelly"), "probability in"),
        (lambda: bk.PositionSize.kelly_criterion(10000, 50000, 0.5, 0, sizing_name="kelly"), "win_loss_ratio must be > 0"),
        (lambda: bk.PositionSize.kelly_criterion(10000, 50000, 0.5, 1, sizing_name="fixed"), "uses method fixed-percentage"),
        (lambda: bk.PositionSize.atr_based(10000, 50000, 500, sizing_name="ghost"), "unknown sizing"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()


def test_sizing_limits_and_errors():
    bk.add_sizing("capped", method="fixed-percentage", risk_percentage=2, max_position_percentage=10,
                  max_position_size=0.015, min_position_size=0.001)
    assert bk.PositionSize.fixed_percentage(10000, 50000, 49000, sizing_name="capped") == pytest.approx(0.015)
    with pytest.raises(ValueError, match="uses method fixed-percentage"):
        bk.PositionSize.atr_based(10000, 50000, 500, sizing_name="capped")
    with pytest.raises(ValueError, match="unknown sizing"):
        bk.PositionSize.atr_based(10000, 50000, 500, sizing_name="nope")
    with pytest.raises(ValueError, match="risk_percentage is required"):
        bk.add_sizing("bad", method="atr-based")
    with pytest.raises(ValueError, match="unknown method"):
        bk.add_sizing("bad", method="martingale")


def test_registration_validates_eagerly():
    with pytest.raises(ValueError, match="unknown interval '7m'"):
        bk.add_strategy("s", lambda s, w: None, interval="7m")
    bk.add_strategy("s", lambda s, w: None)
    with pytest.raises(ValueError, match="already registered"):
        bk.add_strategy("s", lambda s, w: None)
    with pytest.raises(ValueError, match="get_signal must be callable"):
        bk.add_strategy("t", "not a function")
    with pytest.raises(ValueError, match="get_candles is required"):
        bk.add_exchange("e", None)
    with pytest.raises(ValueError, match="is after end"):
        bk.add_frame("f", start=2_000_000, end=1_000_000)
    with pytest.raises(ValueError, match="unknown callback"):
        bk.add_strategy("u", lambda s, w: None, callbacks={"on_opne": print})
    with pytest.raises(ValueError, match="unknown metric"):
        bk.add_walker("w", exchange_name="e", frame_name="f", strategies=["s"], metric="alpha")
    bk.add_walker("w", exchange_name="e", frame_name="f", strategies=["s", "ghost"])
    with pytest.raises(ValueError) as err:
        bk.validate()
    assert "unknown exchange 'e'" in str(err.value) and "unknown strategy 'ghost'" in str(err.value)
    assert [s.strategy_name for s in bk.list_strategies()] == ["s"]
    bk.clear_registry()
    assert bk.list_strategies() == [] and bk.list_walkers() == []
