"""Re-centring BatchRenorm1d's running statistics at a change (LearnerConfig.recentre, issue 13)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from models.learner import LearnerConfig, OnlineLearner
from models.manual_step import ManualStepLearner
from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))


def rested(cls, seed=0):
    """A learner that has seen 1,200 resting readings (60 bpm, all normal) in room-sized slices."""
    learner = cls(seed=seed)
    x = np.random.default_rng(seed).normal(60, 3, (1200, 1))
    i = 0
    while i < len(x):
        k = learner.room(x[i:], np.zeros(len(x) - i))
        learner.learn_many(x[i:i + k], np.zeros(k))
        i += k
    return learner


@pytest.mark.parametrize("cls", [OnlineLearner, ManualStepLearner])
def test_recentring_moves_the_statistics_and_keeps_the_function(cls):
    learner = rested(cls)
    bn = learner.net[0]
    grid = np.linspace(40, 120, 81)[:, None]
    before = learner.predict_proba_many(grid)
    new = np.array([[93.0], [95.0], [97.0]])
    learner.normaliser.update(new)  # as the step does before it re-centres
    learner._normalised(new)
    z_old = learner._normalised(learner._replay_x[:learner._n_replay])
    z_new = learner._normalised(new)
    learner._recentre(new, np.ones(3), balanced=True)
    centre = (z_old.mean() + z_new.mean()) / 2  # each class weighs half
    assert float(bn.running_mean[0]) == pytest.approx(centre, rel=1e-5)
    np.testing.assert_allclose(learner.predict_proba_many(grid), before, atol=1e-5)


def test_a_new_class_recentres_the_layer_on_both_classes():
    learner = rested(ManualStepLearner)
    mean0 = float(learner.net[0].running_mean[0])
    x = np.array([[94.0], [96.0], [95.0], [97.0]])
    learner.learn_many(x, np.ones(4))  # the first abnormal readings: a step right away
    z_rest = learner._normalised(np.array([[60.0]]))[0, 0]
    z_new = learner._normalised(np.array([[95.0]]))[0, 0]
    mean1 = float(learner.net[0].running_mean[0])
    assert abs(mean1 - (z_rest + z_new) / 2) < 0.25 * (z_new - z_rest)  # near the midpoint
    assert abs(mean0 - z_rest) < 0.1 * (z_new - z_rest)  # it sat on the resting readings before
    off = OnlineLearner(LearnerConfig(recentre=False), seed=0)
    assert off.config.recentre is False


def first_recovery(config: LearnerConfig, seed: int) -> int | None:
    """benchmarks/learning.py's run_stream("regime", seed, config)["recover"][0], over the stream up to its
    second change only: the scores there do not depend on later readings (test-then-train)."""
    from learning import _batches, _regime, readings_to_recover

    from monitor.core.monitor import Monitor

    batches, changes = _regime(seed)
    hr = np.concatenate([b.x[:, 0] for b in batches])[:changes[1]]
    mon = Monitor(config, seed=seed, trace=True)
    for b in _batches(hr):  # the benchmark's batches of 1,000, cut at the second change
        mon.process(b)
    tr = mon.trace.arrays()
    return readings_to_recover((tr["p"] > 0.5) == (tr["label"] > 0.5), changes[0], changes[1])


def test_the_regime_splice_recovers_sooner_with_recentring():
    """The regime stream's first change (rest -> tachycardia, the first abnormal readings ever seen):
    worst readings-to-recover over seeds 0-2, with and without re-centring (266 before issue 13;
    measured at c0c8a18: 266 without, 237 with)."""
    worst = {on: max(first_recovery(LearnerConfig(recentre=on), s) for s in range(3)) for on in (False, True)}
    assert worst[True] < worst[False]

