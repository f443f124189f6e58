"""Trailing-window sums for vectorised signals that must decide exactly as per-frame code does.

A per-frame strategy sums a window of closes in one order; a vectorised one over a million rows
cannot afford that order for every row, and a different order rounds differently, which flips
decisions on near-ties (and real data has exact ties: flat stretches). So:

``BlockSums`` gives every window's sum fast (prefix sums restarted every ``BLOCK`` rows,
so rounding cannot grow with the series), chunk by chunk, with a rigorous bound on its error, and
``window_prefix_sums`` recomputes, for the few rows too close to call, the exact prefix sums a
per-frame strategy gets from ``itertools.accumulate(window)``.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

BLOCK = 4096
CHUNK = 16 * BLOCK                          # rows per chunk: buffers that stay in cache
_U = np.finfo(np.float64).eps / 2          # unit roundoff


class BlockSums:
    """Trailing-window sums of a non-negative ``x`` from prefix sums restarted every ``BLOCK``
    rows, with a rigorous bound on their error. Computed a chunk of rows at a time in reused
    buffers: arrays the size of the series would cost more in fresh memory than in arithmetic."""

    __slots__ = ("x", "n", "bound_unit")

    def __init__(self, x: np.ndarray):
        self.x, self.n = x, len(x)
        # Every window sum is within this of the exact sum: a prefix sum of at most BLOCK terms is
        # within BLOCK*u of its block's total (at most BLOCK*max(x)); three such sums and two
        # roundings of their combination enter a window's sum.
        self.bound_unit = float((4 * BLOCK + 8) * _U * BLOCK * float(x.max())) if self.n else 0.0

    def chunks(self, lengths: tuple[int, ...], rows: int = CHUNK) -> Iterator[tuple[int, int, list[np.ndarray]]]:
        """``(a, b, sums)`` for consecutive rows ``a..b-1``: ``sums[m][j - a]`` approximates
        ``x[j-L+1 : j+1].sum()`` for ``L = lengths[m]`` (NaN for ``j < L - 1``). The arrays are
        reused by the next chunk."""
        for length in lengths:
            if not 0 < length <= BLOCK:
                raise ValueError(f"window length must be in 1..{BLOCK}, got {length}")
        rows = max(BLOCK, rows - rows % BLOCK)
        x, n = self.x, self.n
        local = np.empty(rows + BLOCK)        # the block before the chunk, then the chunk's blocks
        outs = [np.empty(rows) for _ in lengths]
        for a in range(0, n, rows):
            b = min(n, a + rows)
            start = BLOCK if a else 0                      # where row a sits in ``local``
            blocks = -(-(b - a) // BLOCK)
            width = blocks * BLOCK
            used = local[:start + width]
            used[:start + b - a] = x[a - start:b]
            used[start + b - a:] = 0.0
            grid = used.reshape(-1, BLOCK)
            np.cumsum(grid, axis=1, out=grid)
            totals = used[BLOCK - 1::BLOCK]                # each block's total
            sums = []
            for length, out in zip(lengths, outs):
                o = out[:width]
                if start:
                    np.subtract(used[start:start + width], used[start - length:start + width - length], out=o)
                else:
                    o[:length - 1] = np.nan
                    o[length - 1] = used[length - 1]
                    np.subtract(used[length:width], used[:width - length], out=o[length:])
                # Windows that start in the block before: add that block's total.
                skip = 0 if start else 1
                o.reshape(blocks, BLOCK)[skip:, :length] += totals[:blocks - skip, None]
                sums.append(o[:b - a])
            yield a, b, sums

    def sums(self, length: int) -> np.ndarray:
        """All the ``length`` window sums in one array (``chunks`` keeps memory small)."""
        out = np.empty(self.n)
        for a, b, (chunk,) in self.chunks((length,)):
            out[a:b] = chunk
        return out


def window_prefix_sums(x: np.ndarray, ends: np.ndarray, length: int) -> np.ndarray:
    """For each end ``e``, the running sums of ``x[e-length+1 .. e]`` left to right: row ``k``
    equals ``list(itertools.accumulate(x[e-length+1:e+1]))`` bit for bit."""
    windows = x[(np.asarray(ends) - length + 1)[:, None] + np.arange(length)]
    return np.cumsum(windows, axis=1)
