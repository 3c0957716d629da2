"""monitor.keyed.keyed_monitor's per-key counts: a live feed's one-reading batches count as one batch."""

from __future__ import annotations

import numpy as np

from monitor.keyed.keyed_monitor import KeyedMonitor
from streams import Batch


def _batches(n: int, sizes: list[int]) -> list[Batch]:
    rng = np.random.default_rng(1)
    hr = np.round(90 + 6 * np.sin(np.arange(n) / 40) + rng.normal(0, 3, n), 2)
    keys = np.array(["a", "b", "c"])[rng.integers(0, 3, n)]
    out, i = [], 0
    for k in sizes:
        b = Batch.of_values(hr[i:i + k], first_line=i + 1)
        out.append(Batch(time=b.time, x=b.x, y=b.y, line=b.line, key=keys[i:i + k]))
        i += k
    return out


def test_per_key_counts_do_not_depend_on_the_batch_size():
    n = 400
    whole, one = KeyedMonitor(seed=0), KeyedMonitor(seed=0)
    for b in _batches(n, [n]):
        whole.process(b)
    for b in _batches(n, [1] * n):
        one.process(b)
    a, b = whole.key_summary(), one.key_summary()
    assert sorted(a) == ["a", "b", "c"] and sum(v["readings"] for v in b.values()) == n
    counts = lambda s: {k: (v["readings"], v["flags"], v["accuracy"]) for k, v in s.items()}  # noqa: E731
    assert counts(a) == counts(b)  # (episodes are the alerts', timed by the batches' clocks)
