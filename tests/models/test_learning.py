"""Issue 5: learning from few readings with default settings, and what makes it work."""

from __future__ import annotations

import numpy as np
import torch

from models.adam import FlatAdam
from models.learner import LearnerConfig, OnlineLearner
from models.manual_step import ManualStepLearner  # the learner the monitor runs (its TorchScript steps)
from monitor.core.metrics import first_sustained
from monitor.core.monitor import Monitor
from streams import Batch, Sample


def _run(source, seed=0, config=None):
    mon = Monitor(config, seed=seed, trace=True)
    for batch in source:
        mon.process(batch)
    tr = mon.trace.arrays()
    return tr["p"], tr["label"]


def test_sample_reaches_99_percent_in_one_pass_with_defaults():
    p, y = _run(Sample(), seed=0)
    correct = (p > 0.5) == (y > 0.5)
    assert correct.mean() >= 0.99
    assert first_sustained(correct, window=100, level=0.99) is not None


def test_resting_series_is_not_flagged():
    p, _ = _run(Sample(name="mit-hr-207"), seed=0)
    assert (p > 0.5).mean() <= 0.01


def test_a_normaliser_update_does_not_move_the_learned_function():
    """The first layer is rescaled so that the same raw reading gets the same score after an update."""
    learner = OnlineLearner(LearnerConfig(warm_steps=0, steps=0, min_batch=4, growth=0, batch_size=4), seed=0)
    rng = np.random.default_rng(0)
    learner.learn_many(rng.normal(90, 3, (4, 1)), np.zeros(4))  # first statistics
    grid = np.linspace(70, 110, 41).reshape(-1, 1)
    before = learner.predict_proba_many(grid)
    learner.learn_many(rng.normal(100, 9, (4, 1)), np.zeros(4))  # the statistics move a lot
    np.testing.assert_allclose(learner.predict_proba_many(grid), before, atol=1e-5)


def test_without_preserving_the_function_the_scores_move():
    learner = OnlineLearner(LearnerConfig(warm_steps=0, steps=0, min_batch=4, growth=0, batch_size=4,
                                          preserve=False), seed=0)
    rng = np.random.default_rng(0)
    learner.learn_many(rng.normal(90, 3, (4, 1)), np.zeros(4))
    grid = np.linspace(70, 110, 41).reshape(-1, 1)
    before = learner.predict_proba_many(grid)
    learner.learn_many(rng.normal(100, 9, (4, 1)), np.zeros(4))
    assert np.abs(learner.predict_proba_many(grid) - before).max() > 1e-2


def test_a_class_seen_for_the_first_time_restarts_the_warm_up():
    cfg = LearnerConfig(warm_until=100)
    learner = ManualStepLearner(cfg, seed=0)
    x = np.full((400, 1), 80.0) + np.random.default_rng(1).normal(0, 1, (400, 1))
    learner.learn_many(x, np.zeros(400))
    assert learner.warm_end_ < 400  # normal readings only: warm-up long over
    learner.learn_many(np.full((32, 1), 99.0), np.ones(32))  # fills the pending mini-batch (25 readings)
    assert learner.warm_end_ > 400


def test_slow_drift_of_the_baseline_is_followed():
    rng = np.random.default_rng(3)
    hr = np.linspace(80, 100, 8000) + rng.normal(0, 3, 8000)
    p, y = _run([Batch.of_values(hr[i:i + 500], first_line=i + 1) for i in range(0, 8000, 500)])
    assert ((p[4000:] > 0.5) == (y[4000:] > 0.5)).mean() >= 0.98


def test_flat_adam_matches_torch_adam():
    torch.manual_seed(0)
    a = torch.nn.Sequential(torch.nn.Linear(1, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    b = torch.nn.Sequential(torch.nn.Linear(1, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    b.load_state_dict(a.state_dict())
    ref, flat = torch.optim.Adam(a.parameters(), lr=0.05), FlatAdam(b.parameters(), lr=0.05)
    x = torch.randn(32, 1)
    y = (x[:, 0] > 0.3).float()
    loss_fn = torch.nn.BCEWithLogitsLoss()
    for _ in range(50):
        loss = loss_fn(a(x)[:, 0], y)
        ref.zero_grad()
        loss.backward()
        ref.step()
        loss_b = loss_fn(b(x)[:, 0], y)
        flat.step(flat.flat_grad(torch.autograd.grad(loss_b, flat.params)))
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)


def test_flat_adam_state_round_trip():
    net = torch.nn.Linear(2, 1)
    opt = FlatAdam(net.parameters(), lr=0.1)
    opt.step(torch.ones(3))
    other = FlatAdam(torch.nn.Linear(2, 1).parameters(), lr=0.1)
    other.load_state_dict(opt.state_dict())
    assert other.n_steps_ == 1 and torch.equal(other.exp_avg_, opt.exp_avg_)
