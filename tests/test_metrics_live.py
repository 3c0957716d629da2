"""monitor.core.metrics on a live feed: one reading per update counts as the same readings in one batch."""

from __future__ import annotations

import numpy as np

from monitor.core.metrics import PrequentialMetrics


def test_one_reading_at_a_time_gives_the_batch_histograms_and_results():
    rng = np.random.default_rng(0)
    n = 600
    y = rng.random(n) < 0.4
    p = np.clip(rng.random(n) * 0.6 + 0.4 * y, 0.0, 1.0)
    p[:5] = [0.0, 1.0, 0.5, 1.0 - 1e-17, 1e-300]  # the edge bins
    flag = p > 0.5
    whole, one = PrequentialMetrics(), PrequentialMetrics()
    whole.update(y, p, flag)
    for i in range(n):
        one.update(y[i:i + 1], p[i:i + 1], flag[i:i + 1])
    assert np.array_equal(whole.hist_pos_, one.hist_pos_) and np.array_equal(whole.hist_neg_, one.hist_neg_)
    assert int(one.hist_pos_.sum()) == int(y.sum()) and int(one.hist_neg_.sum()) == n - int(y.sum())
    a, b = whole.result(), one.result()
    assert a.pop("log_loss") == __import__("pytest").approx(b.pop("log_loss"), rel=1e-12)
    assert a == b
