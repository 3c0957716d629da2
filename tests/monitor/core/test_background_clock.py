"""The training clock of the lag schedule (Lag.step): a step's model scores only after the readings
its optimiser steps would take at a nominal rate, the same whatever the timing and the slicing."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.core.background_learner import Lag
from monitor.core.monitor import Monitor
from streams import Batch


def _values(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.round(90 + 6 * np.sin(np.arange(n) / 60) + rng.normal(0, 3, n), 2)


def _scores(values, sizes, *, lag, threaded):
    mon = Monitor(seed=0)
    mon.train_behind(lag, threaded=threaded)
    p, i = [], 0
    for k in sizes:
        p.append(mon.process(Batch.of_values(values[i:i + k])).p)
        i += k
    return np.concatenate(p), mon


def test_clocked_scores_do_not_depend_on_timing_or_slicing():
    v = _values(1200)
    lag = Lag(step=1.0)
    p_file, m_file = _scores(v, [len(v)], lag=lag, threaded=False)
    p_live, m_live = _scores(v, [1] * len(v), lag=lag, threaded=True)
    assert np.array_equal(p_file, p_live)
    m_live.learner.close()
    p_plain, _ = _scores(v, [len(v)], lag=Lag(), threaded=False)
    assert not np.array_equal(p_file, p_plain)  # the clock held the warm-up's models back


def test_each_model_starts_after_its_steps_on_the_clock():
    v = _values(800)
    p, mon = _scores(v, [len(v)], lag=Lag(step=2.0), threaded=False)
    untrained = Monitor(seed=0, learn=False).process(Batch.of_values(v)).p
    # the first mini-batch (2 to 4 readings) takes 16 warm-up steps: 32 readings on the clock, so its
    # model scores from reading 35 at the earliest, and the untrained model scores everything before
    assert np.array_equal(p[:35], untrained[:35]) and not np.array_equal(p[:80], untrained[:80])
    assert mon.learner._clock >= mon.learner.n_steps_ * 2.0


def test_a_zero_step_is_the_plain_schedule_and_a_negative_one_is_refused():
    assert Lag(step=0.0).start(100, 100.0) == 100 + Lag()(100)
    with pytest.raises(ValueError, match="step"):
        Lag(step=-1.0)
