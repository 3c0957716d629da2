"""The learner's hand-written torch step against the autograd step of OnlineLearner (models/manual_step.py)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from models.learner import LearnerConfig, OnlineLearner
from models.manual_step import ManualStepLearner


def _data(n=400, d=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) * 3 + 90
    y = (x[:, 0] + 0.5 * x[:, 1] > 135).astype(float)
    return x, y


def _pair(**changes):
    config = LearnerConfig(n_features=3, hidden=8, **changes)
    return OnlineLearner(config, seed=1), ManualStepLearner(config, seed=1)


@pytest.mark.parametrize("batchnorm", ["renorm", "none"])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_one_step_equals_the_torch_step(batchnorm, activation):
    """Same loss, weights, Adam moments and BatchRenorm running statistics after a step (float32 rounding)."""
    ref, fast = _pair(batchnorm=batchnorm, activation=activation)
    assert fast.manual_
    x, y = _data()
    for learner in (ref, fast):
        learner.learn_many(x[:4], y[:4])  # 16 warm steps each, the first setting BatchRenorm's statistics
        learner.net.train()
    assert torch.allclose(ref.opt.flat_, fast.opt.flat_, atol=1e-6)
    loss_ref, loss_fast = ref._optimise(x[:40], y[:40]), fast._optimise(x[:40], y[:40])
    assert loss_fast == pytest.approx(loss_ref, rel=1e-6)
    assert torch.allclose(ref.opt.flat_, fast.opt.flat_, atol=1e-6)
    assert torch.allclose(ref.opt.exp_avg_, fast.opt.exp_avg_, atol=1e-7)
    assert torch.allclose(ref.opt.exp_avg_sq_, fast.opt.exp_avg_sq_, atol=1e-8)
    assert ref.opt.n_steps_ == fast.opt.n_steps_ == fast.n_steps_ == 17
    for a, b in zip(ref.net.buffers(), fast.net.buffers()):
        assert torch.allclose(a.double(), b.double(), atol=1e-6)


@pytest.mark.parametrize("batchnorm", ["renorm", "none"])
def test_a_stream_learns_as_with_torch(batchnorm):
    ref, fast = _pair(batchnorm=batchnorm, early=False, drift_errors=0)
    x, y = _data()
    for i in range(0, 300, 25):
        ref.learn_many(x[i:i + 25], y[i:i + 25])
        fast.learn_many(x[i:i + 25], y[i:i + 25])
    assert ref.n_steps_ == fast.n_steps_ > 100
    # float32 rounding differs step by step (float64 arithmetic before Adam here): after hundreds of steps the
    # scores still agree to a few thousandths
    assert np.abs(ref.predict_proba_many(x) - fast.predict_proba_many(x)).max() < 5e-3


@pytest.mark.parametrize("changes", [{"batchnorm": "plain"}, {"loss": "sigmoid-bce"}])
def test_other_networks_fall_back_to_autograd(changes):
    ref, fast = _pair(**changes)
    assert not fast.manual_
    x, y = _data()
    ref.learn_many(x[:40], y[:40])
    fast.learn_many(x[:40], y[:40])
    assert torch.equal(ref.opt.flat_, fast.opt.flat_)


def test_a_step_that_would_not_be_finite_changes_nothing():
    ref, fast = _pair(normalise=False)
    x, y = _data()
    for learner in (ref, fast):
        learner.learn_many(x[:8], y[:8])
        learner.net.train()
    before = fast.opt.flat_.clone(), [b.clone() for b in fast.net.buffers()], fast.opt.n_steps_
    huge = np.array([[1e30] * 3, [-1e30] * 3] * 2)  # BatchRenorm's float32 variance overflows
    assert fast._optimise(huge, np.ones(4)) is None
    assert ref._optimise(huge, np.ones(4)) is None
    assert torch.equal(fast.opt.flat_, before[0]) and fast.opt.n_steps_ == before[2]
    assert all(torch.equal(a, b) for a, b in zip(fast.net.buffers(), before[1]))
    assert fast.n_skipped_ == ref.n_skipped_ == 1
    with torch.no_grad():
        fast.net[1].weight[0, 0] = float("nan")  # a broken weight: the loss is NaN
    assert fast._optimise(x[:8], y[:8]) is None and fast.n_skipped_ == 2


def test_pickle_and_state_dict_carry_over():
    _, fast = _pair()
    x, y = _data()
    fast.learn_many(x[:100], y[:100])
    copy = pickle.loads(pickle.dumps(fast))
    assert type(copy) is ManualStepLearner and copy.manual_
    plain = OnlineLearner(fast.config, seed=1)
    plain.load_state_dict(fast.state_dict())  # a checkpoint of either loads into the other
    for learner in (fast, copy):
        learner.learn_many(x[100:200], y[100:200])
    assert torch.equal(fast.opt.flat_, copy.opt.flat_)
    assert np.array_equal(plain.predict_proba_many(x), copy.predict_proba_many(x)) is False  # copy learned more
    plain.learn_many(x[100:200], y[100:200])
    assert np.abs(plain.predict_proba_many(x) - copy.predict_proba_many(x)).max() < 1e-3


def test_following_the_running_statistics_keeps_the_scores():
    """Where the learner compensates BatchRenorm1d's running-statistic moves in the first Linear layer
    (its ``_follow``, issue 13), the manual step does too: with a step too small to learn anything, the
    scores of raw readings do not move while the statistics do."""
    config = LearnerConfig(n_features=1, lr=1e-12, replay=0, early=False, drift_errors=0, warm_steps=4,
                           init_bias=False)
    fast = ManualStepLearner(config, seed=0)
    fast._follow = True
    rng = np.random.default_rng(0)
    x0 = rng.normal(90, 5, size=(64, 1))
    fast.learn_many(x0, (x0[:, 0] > 91).astype(float))
    probe = np.linspace(70, 110, 9)[:, None]
    before, mean0 = fast.predict_proba_many(probe), fast.net[0].running_mean.clone()
    x1 = x0[:fast.room()] + 8.0
    fast.learn_many(x1, (x1[:, 0] > 91).astype(float))
    assert float((fast.net[0].running_mean - mean0).abs().max()) > 1e-3
    np.testing.assert_allclose(fast.predict_proba_many(probe), before, atol=1e-5)
    fast._follow = False  # without it the scores move with the statistics
    x2 = x0[:fast.room()] + 16.0
    fast.learn_many(x2, (x2[:, 0] > 91).astype(float))
    assert np.abs(fast.predict_proba_many(probe) - before).max() > 1e-3
