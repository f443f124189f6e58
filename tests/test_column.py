"""Candle columns (engine/column.py): cheap plain reductions, bit for bit numpy's."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import engine as bk
from engine.column import Column, column
from engine.types import Candles

from tests.helpers import collect, register

REDUCTIONS = ("mean", "sum", "max", "min")


def _candles(n: int = 200, seed: int = 3) -> Candles:
    rng = np.random.default_rng(seed)
    close = 100 + np.cumsum(rng.normal(0, 1, n))
    return Candles.from_arrays(np.arange(n) * 60_000, close, close + 1, close - 1, close, rng.random(n) * 10)


def test_every_float_column_of_candles_is_a_column_and_timestamps_are_not():
    c = _candles()
    for name in ("open", "high", "low", "close", "volume"):
        assert type(getattr(c, name)) is Column, name
        assert type(getattr(c, name)[-20:]) is Column, name
        assert not getattr(c, name).flags.writeable
    assert type(c.timestamp) is np.ndarray
    assert type(c[10:60].close) is Column and type(c.span(5, 9).close) is Column


@pytest.mark.parametrize("name", REDUCTIONS)
def test_plain_reductions_equal_numpys_bit_for_bit(name):
    rng = np.random.default_rng(11)
    for _ in range(3000):
        n = int(rng.integers(1, 400))
        scale = float(rng.choice([1e-8, 1.0, 1e6, 1e12]))
        values = rng.normal(rng.normal(0, 50), 1, n) * scale
        plain = values.copy()
        col = column(values)
        start = int(rng.integers(0, n))
        got, want = getattr(col[start:], name)(), getattr(plain[start:], name)()
        assert got == want and type(got) is type(want), (name, n, start)
        # numpy's module functions pass their defaults on to the method.
        assert getattr(np, name)(col[start:]) == getattr(np, name)(plain[start:])


def test_nan_and_infinity_behave_as_in_numpy():
    values = np.array([1.0, np.nan, 3.0, np.inf])
    col = column(values)
    for name in REDUCTIONS:
        got, want = getattr(col, name)(), getattr(values, name)()
        assert (np.isnan(got) and np.isnan(want)) or got == want, name
    inf = column(np.array([1.0, np.inf, -2.0]))
    assert inf.max() == np.inf and inf.min() == -2.0 and inf.sum() == np.inf


def test_arguments_go_to_numpy_unchanged():
    values = np.arange(12, dtype=np.float64)
    col = column(values)
    assert col.mean(dtype=np.float32).dtype == np.float32
    assert col.sum(keepdims=True).shape == (1,)
    assert col.max(initial=100.0) == 100.0
    assert col.min(where=values > 3, initial=99.0) == 4.0
    assert col.mean(where=values > 5) == values[values > 5].mean()
    grid = col.reshape(3, 4)
    np.testing.assert_array_equal(grid.mean(axis=0), values.reshape(3, 4).mean(axis=0))
    np.testing.assert_array_equal(np.sum(grid, axis=1), values.reshape(3, 4).sum(axis=1))
    out = np.empty(())
    col.sum(out=out)
    assert out == values.sum()


def test_empty_and_other_dtypes_fall_back_to_numpy():
    empty = column(np.empty(0))
    with pytest.warns(RuntimeWarning):
        assert np.isnan(empty.mean())
    assert empty.sum() == 0.0
    with pytest.raises(ValueError, match="zero-size array"):
        empty.max()
    as_f32 = column(np.array([0.1, 0.2, 0.7])).astype(np.float32)
    assert as_f32.mean() == np.array([0.1, 0.2, 0.7], dtype=np.float32).mean()
    as_int = column(np.array([1.0, 2.0, 4.0])).astype(np.int64)
    assert as_int.mean() == pytest.approx(7 / 3) and as_int.sum() == 7


def test_arithmetic_gives_plain_arrays_and_scalars():
    col = _candles().close
    assert type(col * 2) is np.ndarray
    assert type(col[-5:] - col[-6:-1]) is np.ndarray
    assert type(np.diff(col)) is np.ndarray
    assert type(col > 100) is np.ndarray
    assert type(np.add(col[-1], 1.0)) is np.float64
    assert type(col[-1]) is np.float64


def test_columns_stay_read_only_and_pickle():
    col = _candles().close
    with pytest.raises(ValueError, match="read-only"):
        col[0] = 1.0
    again = pickle.loads(pickle.dumps(col))
    np.testing.assert_array_equal(again, col)
    assert again.mean() == np.asarray(col).mean()


async def test_get_candles_gives_columns_to_a_strategy_in_a_backtest():
    seen: list[tuple[type, float, float]] = []

    async def get_signal(symbol, when):
        close = (await bk.get_candles(symbol, "1m", 30)).close
        seen.append((type(close), close[-20:].mean(), np.asarray(close)[-20:].mean()))
        return None

    rng = np.random.default_rng(5)
    register(list(100 + np.cumsum(rng.normal(0, 0.5, 400))), strategy=get_signal, frame=(40, None))
    await collect()
    assert len(seen) > 300
    assert all(kind is Column and fast == slow for kind, fast, slow in seen)
