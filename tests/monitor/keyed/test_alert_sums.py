"""The alert scan's sums over runs of flags, vectorised: the same bits as the run-by-run loop."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.keyed.alerts import _fold_sums, run_sums


def _runs(rng, n: int, cuts: int) -> tuple[np.ndarray, np.ndarray]:
    edges = np.unique(rng.integers(1, n, cuts)) if cuts else np.empty(0, dtype=np.int64)
    return np.r_[0, edges], np.r_[edges, n]


@pytest.mark.parametrize("seed", range(6))
def test_run_sums_are_the_per_run_sums_to_the_bit(seed):
    rng = np.random.default_rng(seed)
    n = 60_000
    values = rng.normal(90, 30, n) * 10 ** rng.uniform(-3, 3, n) if seed % 2 else np.round(rng.normal(92, 5, n), 2)
    wide = np.column_stack([values, values * 3])  # a strided column, as scored.x[:, 0] with two features
    for v in (values, wide[:, 0], values[7:]):
        for cuts in (0, 3, 300, 20_000):  # runs of 60,000 readings down to a few
            starts, ends = _runs(rng, len(v), cuts)
            want = np.array([v[a:b].sum() for a, b in zip(starts, ends)])
            assert run_sums(v, starts, ends).view(np.int64).tolist() == want.view(np.int64).tolist()


def _loop(total: float, pending: float, sums: np.ndarray, flagged: np.ndarray) -> float:
    for part, f in zip(sums.tolist(), flagged.tolist()):
        if f:
            total += pending + part
            pending = 0.0
        else:
            pending += part
    return total


@pytest.mark.parametrize("seed", range(20))
def test_fold_sums_is_the_loop(seed):
    rng = np.random.default_rng(seed)
    m = int(rng.integers(1, 400))
    first_flagged = bool(rng.integers(0, 2))
    flagged = (np.arange(m) % 2 == 0) == first_flagged  # runs alternate
    if not flagged[-1]:
        flagged, m = flagged[:-1], m - 1
    if m == 0:
        flagged, m = np.array([True]), 1
    sums = rng.normal(500, 400, m) * 10 ** rng.uniform(-2, 4, m)
    total, pending = float(rng.normal(1e5, 1e4)), float(rng.choice([0.0, rng.normal(300, 50)]))
    assert _fold_sums(total, pending, sums, flagged) == _loop(total, pending, sums, flagged)
