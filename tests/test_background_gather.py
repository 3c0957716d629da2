"""monitor.core.background_learner: the worker gathers a live feed's lines before it learns them.

Once the lag has grown, the worker learns a quarter of it at a time (one call per few lines, not one
per line); the scores stay those of training inline, and a scorer that needs a model does not wait
for more lines to come.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from models.manual_step import ManualStepLearner
from models.learner import LearnerConfig
from monitor.core.background_learner import GATHER, GATHER_FROM, BackgroundLearner, Lag


def _feed(bg: BackgroundLearner, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """One reading at a time, as a live feed: score it, then hand it over."""
    p = []
    for i in range(len(x)):
        assert bg.room() >= 1
        p.append(bg.predict_proba_many(x[i:i + 1]))
        bg.learn_many(x[i:i + 1], y[i:i + 1])
    bg.drain()
    return np.concatenate(p)


def _stream(n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    x = np.round(90 + 6 * np.sin(np.arange(n) / 50) + rng.normal(0, 3, n), 2).reshape(-1, 1)
    return x, (x[:, 0] > 91).astype(float)


def test_gathered_lines_give_the_inline_scores():
    x, y = _stream(1200)
    lag = Lag.fixed(64)
    inline = BackgroundLearner(ManualStepLearner(LearnerConfig(), seed=0), lag=lag, threaded=False)
    worker = BackgroundLearner(ManualStepLearner(LearnerConfig(), seed=0), lag=lag)
    assert worker._gather() == 64 // GATHER == 16
    p_inline, p_worker = _feed(inline, x, y), _feed(worker, x, y)
    worker.close()
    assert np.array_equal(p_inline, p_worker)
    assert worker.learner.n_steps_ == inline.learner.n_steps_ > 0


def _until(cond, seconds: float = 10.0) -> bool:
    end = time.monotonic() + seconds
    while not cond() and time.monotonic() < end:
        time.sleep(0.002)
    return cond()


def test_the_worker_waits_for_a_quarter_lag_unless_the_scorer_needs_it():
    x, y = _stream(40)
    bg = BackgroundLearner(ManualStepLearner(LearnerConfig(), seed=0), lag=Lag.fixed(64))
    for i in range(15):  # fewer than 16 lines: the worker gathers, learns nothing yet
        bg.learn_many(x[i:i + 1], y[i:i + 1])
    time.sleep(0.1)
    assert bg._done == 0
    bg.learn_many(x[15:16], y[15:16])  # the 16th: the worker learns the 16 at once
    assert _until(lambda: bg._done == 16)
    for i in range(16, 19):
        bg.learn_many(x[i:i + 1], y[i:i + 1])
    done = threading.Thread(target=bg.drain)  # the scorer needs everything: no waiting for more lines
    done.start()
    done.join(10.0)
    assert not done.is_alive() and bg._done == 19
    bg.close()


def test_a_short_lag_is_learned_line_by_line():
    """A lag under GATHER_FROM (a live feed's first ~2,000 readings, the warm-up): each line is learned
    at once, the short lag is left to the warm-up's steps."""
    for lag in (1, GATHER_FROM - 1):
        bg = BackgroundLearner(ManualStepLearner(LearnerConfig(), seed=0), lag=lag)
        assert bg._gather() == 1
        bg.close()
    bg = BackgroundLearner(ManualStepLearner(LearnerConfig(), seed=0))  # the default schedule
    assert bg._gather() == 1 and bg.lag(2048) == GATHER_FROM
    bg.close()
