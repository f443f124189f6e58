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


class Column(np.ndarray):
    """A candle column (``Candles.close`` and the others but ``timestamp``); see the module docstring."""

    def __array_wrap__(self, array: np.ndarray, context: Any = None, return_scalar: bool = False) -> Any:
        # Results of ufuncs are plain arrays (and scalars where numpy gives scalars).
        return array[()] if return_scalar else array

    # Each reduction checks inline (a helper call would cost a good share of what it saves).
    def mean(self, *args: Any, **kwargs: Any) -> Any:
        if (not (args or kwargs) or _plain_arguments(args, kwargs)) and self.dtype is _F64 and self.ndim == 1:
            n = len(self)
            if n:
                # numpy's _mean for float64: add.reduce, then the float64 sum divided by the count.
                return _add(_as_plain(self, _ndarray)) / n
        return _ndarray.mean(_as_plain(self, _ndarray), *args, **kwargs)

    def sum(self, *args: Any, **kwargs: Any) -> Any:
        if (not (args or kwargs) or _plain_arguments(args, kwargs)) and self.dtype is _F64 and self.ndim == 1:
            return _add(_as_plain(self, _ndarray))
        return _ndarray.sum(_as_plain(self, _ndarray), *args, **kwargs)

    def max(self, *args: Any, **kwargs: Any) -> Any:
        if (not (args or kwargs) or _plain_arguments(args, kwargs)) and self.dtype is _F64 and self.ndim == 1 \
                and len(self):
            return _maximum(_as_plain(self, _ndarray))
        return _ndarray.max(_as_plain(self, _ndarray), *args, **kwargs)

    def min(self, *args: Any, **kwargs: Any) -> Any:
        if (not (args or kwargs) or _plain_arguments(args, kwargs)) and self.dtype is _F64 and self.ndim == 1 \
                and len(self):
            return _minimum(_as_plain(self, _ndarray))
        return _ndarray.min(_as_plain(self, _ndarray), *args, **kwargs)


def column(values: np.ndarray) -> Column:
    """A read-only :class:`Column` view of a float64 array (no copy)."""
    view = values.view(Column)
    view.flags.writeable = False
    return view
