"""The boundary memory (LearnerConfig.margin, issue 13): per class, the readings nearest the boundary."""

from __future__ import annotations

import numpy as np
import pytest

from models.learner import LearnerConfig
from models.manual_step import ManualStepLearner  # the learner the monitor runs (its TorchScript steps)


def feed(learner, x, y):
    i = 0
    while i < len(x):
        k = learner.room(x[i:], y[i:])
        learner.learn_many(x[i:i + k], y[i:i + k])
        i += k


@pytest.fixture(scope="module")
def warmed():
    """A learner past its warm-up on 2,600 readings around 92 bpm labelled above 91, and its readings."""
    rng = np.random.default_rng(3)
    x = rng.normal(92, 4, (2600, 1))
    y = (x[:, 0] > 91).astype(float)
    learner = ManualStepLearner(LearnerConfig(), seed=0)
    feed(learner, x, y)
    assert learner.n_seen_ > learner.warm_end_
    return learner, x, y


def test_it_holds_per_class_the_readings_nearest_the_boundary(warmed):
    learner, x, y = warmed
    mx, my = learner._margin_x[:, 0], learner._margin_y
    assert sorted(my.tolist()) == [0.0] * 4 + [1.0] * 4  # margin = 4 per class
    assert ((mx > 91) == (my == 1)).all()  # labelled as the stream labels them
    gaps = np.abs(x[:, 0] - 91)
    assert np.abs(mx - 91).max() < np.sort(gaps)[40]  # among the ~40 readings of 2,600 nearest 91 bpm
    gap_x = np.abs(learner.predict_proba_many(x) - 0.5)  # (2600,) as the model scores them now
    gap_m = np.abs(learner.predict_proba_many(learner._margin_x) - 0.5)  # (8,)
    for k in (0.0, 1.0):  # per class, among the 20 readings of the series it scores nearest 0.5
        assert gap_m[my == k].max() <= np.sort(gap_x[y == k])[20]


def test_it_is_kept_in_the_state_and_a_restored_learner_goes_on_the_same(warmed):
    learner, _, _ = warmed
    state = learner.state_dict()
    twin = ManualStepLearner(LearnerConfig(), seed=0)
    twin.load_state_dict(state)
    np.testing.assert_array_equal(twin._margin_x, learner._margin_x)
    rng = np.random.default_rng(4)
    x = rng.normal(91, 1, (300, 1))
    y = (x[:, 0] > 91).astype(float)
    a, b = ManualStepLearner(LearnerConfig(), seed=0), ManualStepLearner(LearnerConfig(), seed=0)
    a.load_state_dict(state)
    b.load_state_dict(state)
    feed(a, x, y)
    feed(b, x[:1], y[:1])  # another slicing, the same readings
    feed(b, x[1:], y[1:])
    np.testing.assert_array_equal(a.predict_proba_many(x), b.predict_proba_many(x))
    old = {k: v for k, v in state.items() if not k.startswith("margin_")}  # a checkpoint from before
    c = ManualStepLearner(LearnerConfig(), seed=0)
    c.load_state_dict(old)
    assert c._margin_x.shape == (0, 1) and c._margin_y.shape == (0,)


def test_a_change_of_regime_forgets_the_old_boundary():
    """The threshold jumps from 91 to 97: at the step where the drift test fires, the memory is
    chosen again from that step's readings alone, none from before the change."""
    rng = np.random.default_rng(5)
    x = rng.normal(94, 4, (5000, 1))
    y = np.where(np.arange(5000) < 2600, x[:, 0] > 91, x[:, 0] > 97).astype(float)
    learner = ManualStepLearner(LearnerConfig(), seed=0)
    feed(learner, x[:2600], y[:2600])
    mx, my = learner._margin_x[:, 0], learner._margin_y
    assert ((mx > 91) & (mx < 97) & (my == 1)).any()  # the old boundary is held
    i = 2600
    while learner.n_drifts_ == 0 and i < len(x):
        k = learner.room(x[i:], y[i:])
        learner.learn_many(x[i:i + k], y[i:i + k])
        i += k
    assert learner.n_drifts_ == 1 and i < 2900  # fired within 300 readings of the change
    assert np.isin(learner._margin_x[:, 0], x[2600:i, 0]).all()
    assert ((learner._margin_x[:, 0] > 97) == (learner._margin_y == 1)).all()


def test_it_is_not_used_while_warming_up():
    """The warm-up trains as without it (a short series is scored the same, margin 4 or 0)."""
    rng = np.random.default_rng(6)
    x = rng.normal(92, 5, (1500, 1))
    y = (x[:, 0] > 91).astype(float)
    a, b = ManualStepLearner(LearnerConfig(), seed=0), ManualStepLearner(LearnerConfig(margin=0), seed=0)
    feed(a, x, y)
    feed(b, x, y)
    assert a.n_seen_ <= a.warm_end_ and len(a._margin_y) == 8
    np.testing.assert_array_equal(a.predict_proba_many(x), b.predict_proba_many(x))


def test_a_negative_margin_is_refused():
    with pytest.raises(ValueError, match="margin must not be negative"):
        LearnerConfig(margin=-1)
