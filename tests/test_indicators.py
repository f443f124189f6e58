"""Declared indicators (engine/indicators.py): computed once per backtest, per tick live, the same
values both ways; the checks catch look-ahead and a warm-up too short for a recursive indicator."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import engine as bk
from console.workspace import open_workspace
from engine.interval import MINUTE_MS
from strategies import sma_cross

EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "examples" / "sma_indicators.py"


def load_example():
    spec = importlib.util.spec_from_file_location("sma_indicators_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def trades(results):
    return [(r.signal.id, r.close_timestamp, r.close_reason, r.pnl.pnl_percentage) for r in results
            if r.action == "closed"]


async def test_declared_indicators_decide_as_running_sums_in_a_backtest_and_a_replay(seeded_store, tmp_path):
    await open_workspace(seeded_store)
    load_example()
    bk.add_strategy("plain_cross", sma_cross.get_signal)          # no risk profile, like the example

    async def backtest(name):
        return trades([r async for r in bk.Backtest.run("BTCUSDT", strategy_name=name, exchange_name="bundled",
                                                        frame_name="bundled-btcusdt", vectorised=False)])

    declared, reference = await backtest("sma_indicators"), await backtest("plain_cross")
    assert len(declared) > 100 and [t[1:] for t in declared] == [t[1:] for t in reference]
    clock = await bk.ReplayExchange(store_path=seeded_store).live_clock("BTCUSDT")
    bk.add_replay_exchange("replay", store_path=seeded_store, speed=0, start=clock.start,
                           end=clock.start + 3000 * MINUTE_MS)

    async def replay(name):
        return trades([r async for r in bk.Live.run("BTCUSDT", strategy_name=name, exchange_name="replay",
                                                   state_dir=tmp_path / name)])

    live_declared, live_reference = await replay("sma_indicators"), await replay("plain_cross")
    assert len(live_declared) > 5 and [t[1:] for t in live_declared] == [t[1:] for t in live_reference]


def candles(n=3000, seed=3):
    close = 100 + np.cumsum(np.random.default_rng(seed).normal(0, 0.2, n))
    return bk.Candles.from_arrays(np.arange(n) * MINUTE_MS, close, close + 0.1, close - 0.1, close, np.ones(n))


def ema(values, n):
    out = np.empty(len(values))
    alpha, acc = 2 / (n + 1), values[0]
    for i, v in enumerate(values):
        acc = alpha * v + (1 - alpha) * acc
        out[i] = acc
    return out


def test_the_checks_catch_look_ahead_and_a_short_warm_up():
    c = candles()
    cuts = list(range(100, 3000, 97))
    honest = bk.Indicator(lambda c: np.convolve(c.close, np.ones(10) / 10, "full")[:len(c)], startup=10)
    assert bk.indicator_problems("sma", honest, c, cuts) == []
    peeking = bk.Indicator(lambda c: np.append(c.close[1:], np.nan), startup=2)        # the next close
    assert "reads ahead" in bk.indicator_problems("next", peeking, c, cuts)[0]
    short = bk.Indicator(lambda c: ema(c.close, 50), startup=20)       # an EMA needs far more than 20 closes
    assert "needs more than startup=20" in bk.indicator_problems("ema", short, c, cuts)[0]
    assert bk.indicator_problems("ema", bk.Indicator(short.fn, startup=1500), c, cuts) == []


def test_bad_declarations_and_answers_say_what_is_wrong():
    with pytest.raises(ValueError, match="startup must be a positive number"):
        bk.add_strategy("a", lambda s, w: None, indicators={"x": bk.Indicator(lambda c: c.close, startup=0)})
    with pytest.raises(ValueError, match="must be an identifier"):
        bk.add_strategy("b", lambda s, w: None, indicators={"two words": lambda c: c.close})
    with pytest.raises(bk.IndicatorError, match="one value per candle"):
        bk.indicator_problems("short", bk.Indicator(lambda c: c.close[:-1]), candles(50), [10])


def test_btk_check_reports_look_ahead_and_exits_1(tmp_path):
    user = tmp_path / "peek.py"
    user.write_text("import numpy as np\nimport engine as bk\n"
                    "bk.add_strategy('peek', lambda s, w: None, indicators={\n"
                    "    'next': bk.Indicator(lambda c: np.append(c.close[1:], np.nan), startup=2)})\n")
    env = {**os.environ, "BTK_HOME": str(tmp_path / "home")}
    run = lambda *a: subprocess.run([sys.executable, "-m", "console.cli", *a], capture_output=True, text=True,
                                    env=env, timeout=120)
    bad = run("--load", str(user), "check", "peek")
    assert bad.returncode == 1 and "indicator 'next' reads ahead" in bad.stderr
    good = run("--load", str(EXAMPLE), "check", "sma_indicators")
    assert good.returncode == 0 and good.stdout.count(": ok (") == 2
    none = run("check", "sma_cross")
    assert none.returncode == 2 and "declares no indicators" in none.stderr
