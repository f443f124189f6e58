"""Trailing-window sums for vectorised signals that must decide exactly as per-frame code does.

A per-frame strategy sums a window of closes in one order; a vectorised one over a million rows
cannot afford that order for every row, and a different order rounds differently, which flips
decisions on near-ties (and real data has exact ties: flat stretches). So:

``BlockSums`` gives every window's sum fast (prefix sums restarted every ``BLOCK`` rows,
so rounding cannot grow with the series) together with a rigorous bound on its error, and
``window_prefix_sums`` recomputes, for the few rows too close to call, the exact prefix sums a
per-frame strategy gets from ``itertools.accumulate(window)``.
"""

from __future__ import annotations

import numpy as np

BLOCK = 4096
_U = np.finfo(np.float64).eps / 2          # unit roundoff


class BlockSums:
    """Prefix sums of a non-negative ``x`` restarted every ``BLOCK`` rows (computed once), from
    which any trailing-window sums come with a rigorous error bound."""

    __slots__ = ("local", "block_total", "n")

    def __init__(self, x: np.ndarray):
        n = self.n = len(x)
        blocks = max(1, -(-n // BLOCK))
        local = np.empty(blocks * BLOCK)
        local[:n] = x
        local[n:] = 0.0
        grid = local.reshape(blocks, BLOCK)
        np.cumsum(grid, axis=1, out=grid)
        self.local = local
        self.block_total = local[BLOCK - 1::BLOCK].copy()

    @property
    def bound_unit(self) -> float:
        """Every window sum is within this of the exact sum (a prefix sum of at most BLOCK
        terms is within BLOCK*u of its block's total; three of them and two roundings of their
        combination enter a window's sum)."""
        return float((4 * BLOCK + 8) * _U * self.block_total.max()) if self.n else 0.0

    def sums(self, length: int) -> np.ndarray:
        """``out[j]`` approximates ``x[j-length+1 : j+1].sum()`` (NaN for ``j < length - 1``)."""
        if not 0 < length <= BLOCK:
            raise ValueError(f"window length must be in 1..{BLOCK}, got {length}")
        n, local = self.n, self.local
        blocks = len(self.block_total)
        out = np.empty(blocks * BLOCK)
        out[:length - 1] = np.nan
        out[n:] = np.nan
        if n >= length:
            out[length - 1] = local[length - 1]
            np.subtract(local[length:n], local[:n - length], out=out[length:n])
            # Windows that start in the block before: add that block's total.
            out.reshape(blocks, BLOCK)[1:, :length] += self.block_total[:-1, None]
        return out[:n]


def window_prefix_sums(x: np.ndarray, ends: np.ndarray, length: int) -> np.ndarray:
    """For each end ``e``, the running sums of ``x[e-length+1 .. e]`` left to right: row ``k``
    equals ``list(itertools.accumulate(x[e-length+1:e+1]))`` bit for bit."""
    windows = x[(np.asarray(ends) - length + 1)[:, None] + np.arange(length)]
    return np.cumsum(windows, axis=1)
