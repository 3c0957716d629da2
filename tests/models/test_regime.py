"""Changes of regime: the early step after a wrong reading, the drift reset, and what they keep."""

from __future__ import annotations

import numpy as np
import pytest

from models.learner import LearnerConfig, OnlineLearner
from models.manual_step import ManualStepLearner  # the learner the monitor runs (its TorchScript steps)
from monitor.core.monitor import Monitor
from streams import Batch


def regime_stream(seed=0):
    """Rest (60 bpm) -> tachycardia (95) -> rest -> a label column whose threshold moves to 97."""
    rng = np.random.default_rng(seed)
    parts = [rng.normal(60, 3, 600), rng.normal(95, 5, 900), rng.normal(62, 3, 400), rng.normal(95, 5, 900)]
    x = np.concatenate(parts)
    y = (x > 91).astype(float)
    y[-900:] = x[-900:] > 97
    return x, y


def run(x, y, sizes, seed=0, config=None):
    """Monitor over x in batches of the given sizes (cycled); returns the scores and the monitor."""
    mon = Monitor(config, seed=seed)
    p, i, k = [], 0, 0
    while i < len(x):
        n = sizes[k % len(sizes)]
        b = Batch.of_values(x[i:i + n], first_line=i + 1)
        b = Batch(time=b.time, x=b.x, y=y[i:i + n], line=b.line)
        p.append(mon.process(b).p)
        i, k = i + n, k + 1
    return np.concatenate(p), mon


@pytest.fixture(scope="module")
def whole():
    x, y = regime_stream()
    return run(x, y, [1000])


def test_scores_do_not_depend_on_the_chunking_across_changes_of_regime(whole):
    x, y = regime_stream()
    p_whole, mon = whole
    assert mon.learner.n_drifts_ >= 1  # the threshold change is detected: the reset is exercised
    p_lines, _ = run(x, y, [1])
    p_ragged, _ = run(x, y, [7, 300, 1, 64, 2])
    np.testing.assert_array_equal(p_lines, p_whole)
    np.testing.assert_array_equal(p_ragged, p_whole)


def test_the_step_comes_right_after_a_wrong_reading():
    learner = ManualStepLearner(seed=0)
    rng = np.random.default_rng(1)
    x = rng.normal(92, 5, (600, 1))
    y = (x[:, 0] > 91).astype(float)
    learner.learn_many(x, y)
    probe = np.array([[80.0], [81.0], [200.0], [82.0], [83.0]])
    label = np.array([0.0, 0.0, 0.0, 0.0, 0.0])  # 200 bpm labelled normal: the model says abnormal
    assert learner.predict_proba_many(probe)[2] > 0.5
    assert learner.room() > 5
    assert learner.room(probe, label) == 3  # score and learn three readings, then ask again
    steps = learner.n_steps_
    learner.learn_many(probe[:3], label[:3])
    assert learner.n_steps_ > steps


def test_without_early_the_step_waits_for_the_mini_batch():
    learner = ManualStepLearner(LearnerConfig(early=False), seed=0)
    x = np.random.default_rng(1).normal(92, 5, (600, 1))
    learner.learn_many(x, (x[:, 0] > 91).astype(float))
    probe, label = np.array([[80.0], [200.0], [82.0]]), np.zeros(3)
    assert learner.room(probe, label) == learner.room()


def test_a_threshold_change_is_learned_within_a_few_hundred_readings(whole):
    x, y = regime_stream()
    p, _ = whole
    wrong = (p > 0.5) != (y > 0.5)
    assert wrong[-600:].mean() < 0.01  # without the reset the 1,024 replayed readings of the old threshold held it


def test_noisy_labels_are_not_taken_for_changes_of_regime():
    """A steady 20% of flipped labels: the error rate is high but does not change."""
    rng = np.random.default_rng(3)
    x = rng.normal(92, 5, 4000)
    y = (x > 91).astype(float)
    flip = rng.random(4000) < 0.2
    y[flip] = 1 - y[flip]
    _, mon = run(x, y, [1000])
    assert mon.learner.n_drifts_ == 0


def test_state_round_trip_mid_stream_continues_identically():
    """A monitor restored from the state at 2,000 readings scores the rest as the uninterrupted one."""
    x, y = regime_stream(seed=2)
    cut = 2000  # after the first changes, with errors in the drift window
    _, ref = run(x[:cut], y[:cut], [500])
    again = Monitor()
    again.load_state_dict(ref.state_dict())
    for i in range(cut, len(x), 500):  # the same batches to both: the uninterrupted run goes on beside
        b = Batch.of_values(x[i:i + 500], first_line=i + 1)
        b = Batch(time=b.time, x=b.x, y=y[i:i + 500], line=b.line)
        np.testing.assert_array_equal(again.process(b).p, ref.process(b).p)
    assert again.learner.n_drifts_ == ref.learner.n_drifts_ >= 1


def test_summary_says_which_network_ran(whole):
    _, mon = whole
    assert mon.summary()["network"] == "RunningNormaliser -> BatchRenorm1d(1) -> Linear(1, 16) -> ReLU -> Linear(16, 1)"
    assert Monitor(LearnerConfig(batchnorm="plain", normalise=False)).summary()["network"] == (
        "BatchNorm1d(1) -> Linear(1, 16) -> ReLU -> Linear(16, 1)")
