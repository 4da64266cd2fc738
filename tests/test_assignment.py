"""The tracker's Hungarian solver against brute force (and scipy's, where it is installed)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from edge.vision.assignment import min_cost_assignment


def brute(cost: np.ndarray) -> float:
    n, m = cost.shape
    if n <= m:
        return min(sum(cost[i, j] for i, j in zip(range(n), cols, strict=True))
                   for cols in itertools.permutations(range(m), n))
    return brute(cost.T)


@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (3, 2), (4, 4), (5, 3), (3, 6), (6, 6)])
def test_optimal_on_random_matrices(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(shape))
    for _ in range(30):
        cost = rng.uniform(0, 2, shape)
        cost[rng.uniform(size=shape) < 0.3] = 1e6  # the tracker's "no match"
        rows, cols = min_cost_assignment(cost)
        assert len(rows) == min(shape) and len(set(rows)) == len(rows) and len(set(cols)) == len(cols)
        assert rows == sorted(rows)
        assert cost[rows, cols].sum() == pytest.approx(brute(cost))


def test_agrees_with_scipy_where_installed() -> None:
    scipy_opt = pytest.importorskip("scipy.optimize")
    rng = np.random.default_rng(7)
    for _ in range(200):
        cost = rng.uniform(0, 2, (int(rng.integers(1, 12)), int(rng.integers(1, 12))))
        r1, c1 = min_cost_assignment(cost)
        r2, c2 = scipy_opt.linear_sum_assignment(cost)
        assert cost[r1, c1].sum() == pytest.approx(cost[r2, c2].sum())


def test_empty() -> None:
    assert min_cost_assignment(np.zeros((0, 3))) == ([], [])
