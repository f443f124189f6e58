"""Trailing-window sums for vectorised signals that must decide exactly as per-frame code does.

A per-frame strategy sums a window of closes in one order; a vectorised one over a million rows
cannot afford that order for every row, and a different order rounds differently, which flips
decisions on near-ties (and real data has exact ties: flat stretches). So:

``approximate_sums`` gives every window's sum fast (prefix sums restarted every ``BLOCK`` rows,
so rounding cannot grow with the series) together with a rigorous bound on its error, and
``window_prefix_sums`` recomputes, for the few rows too close to call, the exact prefix sums a
per-frame strategy gets from ``itertools.accumulate(window)``.
"""

from __future__ import annotations

import numpy as np

BLOCK = 4096
_U = np.finfo(np.float64).eps / 2          # unit roundoff


def approximate_sums(x: np.ndarray, length: int, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(sums, bound)``: ``sums[k]`` approximates ``x[ends[k]-length+1 : ends[k]+1].sum()`` of a
    non-negative ``x``, within ``bound[k]`` of the exact sum. ``ends`` must be >= length - 1."""
    if not 0 < length <= BLOCK:
        raise ValueError(f"approximate_sums: length must be in 1..{BLOCK}, got {length}")
    n = len(x)
    blocks = -(-n // BLOCK)
    padded = np.zeros(blocks * BLOCK)
    padded[:n] = x
    local = np.cumsum(padded.reshape(blocks, BLOCK), axis=1).ravel()   # prefix sums within each block
    block_total = local[BLOCK - 1::BLOCK]
    hi = np.asarray(ends)
    lo = hi - length                         # the sum is prefix(hi) - prefix(lo)
    lo_block, hi_block = lo // BLOCK, hi // BLOCK
    inner = local[np.maximum(lo, 0)]
    # Same block: a difference of its prefix sums; else the rest of lo's block plus hi's prefix.
    sums = np.where(lo_block == hi_block, local[hi] - inner,
                    local[hi] + (block_total[np.maximum(lo_block, 0)] - inner))
    sums = np.where(lo < 0, local[hi], sums)
    # A prefix sum of k non-negative terms is within (k-1)u of its value; at most three of them
    # (each at most its block's total) and two roundings of their combination enter a window's
    # sum. 4*BLOCK over-covers the first-order bound 3*(BLOCK+2).
    bound = 4 * BLOCK * _U * np.maximum(block_total[hi_block], block_total[np.maximum(lo_block, 0)])
    return sums, bound


def window_prefix_sums(x: np.ndarray, ends: np.ndarray, length: int) -> np.ndarray:
    """For each end ``e``, the running sums of ``x[e-length+1 .. e]`` left to right: row ``k``
    equals ``list(itertools.accumulate(x[e-length+1:e+1]))`` bit for bit."""
    windows = x[(np.asarray(ends) - length + 1)[:, None] + np.arange(length)]
    return np.cumsum(windows, axis=1)
