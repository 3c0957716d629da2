"""An early step after the warm-up repeats until its readings are right (LearnerConfig.early_until, issue 13)."""

from __future__ import annotations

import numpy as np
import pytest

from models.learner import LearnerConfig, OnlineLearner
from models.manual_step import ManualStepLearner


def trained(cls, early_until):
    """A learner past its warm-up (3,000 readings around 92 bpm, labelled above 91), and its boundary.

    The boundary memory (``margin``) is off: it holds the boundary where its readings put it, which
    is what it is for, and would make this a test of both.
    """
    learner = cls(LearnerConfig(early_until=early_until, margin=0), seed=0)  # early_until alone: no boundary memory
    rng = np.random.default_rng(1)
    x = rng.normal(92, 5, (3000, 1))
    y = (x[:, 0] > 91).astype(float)
    i = 0
    while i < len(x):
        k = learner.room(x[i:], y[i:])
        learner.learn_many(x[i:i + k], y[i:i + k])
        i += k
    grid = np.linspace(85, 97, 1201)[:, None]
    return learner, grid[np.argmax(learner.predict_proba_many(grid) > 0.5), 0]


@pytest.mark.parametrize("cls", [OnlineLearner, ManualStepLearner])
def test_an_early_step_goes_on_until_its_readings_are_right(cls):
    results = {}
    for until in (0, 8):
        learner, boundary = trained(cls, until)
        assert learner.n_seen_ > learner.warm_end_  # past the warm-up: one optimiser step per mini-batch
        x = np.full((2, 1), boundary - 0.02)  # just below the boundary, labelled abnormal: wrong twice
        y = np.ones(2)
        assert learner.predict_proba_many(x)[0] < 0.5
        assert learner.room(x, y) == 2  # the second mistake calls an early step
        steps = learner.n_steps_
        learner.learn_many(x, y)
        results[until] = (learner.n_steps_ - steps, learner.predict_proba_many(x)[0])
    assert results[0][0] == 1 and results[0][1] < 0.5  # one step: still wrong
    assert 1 < results[8][0] < 8 and results[8][1] > 0.5  # stopped once right, before the cap
