"""The alert scan that folds runs in bulk gives exactly the records and state of the run-by-run scan."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.alerts import AlertTracker, Span


class RunByRun(AlertTracker):
    """The scan as it was before issue 15: every run of flags or normal readings one Python call."""

    def _scan(self, k, key, t, v, f, pos, events) -> None:
        edges = np.flatnonzero(f[1:] != f[:-1]) + 1
        for a, b in zip(np.r_[0, edges].tolist(), np.r_[edges, len(f)].tolist()):
            if f[a]:
                self._flag_run(k, key, t[a:b], v[a:b], pos[a:b], events)
            else:
                self._normal_run(k, key, t[a:b], v[a:b], pos[a:b], events)


SPANS = [(Span(readings=3), Span(readings=4)), (Span(readings=1), Span(readings=1)),
         (Span(seconds=2.0), Span(seconds=3.0)), (Span(seconds=0.0), Span(seconds=1.5))]


@pytest.mark.parametrize("after, clear", SPANS)
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("keys", [1, 3])
def test_same_records_and_state_as_run_by_run(after, clear, seed, keys):
    rng = np.random.default_rng(seed)
    n = 3000
    stay = rng.uniform(0.5, 0.95)  # how sticky flags are: from flickering to long runs
    flag = np.empty(n, bool)
    flag[0] = False
    for i in range(1, n):
        flag[i] = flag[i - 1] if rng.random() < stay else not flag[i - 1]
    time = np.cumsum(rng.choice([0.5, 0.5, 1.0, -0.25], n))  # mostly forward, sometimes back
    value = rng.normal(90, 8, n)
    ids = rng.integers(0, keys, n)
    names = [f"k{i}" for i in range(keys)]
    fast, slow = AlertTracker(after=after, clear=clear), RunByRun(after=after, clear=clear)
    cuts = np.sort(rng.choice(np.arange(1, n), 25, replace=False))
    for a, b in zip(np.r_[0, cuts], np.r_[cuts, n]):
        args = (ids[a:b], names, time[a:b], value[a:b], flag[a:b])
        assert fast.update(*args) == slow.update(*args)
    assert fast.state_dict() == slow.state_dict()
    assert slow.n_episodes_ > 0
