"""The array type of a candle column: a read-only float64 numpy array whose plain reductions are cheap.

A strategy that reads ``get_candles`` every frame usually reduces short windows:
``close[-20:].mean()``, ``high[-50:].max()``. numpy routes each of these through a Python wrapper
that resolves its optional arguments, which costs more than the reduction of a few dozen values. A
:class:`Column` answers ``mean``, ``sum``, ``min`` and ``max`` called without arguments (or with
numpy's defaults, as ``np.mean(col)`` passes them) on a 1-D float64 array with the same ufunc
reduction numpy ends in, so the result is bit for bit numpy's, at about half the cost. Anything
else goes to numpy unchanged.

Arithmetic on a column gives an ordinary ``ndarray``: the type stays on candle columns and their
slices, where these reductions are called.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_ndarray = np.ndarray
_as_plain = np.ndarray.view
_add = np.add.reduce
_maximum = np.maximum.reduce
_minimum = np.minimum.reduce
_F64 = np.dtype(np.float64)
_DEFAULT_KEYS = frozenset(("axis", "dtype", "out"))


def _plain_arguments(args: tuple, kwargs: dict[str, Any]) -> bool:
    """No arguments, or only ``axis``/``dtype``/``out`` left at None (what ``np.mean(a)`` passes on)."""
    if args:
        return False
    if not kwargs:
        return True
    return kwargs.keys() <= _DEFAULT_KEYS and all(v is None for v in kwargs.values())


def _reduction(name: str, reduce: Any, *, divide: bool = False, empty: bool = False) -> Any:
    """``ndarray.<name>``, with ``reduce`` called straight away when the call is plain (no
    arguments but numpy's defaults, a non-empty 1-D float64 column, or an empty one if ``empty``)."""
    numpys = getattr(_ndarray, name)

    def method(self: Column, *args: Any, **kwargs: Any) -> Any:
        if (not (args or kwargs) or _plain_arguments(args, kwargs)) and self.dtype is _F64 and self.ndim == 1:
            n = len(self)
            if n:
                total = reduce(_as_plain(self, _ndarray))
                return total / n if divide else total
            if empty:
                return reduce(_as_plain(self, _ndarray))
        return numpys(_as_plain(self, _ndarray), *args, **kwargs)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = numpys.__doc__
    return method


class Column(np.ndarray):
    """A candle column (``Candles.close`` and the others but ``timestamp``); see the module docstring."""

    def __array_wrap__(self, array: np.ndarray, context: Any = None, return_scalar: bool = False) -> Any:
        # Results of ufuncs are plain arrays (and scalars where numpy gives scalars).
        return array[()] if return_scalar else array

    mean = _reduction("mean", _add, divide=True)       # numpy's _mean for float64: the sum over the count
    sum = _reduction("sum", _add, empty=True)           # (an empty sum is 0.0, as numpy's)
    max = _reduction("max", _maximum)
    min = _reduction("min", _minimum)


def column(values: np.ndarray) -> Column:
    """A read-only :class:`Column` view of a float64 array (no copy)."""
    view = values.view(Column)
    view.flags.writeable = False
    return view
