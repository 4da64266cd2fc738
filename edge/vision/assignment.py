"""Minimum-cost assignment (the Hungarian method) for the tracker's small cost matrices.

scipy's ``linear_sum_assignment`` did this before, but importing ``scipy.optimize`` alone cost the daemon
about 40 MB of resident memory and 0.4 s of start-up (#20.4), for matrices of a few tracks by a few
detections. This is the shortest-augmenting-path form with potentials (O(n^2 m) for n <= m), its inner
loop over columns vectorised with numpy. Any optimal assignment is as good as another; ties may be broken
differently from scipy's.
"""

from __future__ import annotations

import numpy as np


def min_cost_assignment(cost: np.ndarray) -> tuple[list[int], list[int]]:
    """(rows, cols) of a minimum-cost matching of every row (or every column, if fewer), rows ascending."""
    c = np.asarray(cost, dtype=np.float64)
    if c.size == 0:
        return [], []
    transposed = c.shape[0] > c.shape[1]
    if transposed:
        c = c.T
    n, m = c.shape
    u = np.zeros(n + 1)
    v = np.zeros(m + 1)
    p = np.zeros(m + 1, dtype=np.int64)  # p[j]: the row (1-based) matched to column j; 0 = free
    way = np.zeros(m + 1, dtype=np.int64)
    for i in range(1, n + 1):
        p[0] = i
        j0 = 0
        minv = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, dtype=bool)
        while True:
            used[j0] = True
            i0 = p[j0]
            free = ~used[1:]
            cur = c[i0 - 1] - u[i0] - v[1:]
            better = free & (cur < minv[1:])
            minv[1:][better] = cur[better]
            way[1:][better] = j0
            masked = np.where(free, minv[1:], np.inf)
            j1 = int(np.argmin(masked)) + 1
            delta = masked[j1 - 1]
            u[p[used]] += delta
            v[used] -= delta
            minv[~used] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while j0:
            j1 = int(way[j0])
            p[j0] = p[j1]
            j0 = j1
    pairs = [(int(p[j]) - 1, j - 1) for j in range(1, m + 1) if p[j]]
    if transposed:
        pairs = [(col, row) for row, col in pairs]
    pairs.sort()
    return [r for r, _ in pairs], [col for _, col in pairs]
