"""ManualStepLearner keeps BatchRenorm1d's running mean and variance as the rows of one (2, d) tensor:
the module, the learner's state and the step must keep seeing the same numbers (models/manual_step.py)."""

from __future__ import annotations

import pickle

import numpy as np
import torch

from models.learner import LearnerConfig, OnlineLearner
from models.manual_step import ManualStepLearner


def _data(n=300, d=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) * 4 + 90
    return x, (x[:, 0] - x[:, 1] > 0).astype(float)


def _shared(learner: ManualStepLearner) -> bool:
    bn = learner.net[0]
    return (torch.equal(bn.running_mean, learner._run[0]) and torch.equal(bn.running_var, learner._run[1])
            and bn.running_mean.untyped_storage().data_ptr() == learner._run.untyped_storage().data_ptr())


def test_the_buffers_are_the_rows_of_one_tensor_through_learning_loading_and_pickling():
    config = LearnerConfig(n_features=3, hidden=8)
    x, y = _data()
    fast = ManualStepLearner(config, seed=2)
    fast.learn_many(x[:100], y[:100])
    assert _shared(fast) and int(fast.net[0].num_batches_tracked) == fast.n_steps_ > 0
    loaded = ManualStepLearner(config, seed=5)
    loaded.load_state_dict(fast.state_dict())  # copies into the buffers: still one tensor
    copied = pickle.loads(pickle.dumps(fast))
    for learner in (fast, loaded, copied):
        learner.learn_many(x[100:], y[100:])
        assert _shared(learner)
    for other in (loaded, copied):
        assert torch.equal(other.opt.flat_, fast.opt.flat_)
        assert all(torch.equal(a, b) for a, b in zip(other.net.buffers(), fast.net.buffers()))
        np.testing.assert_array_equal(other.predict_proba_many(x), fast.predict_proba_many(x))
    # and a checkpoint of it still loads into the autograd learner, statistics included
    plain = OnlineLearner(config, seed=0)
    plain.load_state_dict(fast.state_dict())
    assert torch.equal(plain.net[0].running_mean, fast._run[0]) and torch.equal(plain.net[0].running_var, fast._run[1])
